"""A raw HTTP/1.1 client for tests that send what no client library would.

Duplicated headers, lying or garbage content-lengths, bodies cut short,
control bytes in header values: written byte for byte on a loopback socket.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
from collections.abc import Iterable, Iterator

ANSWER = re.compile(rb"HTTP/1\.[01] (\d{3})(?: .*)?")


def post_bytes(path: str, headers: Iterable[tuple[bytes, bytes]], body: bytes) -> bytes:
    """A POST with exactly these header lines (no content-length added) and these body bytes."""
    head = b"POST " + path.encode() + b" HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return head + b"\r\n" + body


def exchange(port: int, data: bytes, close_write: bool = False, timeout: float = 10.0) -> int | None:
    """Sends `data` to 127.0.0.1:`port`; the answer's status, or None when the server hung up without one.

    `close_write` shuts our side after sending, as a client that went away mid-body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if close_write:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server answered (413) and closed before reading everything
            pass
        answer = b""
        try:
            while b"\r\n" not in answer:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except ConnectionResetError:
            pass
    if not answer:
        return None
    status_line = answer.split(b"\r\n", 1)[0]
    match = ANSWER.fullmatch(status_line)
    assert match, f"not an HTTP status line: {status_line[:100]!r}"
    return int(match.group(1))


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def logged_errors(*names: str) -> Iterator[list[str]]:
    """The ERROR lines these loggers (default: uvicorn's and ours) log in the block.

    An unhandled exception in an ASGI app is one: uvicorn logs it and answers 500."""
    handler = _Errors()
    loggers = [logging.getLogger(name) for name in names or ("uvicorn.error", "salesloft_pipeline")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
