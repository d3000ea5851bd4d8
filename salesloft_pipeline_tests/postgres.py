"""The Postgres the tests use.

Configured by SALESLOFT_TEST_POSTGRES_URL, default
postgresql://postgres@127.0.0.1:5432/test (the machine's and CI's server).
Each test session gets a database of its own, dropped at the end, so tests
never touch data they did not create.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import pytest
from sqlalchemy.engine import make_url

ADMIN_URL = os.environ.get("SALESLOFT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _admin():  # type: ignore[no-untyped-def]
    try:
        conn = psycopg2.connect(ADMIN_URL, connect_timeout=5)
    except psycopg2.OperationalError as error:
        pytest.fail(
            f"These tests need Postgres at SALESLOFT_TEST_POSTGRES_URL ({make_url(ADMIN_URL)!r}): {error}"
        )
    conn.autocommit = True
    return conn


@contextmanager
def fresh_database(prefix: str = "slp_test") -> Iterator[str]:
    """The URL of a new, empty database on the test Postgres, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = _admin()
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty database for this test session."""
    with fresh_database() as url:
        yield url
