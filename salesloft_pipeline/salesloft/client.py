"""The HTTP client: auth, timeouts, pacing, retries, typed errors and stats."""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from salesloft_pipeline import __version__
from salesloft_pipeline.salesloft.auth import ApiKey, BearerAuth, TokenSource, token_source_from_env
from salesloft_pipeline.salesloft.errors import (
    ApiError,
    AuthError,
    ConfigError,
    RateLimitError,
    TransportError,
)
from salesloft_pipeline.salesloft.pacing import COST_HEADER, REMAINING_HEADER, Pacer, header_int, page_cost

log = logging.getLogger(__name__)

BASE_URL_VARIABLE = "SALESLOFT_BASE_URL"
DEFAULT_BASE_URL = "https://api.salesloft.com/v2"
USER_AGENT = f"salesloft-pipeline/{__version__} python-httpx/{httpx.__version__}"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

Params = Sequence[tuple[str, str | int]]


@dataclass
class ClientStats:
    """What a client spent: requests sent, API cost charged, 429s met, retries made,
    and the team's budget left in the minute as the last answer said."""

    requests: int = 0
    cost: int = 0
    rate_limited: int = 0
    retries: int = 0
    budget_left: int | None = None


@dataclass(frozen=True)
class Response:
    """A decoded answer: the JSON body and its headers."""

    body: Any
    headers: httpx.Headers
    status: int


class _RetryableBody(Exception):
    """A 2xx answer whose body is not the JSON it should be (truncated, HTML...)."""


