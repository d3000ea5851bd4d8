"""Fuzz the webhook endpoint over real loopback HTTP against a real SQLite store.

Requests are written byte by byte on a socket, so the fuzz controls what no
HTTP client library would send: duplicated headers, wrong or garbage
content-lengths, bodies cut short, chunked framing, raw latin-1 header bytes.
Invariants, checked after every request:
- no answer is a 5xx and the server logs no unhandled exception;
- nothing is stored unless its signature is right for the bytes the server
  received (compared with the store's new rows);
- every well-formed, correctly signed delivery is acknowledged and stored
  byte for byte, once;
- the apply job can read every stored event (no poison pill);
- GET /health answers 200 throughout.
Two runs: one varies headers, framing and signatures, the other only bodies
under a right envelope (so deep, huge and oddly encoded bodies reach the
store). Derandomized with a fixed example budget, so CI runs the same
examples every time, in about 25 s.

What it found, each now a plain regression test (test_webhooks_endpoint.py,
test_webhooks_apply.py): a repeated signature header was trusted by its first
value; a sender hanging up mid-body was an unhandled exception; a body nested
1000-1023 levels was stored and then failed every apply run.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesloft_pipeline.defs.webhooks.apply import Plan, plan
from salesloft_pipeline.serving import serve_in_thread
from salesloft_pipeline.webhooks import EVENTS, Secrets, SQLiteEventStore, StoredEvent, sign
from salesloft_pipeline.webhooks.app import MAX_BODY, PATH, create_app

from .rawhttp import exchange, logged_errors, post_bytes

SECRET = "fuzz-current-secret"
OLD_SECRET = "fuzz-old-secret"
ACCEPTED_SECRETS = (SECRET, OLD_SECRET)
EVENT_TYPE = re.compile(r"[a-z0-9_.:-]{1,100}")
EXAMPLES = 600  # headers, framing and signatures
BODY_EXAMPLES = 400  # bodies, under right headers
# RFC 9110 field-value bytes; a server may refuse a request with any other (a control character).
DEFAULT_RECURSION_LIMIT = 1000  # CPython's
FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")


# -- requests, as bytes ------------------------------------------------------------------
@dataclass
class Request:
    """One delivery as bytes on the wire, and what an honest server makes of it."""

    headers: list[tuple[bytes, bytes]]
    body: bytes  # the bytes after the header block, framing included
    received: bytes | None  # the body the server should see; None: framing it must refuse
    valid_http: bool = True  # a request every server must take as is: plain framing, valid header bytes
    must_accept: bool = False  # well-formed, correctly signed, a JSON object: must be stored
    close_write: bool = False  # shut our side after sending (a body cut short)

    def __repr__(self) -> str:  # bodies can be 2 MiB: show their size and start
        def short(b: bytes | None) -> str:
            return "None" if b is None else f"<{len(b)} bytes {b[:120]!r}>"

        return (f"Request(headers={self.headers!r}, body={short(self.body)}, received={short(self.received)},"
                f" valid_http={self.valid_http}, must_accept={self.must_accept}, close_write={self.close_write})")

    def wire(self) -> bytes:
        return post_bytes(PATH, self.headers, self.body)


# -- strategies -------------------------------------------------------------------------
# Header bytes as they can appear on the wire: anything but CR, LF and NUL.
header_bytes = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\x00", b""))
latin1_text = st.text(st.characters(max_codepoint=255, exclude_characters="\r\n\x00"), max_size=40)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=15,
)
records = st.fixed_dictionaries(
    {"id": st.integers(1, 2**53)}, optional={"updated_at": st.just("2026-01-02T03:04:05.000000Z"), "first_name": st.text(max_size=20)}
).flatmap(lambda base: st.dictionaries(st.text(max_size=10), json_values, max_size=5).map(lambda extra: {**extra, **base}))


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, bool]:
    """(body, whether it is a JSON object every consumer reads)."""
    kind = draw(
        st.sampled_from(
            [*["object", "object_ascii"] * 4, "value", "binary", "text_utf8", "text_latin1", "utf16", "invalid_utf8",
             "gzip", "deep", "deep", "deep", "sized", "sized", "empty", "whitespace"]
        )
    )
    if kind == "object":
        return json.dumps(draw(records), ensure_ascii=False).encode(), True
    if kind == "object_ascii":
        return json.dumps(draw(records), indent=draw(st.sampled_from([None, 2]))).encode(), True
    if kind == "value":
        value = draw(json_values)
        return json.dumps(value).encode(), isinstance(value, dict)
    if kind == "binary":
        return draw(st.binary(max_size=400)), False
    if kind == "text_utf8":
        return draw(st.text(max_size=200)).encode(), False
    if kind == "text_latin1":  # a JSON object spelled in latin-1: not UTF-8
        name = draw(st.text(st.characters(min_codepoint=0xC0, max_codepoint=0xFF), min_size=1, max_size=10))
        return json.dumps({"id": 1, "first_name": name}, ensure_ascii=False).encode("latin-1"), False
    if kind == "utf16":
        return json.dumps(draw(records)).encode(draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32"]))), False
    if kind == "invalid_utf8":
        good = json.dumps(draw(records)).encode()
        cut = draw(st.integers(1, len(good) - 1))
        return good[:cut] + draw(st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])) + good[cut:], False
    if kind == "gzip":  # compressed, whatever content-encoding says
        return gzip.compress(json.dumps(draw(records)).encode()), False
    if kind == "deep":
        # Around the limits of the parsers on both sides: orjson's (1024) and Python's recursion (1000).
        depth = draw(st.sampled_from([1, 31, 32, 33, 63, 64, 65, 500, 900, 990, 1000, 1022, 1023, 1024, 1025, 3000]))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        return b'{"id":1,"a":' + opener * depth + b"1" + closer * depth + b"}", depth < 32
    if kind == "sized":  # around and over MAX_BODY, padded with 1- or 2-byte characters
        size = MAX_BODY + draw(st.sampled_from([-2, -1, 0, 1, 2, MAX_BODY]))
        pad_char = draw(st.sampled_from(["x", "é"]))
        prefix, suffix = b'{"id":7,"pad":"', b'"}'
        room = size - len(prefix) - len(suffix)
        pad = (pad_char * (room // len(pad_char.encode()))).encode()
        pad += b"y" * (room - len(pad))
        return prefix + pad + suffix, True
    if kind == "empty":
        return b"", False
    return draw(st.sampled_from([b" ", b"\n", b"\t {} \n"])), False  # only `{}` with blanks is an object


def _cases(name: bytes) -> st.SearchStrategy[bytes]:
    return st.sampled_from([name, name.upper(), name.title()])


@st.composite
def requests(draw: st.DrawFn, valid_envelope: bool = False) -> Request:
    """A delivery; with `valid_envelope` its headers and framing are right and only the body varies."""
    body, is_object = draw(bodies())
    headers: list[tuple[bytes, bytes]] = []

    # x-salesloft-event: usually one valid name, sometimes anything.
    event_kinds = ["known", "unknown", "spaced", "upper"]
    if not valid_envelope:
        event_kinds += [*["known"] * 5, "missing", "empty", "garbage", "long", "duplicate_same", "duplicate_other"]
    event_kind = draw(st.sampled_from(event_kinds))
    known_name = draw(st.sampled_from(sorted(EVENTS))).encode()
    event_values = {
        "known": [known_name], "unknown": [b"link_swap"], "spaced": [b"  " + known_name + b"\t"],
        "upper": [known_name.upper()], "missing": [], "empty": [b""], "garbage": [draw(header_bytes)],
        "long": [b"x" * 101], "duplicate_same": [known_name, known_name],
        "duplicate_other": [known_name, draw(st.sampled_from([b"person_deleted", b"link_swap", b"x y"]))],
    }[event_kind]
    for value in event_values:
        headers.append((draw(_cases(b"x-salesloft-event")), value))

    # x-salesloft-signature: right, under the old secret, uppercase, or wrong in one of many ways.
    sig_kinds = ["right", "old", "upper", "spaced"]
    if not valid_envelope:
        sig_kinds += [*["right"] * 9, "wrong", "truncated", "extended", "other_secret", "other_body", "missing",
                      "empty", "garbage", "duplicate_right_wrong", "duplicate_wrong_right", "duplicate_same"]
    sig_kind = draw(st.sampled_from(sig_kinds))
    right = sign(body, SECRET).encode()
    wrong = hashlib.sha1(draw(st.binary(max_size=20))).hexdigest().encode()
    sig_values = {
        "right": [right], "old": [sign(body, OLD_SECRET).encode()], "upper": [right.upper()],
        "spaced": [b" " + right + b"\t"], "wrong": [wrong], "truncated": [right[: draw(st.integers(0, 39))]],
        "extended": [right + b"0"], "other_secret": [sign(body, "not-our-secret").encode()],
        "other_body": [sign(body + b" ", SECRET).encode()], "missing": [], "empty": [b""],
        "garbage": [draw(header_bytes)], "duplicate_right_wrong": [right, wrong],
        "duplicate_wrong_right": [wrong, right], "duplicate_same": [right, right],
    }[sig_kind]
    for value in sig_values:
        headers.append((draw(_cases(b"x-salesloft-signature")), value))

    # Content headers that claim things: ignored or refused, never trusted.
    claims = st.sampled_from([b"application/json", b"text/plain", b"application/json; charset=latin-1",
                              b"gzip", b"br", b"identity", b"multipart/form-data; boundary=x"])
    for name in draw(st.lists(st.sampled_from([b"content-type", b"content-encoding", b"x-other"]), max_size=2)):
        headers.append((name, draw(claims if valid_envelope else claims | header_bytes)))

    # Framing: mostly right; sometimes lying, cut short or garbage.
    framings = ["length", "length", "chunked"]
    if not valid_envelope:
        framings += [*["length"] * 6, "chunked", "short", "long", "garbage", "duplicate_same", "duplicate_other", "none"]
    framing = draw(st.sampled_from(framings))
    received: bytes | None = body
    wire_body = body
    close_write = False
    size = len(body)
    if framing == "length":
        headers.append((b"content-length", str(size).encode()))
    elif framing == "chunked":
        cuts = sorted(draw(st.lists(st.integers(0, size), max_size=3)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, size]) if b > a]
        headers.append((b"transfer-encoding", b"chunked"))
        wire_body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    elif framing == "short" and size > 0:
        declared = draw(st.integers(0, size - 1))
        headers.append((b"content-length", str(declared).encode()))
        received = body[:declared]
    elif framing == "long":
        headers.append((b"content-length", str(size + draw(st.integers(1, 1000))).encode()))
        received, close_write = None, True
    elif framing == "garbage":
        headers.append((b"content-length", draw(st.sampled_from([b"-1", b"abc", b"1e3", b"0x10", b"\xb2", b"1" * 5000, b""]))))
        received = None
    elif framing == "duplicate_same":  # RFC 9110 lets a server collapse these or refuse them
        headers += [(b"content-length", str(size).encode())] * 2
    elif framing == "duplicate_other":
        headers += [(b"content-length", str(size).encode()), (b"content-length", str(size + 1).encode())]
        received = None
    else:  # no content-length, no chunks: a POST without a body
        received = b""
    headers = draw(st.permutations(headers))
    valid_http = framing in ("length", "chunked") and all(FIELD_VALUE.fullmatch(v) for _, v in headers)
    must_accept = (
        valid_http
        and size <= MAX_BODY
        and is_object
        and event_kind in ("known", "unknown", "spaced", "upper")
        and sig_kind in ("right", "old", "upper", "spaced")
    )
    return Request(headers, wire_body, received, valid_http, must_accept, close_write)


# -- the oracle --------------------------------------------------------------------------
def _values(request: Request, name: bytes) -> list[bytes]:
    return [v for n, v in request.headers if n.lower() == name]


def correctly_signed(request: Request, body: bytes) -> bool:
    """Exactly one signature header, the HMAC-SHA1 hex of `body` under an accepted secret."""
    values = _values(request, b"x-salesloft-signature")
    if len(values) != 1:
        return False
    given_signature = values[0].strip(b" \t").lower()
    return any(
        hmac.compare_digest(hmac.new(s.encode(), body, hashlib.sha1).hexdigest().encode(), given_signature)
        for s in ACCEPTED_SECRETS
    )


def event_type(request: Request) -> str | None:
    values = _values(request, b"x-salesloft-event")
    if len(values) != 1:
        return None
    name = values[0].decode("latin-1").strip().lower()
    return name if EVENT_TYPE.fullmatch(name) else None


def apply_job_reads(event: StoredEvent) -> Plan:
    """What the apply job makes of `event`, at Python's default recursion limit as in a run
    (Hypothesis raises the limit while a test runs, which would hide a body nested too deep)."""
    raised = sys.getrecursionlimit()
    sys.setrecursionlimit(DEFAULT_RECURSION_LIMIT)
    try:
        return plan([event])
    finally:
        sys.setrecursionlimit(raised)


def _fuzz(tmp_path: Path, deliveries: st.SearchStrategy[Request], examples: int) -> set[tuple[str, bytes]]:
    """Sends `examples` deliveries to a fresh endpoint, checking every invariant; returns what it acknowledged."""
    store = SQLiteEventStore(tmp_path / "events.sqlite")
    app = create_app(store, Secrets(f"{SECRET},{OLD_SECRET}"))
    acknowledged: set[tuple[str, bytes]] = set()
    seen_through = [0]
    with (
        logged_errors() as errors,
        serve_in_thread(app, name="webhook endpoint") as url,
        httpx.Client(base_url=url, timeout=10) as health,
    ):
        port = int(url.rsplit(":", 1)[1])

        @settings(
            max_examples=examples, deadline=None, derandomize=True, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(request=deliveries)
        def check(request: Request) -> None:
            status = exchange(port, request.wire(), request.close_write)
            context = f"status {status} for {request!r}"
            new = store.read(seen_through[0])  # read first, so a failed example leaves no row to the next
            if new:
                seen_through[0] = new[-1].seq
            # What the request alone decides (checked first, so a replay fails the same way).
            assert not errors, f"{context}: logged {errors[0]}"
            assert status is None or status < 500, context
            oversized = request.valid_http and len(request.received or b"") > MAX_BODY
            if status is None:  # the server may hang up only on framing it cannot trust or an oversized body
                assert not request.valid_http or oversized, context
            if oversized:
                assert status in (413, None), context
            elif request.valid_http and not correctly_signed(request, request.received or b""):
                assert status == 401, context
            if request.must_accept:
                assert status in (200, 202), context
            acknowledged_now = status in (200, 202)
            if acknowledged_now:
                name, body = event_type(request), request.received
                assert name is not None and body is not None and correctly_signed(request, body), context
                # What the endpoint acknowledges, the apply job can read (no poison pill).
                readable = apply_job_reads(StoredEvent(1, name, body, name in EVENTS, datetime.now(timezone.utc)))
                assert not any("JSON" in reason for _, reason in readable.invalid), f"{context}: {readable.invalid}"
            # What the store holds: this request's event, byte for byte, at most once.
            assert len(new) <= (1 if acknowledged_now else 0), context
            if acknowledged_now:
                assert [(e.event_type, e.body) for e in new] in ([(name, body)], []), context
                assert new or (name, body) in acknowledged, f"{context}: acknowledged but not stored"
                assert not (new and (name, body) in acknowledged), f"{context}: stored twice"
                # 202 flags a new event of a type not applied; a duplicate is a plain 200.
                assert status == (200 if name in EVENTS or not new else 202), context
                acknowledged.add((name, body))
            assert health.get("/health").status_code == 200

        check()
    # The whole store: exactly the acknowledged deliveries, each once, byte for byte.
    stored = [(e.event_type, e.body) for e in store.read(0)]
    assert len(stored) == len(set(stored)) and set(stored) == acknowledged
    return acknowledged


def test_fuzz_headers_framing_and_signatures(tmp_path: Path) -> None:
    acknowledged = _fuzz(tmp_path, requests(), EXAMPLES)
    assert len(acknowledged) > EXAMPLES // 10  # the fuzz reached the store, not only the refusals


def test_fuzz_bodies_under_a_valid_signature(tmp_path: Path) -> None:
    acknowledged = _fuzz(tmp_path, requests(valid_envelope=True), BODY_EXAMPLES)
    assert len(acknowledged) > BODY_EXAMPLES // 4
