"""The webhook ingest endpoint and its event store (SQLite and Postgres)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from salesloft_pipeline.serving import serve_in_thread
from salesloft_pipeline.webhooks import (
    MissingSecret,
    NewEvent,
    PostgresEventStore,
    Secrets,
    SQLiteEventStore,
    open_event_store,
    sign,
)
from salesloft_pipeline.webhooks.app import MAX_BODY, MAX_JSON_DEPTH, PATH, create_app

from .postgres import postgres_url  # noqa: F401 - fixture
from .rawhttp import exchange, logged_errors, post_bytes

ROOT = Path(__file__).resolve().parents[1]
SECRET = "current-secret"
OLD_SECRET = "old-secret"


def person(record_id: int, **fields: Any) -> bytes:
    return json.dumps({"id": record_id, "updated_at": "2026-01-02T03:04:05.000000-05:00", **fields}).encode()


def headers(body: bytes, event: str = "person_updated", secret: str = SECRET) -> dict[str, str]:
    return {"x-salesloft-event": event, "x-salesloft-signature": sign(body, secret), "content-type": "application/json"}


@pytest.fixture
def store(tmp_path: Path) -> SQLiteEventStore:
    return SQLiteEventStore(tmp_path / "events.sqlite")


@pytest.fixture
def client(store: SQLiteEventStore) -> Iterator[TestClient]:
    app = create_app(store, Secrets(f"{SECRET},{OLD_SECRET}"))
    with TestClient(app) as c:
        yield c


# -- signature ------------------------------------------------------------------------
def test_signature_is_hmac_sha1_hex_and_any_configured_secret_is_accepted() -> None:
    body = b'{"id":1}'
    secrets = Secrets(" new , old ")
    assert secrets.current == "new"
    assert secrets.verify(body, sign(body, "new"))
    assert secrets.verify(body, sign(body, "old"))
    assert secrets.verify(body, sign(body, "old").upper())
    assert not secrets.verify(body, sign(body, "other"))
    assert not secrets.verify(body + b" ", sign(body, "new"))
    assert not secrets.verify(body, "")
    assert not secrets.verify(body, None)
    assert not secrets.verify(body, "é" * 40)
    assert "new" not in repr(secrets) and "old" not in str(secrets)


def test_no_secret_is_refused_naming_the_variable() -> None:
    with pytest.raises(MissingSecret, match="SALESLOFT_WEBHOOK_SECRET"):
        Secrets(" , ")
    env = {k: v for k, v in os.environ.items() if k != "SALESLOFT_WEBHOOK_SECRET"}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "salesloft_pipeline.cli", "webhooks", "serve", "--port", "0"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "SALESLOFT_WEBHOOK_SECRET" in result.stderr


# -- the endpoint ---------------------------------------------------------------------
def test_a_signed_delivery_is_stored_once_and_acknowledged(client: TestClient, store: SQLiteEventStore) -> None:
    body = person(1)
    first = client.post(PATH, content=body, headers=headers(body))
    again = client.post(PATH, content=body, headers=headers(body))
    rotated = person(2)
    by_old_secret = client.post(PATH, content=rotated, headers=headers(rotated, secret=OLD_SECRET))
    assert (first.status_code, again.status_code, by_old_secret.status_code) == (200, 200, 200)
    assert again.json() == {"status": "duplicate"}
    events = store.read(0)
    assert [(e.event_type, e.body, e.known) for e in events] == [("person_updated", body, True), ("person_updated", rotated, True)]
    # The same body under another event type is another event.
    assert client.post(PATH, content=body, headers=headers(body, "person_created")).status_code == 200
    assert store.count() == 3


def test_unknown_event_types_are_stored_flagged(client: TestClient, store: SQLiteEventStore) -> None:
    body = person(5)
    answer = client.post(PATH, content=body, headers=headers(body, "link_swap"))
    assert answer.status_code == 202
    [event] = store.read(0)
    assert event.event_type == "link_swap" and not event.known


@pytest.mark.parametrize(
    "body, make_headers, status",
    [
        (person(1), lambda b: {"x-salesloft-event": "person_updated"}, 401),
        (person(1), lambda b: headers(b, secret="wrong"), 401),
        (person(1), lambda b: {**headers(b), "x-salesloft-signature": "0" * 40}, 401),
        (person(1), lambda b: {**headers(person(2))}, 401),  # signature of another body
        (b"[1, 2]", lambda b: headers(b), 400),
        (b"not json", lambda b: headers(b), 400),
        (b"", lambda b: headers(b), 400),
        (person(1), lambda b: {"x-salesloft-signature": sign(b, SECRET)}, 400),  # no event type
        (b"{" + b" " * MAX_BODY + b"}", lambda b: headers(b), 413),
    ],
)
def test_refusals_store_nothing(client: TestClient, store: SQLiteEventStore, body: bytes, make_headers: Any, status: int) -> None:
    answer = client.post(PATH, content=body, headers=make_headers(body))
    assert answer.status_code == status
    assert store.count() == 0


def test_a_body_of_exactly_1_mib_is_accepted(client: TestClient, store: SQLiteEventStore) -> None:
    prefix = b'{"id": 9, "pad": "'
    body = prefix + b"x" * (MAX_BODY - len(prefix) - 2) + b'"}'
    assert len(body) == MAX_BODY
    assert client.post(PATH, content=body, headers=headers(body)).status_code == 200
    assert store.count() == 1


def test_health_and_metrics(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    body = person(3)
    client.post(PATH, content=body, headers=headers(body))
    client.post(PATH, content=body, headers=headers(body))
    client.post(PATH, content=body, headers=headers(body, secret="wrong"))
    client.post(PATH, content=b"x" * (MAX_BODY + 1), headers=headers(b"x"))
    text = client.get("/metrics").text
    assert 'salesloft_webhook_events_received_total{event_type="person_updated"} 1.0' in text
    assert "salesloft_webhook_events_duplicate_total 1.0" in text
    assert 'salesloft_webhook_events_rejected_total{reason="bad_signature"} 1.0' in text
    assert 'salesloft_webhook_events_rejected_total{reason="too_large"} 1.0' in text
    assert "salesloft_webhook_commit_seconds_count 2.0" in text
    assert SECRET not in text


def test_health_fails_when_the_store_does_not_answer(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "events.sqlite")
    with TestClient(create_app(store, Secrets(SECRET))) as c:
        (tmp_path / "events.sqlite").unlink()
        (tmp_path / "events.sqlite").mkdir()  # the file is gone, a directory in its place
        assert c.get("/health").status_code == 503


def test_a_store_that_refuses_commits_answers_503_and_acknowledges_nothing(tmp_path: Path) -> None:
    class Broken(SQLiteEventStore):
        def append_many(self, events):  # type: ignore[no-untyped-def]
            raise OSError("disk full")

    with TestClient(create_app(Broken(tmp_path / "e.sqlite"), Secrets(SECRET))) as c:
        body = person(1)
        answer = c.post(PATH, content=body, headers=headers(body))
        assert answer.status_code == 503
        assert "disk full" not in answer.text
        assert 'reason="store_unavailable"} 1.0' in c.get("/metrics").text


# -- fuzzing -------------------------------------------------------------------------
header_values = st.one_of(st.none(), st.text(max_size=60), st.sampled_from(["person_updated", "", "x" * 200, "link_swap"]))
bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=10,
    ).map(lambda v: json.dumps(v).encode()),
)


def _latin1(value: str | None) -> bytes | None:
    """A header value as raw bytes (any byte but CR, LF and NUL, as on the wire)."""
    if value is None:
        return None
    return value.encode("latin-1", "replace").replace(b"\r", b"").replace(b"\n", b"").replace(b"\x00", b"")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=bodies,
    event=header_values,
    signature=st.one_of(st.none(), st.text(max_size=50), st.just("valid"), st.just("valid-upper"), st.just("other-key")),
    extra=st.dictionaries(st.sampled_from(["content-type", "content-encoding", "x-salesloft-delivery"]), st.text(max_size=20), max_size=2),
)
def test_fuzz_never_5xx_and_never_stores_an_unsigned_event(
    client: TestClient, store: SQLiteEventStore, body: bytes, event: str | None, signature: str | None, extra: dict[str, str]
) -> None:
    signed = signature in ("valid", "valid-upper")
    if signature == "valid":
        signature = sign(body, SECRET)
    elif signature == "valid-upper":
        signature = sign(body, OLD_SECRET).upper()
    elif signature == "other-key":
        signature = sign(body, "not-ours")
    sent = {k: _latin1(v) for k, v in extra.items()}
    if event is not None:
        sent["x-salesloft-event"] = _latin1(event)
    if signature is not None:
        sent["x-salesloft-signature"] = _latin1(signature)
    before = store.count()
    answer = client.post(PATH, content=body, headers={k: v for k, v in sent.items() if v is not None})
    assert answer.status_code < 500
    after = store.count()
    if not signed:
        assert answer.status_code == 401
        assert after == before
    if answer.status_code >= 300:
        assert after == before
    else:
        assert after - before in (0, 1)  # 0: a duplicate of an earlier example
        stored = {e.body for e in store.read(0)}
        assert body in stored


# -- the store, on both engines ------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        s = open_event_store(str(tmp_path / "events.sqlite"))
        assert isinstance(s, SQLiteEventStore)
    else:
        url = request.getfixturevalue("postgres_url")
        s = open_event_store(url)
        assert isinstance(s, PostgresEventStore)
        s.setup()
        with s._reader() as cursor:
            cursor.execute("TRUNCATE salesloft_webhook_events, salesloft_webhook_applied_ranges")
            cursor.execute("UPDATE salesloft_webhook_applied SET through_seq = 0, last_apply = NULL")
    s.setup()
    yield s
    s.close()


def test_store_appends_in_order_deduplicates_and_reads_ranges(any_store: Any) -> None:
    events = [NewEvent("person_updated", person(i), True, 1_700_000_000.0 + i) for i in range(5)]
    assert any_store.append_many(events) == [True] * 5
    # A batch with an old event, a new one, and the new one twice.
    again = [events[0], NewEvent("note_deleted", person(9), True, 1.0), NewEvent("note_deleted", person(9), True, 2.0)]
    assert any_store.append_many(again) == [False, True, False]
    stored = any_store.read(0)
    assert [e.body for e in stored] == [e.body for e in events] + [person(9)]
    seqs = [e.seq for e in stored]
    assert seqs == sorted(seqs) and len(set(seqs)) == 6
    assert any_store.last_seq() == seqs[-1]
    assert [e.seq for e in any_store.read(seqs[1], seqs[3])] == seqs[2:4]
    assert [e.seq for e in any_store.read(seqs[1], limit=2)] == seqs[2:4]
    assert any_store.count() == 6
    assert stored[0].received_at.timestamp() == pytest.approx(1_700_000_000.0)
    any_store.ping()


def test_store_concurrent_writers_commit_in_sequence_order(any_store: Any) -> None:
    """A reader never sees seq N before every smaller seq is visible (the sensor's cursor relies on it)."""
    other = open_event_store(any_store.url if isinstance(any_store, PostgresEventStore) else str(any_store.path))
    stop = threading.Event()
    gaps: list[tuple[int, int]] = []

    def write(store: Any, base: int) -> None:
        for i in range(150):
            store.append_many([NewEvent("person_updated", person(base + i), True, 0.0)])

    def watch() -> None:
        seen: set[int] = set()
        high = 0
        while not stop.is_set():
            current = {e.seq for e in any_store.read(0)}
            if current:
                new_high = max(current)
                missing_below_old_high = {s for s in seen if s not in current}
                assert not missing_below_old_high
                appeared_below = {s for s in current - seen if s <= high}
                if appeared_below:
                    gaps.append((min(appeared_below), high))
                seen, high = current, new_high

    watcher = threading.Thread(target=watch)
    writers = [threading.Thread(target=write, args=(s, b)) for s, b in ((any_store, 0), (other, 10_000))]
    watcher.start()
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    watcher.join()
    other.close()
    assert any_store.count() == 300
    assert gaps == []


OLD = time.time() - 40 * 86400  # received 40 days ago
CUTOFF = datetime.now(timezone.utc) - timedelta(days=30)


def _raw_execute(store: Any, sql: str) -> None:
    with store._reader() as handle:  # a sqlite3 connection or a psycopg2 cursor: both execute
        handle.execute(sql)


def test_prune_deletes_only_old_events_up_to_the_sequence_and_keeps_the_latest(any_store: Any) -> None:
    received = [OLD, OLD, OLD, OLD, time.time(), OLD, OLD]  # the 5th is recent; the 6th came late but is old
    any_store.append_many([NewEvent("person_updated", person(i), True, at) for i, at in enumerate(received)])
    seqs = [e.seq for e in any_store.read(0)]
    assert any_store.prune(seqs[4], CUTOFF) == 4
    assert [e.seq for e in any_store.read(0)] == seqs[4:]  # recent, and old but above through_seq: kept
    assert any_store.prune(seqs[4], CUTOFF) == 0
    # Up to the end: the latest event stays, so last_seq() never goes back.
    assert any_store.prune(seqs[-1] + 100, CUTOFF) == 1
    assert [e.seq for e in any_store.read(0)] == [seqs[4], seqs[6]]
    assert any_store.last_seq() == seqs[6]
    with pytest.raises(ValueError, match="timezone"):
        any_store.prune(seqs[-1], datetime(2020, 1, 1))


def test_prune_works_in_bounded_batches(any_store: Any) -> None:
    any_store.append_many([NewEvent("person_updated", person(i), True, OLD) for i in range(25)])
    batches: list[int] = []
    delete_batch = any_store._delete_batch

    def counted(*args: Any) -> int:
        batches.append(delete_batch(*args))
        return batches[-1]

    any_store._delete_batch = counted
    # At most max_rows in one call (a tick), the rest in the next.
    assert any_store.prune(any_store.last_seq(), CUTOFF, batch=4, max_rows=10) == 10
    assert batches == [4, 4, 2] and any_store.count() == 15
    batches.clear()
    assert any_store.prune(any_store.last_seq(), CUTOFF, batch=4) == 14
    assert batches == [4, 4, 4, 2] and any_store.count() == 1


def test_sequence_numbers_are_never_reused_after_deletes(any_store: Any) -> None:
    """The sensor's cursor would skip an event given a number it already handed out."""
    any_store.append_many([NewEvent("person_updated", person(i), True, OLD) for i in range(3)])
    last = any_store.last_seq()
    table = "events" if isinstance(any_store, SQLiteEventStore) else "salesloft_webhook_events"
    _raw_execute(any_store, f"DELETE FROM {table}")
    assert any_store.count() == 0
    any_store.append(NewEvent("person_updated", person(99), True, time.time()))
    [event] = any_store.read(0)
    assert event.seq > last and any_store.last_seq() == event.seq


def test_the_endpoint_appends_between_prune_batches(any_store: Any) -> None:
    """Each batch commits on its own: deliveries are stored in between, numbered after every older event."""
    any_store.append_many([NewEvent("person_updated", person(i), True, OLD) for i in range(50)])
    before = any_store.last_seq()
    pruner = open_event_store(any_store.url if isinstance(any_store, PostgresEventStore) else str(any_store.path))
    delete_batch = pruner._delete_batch
    delivered: list[bytes] = []
    with TestClient(create_app(any_store, Secrets(SECRET))) as endpoint:

        def deliver_after(*args: Any) -> int:
            deleted = delete_batch(*args)
            body = person(1000 + len(delivered))
            assert endpoint.post(PATH, content=body, headers=headers(body)).status_code == 200
            delivered.append(body)
            return deleted

        pruner._delete_batch = deliver_after
        assert pruner.prune(before, CUTOFF, batch=10) == 49
    pruner.close()
    assert len(delivered) == 5
    remaining = any_store.read(0)
    assert [e.body for e in remaining] == [person(49)] + delivered
    seqs = [e.seq for e in remaining]
    assert seqs == sorted(set(seqs)) and seqs[0] == before


def test_applied_through_moves_only_over_applied_ranges_whatever_their_order(any_store: Any) -> None:
    empty = any_store.progress()
    assert (empty.last_seq, empty.applied_through, empty.unapplied, empty.oldest_unapplied, empty.last_apply) == (0, 0, 0, None, None)
    received = [1_700_000_000.0 + i for i in range(10)]
    any_store.append_many([NewEvent("person_updated", person(i), True, at) for i, at in enumerate(received)])
    seqs = [e.seq for e in any_store.read(0)]
    before = seqs[0] - 1  # numbers below the first event hold none (earlier tests on Postgres)
    # The second half first: nothing below it is applied, so the marker stays.
    assert any_store.mark_applied(seqs[4], seqs[9]) == 0
    progress = any_store.progress()
    assert (progress.last_seq, progress.applied_through, progress.unapplied) == (seqs[9], 0, 5)
    assert progress.oldest_unapplied.timestamp() == pytest.approx(received[0])
    assert progress.last_apply is not None and abs(progress.last_apply.timestamp() - time.time()) < 60
    # A range in the middle of what is missing changes nothing but the count.
    assert any_store.mark_applied(seqs[1], seqs[4]) == 0
    assert (any_store.progress().unapplied, any_store.progress().oldest_unapplied.timestamp()) == (2, pytest.approx(received[0]))
    # The first range fills the gap: the marker runs through every marked range.
    assert any_store.mark_applied(before, seqs[1]) == seqs[9]
    assert any_store.mark_applied(before, seqs[1]) == seqs[9]  # idempotent; an old range moves nothing
    progress = any_store.progress()
    assert (progress.applied_through, progress.unapplied, progress.oldest_unapplied) == (seqs[9], 0, None)
    with pytest.raises(ValueError, match="empty range"):
        any_store.mark_applied(5, 4)


def test_applied_through_moves_over_numbers_that_hold_no_event(any_store: Any) -> None:
    """Pruned events and numbers used up without an event (Postgres duplicates) are no gap."""
    any_store.append_many([NewEvent("person_updated", person(i), True, OLD) for i in range(6)])
    seqs = [e.seq for e in any_store.read(0)]
    table = "events" if isinstance(any_store, SQLiteEventStore) else "salesloft_webhook_events"
    _raw_execute(any_store, f"DELETE FROM {table} WHERE seq <= {seqs[2]}")
    assert any_store.mark_applied(seqs[3], seqs[5]) == 0  # event seqs[3] is not applied
    assert any_store.progress().unapplied == 1
    assert any_store.mark_applied(seqs[2], seqs[3]) == seqs[5]  # below seqs[2]: no events left


def test_concurrent_apply_runs_mark_their_ranges_without_losing_one(any_store: Any) -> None:
    any_store.append_many([NewEvent("person_updated", person(i), True, OLD) for i in range(40)])
    seqs = [e.seq for e in any_store.read(0)]
    bounds = [seqs[0] - 1, *seqs[4::5]]
    ranges = list(zip(bounds, bounds[1:]))[::-1]  # the last range first
    url = any_store.url if isinstance(any_store, PostgresEventStore) else str(any_store.path)
    errors: list[BaseException] = []

    def mark(after: int, through: int) -> None:
        store = open_event_store(url)
        try:
            store.mark_applied(after, through)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            store.close()

    threads = [threading.Thread(target=mark, args=r) for r in ranges]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    progress = any_store.progress()
    assert (progress.applied_through, progress.unapplied) == (seqs[-1], 0)


def test_setup_gives_a_store_made_before_the_marker_its_tables(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    with sqlite3.connect(path) as conn:  # the events table as the previous version made it
        conn.execute(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, dedupe_key BLOB NOT NULL UNIQUE,"
            " event_type TEXT NOT NULL, known INTEGER NOT NULL, received_at REAL NOT NULL, body BLOB NOT NULL)"
        )
        conn.execute("INSERT INTO events VALUES (1, x'00', 'person_updated', 1, 1.0, x'7b7d')")
    store = SQLiteEventStore(path)
    assert store.mark_applied(0, 1) == 1
    assert store.progress().applied_through == 1


def test_events_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SALESLOFT_EVENTS_URL", raising=False)
    monkeypatch.setenv("SALESLOFT_PIPELINE_HOME", str(tmp_path))
    assert open_event_store().describe() == f"sqlite:{tmp_path / 'events.sqlite'}"
    assert open_event_store(f"sqlite:///{tmp_path}/x.db").describe() == f"sqlite:{tmp_path}/x.db"
    assert isinstance(open_event_store("postgresql://u:pw@h/db"), PostgresEventStore)
    assert "pw" not in open_event_store("postgresql://u:pw@h/db").describe()
    with pytest.raises(ValueError, match="SALESLOFT_EVENTS_URL"):
        open_event_store("mysql://h/db")
    with pytest.raises(ValueError, match="never the warehouse"):
        open_event_store(str(tmp_path / "warehouse.duckdb"))


def test_an_invalid_postgres_url_is_refused_without_its_password() -> None:
    store = open_event_store("postgresql://pipeline:s3cr3t-pw@[bad/events")  # libpq would quote it whole
    with pytest.raises(ValueError, match="SALESLOFT_EVENTS_URL") as raised:
        store.count()
    assert "s3cr3t" not in str(raised.value) and raised.value.__suppress_context__


# -- over loopback HTTP, byte for byte: what test_webhooks_fuzz.py found ----------------
@pytest.fixture
def loopback(store: SQLiteEventStore) -> Iterator[int]:
    """The endpoint served by uvicorn on 127.0.0.1; yields its port."""
    with serve_in_thread(create_app(store, Secrets(f"{SECRET},{OLD_SECRET}")), name="webhook endpoint") as url:
        yield int(url.rsplit(":", 1)[1])


def _raw(body: bytes, *headers: tuple[bytes, bytes]) -> bytes:
    return post_bytes(PATH, [*headers, (b"content-length", str(len(body)).encode())], body)


@pytest.mark.parametrize("order", ["right_first", "wrong_first", "both_right"])
def test_a_repeated_signature_header_is_refused(loopback: int, store: SQLiteEventStore, order: str) -> None:
    """Two signatures are ambiguous (a proxy may act on the last, Starlette reads the first): 401, nothing stored."""
    body = person(1)
    right, wrong = sign(body, SECRET).encode(), b"0" * 40
    first, second = {"right_first": (right, wrong), "wrong_first": (wrong, right), "both_right": (right, right)}[order]
    request = _raw(body, (b"x-salesloft-event", b"person_updated"),
                   (b"x-salesloft-signature", first), (b"x-salesloft-signature", second))
    assert exchange(loopback, request) == 401
    assert store.count() == 0


def test_a_repeated_event_header_is_refused(loopback: int, store: SQLiteEventStore) -> None:
    """Which of two event types to store would be a guess: 400, nothing stored."""
    body = person(1)
    request = _raw(body, (b"x-salesloft-event", b"person_updated"), (b"x-salesloft-event", b"person_deleted"),
                   (b"x-salesloft-signature", sign(body, SECRET).encode()))
    assert exchange(loopback, request) == 400
    assert store.count() == 0


@pytest.mark.parametrize("framing", ["content_length", "chunked"])
def test_a_client_gone_mid_body_is_counted_not_an_unhandled_exception(loopback: int, store: SQLiteEventStore, framing: str) -> None:
    """A sender that hangs up before its body ends was an "Exception in ASGI application" and a 500 try."""
    with logged_errors() as errors:
        body = person(1)
        headers = [(b"x-salesloft-event", b"person_updated"), (b"x-salesloft-signature", sign(body, SECRET).encode())]
        if framing == "content_length":
            request = post_bytes(PATH, [*headers, (b"content-length", b"500")], body)
        else:
            request = post_bytes(PATH, [*headers, (b"transfer-encoding", b"chunked")], b"%x\r\n%s\r\n" % (len(body), body))
        exchange(loopback, request, close_write=True)
        with httpx.Client(base_url=f"http://127.0.0.1:{loopback}") as c:
            assert c.get("/health").status_code == 200
            metrics = c.get("/metrics").text
    assert errors == []
    assert 'salesloft_webhook_events_rejected_total{reason="client_disconnected"} 1.0' in metrics
    assert store.count() == 0


def _nested(depth: int) -> bytes:
    """A person whose `a` field nests `depth` lists: the body is `depth + 1` levels deep."""
    return b'{"id": 1, "a": ' + b"[" * depth + b"]" * depth + b"}"


def test_a_body_nested_deeper_than_max_json_depth_is_refused(client: TestClient, store: SQLiteEventStore) -> None:
    """orjson reads 1023 levels, the apply job's json.loads fewer than 1000: a body in between
    was acknowledged, stored, and then failed every apply run of its range (a poison pill)."""
    deepest = _nested(MAX_JSON_DEPTH - 1)
    assert client.post(PATH, content=deepest, headers=headers(deepest)).status_code == 200
    for depth in (MAX_JSON_DEPTH, 1000, 1022):
        body = _nested(depth)
        answer = client.post(PATH, content=body, headers=headers(body))
        assert (answer.status_code, answer.json()) == (400, {"status": f"body nested deeper than {MAX_JSON_DEPTH}"})
    # Brackets inside strings are text, not nesting.
    text = json.dumps({"id": 2, "note": "[" * 5000}).encode()
    assert client.post(PATH, content=text, headers=headers(text)).status_code == 200
    assert [e.body for e in store.read(0)] == [deepest, text]
    assert 'salesloft_webhook_events_rejected_total{reason="too_deep"} 3.0' in client.get("/metrics").text
