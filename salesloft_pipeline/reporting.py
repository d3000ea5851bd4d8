"""The reporting time zone: whose calendar the engagement metrics count days in.

`SALESLOFT_REPORTING_TIMEZONE` (an IANA name such as `America/New_York`) when
it is set. Otherwise the team's zone as SalesLoft reports it: `/v2/team`
documents no time zone, so it is the `time_zone` of the user the API key
belongs to (`/v2/me`: whoever connected the pipeline, usually the team's
admin). That lookup costs one request, once: its answer is kept in
`reporting_timezone.json` under SALESLOFT_PIPELINE_HOME, so every later load
(the code server, each run worker) reads the same zone without asking again.
When it cannot be learnt (no credentials, SalesLoft unreachable, no zone on
the user), days are UTC, with a log line saying why; nothing is kept then, so
the next load asks again.

Every process of a deployment must count days in one zone: on machines that
do not share SALESLOFT_PIPELINE_HOME, set the variable.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

if TYPE_CHECKING:
    from salesloft_pipeline.salesloft import SalesloftClient

VARIABLE = "SALESLOFT_REPORTING_TIMEZONE"
LEARNT_FILE = "reporting_timezone.json"
UTC = "UTC"

log = logging.getLogger(__name__)


def validated(name: str, source: str = VARIABLE) -> str:
    """`name` if it is an IANA time zone name; a clear error naming where it came from if not."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{source} must be an IANA time zone name such as America/New_York or Asia/Kolkata, not {name!r}"
        ) from None
    return name


def reporting_timezone() -> str:
    """The zone engagement days are counted in (read on each call: the variable wins whenever it is set)."""
    value = (os.environ.get(VARIABLE) or "").strip()
    if value:
        return validated(value)
    return team_timezone()


def today(zone: str | None = None) -> date:
    """Today in `zone`, by default the reporting time zone (the engagement partitions' newest day)."""
    return datetime.now(ZoneInfo(zone or reporting_timezone())).date()


def learnt_path() -> Path:
    from salesloft_pipeline.warehouse import default_home

    return default_home() / LEARNT_FILE


@functools.cache
def team_timezone() -> str:
    """The team's zone as SalesLoft reports it (see the module's docstring), UTC when it cannot be learnt."""
    path = learnt_path()
    if path.exists():
        try:
            return validated(json.loads(path.read_text())["time_zone"], str(path))
        except (ValueError, KeyError, TypeError) as error:
            log.warning(f"ignoring {path}: {error}; asking SalesLoft again")
    zone, why = _ask_salesloft()
    if zone is None:
        log.warning(f"engagement days are counted in UTC: {why}; set {VARIABLE} to the team's zone")
        return UTC
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps({"time_zone": zone, "learnt_from": why}) + "\n")
    partial.replace(path)
    log.info(f"engagement days are counted in {zone}, the team's zone ({why}); kept in {path}")
    return zone


def _ask_salesloft() -> tuple[str | None, str]:
    """(zone, how it was learnt) or (None, why not), from one request to `/v2/me`."""
    from salesloft_pipeline.salesloft import SalesloftClient
    from salesloft_pipeline.salesloft.auth import OAUTH_VARIABLES
    from salesloft_pipeline.salesloft.errors import API_KEY_VARIABLE, SalesloftError

    if not any(os.environ.get(name) for name in (API_KEY_VARIABLE, *OAUTH_VARIABLES)):
        return None, "no SalesLoft credentials are configured to ask SalesLoft for the team's zone"
    try:
        client = SalesloftClient(timeout=httpx.Timeout(10.0, connect=5.0), max_attempts=1, max_rate_limit_waits=0)
    except SalesloftError as error:
        return None, f"no SalesLoft client to ask for the team's zone ({error})"
    with client:
        return zone_from_salesloft(client)


def zone_from_salesloft(client: SalesloftClient) -> tuple[str | None, str]:
    """(zone, how it was learnt) or (None, why not): the time_zone of the user `/v2/me` answers with."""
    from salesloft_pipeline.salesloft.errors import SalesloftError

    try:
        body = client.get("me").body
    except SalesloftError as error:
        return None, f"SalesLoft's /v2/me did not answer ({type(error).__name__}: {error})"
    user = body.get("data") if isinstance(body, dict) else None
    zone = user.get("time_zone") if isinstance(user, dict) else None
    if not zone or not isinstance(zone, str):
        return None, "the user SalesLoft's /v2/me answers with has no time_zone"
    try:
        return validated(zone, "the time_zone of SalesLoft's /v2/me user"), f"time_zone of /v2/me user {user.get('id')}"
    except ValueError as error:
        return None, str(error)
