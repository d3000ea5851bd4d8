"""`salesloft-pipeline doctor`: checks the configuration against the real account.

One line per check, OK / WARN / FAIL, and for WARN and FAIL what to change
(always naming the environment variable). It costs the SalesLoft team's
budget one request for `/v2/me` plus one per stream that needs a privileged
scope. Exit code 1 when any check FAILs, 0 otherwise.

Nothing secret is printed: not the API key, not the webhook secrets, not a
password inside a database URL (every line goes through `_Redactor`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import click
import httpx

from salesloft_pipeline.salesloft.auth import (
    CLIENT_SECRET_VARIABLE,
    OAUTH_VARIABLES,
    REFRESH_TOKEN_VARIABLE,
    STORE_VARIABLE,
    TOKEN_URL_VARIABLE,
    OAuthTokens,
)
from salesloft_pipeline.salesloft.client import BASE_URL_VARIABLE, DEFAULT_BASE_URL
from salesloft_pipeline.salesloft.errors import API_KEY_VARIABLE

WAREHOUSE_VARIABLE = "SALESLOFT_WAREHOUSE_URL"
EVENTS_VARIABLE = "SALESLOFT_EVENTS_URL"
SECRET_VARIABLE = "SALESLOFT_WEBHOOK_SECRET"

# Below this much budget left in the minute, other integrations of the team
# are eating most of it (SalesLoft's budget is 600 a minute, team-wide).
LOW_BUDGET = 60
DUCKDB_LOCK_SECONDS = 10.0
POSTGRES_CONNECT_SECONDS = "10"

OK, WARN, FAIL = "OK", "WARN", "FAIL"
_COLORS = {OK: "green", WARN: "yellow", FAIL: "red"}


@dataclass(frozen=True)
class Check:
    level: str
    what: str  # what was checked and what was found
    fix: str = ""  # for WARN and FAIL: what to do


class _Redactor:
    """Removes every known secret from a text before it is printed."""

    def __init__(self, env: dict[str, str]) -> None:
        secrets: set[str] = set()
        for name in (API_KEY_VARIABLE, CLIENT_SECRET_VARIABLE, REFRESH_TOKEN_VARIABLE):
            if env.get(name):
                secrets.add(env[name].strip())
        for value in env.get(SECRET_VARIABLE, "").split(","):
            if value.strip():
                secrets.add(value.strip())
        for name in (WAREHOUSE_VARIABLE, EVENTS_VARIABLE, BASE_URL_VARIABLE, STORE_VARIABLE):
            password = _url_password(env.get(name, ""))
            if password:
                secrets.add(password)
        # Longest first, so that a secret containing another is wholly hidden.
        self._secrets = sorted((s for s in secrets if len(s) >= 3), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _url_password(url: str) -> str | None:
    if "://" not in url:
        return None
    try:
        return httpx.URL(url).password or None
    except Exception:  # noqa: BLE001 - an unparsable URL is reported by its own check
        try:
            from sqlalchemy.engine import make_url

            return make_url(url).password
        except Exception:  # noqa: BLE001
            return None


def _public_url(url: str) -> str:
    """The URL without user, password, query or fragment."""
    try:
        parsed = httpx.URL(url)
        return str(parsed.copy_with(username=None, password=None, query=None, fragment=None))
    except Exception:  # noqa: BLE001
        return url.split("?")[0]


@contextlib.contextmanager
def _quiet_client_log() -> Iterator[None]:
    """The client logs each retry; the doctor's own line says it better."""
    logger = logging.getLogger("salesloft_pipeline.salesloft.client")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


