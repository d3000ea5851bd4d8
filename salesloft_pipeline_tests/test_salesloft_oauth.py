"""OAuth with rotating refresh tokens, over loopback HTTP against the simulator's token endpoint.

Each test takes a grant of its own (`POST /__sim/oauth {"authorize": true}`
gives a new refresh token, as when a user authorizes the app again), so the
tests share one simulator without sharing a chain of tokens.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import psycopg2
import pytest

from salesloft_pipeline.defs.extract.assets import EXTRACT_ASSETS, raw_asset_key
from salesloft_pipeline.defs.resources import SalesloftResource, WarehouseResource
from salesloft_pipeline.salesloft import BY_NAME, AuthError, ConfigError, SalesloftClient, TransportError
from salesloft_pipeline.salesloft.auth import (
    FileTokenStore,
    OAuthTokens,
    PostgresTokenStore,
    TokenStore,
    open_token_store,
    token_source_from_env,
)
from salesloft_pipeline.simulator import Simulator, SimulatorConfig
from salesloft_pipeline.warehouse import open_warehouse
from salesloft_pipeline_tests.postgres import fresh_database

ROOT = Path(__file__).resolve().parents[1]
CLIENT_ID = "oauth-test-client"
CLIENT_SECRET = "oauth-test-secret-7d1c0f2b9e"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    config = SimulatorConfig(
        seed=3, people=40, days=3, budget=0, oauth_client_id=CLIENT_ID, oauth_client_secret=CLIENT_SECRET
    )
    with Simulator(config).serve() as running:
        yield running


@pytest.fixture
def inspect(sim: Simulator) -> Iterator[httpx.Client]:
    """/__sim/... with the OAuth counters zeroed, 7200 s tokens, no rate limit, no faults."""

    def reset(c: httpx.Client) -> None:
        c.post("/__sim/faults", json={"next": [], "rate": 0.0, "external_spend": 0, "spend_now": 0})
        c.post("/__sim/budget", json={"budget": 0, "window_seconds": 60})
        # Tokens of earlier tests are revoked first, then the counters zeroed.
        c.post("/__sim/oauth", json={"revoke_access_tokens": True, "reset": True, "access_token_seconds": 7200})

    with httpx.Client(base_url=sim.url, timeout=30.0) as c:
        reset(c)
        yield c
        reset(c)


def token_url(sim: Simulator) -> str:
    return f"{sim.url}/oauth/token"


def new_grant(inspect: httpx.Client) -> str:
    """A refresh token of a new grant: the seed an operator puts in SALESLOFT_REFRESH_TOKEN."""
    return inspect.post("/__sim/oauth", json={"authorize": True}).json()["refresh_token"]


def counts(inspect: httpx.Client) -> dict[str, Any]:
    return inspect.get("/__sim/oauth").json()


def oauth(sim: Simulator, seed: str, store: TokenStore, **options: Any) -> OAuthTokens:
    return OAuthTokens(CLIENT_ID, CLIENT_SECRET, seed, token_url=token_url(sim), store=store, **options)


def client_for(sim: Simulator, source: OAuthTokens, **options: Any) -> SalesloftClient:
    options = {"backoff_base": 0.01, "backoff_max": 0.05, "timeout": 10.0, **options}
    return SalesloftClient(base_url=sim.base_url, token_source=source, **options)


def refresh_directly(sim: Simulator, refresh_token: str) -> httpx.Response:
    form = {
        "grant_type": "refresh_token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": refresh_token,
    }
    return httpx.post(token_url(sim), data=form, timeout=10.0)


def stored(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())[CLIENT_ID]


# -- the simulator's token endpoint ------------------------------------------------------
def test_the_simulator_rotates_refresh_tokens_and_expires_access_tokens(sim: Simulator, inspect: httpx.Client) -> None:
    seed = new_grant(inspect)
    first = refresh_directly(sim, seed)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 7200
    assert {"access_token", "refresh_token", "scope", "created_at"} <= body.keys()
    assert body["refresh_token"] != seed

    reused = refresh_directly(sim, seed)  # rotation: the used refresh token is dead
    assert reused.status_code in (400, 401) and reused.json()["error"] == "invalid_grant"

    as_json = httpx.post(
        token_url(sim),
        json={
            "grant_type": "refresh_token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": body["refresh_token"],
        },
    )
    assert as_json.status_code == 200, as_json.text
    access = as_json.json()["access_token"]

    wrong_client = httpx.post(
        token_url(sim),
        data={"grant_type": "refresh_token", "client_id": CLIENT_ID, "client_secret": "nope", "refresh_token": "x"},
    )
    assert wrong_client.status_code == 401 and wrong_client.json()["error"] == "invalid_client"
    assert httpx.post(token_url(sim), data={"grant_type": "password"}).json()["error"] == "unsupported_grant_type"

    def me(token: str) -> int:
        return httpx.get(f"{sim.base_url}/me", headers={"Authorization": f"Bearer {token}"}).status_code

    assert me(access) == 200 and me(sim.api_key) == 200  # the API key keeps working beside OAuth
    inspect.post("/__sim/oauth", json={"revoke_access_tokens": True})
    assert me(access) == 401
    inspect.post("/__sim/oauth", json={"access_token_seconds": 0})
    born_expired = refresh_directly(sim, as_json.json()["refresh_token"]).json()["access_token"]
    assert me(born_expired) == 401
    seen = counts(inspect)
    assert seen["refreshes"] == 3 and seen["refused_grants"] == 1 and seen["refused_clients"] == 1
    assert seen["refused_revoked"] == 1 and seen["refused_expired"] == 1 and seen["api_requests"] == 1


# -- one process -------------------------------------------------------------------------
def test_the_first_request_refreshes_and_stores_the_rotated_token(
    sim: Simulator, inspect: httpx.Client, tmp_path: Path
) -> None:
    seed = new_grant(inspect)
    path = tmp_path / "home" / "oauth_tokens.json"
    with client_for(sim, oauth(sim, seed, FileTokenStore(path))) as client:
        assert client.get("me").status == 200
        assert client.get("people", [("per_page", 1)]).status == 200
    assert counts(inspect)["refreshes"] == 1  # the second request reused the access token
    entry = stored(path)
    assert entry["refresh_token"] != seed and entry["seed_sha256"] == hashlib.sha256(seed.encode()).hexdigest()
    assert entry["expires_at"] - entry["obtained_at"] == 7200
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []  # no temp file left behind
    assert refresh_directly(sim, seed).status_code in (400, 401)  # the seed is spent: only the store can go on


def test_access_tokens_are_refreshed_before_they_expire(sim: Simulator, inspect: httpx.Client, tmp_path: Path) -> None:
    inspect.post("/__sim/oauth", json={"access_token_seconds": 4})  # refreshed at half-life: 2 s
    source = oauth(sim, new_grant(inspect), FileTokenStore(tmp_path / "tokens.json"))
    requests = 0
    with client_for(sim, source) as client:
        while source.refreshes < 3:
            assert client.get("me").status == 200
            requests += 1
            assert requests < 500, "no refresh before expiry"
            time.sleep(0.05)
    seen = counts(inspect)
    assert seen["refreshes"] == 3
    assert seen["refused_expired"] == 0 and seen["refused_unknown"] == 0  # never sent an expired token
    assert seen["api_requests"] == requests


def test_a_revoked_token_is_refreshed_once_and_the_request_resent(
    sim: Simulator, inspect: httpx.Client, tmp_path: Path
) -> None:
    source = oauth(sim, new_grant(inspect), FileTokenStore(tmp_path / "tokens.json"))
    with client_for(sim, source) as client:
        client.get("me")
        assert inspect.post("/__sim/oauth", json={"revoke_access_tokens": True}).json()["revoked"] == 1
        response = client.request(
            "POST",
            "webhook_subscriptions",
            json={"callback_url": "http://127.0.0.1:9/hook", "callback_token": "t", "event_type": "person_updated"},
        )
        assert response.status == 201
        assert client.stats.requests == 3 and client.stats.retries == 0  # me, the refused POST, its resend
    seen = counts(inspect)
    assert seen["refused_revoked"] == 1 and seen["refreshes"] == 2
    subscriptions = inspect.get("/__sim/webhooks").json()["subscriptions"]
    assert len([s for s in subscriptions if s["callback_url"] == "http://127.0.0.1:9/hook"]) == 1  # sent once
    for s in subscriptions:
        httpx.delete(
            f"{sim.base_url}/webhook_subscriptions/{s['id']}", headers={"Authorization": f"Bearer {sim.api_key}"}
        )


def test_a_401_right_after_a_refresh_is_an_auth_error_that_says_what_to_do(
    sim: Simulator, inspect: httpx.Client, tmp_path: Path
) -> None:
    inspect.post("/__sim/oauth", json={"access_token_seconds": 0})  # every token is born expired
    source = oauth(sim, new_grant(inspect), FileTokenStore(tmp_path / "tokens.json"))
    with client_for(sim, source) as client, pytest.raises(AuthError) as raised:
        client.get("me")
    message = str(raised.value)
    assert raised.value.status == 401 and "OAuth access token" in message and "me" in message
    assert "right after a refresh" in message and "SALESLOFT_REFRESH_TOKEN" in message
    assert counts(inspect)["refreshes"] == 2  # one before sending, one after the 401: no loop


def test_a_refused_refresh_token_says_to_authorize_again(sim: Simulator, inspect: httpx.Client, tmp_path: Path) -> None:
    spent = new_grant(inspect)
    assert refresh_directly(sim, spent).status_code == 200
    with client_for(sim, oauth(sim, spent, FileTokenStore(tmp_path / "tokens.json"))) as client:
        with pytest.raises(AuthError) as raised:
            client.get("me")
    message = str(raised.value)
    assert "SALESLOFT_REFRESH_TOKEN" in message and "Authorize the app again" in message
    assert "invalid_grant" in raised.value.detail and spent not in message

    source = OAuthTokens(
        CLIENT_ID,
        "wrong-secret-31f5",
        new_grant(inspect),
        token_url=token_url(sim),
        store=FileTokenStore(tmp_path / "other.json"),
    )
    with client_for(sim, source) as client, pytest.raises(AuthError) as wrong:
        client.get("me")
    assert "SALESLOFT_CLIENT_SECRET" in str(wrong.value) and "wrong-secret-31f5" not in str(wrong.value)
    assert not (tmp_path / "other.json").exists()  # nothing stored from a refused refresh


def test_an_unreachable_token_endpoint_is_named(sim: Simulator, inspect: httpx.Client, tmp_path: Path) -> None:
    source = OAuthTokens(
        CLIENT_ID,
        CLIENT_SECRET,
        "seed-unused",
        token_url="http://127.0.0.1:9/oauth/token",
        store=FileTokenStore(tmp_path / "tokens.json"),
    )
    with client_for(sim, source) as client, pytest.raises(TransportError) as raised:
        client.get("me")
    assert "127.0.0.1:9/oauth/token" in str(raised.value) and "SALESLOFT_OAUTH_TOKEN_URL" in str(raised.value)


def test_a_token_that_expires_during_a_rate_limit_wait_is_refreshed_before_the_resend(
    sim: Simulator, inspect: httpx.Client, tmp_path: Path
) -> None:
    # 2 requests a 2 s window and tokens living 1.6 s: every wait for the window outlives the token.
    inspect.post("/__sim/budget", json={"budget": 2, "window_seconds": 2})
    inspect.post("/__sim/oauth", json={"access_token_seconds": 1.6})
    source = oauth(sim, new_grant(inspect), FileTokenStore(tmp_path / "tokens.json"))
    with client_for(sim, source, window_seconds=2, budget_share=1.0) as client:
        client.get("me")
        inspect.post("/__sim/faults", json={"spend_now": 2})  # someone else spends the window: a 429 next
        for _ in range(5):
            assert client.get("people", [("per_page", 1)]).status == 200
        assert client.stats.rate_limited >= 1 and client.pacer.waited_seconds > 1.6
    seen = counts(inspect)
    assert seen["refreshes"] >= 3 and seen["refreshes"] == source.refreshes
    assert seen["refused_expired"] == 0  # never sent a token that died while it waited


def test_a_new_seed_in_the_environment_replaces_the_stored_chain(
    sim: Simulator, inspect: httpx.Client, tmp_path: Path
) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    old_seed = new_grant(inspect)
    with client_for(sim, oauth(sim, old_seed, store)) as client:
        client.get("me")
    # Same seed on the next start: the stored chain goes on (the seed itself is spent).
    inspect.post("/__sim/oauth", json={"revoke_access_tokens": True})
    with client_for(sim, oauth(sim, old_seed, store)) as client:
        client.get("me")
    assert counts(inspect)["refused_grants"] == 0
    # The app was authorized again: the new seed wins over the stored chain.
    new_seed = new_grant(inspect)
    with client_for(sim, oauth(sim, new_seed, store)) as client:
        client.get("me")
    seen = counts(inspect)
    assert seen["refused_grants"] == 0 and seen["refreshes"] == 3
    assert stored(tmp_path / "tokens.json")["seed_sha256"] == hashlib.sha256(new_seed.encode()).hexdigest()


# -- processes ---------------------------------------------------------------------------
WORKER = """
import os, signal, sys
from salesloft_pipeline.salesloft import SalesloftClient
from salesloft_pipeline.salesloft.auth import FileTokenStore

