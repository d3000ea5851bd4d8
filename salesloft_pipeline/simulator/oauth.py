"""SalesLoft's OAuth token endpoint, with rotation and expiry, and the check of `/v2` bearer tokens.

As SalesLoft documents it: `POST /oauth/token` with `grant_type=refresh_token`,
`client_id`, `client_secret` and `refresh_token` (form or JSON) answers
`{access_token, token_type: "bearer", expires_in, refresh_token, scope,
created_at}`. Every refresh issues a new refresh token and the old one stops
working; a used, revoked or unknown refresh token answers 401
`{"error": "invalid_grant", ...}`. Access tokens expire after
`oauth_access_token_seconds`; an expired one gets a 401 on `/v2`.
Older access tokens stay valid until they expire (a refresh does not revoke them).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .config import SimulatorConfig

JSON = "application/json; charset=utf-8"
SCOPE = "read write"


def _json(status: int, payload: Any) -> Response:
    # Token answers must never be cached (RFC 6749 5.1).
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    return Response(orjson.dumps(payload), status_code=status, headers=headers, media_type=JSON)


class OAuth:
    """The OAuth app's grants and the live access tokens of one simulated team."""

    def __init__(self, config: SimulatorConfig, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.client_id = config.oauth_client_id
        self.client_secret = config.oauth_client_secret
        self.access_token_seconds = config.oauth_access_token_seconds
        # grant id -> the one refresh token that works for it now
        self._refresh_tokens: dict[int, str] = {}
        self._access_tokens: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self._revoked: set[str] = set()
        self.counters: Counter[str] = Counter()
        if config.oauth_refresh_token:
            self.authorize(config.oauth_refresh_token)

    def authorize(self, refresh_token: str | None = None) -> str:
        """A new grant, as when a user authorizes the app again; returns its refresh token."""
        token = refresh_token or f"sim-rt-{secrets.token_urlsafe(24)}"
        with self._lock:
            self._refresh_tokens[len(self._refresh_tokens) + 1] = token
        return token

    # -- /v2 ---------------------------------------------------------------
    def accepts(self, authorization: str | None) -> bool:
        """Whether the Authorization header carries a live access token; counts refusals."""
        token = (authorization or "").removeprefix("Bearer ")
        now = self._clock()
        with self._lock:
            expires_at = self._access_tokens.get(token)
            if expires_at is not None and now < expires_at:
                self.counters["api_requests"] += 1
                return True
            if expires_at is not None:
                self.counters["refused_expired"] += 1
            elif token in self._revoked:
                self.counters["refused_revoked"] += 1
            else:
                self.counters["refused_unknown"] += 1
            return False

    # -- /oauth/token ------------------------------------------------------
    async def token_endpoint(self, request: Request) -> Response:
        fields = await self._fields(request)
        if fields is None:
            return _json(400, {"error": "invalid_request", "error_description": "The body must be a form or JSON."})
        grant_type = fields.get("grant_type")
        if grant_type != "refresh_token":
            return _json(
                400,
                {"error": "unsupported_grant_type", "error_description": "Only refresh_token is supported here."},
            )
        client_id, client_secret = fields.get("client_id"), fields.get("client_secret")
        if not secrets.compare_digest(str(client_id or ""), self.client_id) or not secrets.compare_digest(
            str(client_secret or ""), self.client_secret
        ):
            with self._lock:
                self.counters["refused_clients"] += 1
            return _json(401, {"error": "invalid_client", "error_description": "Client authentication failed."})
        return _json(*self._refresh(str(fields.get("refresh_token") or "")))

    def _refresh(self, refresh_token: str) -> tuple[int, dict[str, Any]]:
        now = self._clock()
        with self._lock:
            grant = next((g for g, t in self._refresh_tokens.items() if t and t == refresh_token), None)
            if grant is None:
                self.counters["refused_grants"] += 1
                return 401, {
                    "error": "invalid_grant",
                    "error_description": "The provided authorization grant is invalid, expired, revoked,"
                    " does not match the redirection URI used in the authorization request,"
                    " or was issued to another client.",
                }
            access, rotated = f"sim-at-{secrets.token_urlsafe(24)}", f"sim-rt-{secrets.token_urlsafe(24)}"
            self._refresh_tokens[grant] = rotated  # the used one stops working
            self._access_tokens[access] = now + self.access_token_seconds
            self._forget_expired(now)
            self.counters["refreshes"] += 1
        return 200, {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": int(self.access_token_seconds),
            "refresh_token": rotated,
            "scope": SCOPE,
            "created_at": int(now),
        }

    def _forget_expired(self, now: float) -> None:
        # Keep expired tokens an hour, so that their 401s are counted as "expired".
        for token in [t for t, expiry in self._access_tokens.items() if expiry < now - 3600]:
            del self._access_tokens[token]

    @staticmethod
    async def _fields(request: Request) -> dict[str, Any] | None:
        body = await request.body()
        if "json" in request.headers.get("content-type", ""):
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError:
                return None
            return payload if isinstance(payload, dict) else None
        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))

    # -- /__sim/oauth ------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            return {
                "client_id": self.client_id,
                "access_token_seconds": self.access_token_seconds,
                "grants": len(self._refresh_tokens),
                "live_access_tokens": sum(1 for expiry in self._access_tokens.values() if now < expiry),
                **{
                    key: self.counters[key]
                    for key in (
                        "refreshes",
                        "refused_grants",
                        "refused_clients",
                        "api_requests",
                        "refused_expired",
                        "refused_revoked",
                        "refused_unknown",
                    )
                },
            }

    async def control(self, request: Request) -> Response:
        """GET: the counters. POST `{"revoke_access_tokens": true, "access_token_seconds": N,
        "authorize": true | "<refresh token>", "reset": true}` (every key optional)."""
        answer: dict[str, Any] = {}
        if request.method == "POST":
            payload = await self._fields(request) if await request.body() else {}
            if not isinstance(payload, dict):
                return _json(400, {"error": "the body must be a JSON object"})
            seconds = payload.get("access_token_seconds")
            if seconds is not None:
                if not isinstance(seconds, (int, float)) or seconds < 0:
                    return _json(422, {"errors": {"access_token_seconds": ["must be a number >= 0"]}})
                self.access_token_seconds = float(seconds)
            if payload.get("revoke_access_tokens"):
                now = self._clock()
                with self._lock:
                    live = [t for t, expiry in self._access_tokens.items() if now < expiry]
                    for token in live:
                        del self._access_tokens[token]
                    self._revoked.update(live)
                answer["revoked"] = len(live)
            if payload.get("reset"):
                with self._lock:
                    self.counters.clear()
            grant = payload.get("authorize")
            if grant:
                answer["refresh_token"] = self.authorize(grant if isinstance(grant, str) else None)
        return _json(200, {**self.describe(), **answer})