# -- SalesLoft API -----------------------------------------------------------
def check_api() -> list[Check]:
    """`/v2/me`, the budget left this minute, and the scopes of the optional streams."""
    from salesloft_pipeline.salesloft import STREAMS, SalesloftClient
    from salesloft_pipeline.salesloft.errors import (
        ApiError,
        AuthError,
        ConfigError,
        RateLimitError,
        TransportError,
    )
    from salesloft_pipeline.salesloft.pacing import REMAINING_HEADER, header_int

    base_url = (os.environ.get(BASE_URL_VARIABLE) or DEFAULT_BASE_URL).rstrip("/")
    shown_url = _public_url(base_url)
    source = BASE_URL_VARIABLE if os.environ.get(BASE_URL_VARIABLE) else f"{BASE_URL_VARIABLE} (unset: the default)"
    try:
        client = SalesloftClient(
            base_url=base_url,
            timeout=httpx.Timeout(20.0, connect=5.0),
            max_attempts=2,
            backoff_base=0.2,
            backoff_max=1.0,
            max_rate_limit_waits=0,  # a 429 here is a finding, not a reason to wait a minute
        )
    except ConfigError as error:
        if not any(os.environ.get(name) for name in OAUTH_VARIABLES):
            return [Check(FAIL, f"SalesLoft API key: {API_KEY_VARIABLE} is not set",
                          f"set {API_KEY_VARIABLE} to a SalesLoft API key or OAuth access token,"
                          f" or set {', '.join(OAUTH_VARIABLES)} to use OAuth")]
        return [Check(FAIL, f"SalesLoft credentials: {str(error).rstrip('.')}",
                      f"set {API_KEY_VARIABLE} or all of {', '.join(OAUTH_VARIABLES)} (not both):"
                      " see docs/oauth.md")]

    oauth = client.token_source if isinstance(client.token_source, OAuthTokens) else None
    checks: list[Check] = []
    with client, _quiet_client_log():
        try:
            me = client.get("me")
        except AuthError as error:
            if oauth is not None:
                return [Check(FAIL, f"OAuth: {str(error).rstrip('.')}",
                              f"check {', '.join(OAUTH_VARIABLES)} and {TOKEN_URL_VARIABLE}")]
            return [Check(FAIL, f"SalesLoft refused the key in {API_KEY_VARIABLE} (HTTP 401 from {shown_url}/me)",
                          f"set {API_KEY_VARIABLE} to a valid API key or an unexpired OAuth access token"
                          f" for {shown_url}")]
        except ConfigError as error:  # the OAuth token store
            return [Check(FAIL, f"OAuth: {str(error).rstrip('.')}", f"check {STORE_VARIABLE}")]
        except RateLimitError:
            return [
                Check(WARN, f"SalesLoft API at {shown_url} answered 429 to /me: the team's budget is spent this minute",
                      "other integrations use the whole budget; run `salesloft-pipeline doctor` again in a minute"
                      " to check the key and scopes"),
            ]
        except TransportError as error:
            if oauth is not None and error.path == oauth.token_url:
                return [Check(FAIL, f"OAuth token endpoint unreachable at {_public_url(oauth.token_url)}"
                                    f" ({error.detail})", f"check {TOKEN_URL_VARIABLE} and the network")]
            return [Check(FAIL, f"SalesLoft API unreachable at {shown_url} ({error.detail})",
                          f"check {source} (it must be the API's base URL, ending in /v2) and the network"
                          " or proxy between here and it")]
        except ApiError as error:
            hint = (f"{source} should be the API's base URL, ending in /v2"
                    if error.status in (404, 405) else f"check {source} and {API_KEY_VARIABLE}")
            detail = f": {error.detail}" if error.detail else ""
            return [Check(FAIL, f"SalesLoft API at {shown_url} answered HTTP {error.status} to /me{detail}", hint)]

        user = me.body.get("data") if isinstance(me.body, dict) else None
        if not isinstance(user, dict):
            return [Check(FAIL, f"{shown_url}/me answered 200 without a user record: is it SalesLoft's API?",
                          f"check {source}")]
        if oauth is not None:
            checks.append(Check(OK, f"SalesLoft OAuth access token accepted at {shown_url}: signed in as"
                                    f" {_user_label(user)} (rotated tokens kept in {oauth.store.describe()})"))
        else:
            checks.append(Check(OK, f"SalesLoft API key accepted at {shown_url}: signed in as {_user_label(user)}"))

        checks.append(check_reporting_zone(user))
        remaining = header_int(me.headers, REMAINING_HEADER)
        if remaining is None:
            checks.append(Check(WARN, f"API budget: the answer carried no {REMAINING_HEADER} header",
                                f"the pipeline paces itself on that header; check that {source} is SalesLoft's API"))
        elif remaining < LOW_BUDGET:
            checks.append(Check(WARN, f"API budget: only {remaining} cost left this minute (the budget is team-wide)",
                                "other integrations of the team are using most of it; extraction will be slow"
                                " until they ease off (no setting here changes it)"))
        else:
            checks.append(Check(OK, f"API budget: {remaining} cost left this minute (team-wide)"))

        # One check a scope, naming the streams it gates (the first one's list endpoint answers for all).
        gated: dict[str, list[Any]] = {}
        for stream in STREAMS:
            if stream.required_scope is not None:
                gated.setdefault(stream.required_scope, []).append(stream)
        for scope, streams in gated.items():
            names = ", ".join(s.name for s in streams)
            label = f"stream{'s' if len(streams) > 1 else ''} {names}"
            try:
                client.get(streams[0].path, params=[*streams[0].params, ("per_page", 1), ("page", 1)])
            except ApiError as error:
                if _is_scope_refusal(error):
                    holder = f"the OAuth app {oauth.client_id}" if oauth is not None else f"the key in {API_KEY_VARIABLE}"
                    checks.append(Check(WARN, f"{label} will be skipped: the key lacks scope {scope}",
                                        f"grant scope {scope} to {holder}"
                                        f" to read {names} (the other streams run without it)"))
                else:
                    status = f"HTTP {error.status}" if error.status else error.detail
                    checks.append(Check(WARN, f"{label}: could not check scope {scope} ({status})",
                                        "run `salesloft-pipeline doctor` again later"))
            else:
                checks.append(Check(OK, f"{label}: scope {scope} granted"))
    return checks