class SalesloftClient:
    """A SalesLoft REST API v2 client for one API key or OAuth app.

    Credentials: `api_key`, or a `token_source` (e.g. `auth.OAuthTokens`), or
    when neither is given the environment (SALESLOFT_API_KEY, or the OAuth
    variables: see `auth.token_source_from_env`). The Authorization header is
    computed as each request goes out, so every retry and every request after
    a rate-limit wait carries a token that is fresh then; an OAuth token
    refused with a 401 is refreshed and the request resent once.

    Pacing keeps this client within `budget_share` of the team's budget;
    transient failures (5xx, 408, timeouts, dropped connections, broken
    bodies) are retried `max_attempts` times in all with bounded exponential
    backoff and full jitter; 429s wait for the window to turn, up to
    `max_rate_limit_waits` times in a row.
    """

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        budget_share: float = 0.9,
        window_seconds: float = 60.0,
        budget: int | None = None,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_rate_limit_waits: int = 30,
        transport: httpx.BaseTransport | None = None,
        token_source: TokenSource | None = None,
    ) -> None:
        if api_key is not None and token_source is not None:
            raise ConfigError("give SalesloftClient an api_key or a token_source, not both")
        if token_source is None:
            token_source = ApiKey(api_key) if api_key is not None else token_source_from_env()
        self._auth = token_source
        self.base_url = (base_url or os.environ.get(BASE_URL_VARIABLE) or DEFAULT_BASE_URL).rstrip("/")
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_rate_limit_waits = max_rate_limit_waits
        self.pacer = Pacer(share=budget_share, window_seconds=window_seconds, budget=budget)
        self.stats = ClientStats()
        self._http = httpx.Client(
            base_url=self.base_url + "/",
            auth=BearerAuth(token_source),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            timeout=timeout,
            limits=httpx.Limits(max_keepalive_connections=4, keepalive_expiry=30.0),
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"SalesloftClient(base_url={self.base_url!r}, auth={self._auth!r})"

    @property
    def token_source(self) -> TokenSource:
        """Where the bearer tokens come from (an API key, or OAuth)."""
        return self._auth

    def __enter__(self) -> SalesloftClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        self._auth.close()

    def get(self, path: str, params: Params = ()) -> Response:
        """GET `path` (relative to the base URL) and decode its JSON, paced and retried.

        Raises AuthError (401), ApiError (other final statuses), RateLimitError
        or TransportError (retries ran out).
        """
        return self.request("GET", path, params=params)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params = (),
        json: Any = None,
        idempotent: bool | None = None,
    ) -> Response:
        """Sends `method path` (relative to the base URL) with an optional JSON body,
        paced and retried like `get`, and decodes the JSON answer (None when empty).

        GET, PUT and DELETE are retried on 5xx, 408, timeouts and dropped
        connections; POST is not idempotent, so by default it is retried only
        when the request surely never reached the server (connection refused)
        or was refused by the rate limit (429: not processed, not charged).
        Pass `idempotent=True` to retry a POST like the others.
        Raises AuthError (401), ApiError (other final statuses), RateLimitError
        or TransportError (retries ran out).
        """
        method = method.upper()
        path = path.lstrip("/")
        safe = method in ("GET", "HEAD", "PUT", "DELETE") if idempotent is None else idempotent
        expected_cost = page_cost(int(dict(params).get("page", 1))) if method == "GET" else 1
        content = orjson.dumps(json) if json is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        attempts = 0
        rate_limit_waits = 0
        while True:
            self.pacer.wait_turn(expected_cost)
            attempts += 1
            sent_at = time.time()
            try:
                response = self._http.request(
                    method, path, params=list(params), content=content, headers=headers
                )
                body = _decode(response, allow_empty=method != "GET") if response.is_success else None
            except (httpx.TimeoutException, httpx.TransportError, _RetryableBody) as exc:
                self.stats.requests += 1
                if not safe and not isinstance(exc, httpx.ConnectError):
                    # The server may have acted on it: retrying could do it twice.
                    raise TransportError(
                        f"{method} {self.base_url}/{path} failed and was not retried (not idempotent):"
                        f" {_describe(exc)}",
                        status=None,
                        path=path,
                        attempts=attempts,
                        detail=_describe(exc),
                    ) from exc
                self._retry_or_raise(path, attempts, None, _describe(exc), method)
                continue
            received_at = time.time()
            self.stats.requests += 1 + len(response.history)  # history: a 401 that BearerAuth answered by resending
            cost = header_int(response.headers, COST_HEADER) or 0
            status = response.status_code
            self.stats.budget_left = header_int(response.headers, REMAINING_HEADER)
            self.pacer.observe(response.headers, sent_at, received_at, rate_limited=status == 429)
            if status == 429:
                # Not charged: the budget was spent, by us or by the rest of the team.
                self.stats.rate_limited += 1
                rate_limit_waits += 1
                attempts -= 1
                if rate_limit_waits > self.max_rate_limit_waits:
                    raise RateLimitError.for_response(
                        429, path, attempts + rate_limit_waits, _detail(response), method
                    )
                log.info("429 on %s %s: waiting for the rate-limit window to turn", method, path)
                continue
            self.stats.cost += cost
            rate_limit_waits = 0
            if response.is_success:
                return Response(body, response.headers, status)
            if status == 401:
                # BearerAuth already refreshed and resent once where that could help.
                advice = self._auth.refusal_advice()
                raise AuthError(path, attempts, _detail(response), method, what=self._auth.what, advice=advice)
            if (status >= 500 or status == 408) and safe:
                self._retry_or_raise(path, attempts, status, _detail(response), method)
                continue
            raise ApiError.for_response(status, path, attempts, _detail(response), method)

    def _retry_or_raise(
        self, path: str, attempts: int, status: int | None, detail: str, method: str = "GET"
    ) -> None:
        if attempts >= self.max_attempts:
            if status is None:
                raise TransportError(
                    f"{method} {self.base_url}/{path} failed after {attempts} attempts: {detail}."
                    f" Check that {BASE_URL_VARIABLE} ({self.base_url}) is reachable from here.",
                    status=None,
                    path=path,
                    attempts=attempts,
                    detail=detail,
                )
            raise ApiError.for_response(status, path, attempts, detail, method)
        self.stats.retries += 1
        delay = random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** (attempts - 1)))
        log.warning(
            "%s %s attempt %d failed (%s); retrying in %.2fs",
            method,
            path,
            attempts,
            f"HTTP {status}: {detail}" if status else detail,
            delay,
        )
        time.sleep(delay)


def _decode(response: httpx.Response, allow_empty: bool = False) -> Any:
    if allow_empty and not response.content.strip():
        return None  # 204 No Content, or an empty 2xx to a PUT/POST/DELETE
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise _RetryableBody(f"HTTP {response.status_code} with a truncated or non-JSON body") from exc


def _describe(exc: Exception) -> str:
    if isinstance(exc, _RetryableBody):
        return str(exc)
    # httpx messages name the URL at most, never headers; keep them short anyway.
    return f"{type(exc).__name__}: {exc}"[:300]


def _detail(response: httpx.Response) -> str:
    """The server's own error text, for messages; short and never from our request."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:200]
    if isinstance(body, Mapping):
        if "error" in body:
            return str(body["error"])[:300]
        if "errors" in body:
            return orjson.dumps(body["errors"]).decode()[:300]
    return str(body)[:200]
