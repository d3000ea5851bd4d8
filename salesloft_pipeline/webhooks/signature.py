"""SalesLoft's webhook signature: lowercase hex HMAC-SHA1 of the raw body.

The key is the subscription's `callback_token`, which we set to our secret.
SALESLOFT_WEBHOOK_SECRET may list several secrets, comma-separated, so a
rotation loses nothing: the first is the current one (used by `webhooks
subscribe`), the others are still accepted until they are removed.
"""

from __future__ import annotations

import hashlib
import hmac
import os

SECRET_VARIABLE = "SALESLOFT_WEBHOOK_SECRET"


class MissingSecret(RuntimeError):
    """No webhook secret is configured."""


class Secrets:
    """The accepted webhook secrets. Never shows them in repr, str or errors."""

    __slots__ = ("_keys",)

    def __init__(self, secrets: str | list[str] | tuple[str, ...]) -> None:
        values = secrets.split(",") if isinstance(secrets, str) else list(secrets)
        keys = tuple(v.strip().encode() for v in values if v and v.strip())
        if not keys:
            raise MissingSecret(
                f"{SECRET_VARIABLE} is not set: set it to the webhook secret (the subscriptions'"
                " callback_token); during a rotation list the new one first, comma-separated."
            )
        self._keys = keys

    @classmethod
    def from_env(cls) -> Secrets:
        return cls(os.environ.get(SECRET_VARIABLE, ""))

    @property
    def current(self) -> str:
        """The secret new subscriptions are created with."""
        return self._keys[0].decode()

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"Secrets({len(self._keys)} configured)"

    __str__ = __repr__

    def verify(self, body: bytes, signature: str | bytes | None) -> bool:
        """True when `signature` is the HMAC-SHA1 hex of `body` under one of the secrets.

        Compared in constant time, and against every secret whatever the
        outcome, so timing tells neither the digest nor which secret matched."""
        if not signature:
            return False
        if isinstance(signature, str):
            try:
                signature = signature.encode("ascii")
            except UnicodeEncodeError:
                return False
        signature = signature.strip().lower()
        ok = False
        for key in self._keys:
            expected = hmac.new(key, body, hashlib.sha1).hexdigest().encode()
            ok |= hmac.compare_digest(expected, signature)
        return ok


def sign(body: bytes, secret: str) -> str:
    """The `x-salesloft-signature` SalesLoft sends for `body` (for tests and load generators)."""
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