def check_reporting_zone(user: dict[str, Any]) -> Check:
    """Which zone engagement days are counted in, beside the zone of the key's user (from the same /v2/me)."""
    from salesloft_pipeline.reporting import VARIABLE, learnt_path, validated

    theirs = user.get("time_zone")
    configured = (os.environ.get(VARIABLE) or "").strip()
    if configured:
        try:
            validated(configured)
        except ValueError as error:
            return Check(FAIL, str(error), f"set {VARIABLE} to the team's zone, e.g. {theirs or 'America/New_York'}")
        return Check(OK, f"engagement days are counted in {configured} (from {VARIABLE}; the key's user is in {theirs})")
    if not theirs:
        return Check(WARN, f"engagement days will be counted in UTC: {VARIABLE} is unset and the key's user has no"
                           " time_zone", f"set {VARIABLE} to the team's zone")
    learnt = learnt_path()
    kept = f"; kept in {learnt}" if learnt.exists() else ""
    return Check(OK, f"engagement days are counted in {theirs}, the team's zone (the key's user's){kept}")


def _user_label(user: dict[str, Any]) -> str:
    name = user.get("name") or " ".join(str(user.get(k) or "") for k in ("first_name", "last_name")).strip()
    email = user.get("email")
    if name and email:
        return f"{name} <{email}>"
    return str(name or email or f"user {user.get('id')}")


def _is_scope_refusal(error: Any) -> bool:
    """SalesLoft answers 422 "...required scope access not included" (403 also occurs)."""
    if error.status == 403:
        return True
    return error.status == 422 and "scope" in (error.detail or "").lower()


