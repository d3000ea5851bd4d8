"""Typed errors of the SalesLoft client.

Each says what failed (status, request path, attempts) and what to do. None
ever carries the token: messages are built from the path and the server's
error text only, never from request headers.
"""

from __future__ import annotations

API_KEY_VARIABLE = "SALESLOFT_API_KEY"


class SalesloftError(Exception):
    """Base of every error raised by `salesloft_pipeline.salesloft`."""


class ConfigError(SalesloftError):
    """The client cannot start: a setting is missing or wrong."""


class ApiError(SalesloftError):
    """A request failed for good: a final status, or retries ran out."""

    def __init__(
        self, message: str, *, status: int | None, path: str, attempts: int, detail: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.path = path
        self.attempts = attempts
        self.detail = detail

    @classmethod
    def for_response(
        cls, status: int, path: str, attempts: int, detail: str, method: str = "GET"
    ) -> ApiError:
        tries = f"after {attempts} attempt{'s' if attempts != 1 else ''}"
        message = f"SalesLoft answered HTTP {status} for {method} {path} {tries}"
        if detail:
            message += f": {detail}"
        return cls(message, status=status, path=path, attempts=attempts, detail=detail)


class AuthError(ApiError):
    """401: SalesLoft refused the token (or, for OAuth, the token endpoint refused the refresh)."""

    def __init__(
        self,
        path: str,
        attempts: int,
        detail: str = "",
        method: str = "GET",
        *,
        what: str = "the API key",
        advice: str | None = None,
        status: int = 401,
    ) -> None:
        advice = advice or (
            f"Check {API_KEY_VARIABLE}: it must hold a valid API key or an unexpired OAuth access token."
        )
        super().__init__(
            f"SalesLoft refused {what} (HTTP {status} for {method} {path}). {advice}",
            status=status,
            path=path,
            attempts=attempts,
            detail=detail,
        )


class MissingScopeError(ApiError):
    """The token lacks a scope a stream needs; that stream is skipped, not the others."""

    def __init__(self, stream: str, scope: str, status: int, path: str, detail: str = "") -> None:
        message = (
            f"stream {stream!r} skipped: the token lacks the {scope!r} scope "
            f"(HTTP {status} for GET {path}). Grant it to the API key or OAuth app to read this stream."
        )
        if detail:
            message += f" SalesLoft said: {detail}"
        super().__init__(message, status=status, path=path, attempts=1, detail=detail)
        self.stream = stream
        self.scope = scope


class RateLimitError(ApiError):
    """429s went on for longer than the client was allowed to wait."""


class TransportError(ApiError):
    """No usable answer: timeouts, dropped connections or broken bodies until retries ran out."""


class PagingError(SalesloftError):
    """The API's answers break an assumption the paging relies on."""
