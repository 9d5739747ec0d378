"""A hostile EPR on a raw socket: it answers whatever bytes a test scripts, at whatever pace.

An HTTP framework would refuse to send a malformed status line, a header without a colon or a
bad chunk header, and would not drip a response a byte at a time: this server writes exactly
what it is given. Each connection's request head (and a declared body) is read first, then the
test's behaviour writes the answer.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["Request", "answer", "drip", "hostile_server"]


@dataclass
class Request:
    """What the client sent: the request line, its headers (lower-cased names) and its body."""

    line: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    raw: bytes = b""

    @property
    def path(self) -> str:
        parts = self.line.split(" ")
        return parts[1] if len(parts) > 1 else ""


# A behaviour writes the answer to one request; it may sleep, drip or close as it likes.
Behaviour = Callable[[socket.socket, Request, threading.Event], None]


def _read_request(conn: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return Request(lines[0], headers, body, data)


@contextmanager
def hostile_server(behaviour: Behaviour) -> Iterator[tuple[str, list[Request]]]:
    """Serve ``behaviour`` on 127.0.0.1 on a free port; yields ``(base URL, requests seen)``.

    Every connection is served in its own thread, one request after another until the client
    or the behaviour closes it. On exit the listener closes and behaviours are told to stop
    (their ``stop`` event), so a dripping answer does not outlive the test.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    stop = threading.Event()
    seen: list[Request] = []
    workers: list[threading.Thread] = []

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                while not stop.is_set():
                    request = _read_request(conn)
                    if request is None:
                        return
                    seen.append(request)
                    behaviour(conn, request, stop)
            except OSError:
                return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=serve, args=(conn,), daemon=True)
            workers.append(worker)
            worker.start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", seen
    finally:
        stop.set()
        acceptor.join(timeout=5)
        listener.close()
        for worker in workers:
            worker.join(timeout=5)


def drip(conn: socket.socket, data: bytes, every_s: float, stop: threading.Event, *, piece: int = 1) -> None:
    """Send ``data`` ``piece`` bytes at a time, one piece every ``every_s`` seconds, until done,
    stopped, or the client hangs up."""
    for start in range(0, len(data), piece):
        if stop.wait(every_s):
            return
        try:
            conn.sendall(data[start : start + piece])
        except OSError:
            return


def answer(status: int, body: bytes, *, content_type: str = "application/fhir+json", extra: str = "") -> bytes:
    """A well-formed HTTP/1.1 response."""
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode("ascii") + body