# -- storage -------------------------------------------------------------------
def check_warehouse() -> Check:
    from salesloft_pipeline.warehouse import DuckDBWarehouse, WarehouseBusy, open_warehouse

    configured = os.environ.get(WAREHOUSE_VARIABLE)
    source = WAREHOUSE_VARIABLE if configured else f"{WAREHOUSE_VARIABLE} (unset: the default DuckDB file)"
    try:
        warehouse = open_warehouse()
    except ValueError as error:
        return Check(FAIL, f"warehouse: {error}", f"fix {WAREHOUSE_VARIABLE}")
    where = warehouse.describe()
    created = False
    if isinstance(warehouse, DuckDBWarehouse):
        warehouse.lock_timeout = DUCKDB_LOCK_SECONDS
        created = not warehouse.path.exists()
    try:
        with _env_default("PGCONNECT_TIMEOUT", POSTGRES_CONNECT_SECONDS):
            warehouse.query("SELECT 1")
    except WarehouseBusy:
        return Check(WARN, f"warehouse {where}: held by another process for over {DUCKDB_LOCK_SECONDS:.0f} s",
                     "a run (or `dagster dev`) holds the DuckDB file; run doctor again when it is idle,"
                     f" or set {WAREHOUSE_VARIABLE} to a Postgres URL for concurrent use")
    except Exception as error:  # noqa: BLE001 - any failure here is the finding
        return Check(FAIL, f"warehouse {where} unreachable ({_first_line(error)})",
                     f"check {source}: the database must be up and reachable, the user allowed to connect")
    note = " (created: it did not exist)" if created else ""
    return Check(OK, f"warehouse {where} answers{note}")


def check_event_store() -> Check:
    from salesloft_pipeline.webhooks import open_event_store

    configured = os.environ.get(EVENTS_VARIABLE)
    source = EVENTS_VARIABLE if configured else f"{EVENTS_VARIABLE} (unset: the default SQLite file)"
    try:
        store = open_event_store()
    except ValueError as error:
        return Check(FAIL, f"event store: {error}", f"fix {EVENTS_VARIABLE}")
    where = store.describe()
    try:
        store.setup()
        store.ping()
    except Exception as error:  # noqa: BLE001 - any failure here is the finding
        return Check(FAIL, f"event store {where} unreachable ({_first_line(error)})",
                     f"check {source}: the database must be up and reachable, the user allowed to create a table")
    finally:
        with contextlib.suppress(Exception):
            store.close()
    return Check(OK, f"event store {where} answers")


def check_webhook_secret() -> Check:
    from salesloft_pipeline.webhooks import MissingSecret, Secrets

    try:
        secrets = Secrets.from_env()
    except MissingSecret:
        return Check(WARN, f"webhook secret: {SECRET_VARIABLE} is not set, so webhook deliveries will not be accepted",
                     f"set {SECRET_VARIABLE} to the subscriptions' callback_token (only needed to receive webhooks)")
    count = len(secrets)
    extra = f" ({count} secrets: a rotation is in progress)" if count > 1 else ""
    return Check(OK, f"webhook secret set{extra}")


@contextlib.contextmanager
def _env_default(name: str, value: str) -> Iterator[None]:
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def run_checks() -> list[Check]:
    return [*check_api(), check_warehouse(), check_event_store(), check_webhook_secret()]


@click.command("doctor")
def doctor_command() -> None:
    """Check the configuration against the real SalesLoft account.

    The API key (/v2/me), the budget left this minute, the scopes of the
    optional streams, the warehouse, the event store and the webhook secret:
    one line each, with what to fix. Costs the team's API budget about 2.
    Exits 1 if any check fails.
    """
    redact = _Redactor(dict(os.environ))
    counts = {OK: 0, WARN: 0, FAIL: 0}
    for check in run_checks():
        counts[check.level] += 1
        label = click.style(f"{check.level:<4}", fg=_COLORS[check.level], bold=check.level != OK)
        line = f"{check.what}. Fix: {check.fix}" if check.fix else check.what
        click.echo(f"{label}  {redact(line)}")
    click.echo(f"\n{counts[OK]} OK, {counts[WARN]} WARN, {counts[FAIL]} FAIL")
    if counts[FAIL]:
        raise SystemExit(1)
