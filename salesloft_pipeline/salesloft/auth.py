"""Where the bearer token comes from: an API key, or OAuth access tokens from a rotating refresh token.

The client asks its `TokenSource` for a token each time it sends (so a
request resent after a long rate-limit wait never carries a stale token) and
tells it when SalesLoft answered 401 (the source then refreshes once and the
request is resent).

OAuth, as SalesLoft runs it: access tokens live 7200 s, and every refresh
rotates the refresh token: the used one stops working at once. So:
- the new refresh token is written to a durable `TokenStore` (a JSON file
  written atomically, or a Postgres table) before the new access token is
  used: a crash right after a refresh leaves the working token on disk;
- refreshes are serialized across processes (an flock on a lock file, or a
  Postgres advisory lock), and under that lock the store is read again: if
  another process refreshed meanwhile, its access token is used instead of
  spending the refresh token a second time;
- SALESLOFT_REFRESH_TOKEN is only the seed. The store remembers a hash of the
  seed it started from; a different seed in the environment (the app was
  authorized again) replaces the stored chain, the same seed does not.

Tokens and the client secret never appear in logs, messages or reprs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import tempfile
import threading
import time
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from salesloft_pipeline import __version__
from salesloft_pipeline.salesloft.errors import API_KEY_VARIABLE, ApiError, AuthError, ConfigError, TransportError

log = logging.getLogger(__name__)

CLIENT_ID_VARIABLE = "SALESLOFT_CLIENT_ID"
CLIENT_SECRET_VARIABLE = "SALESLOFT_CLIENT_SECRET"
REFRESH_TOKEN_VARIABLE = "SALESLOFT_REFRESH_TOKEN"
TOKEN_URL_VARIABLE = "SALESLOFT_OAUTH_TOKEN_URL"
STORE_VARIABLE = "SALESLOFT_OAUTH_STORE_URL"
HOME_VARIABLE = "SALESLOFT_PIPELINE_HOME"
OAUTH_VARIABLES = (CLIENT_ID_VARIABLE, CLIENT_SECRET_VARIABLE, REFRESH_TOKEN_VARIABLE)
DEFAULT_TOKEN_URL = "https://accounts.salesloft.com/oauth/token"
STORE_FILE_NAME = "oauth_tokens.json"
# Refresh this long before expiry (or at half-life for tokens living under twice this).
REFRESH_MARGIN_SECONDS = 300.0
# When the answer does not say (SalesLoft's tokens live 7200 s).
DEFAULT_EXPIRES_IN = 7200
TOKEN_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
TOKEN_ATTEMPTS = 3
POSTGRES_TABLE = "salesloft_oauth_tokens"
# pg_advisory_xact_lock key shared by every process refreshing through the table.
POSTGRES_LOCK_KEY = 0x5A1E5_0A7


class TokenSource(ABC):
    """Gives the bearer token to send now, and a new one when SalesLoft refused it."""

    what = "the API key"  # for messages: what SalesLoft refused

    @abstractmethod
    def token(self) -> str:
        """The token for a request about to be sent."""

    def refused(self, token: str) -> str | None:
        """`token` got a 401: a token to resend with once, or None when there is nothing better."""
        return None

    def refusal_advice(self) -> str | None:
        """What to do when SalesLoft refuses even a resend (None: the API key's advice)."""
        return None

    def close(self) -> None:
        """Releases connections (if any)."""


class ApiKey(TokenSource):
    """A static API key (or an access token someone else keeps fresh)."""

    def __init__(self, key: str | SecretStr) -> None:
        self._key = key if isinstance(key, SecretStr) else SecretStr(key)
        if not self._key.get_secret_value():
            raise ConfigError(missing_credentials_message())

    def token(self) -> str:
        return self._key.get_secret_value()

    def __repr__(self) -> str:
        return "ApiKey(**********)"


class BearerAuth(httpx.Auth):
    """Sets `Authorization` when the request goes out; after a 401, asks for a new token and resends once."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.source.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            fresh = self.source.refused(token)
            if fresh is not None:  # a 401 is neither processed nor charged: resending is safe
                request.headers["Authorization"] = f"Bearer {fresh}"
                yield request

    def __repr__(self) -> str:
        return f"BearerAuth({self.source!r})"


def missing_credentials_message() -> str:
    return (
        f"{API_KEY_VARIABLE} is not set: set it to a SalesLoft API key or OAuth access token,"
        f" or set {', '.join(OAUTH_VARIABLES)} to use OAuth."
    )


def token_source_from_env(environ: Mapping[str, str] | None = None) -> TokenSource:
    """SALESLOFT_API_KEY, or OAuth from SALESLOFT_CLIENT_ID, _CLIENT_SECRET and _REFRESH_TOKEN."""
    env = os.environ if environ is None else environ
    return make_token_source(
        api_key=env.get(API_KEY_VARIABLE),
        client_id=env.get(CLIENT_ID_VARIABLE),
        client_secret=env.get(CLIENT_SECRET_VARIABLE),
        refresh_token=env.get(REFRESH_TOKEN_VARIABLE),
        token_url=env.get(TOKEN_URL_VARIABLE),
        store_url=env.get(STORE_VARIABLE),
    )


def make_token_source(
    *,
    api_key: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    refresh_token: str | None = None,
    token_url: str | None = None,
    store_url: str | None = None,
) -> TokenSource:
    """An API key, or OAuth: exactly one of the two, and OAuth whole (errors name the variables)."""
    oauth = dict(zip(OAUTH_VARIABLES, (client_id, client_secret, refresh_token), strict=True))
    if api_key and any(oauth.values()):
        raise ConfigError(
            f"both {API_KEY_VARIABLE} and OAuth ({', '.join(n for n, v in oauth.items() if v)}) are set:"
            f" unset {API_KEY_VARIABLE} to use OAuth, or the OAuth variables to use the API key."
        )
    if api_key:
        return ApiKey(api_key)
    if not any(oauth.values()):
        raise ConfigError(missing_credentials_message())
    return OAuthTokens(
        client_id or "",
        client_secret or "",
        refresh_token or "",
        token_url=token_url,
        store=open_token_store(store_url),
    )


# -- the durable store -------------------------------------------------------------
@dataclass(frozen=True)
class TokenState:
    """What one OAuth app's chain of tokens stands at."""

    seed_sha256: str  # the SALESLOFT_REFRESH_TOKEN this chain started from, hashed
    refresh_token: str = field(repr=False)
    access_token: str | None = field(default=None, repr=False)
    obtained_at: float = 0.0  # epoch seconds, taken before the refresh was sent
    expires_at: float = 0.0

    def fresh(self, now: float, margin: float) -> bool:
        """Whether the access token may still be sent (not within the margin of its expiry)."""
        if not self.access_token:
            return False
        lifetime = self.expires_at - self.obtained_at
        return now < self.expires_at - min(margin, lifetime / 2)


class TokenSlot(ABC):
    """One app's entry in a store, held under the store's exclusive lock."""

    @abstractmethod
    def read(self) -> TokenState | None: ...

    @abstractmethod
    def write(self, state: TokenState) -> None:
        """Makes `state` durable before returning."""


class TokenStore(ABC):
    @abstractmethod
    def locked(self, key: str) -> contextlib.AbstractContextManager[TokenSlot]:
        """The entry for `key` under a lock that excludes every other process."""

    @abstractmethod
    def describe(self) -> str:
        """Where the tokens are, without any password."""


def default_home() -> Path:
    # Same rule as warehouse.default_home (salesloft/ imports nothing of warehouse/).
    return Path(os.environ.get(HOME_VARIABLE) or ".salesloft_pipeline").resolve()


def open_token_store(url: str | None = None) -> TokenStore:
    """SALESLOFT_OAUTH_STORE_URL's format: `postgresql://...`, a file path, or unset for
    oauth_tokens.json under SALESLOFT_PIPELINE_HOME."""
    url = url or os.environ.get(STORE_VARIABLE)
    if not url:
        return FileTokenStore(default_home() / STORE_FILE_NAME)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresTokenStore(url)
    if url.startswith("file://"):
        url = url.removeprefix("file://")
    if "://" in url:
        raise ConfigError(f"{STORE_VARIABLE} must be postgresql://... or a file path, not {url.split('://')[0]}://...")
    return FileTokenStore(Path(url))


class FileTokenStore(TokenStore):
    """A JSON file {key: state}, mode 0600, replaced atomically; an flock on `<file>.lock` serializes writers."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def describe(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self.path)!r})"

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[TokenSlot]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when the fd closes, or the process dies
            yield _FileSlot(self, key)
        finally:
            os.close(fd)

    def load(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            entries = orjson.loads(raw)
        except orjson.JSONDecodeError:
            # Never start over silently: the file may hold the only working refresh token.
            raise ConfigError(
                f"the OAuth token store {self.path} is not valid JSON: restore it, or delete it and set"
                f" {REFRESH_TOKEN_VARIABLE} to a new refresh token (authorize the app again)."
            ) from None
        return entries if isinstance(entries, dict) else {}

    def save(self, entries: dict[str, Any]) -> None:
        """Temp file in the same folder, fsync, rename over, fsync the folder: all or nothing."""
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")  # 0600
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(orjson.dumps(entries, option=orjson.OPT_INDENT_2))
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # the rename itself survives a power cut
        finally:
            os.close(folder)


class _FileSlot(TokenSlot):
    def __init__(self, store: FileTokenStore, key: str) -> None:
        self._store, self._key = store, key

    def read(self) -> TokenState | None:
        entry = self._store.load().get(self._key)
        return _state_from(entry)

    def write(self, state: TokenState) -> None:
        entries = self._store.load()
        entries[self._key] = asdict(state)
        self._store.save(entries)


def _state_from(entry: Any) -> TokenState | None:
    if not isinstance(entry, dict) or not entry.get("refresh_token") or not entry.get("seed_sha256"):
        return None
    return TokenState(
        seed_sha256=str(entry["seed_sha256"]),
        refresh_token=str(entry["refresh_token"]),
        access_token=entry.get("access_token") or None,
        obtained_at=float(entry.get("obtained_at") or 0.0),
        expires_at=float(entry.get("expires_at") or 0.0),
    )


class PostgresTokenStore(TokenStore):
    """Table `salesloft_oauth_tokens`, one row per OAuth app; each refresh is one transaction
    holding `pg_advisory_xact_lock`, committed before the new access token is used."""

    def __init__(self, url: str, connect_timeout: int = 10) -> None:
        self._url = SecretStr(url)  # may carry a password
        self.connect_timeout = connect_timeout

    def describe(self) -> str:
        try:
            return str(httpx.URL(self._url.get_secret_value()).copy_with(password=None, query=None))
        except Exception:  # noqa: BLE001 - an odd URL is still not printed whole
            return "postgresql://..."

    def __repr__(self) -> str:
        return f"PostgresTokenStore({self.describe()!r})"

    def _secret_parts(self) -> tuple[str, ...]:
        """The URL and its password as written and percent-decoded (longest first, for _scrub)."""
        url = self._url.get_secret_value()
        match = re.match(r"[^:]+://[^:@/]*:([^@]*)@", url)
        password = match.group(1) if match else ""
        return (url, password, urllib.parse.unquote(password))

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[TokenSlot]:
        import psycopg2

        try:
            conn = psycopg2.connect(self._url.get_secret_value(), connect_timeout=self.connect_timeout)
        except psycopg2.Error as error:
            raise self._failed(error, "is unreachable") from None
        try:
            with conn, conn.cursor() as cursor:  # one transaction: committed on success, rolled back otherwise
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (POSTGRES_LOCK_KEY,))
                cursor.execute(
                    f"CREATE TABLE IF NOT EXISTS {POSTGRES_TABLE} ("
                    " client_id text PRIMARY KEY, seed_sha256 text NOT NULL, refresh_token text NOT NULL,"
                    " access_token text, obtained_at double precision NOT NULL DEFAULT 0,"
                    " expires_at double precision NOT NULL DEFAULT 0,"
                    " updated_at timestamptz NOT NULL DEFAULT now())"
                )
                yield _PostgresSlot(cursor, key)
        except psycopg2.Error as error:
            raise self._failed(error, "failed") from None
        finally:
            conn.close()

    def _failed(self, error: Exception, what: str) -> ConfigError:
        # libpq echoes the URL, or the password in it, in some "invalid dsn" messages.
        first = _scrub((str(error).strip().splitlines() or [""])[0], self._secret_parts())
        return ConfigError(
            f"the OAuth token store {self.describe()} {what} ({type(error).__name__}: {first[:200]}):"
            f" check {STORE_VARIABLE} (the user must be allowed to create and write table {POSTGRES_TABLE})."
        )


class _PostgresSlot(TokenSlot):
    def __init__(self, cursor: Any, key: str) -> None:
        self._cursor, self._key = cursor, key

    def read(self) -> TokenState | None:
        self._cursor.execute(
            f"SELECT seed_sha256, refresh_token, access_token, obtained_at, expires_at FROM {POSTGRES_TABLE}"
            " WHERE client_id = %s",
            (self._key,),
        )
        row = self._cursor.fetchone()
        if row is None:
            return None
        names = ("seed_sha256", "refresh_token", "access_token", "obtained_at", "expires_at")
        return _state_from(dict(zip(names, row, strict=True)))

    def write(self, state: TokenState) -> None:
        self._cursor.execute(
            f"INSERT INTO {POSTGRES_TABLE} AS t"
            " (client_id, seed_sha256, refresh_token, access_token, obtained_at, expires_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, now())"
            " ON CONFLICT (client_id) DO UPDATE SET seed_sha256 = EXCLUDED.seed_sha256,"
            " refresh_token = EXCLUDED.refresh_token, access_token = EXCLUDED.access_token,"
            " obtained_at = EXCLUDED.obtained_at, expires_at = EXCLUDED.expires_at, updated_at = now()",
            (
                self._key,
                state.seed_sha256,
                state.refresh_token,
                state.access_token,
                state.obtained_at,
                state.expires_at,
            ),
        )
        # Durable at the commit that ends `locked`, before the token is handed out.


# -- OAuth -------------------------------------------------------------------------
class OAuthTokens(TokenSource):
    """Access tokens from SalesLoft's token endpoint, refreshed before expiry and after a 401."""

    what = "the OAuth access token"

    def __init__(
        self,
        client_id: str,
        client_secret: str | SecretStr,
        refresh_token: str | SecretStr,
        *,
        token_url: str | None = None,
        store: TokenStore | None = None,
        margin: float = REFRESH_MARGIN_SECONDS,
        timeout: httpx.Timeout | float = TOKEN_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        secret = client_secret if isinstance(client_secret, SecretStr) else SecretStr(client_secret)
        seed = refresh_token if isinstance(refresh_token, SecretStr) else SecretStr(refresh_token)
        missing = [
            name
            for name, value in zip(
                OAUTH_VARIABLES, (client_id, secret.get_secret_value(), seed.get_secret_value()), strict=True
            )
            if not value
        ]
        if missing:
            raise ConfigError(f"OAuth is half configured: set {', '.join(missing)} too (or {API_KEY_VARIABLE}).")
        self.client_id = client_id
        self._client_secret = secret
        self._seed = seed
        self._seed_sha256 = hashlib.sha256(seed.get_secret_value().encode()).hexdigest()
        self.token_url = token_url or os.environ.get(TOKEN_URL_VARIABLE) or DEFAULT_TOKEN_URL
        self.store = store or open_token_store()
        self.margin = margin
        self.refreshes = 0  # refreshes this source made (not those it adopted from other processes)
        self._state: TokenState | None = None
        self._lock = threading.Lock()
        self._http = httpx.Client(
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": f"salesloft-pipeline/{__version__}", "Accept": "application/json"},
        )

    def __repr__(self) -> str:
        return f"OAuthTokens(client_id={self.client_id!r}, token_url={self.token_url!r}, store={self.store!r})"

    def close(self) -> None:
        self._http.close()

    def token(self) -> str:
        with self._lock:
            state = self._state
            if state is not None and state.access_token and state.fresh(time.time(), self.margin):
                return state.access_token
            return self._renew(refused=None)

    def refused(self, token: str) -> str:
        with self._lock:
            state = self._state
            if state is not None and state.access_token and state.access_token != token:
                if state.fresh(time.time(), self.margin):
                    return state.access_token  # another thread renewed it meanwhile
            return self._renew(refused=token)

    def refusal_advice(self) -> str:
        return (
            f"It was refused again right after a refresh from {self.token_url}: check that"
            f" {TOKEN_URL_VARIABLE} and SALESLOFT_BASE_URL belong to the same SalesLoft, and that the OAuth app"
            f" is still authorized (if not, authorize it again and set {REFRESH_TOKEN_VARIABLE} to the new"
            " refresh token)."
        )

    def _renew(self, refused: str | None) -> str:
        """A working access token: another process's if it refreshed meanwhile, else a refresh."""
        with self.store.locked(self.client_id) as slot:
            stored = slot.read()
            now = time.time()
            if stored is not None and stored.seed_sha256 == self._seed_sha256:
                if stored.access_token and stored.access_token != refused and stored.fresh(now, self.margin):
                    self._state = stored
                    log.debug("OAuth access token taken from %s (refreshed by another process)", self.store.describe())
                    return stored.access_token
                refresh_token, origin = stored.refresh_token, "stored"
            else:
                if stored is not None:
                    log.info("%s changed: the new refresh token replaces the stored one", REFRESH_TOKEN_VARIABLE)
                refresh_token, origin = self._seed.get_secret_value(), "seed"
            answer = self._call_token_endpoint(refresh_token, origin)
            access = answer["access_token"]
            state = TokenState(
                seed_sha256=self._seed_sha256,
                refresh_token=answer.get("refresh_token") or refresh_token,  # servers that do not rotate
                access_token=access,
                obtained_at=now,
                expires_at=now + answer["expires_in"],
            )
            slot.write(state)  # durable before the new token is used: the old refresh token is dead now
        self._state = state
        self.refreshes += 1
        log.info(
            "OAuth access token refreshed (valid %ds); the rotated refresh token is stored in %s",
            answer["expires_in"],
            self.store.describe(),
        )
        return access

    def _call_token_endpoint(self, refresh_token: str, origin: str) -> dict[str, Any]:
        form = {
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "client_secret": self._client_secret.get_secret_value(),
            "refresh_token": refresh_token,
        }
        secrets = (refresh_token, self._client_secret.get_secret_value())
        attempts = 0
        while True:
            attempts += 1
            try:
                response = self._http.post(self.token_url, data=form)
            except httpx.HTTPError as exc:
                detail = _scrub(f"{type(exc).__name__}: {exc}", secrets)[:300]
                if attempts < TOKEN_ATTEMPTS:
                    log.warning("OAuth token endpoint %s failed (%s); retrying", self.token_url, detail)
                    time.sleep(0.5 * 2 ** (attempts - 1))
                    continue
                raise TransportError(
                    f"POST {self.token_url} failed after {attempts} attempts: {detail}. Check that"
                    f" {TOKEN_URL_VARIABLE} ({self.token_url}) is reachable from here.",
                    status=None,
                    path=self.token_url,
                    attempts=attempts,
                    detail=detail,
                ) from None
            status = response.status_code
            if status == 200:
                return self._parse(response, attempts, secrets)
            error, detail = _oauth_error(response, secrets)
            if (status >= 500 or status == 429) and attempts < TOKEN_ATTEMPTS:
                # If it did rotate before failing, the retry gets invalid_grant: no worse than not retrying.
                log.warning("OAuth token endpoint %s answered HTTP %d; retrying", self.token_url, status)
                time.sleep(0.5 * 2 ** (attempts - 1))
                continue
            if error == "invalid_grant":
                raise AuthError(
                    self.token_url,
                    attempts,
                    detail,
                    "POST",
                    what=f"the refresh token {_origin_text(origin, self.store)}",
                    advice="Refresh tokens work once and rotate at every refresh; this one was already used or"
                    " revoked (by another deployment of the same app?). Authorize the app again and set"
                    f" {REFRESH_TOKEN_VARIABLE} to the new refresh token: a new one replaces the stored one.",
                    status=status,
                )
            if error in ("invalid_client", "unauthorized_client") or status == 401:
                raise AuthError(
                    self.token_url,
                    attempts,
                    detail,
                    "POST",
                    what="the OAuth client credentials",
                    advice=f"Check {CLIENT_ID_VARIABLE} and {CLIENT_SECRET_VARIABLE} (the OAuth app's id and secret).",
                    status=status,
                )
            raise ApiError.for_response(status, self.token_url, attempts, detail, "POST")

    def _parse(self, response: httpx.Response, attempts: int, secrets: tuple[str, ...]) -> dict[str, Any]:
        try:
            body = orjson.loads(response.content)
            access = body["access_token"]
            if not isinstance(access, str) or not access:
                raise ValueError("no access_token")
            expires_in = int(body.get("expires_in") or DEFAULT_EXPIRES_IN)
            rotated = body.get("refresh_token")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            # The refresh token may be spent already; nothing to store, nothing to retry safely.
            raise ApiError(
                f"SalesLoft's token endpoint {self.token_url} answered 200 without a usable access token:"
                f" check {TOKEN_URL_VARIABLE}; if it persists, authorize the app again and set"
                f" {REFRESH_TOKEN_VARIABLE}.",
                status=200,
                path=self.token_url,
                attempts=attempts,
            ) from None
        return {
            "access_token": access,
            "expires_in": expires_in,
            "refresh_token": rotated if isinstance(rotated, str) and rotated else None,
        }


def _origin_text(origin: str, store: TokenStore) -> str:
    return f"from {REFRESH_TOKEN_VARIABLE}" if origin == "seed" else f"stored in {store.describe()}"


def _oauth_error(response: httpx.Response, secrets: tuple[str, ...]) -> tuple[str, str]:
    """(error code, readable detail) of a token endpoint's refusal, with our secrets scrubbed."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return "", _scrub(response.text[:200], secrets)
    if not isinstance(body, dict):
        return "", _scrub(str(body)[:200], secrets)
    error = str(body.get("error") or "")
    description = str(body.get("error_description") or "")
    detail = f"{error}: {description}" if description else error
    return error, _scrub(detail, secrets)[:300]


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