if os.environ.get("KILL_AFTER_STORE"):
    save = FileTokenStore.save

    def save_then_die(self, entries):
        save(self, entries)
        os.kill(os.getpid(), signal.SIGKILL)  # a crash right after the rotated token is durable

    FileTokenStore.save = save_then_die

client = SalesloftClient(backoff_base=0.01, backoff_max=0.05)  # everything from the environment
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "get":
        try:
            client.get("me")
            print("ok", client.token_source.refreshes, flush=True)
        except Exception as error:
            print("error", type(error).__name__, error, flush=True)
    else:
        break
client.close()
"""


class Worker:
    """A separate process with its own client, driven line by line over stdin/stdout."""

    def __init__(self, script: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(script)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put("<exit>")

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def answer(self) -> str:
        try:
            return self.lines.get(timeout=60)
        except queue.Empty:
            raise AssertionError("the worker did not answer within 60 s") from None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Any]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    started: list[Worker] = []

    def start(env: dict[str, str], n: int = 1) -> list[Worker]:
        new = [Worker(script, env) for _ in range(n)]
        started.extend(new)
        for worker in new:
            assert worker.answer() == "ready", worker.process.stderr.read() if worker.process.stderr else ""
        return new

    yield start
    for worker in started:
        worker.stop()


def worker_env(sim: Simulator, seed: str, store_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESLOFT_")}
    return {
        **env,
        "PYTHONPATH": str(ROOT),
        "SALESLOFT_BASE_URL": sim.base_url,
        "SALESLOFT_CLIENT_ID": CLIENT_ID,
        "SALESLOFT_CLIENT_SECRET": CLIENT_SECRET,
        "SALESLOFT_REFRESH_TOKEN": seed,
        "SALESLOFT_OAUTH_TOKEN_URL": token_url(sim),
        "SALESLOFT_OAUTH_STORE_URL": store_url,
        **extra,
    }


def test_a_crash_right_after_a_refresh_does_not_lock_the_pipeline_out(
    sim: Simulator, inspect: httpx.Client, tmp_path: Path, workers: Any
) -> None:
    seed = new_grant(inspect)
    store = tmp_path / "tokens.json"
    [doomed] = workers(worker_env(sim, seed, str(store), KILL_AFTER_STORE="1"))
    doomed.send("get")
    assert doomed.answer() == "<exit>"
    assert doomed.process.wait(timeout=30) == -signal.SIGKILL
    seen = counts(inspect)
    assert seen["refreshes"] == 1 and seen["api_requests"] == 0  # killed before it used the new token
    assert refresh_directly(sim, seed).status_code in (400, 401)  # the seed alone would be refused now

    # The next process, same environment: goes on from the stored token.
    [survivor] = workers(worker_env(sim, seed, str(store)))
    survivor.send("get")
    assert survivor.answer() == "ok 0"  # the killed process's access token, taken from the store
    inspect.post("/__sim/oauth", json={"revoke_access_tokens": True})
    survivor.send("get")
    assert survivor.answer() == "ok 1"  # refreshed with the stored (rotated) refresh token
    seen = counts(inspect)
    assert seen["refreshes"] == 2 and seen["refused_grants"] == 1  # only our probe with the spent seed


@pytest.mark.parametrize("kind", ["file", "postgres"])
def test_processes_refreshing_at_the_same_time_share_one_refresh(
    sim: Simulator, inspect: httpx.Client, tmp_path: Path, workers: Any, kind: str
) -> None:
    with fresh_database("slp_oauth") if kind == "postgres" else contextlib.nullcontext("") as database:
        store_url = database if kind == "postgres" else str(tmp_path / "shared" / "tokens.json")
        seed = new_grant(inspect)
        group = workers(worker_env(sim, seed, store_url), n=3)
        for round_ in range(3):
            if round_:
                inspect.post("/__sim/oauth", json={"revoke_access_tokens": True})  # every process gets a 401
            for worker in group:  # all at once
                worker.send("get")
            answers = [worker.answer() for worker in group]
            assert all(a.startswith("ok ") for a in answers), answers
            made = sum(int(a.split()[1]) for a in answers)
            seen = counts(inspect)
            assert seen["refused_grants"] == 0, answers
            assert seen["refreshes"] == round_ + 1 == made  # one refresh a round, whichever process made it
        assert seen["refused_revoked"] == 2 * len(group)
        if kind == "postgres":
            conn = psycopg2.connect(database)
            try:
                with conn.cursor() as cursor:
                    cursor.execute("SELECT count(*), min(refresh_token) <> %s FROM salesloft_oauth_tokens", (seed,))
                    assert cursor.fetchone() == (1, True)
            finally:
                conn.close()


def test_threads_of_one_process_share_one_refresh(sim: Simulator, inspect: httpx.Client, tmp_path: Path) -> None:
    source = oauth(sim, new_grant(inspect), FileTokenStore(tmp_path / "tokens.json"))
    errors: list[BaseException] = []
    with client_for(sim, source) as client:

        def call() -> None:
            try:
                client.get("me")
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=call) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == [] and counts(inspect)["refreshes"] == 1


# -- configuration and secrecy -----------------------------------------------------------
def test_credentials_from_the_environment_name_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SALESLOFT_API_KEY.*SALESLOFT_CLIENT_ID"):
        token_source_from_env({})
    with pytest.raises(ConfigError, match="SALESLOFT_CLIENT_SECRET, SALESLOFT_REFRESH_TOKEN"):
        token_source_from_env({"SALESLOFT_CLIENT_ID": "x"})
    with pytest.raises(ConfigError, match="both SALESLOFT_API_KEY and OAuth"):
        token_source_from_env({"SALESLOFT_API_KEY": "k", "SALESLOFT_REFRESH_TOKEN": "r"})
    source = token_source_from_env(
        {
            "SALESLOFT_CLIENT_ID": "x",
            "SALESLOFT_CLIENT_SECRET": "s",
            "SALESLOFT_REFRESH_TOKEN": "r",
            "SALESLOFT_OAUTH_STORE_URL": str(tmp_path / "t.json"),
        }
    )
    assert isinstance(source, OAuthTokens) and source.token_url == "https://accounts.salesloft.com/oauth/token"
    with pytest.raises(ConfigError, match="SALESLOFT_OAUTH_STORE_URL"):
        open_token_store("redis://localhost/0")
    assert isinstance(open_token_store("postgresql://u:pw@h/db"), PostgresTokenStore)
    assert "pw" not in repr(open_token_store("postgresql://u:pw@h/db"))
    with pytest.raises(ConfigError, match="SALESLOFT_REFRESH_TOKEN"):
        SalesloftResource(client_id="x", client_secret="s").client()


def test_an_unreachable_postgres_store_is_named_without_its_password(sim: Simulator, inspect: httpx.Client) -> None:
    store = PostgresTokenStore("postgresql://pipeline:s3cr3t-pw-991@127.0.0.1:9/tokens", connect_timeout=2)
    with client_for(sim, oauth(sim, new_grant(inspect), store)) as client:
        with pytest.raises(ConfigError) as raised:
            client.get("me")
    message = str(raised.value)
    assert "SALESLOFT_OAUTH_STORE_URL" in message and "127.0.0.1:9" in message and "s3cr3t-pw-991" not in message
    assert counts(inspect)["refreshes"] == 0  # no refresh without a place to keep its result


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://pipeline:s3cr3t%pw-991@127.0.0.1/tokens",  # an unencoded %: libpq quotes the password
        "postgresql://pipeline:s3cr3t-pw-991@[bad/tokens",  # libpq quotes the whole URL
        "postgresql://pipeline:s3cr3t-pw-991@127.0.0.1/tokens?sslmode=bogus",
        "postgresql://pipeline:s3cr3t%2Dpw-991@127.0.0.1:9/tokens",  # percent-encoded
    ],
)
def test_a_malformed_postgres_store_url_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        with PostgresTokenStore(url, connect_timeout=2).locked("client") as slot:
            slot.read()
    assert "s3cr3t" not in str(raised.value) and "SALESLOFT_OAUTH_STORE_URL" in str(raised.value)


def test_default_store_is_under_the_pipeline_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESLOFT_PIPELINE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SALESLOFT_OAUTH_STORE_URL", raising=False)
    store = open_token_store()
    assert isinstance(store, FileTokenStore) and store.path == tmp_path / "home" / "oauth_tokens.json"


def test_a_corrupt_store_is_not_silently_replaced(sim: Simulator, inspect: httpx.Client, tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text('{"half": ')
    with client_for(sim, oauth(sim, new_grant(inspect), FileTokenStore(path))) as client:
        with pytest.raises(ConfigError, match="not valid JSON"):
            client.get("me")
    assert counts(inspect)["refreshes"] == 0 and path.read_text() == '{"half": '


def test_tokens_and_the_client_secret_appear_in_no_log_exception_or_repr(
    sim: Simulator, inspect: httpx.Client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "tokens.json"
    seed = new_grant(inspect)
    sent: list[str] = []
    texts: list[str] = []
    source = oauth(sim, seed, FileTokenStore(path))
    with client_for(sim, source) as client:
        client._http.event_hooks["request"].append(lambda r: sent.append(r.headers["authorization"]))
        client.get("me")
        inspect.post("/__sim/oauth", json={"revoke_access_tokens": True})
        client.get("me")
        texts += [repr(client), str(client.__dict__), repr(source), str(source.__dict__), repr(source._state)]
        texts += [repr(client._http.auth), repr(source.store)]
    spent = new_grant(inspect)
    refresh_directly(sim, spent)
    for bad in (
        oauth(sim, spent, FileTokenStore(tmp_path / "a.json")),
        OAuthTokens(
            CLIENT_ID, CLIENT_SECRET + "x", seed, token_url=token_url(sim), store=FileTokenStore(tmp_path / "b")
        ),
        OAuthTokens(
            CLIENT_ID, CLIENT_SECRET, seed, token_url="http://127.0.0.1:9/t", store=FileTokenStore(tmp_path / "c")
        ),
    ):
        with client_for(sim, bad) as client, pytest.raises(Exception) as raised:
            client.get("me")
        texts += [str(raised.value), repr(raised.value), repr(raised.value.__cause__), repr(bad)]
    texts += [record.getMessage() for record in caplog.records]
    assert any("refreshed" in text for text in texts)
    entry = stored(path)
    secrets = {CLIENT_SECRET, seed, spent, entry["refresh_token"], entry["access_token"]}
    secrets |= {header.removeprefix("Bearer ") for header in sent}
    assert len(secrets) >= 6
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_a_dagster_materialization_with_oauth_resources(
    sim: Simulator, inspect: httpx.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = new_grant(inspect)
    for name, value in {
        "SALESLOFT_CLIENT_ID": CLIENT_ID,
        "SALESLOFT_CLIENT_SECRET": CLIENT_SECRET,
        "SALESLOFT_REFRESH_TOKEN": seed,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SALESLOFT_API_KEY", raising=False)
    [users] = [a for a in EXTRACT_ASSETS if a.key == raw_asset_key(BY_NAME["users"])]
    warehouse = tmp_path / "warehouse.duckdb"
    result = dg.materialize(
        [users],
        resources={
            "salesloft": SalesloftResource(
                client_id=dg.EnvVar("SALESLOFT_CLIENT_ID"),
                client_secret=dg.EnvVar("SALESLOFT_CLIENT_SECRET"),
                refresh_token=dg.EnvVar("SALESLOFT_REFRESH_TOKEN"),
                token_url=token_url(sim),
                store_url=str(tmp_path / "tokens.json"),
                base_url=sim.base_url,
            ),
            "warehouse": WarehouseResource(url=str(warehouse)),
        },
    )
    assert result.success
    truth = httpx.get(f"{sim.url}/__sim/truth/users").json()["records"]
    [(rows,)] = open_warehouse(str(warehouse)).query("SELECT count(*) FROM raw.users")
    assert rows == len(truth) > 0
    assert counts(inspect)["refreshes"] == 1
    shown = json.dumps(result.dagster_run.run_config, default=str) + "".join(str(e) for e in result.all_events)
    for secret in (CLIENT_SECRET, seed, stored(tmp_path / "tokens.json")["refresh_token"]):
        assert secret not in shown


def test_doctor_and_the_extract_command_run_on_oauth(sim: Simulator, inspect: httpx.Client, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from salesloft_pipeline.cli import main

    seed = new_grant(inspect)
    env: dict[str, str | None] = {
        "SALESLOFT_API_KEY": None,
        "SALESLOFT_OAUTH_STORE_URL": None,
        "SALESLOFT_BASE_URL": sim.base_url,
        "SALESLOFT_CLIENT_ID": CLIENT_ID,
        "SALESLOFT_CLIENT_SECRET": CLIENT_SECRET,
        "SALESLOFT_REFRESH_TOKEN": seed,
        "SALESLOFT_OAUTH_TOKEN_URL": token_url(sim),
        "SALESLOFT_PIPELINE_HOME": str(tmp_path / "home"),
        "SALESLOFT_WAREHOUSE_URL": str(tmp_path / "warehouse.duckdb"),
        "SALESLOFT_EVENTS_URL": str(tmp_path / "events.sqlite"),
        "SALESLOFT_WEBHOOK_SECRET": "whsec-oauth-doctor-test",
    }
    runner = CliRunner()
    doctor = runner.invoke(main, ["doctor"], env=env, catch_exceptions=False)
    assert doctor.exit_code == 0, doctor.output
    assert "OAuth access token accepted" in doctor.output and "signed in as" in doctor.output
    assert str(tmp_path / "home" / "oauth_tokens.json") in doctor.output
    # The key-less scope warning names the OAuth app, not SALESLOFT_API_KEY.
    assert f"grant scope email_contents:read to the OAuth app {sim.config.oauth_client_id}" in doctor.output
    extract = runner.invoke(main, ["extract", "users"], env=env, catch_exceptions=False)
    assert extract.exit_code == 0, extract.output
    truth = httpx.get(f"{sim.url}/__sim/truth/users").json()["records"]
    assert len([line for line in extract.stdout.splitlines() if line.startswith('{"')]) == len(truth)
    assert counts(inspect)["refreshes"] == 1  # the extract command took the doctor's token from the store
    entry = stored(tmp_path / "home" / "oauth_tokens.json")
    for secret in (CLIENT_SECRET, seed, entry["refresh_token"], entry["access_token"]):
        assert secret not in doctor.output and secret not in extract.output

    broken = runner.invoke(main, ["doctor"], env={**env, "SALESLOFT_CLIENT_SECRET": None}, catch_exceptions=False)
    assert broken.exit_code == 1 and "SALESLOFT_CLIENT_SECRET" in broken.output
