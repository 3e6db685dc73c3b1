"""The shared strict fake HTTP server on 127.0.0.1 that the fake Skalin and Hull build on.

The target is pointed at real sockets so its whole HTTP stack (pooling, keep-alive,
timeouts, retries) is exercised. Each server checks every request against the vendor's
documented contract and lists what it broke in `violations` (answered 400, not stored),
so a test can assert both what was delivered (`accepted`) and that nothing was malformed.
Faults (statuses with Retry-After, slow answers, connections dropped before or after
storing, redirects, odd 2xx bodies) are queued per request or chosen by content, and a
token bucket can enforce a rate limit.

    with FakeSkalin(client_id="cid") as api:
        api.faults.append(Fault.status(503))
        ...  # run the target against api.url
        assert api.violations == []
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Received:
    """One request as it reached the handler; immutable so tests can keep references."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    at: float


@dataclass(frozen=True)
class Fault:
    """What to do to one request instead of (or before) answering it normally.

    Build with the classmethods; `kind` is one of status, delay, drop_before, drop_after,
    redirect, ok_body.
    """

    kind: str
    code: int = 0
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @classmethod
    def status(
        cls,
        code: int,
        body: bytes = b'{"error": "injected fault"}',
        retry_after: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Answer `code` (503, 429, 401...) without storing; Retry-After as given."""
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = retry_after
        return cls("status", code, body, extra)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Sleep, then handle normally: a slow answer to trip client timeouts."""
        return cls("delay", seconds=seconds)

    @classmethod
    def drop_before(cls) -> Fault:
        """Read the request, then close the socket unanswered; nothing is stored."""
        return cls("drop_before")

    @classmethod
    def drop_after(cls) -> Fault:
        """Store a valid request, then close unanswered: a resend makes a duplicate."""
        return cls("drop_after")

    @classmethod
    def redirect(cls, location: str, code: int = 307) -> Fault:
        """Answer a redirect to `location`; nothing is stored."""
        return cls("redirect", code, b"", {"Location": location})

    @classmethod
    def ok_body(cls, code: int, body: bytes) -> Fault:
        """Store a valid request but answer 2xx with an unexpected body."""
        if not 200 <= code < 300 or code in (204, 205):
            raise ValueError(f"ok_body needs a 2xx status that may carry a body, not {code}")
        return cls("ok_body", code, body)


class _HTTPServer(ThreadingHTTPServer):
    """Knows its FakeServer and stays quiet about clients that went away."""

    daemon_threads = True
    request_queue_size = 128  # the default 5 resets connections under concurrent senders
    fake: FakeServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: broken pipes after client timeouts and drops are expected here."""


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the FakeServer; HTTP/1.1 so clients keep connections."""

    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle plus the
        # client's delayed ACK stalls every keep-alive answer by ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._closed(self.connection)

    def do_POST(self) -> None:
        self.server.fake._handle(self)

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

    def log_message(self, fmt: str, *args: Any) -> None:
        """Quiet: tests read what was received, not an access log."""


class FakeServer:
    """Threaded HTTP/1.1 server with contract checks, faults, latency and a rate limit.

    Subclasses implement `check()` and set `ok_status`/`ok_body`.
    Order per request: record in `requests`, add `latency`, rate limit (429), next fault
    (FIFO `faults`, then `fault_when`), contract check (400), store in `accepted`, answer.
    """

    ok_status: ClassVar[int] = 200
    ok_body: ClassVar[bytes] = b""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self.requests: list[Received] = []
        self.accepted: list[Received] = []
        self.violations: list[str] = []
        self.faults: list[Fault] = []
        self.fault_when: Callable[[Received], Fault | None] | None = None
        self.latency: float = 0.0
        self.connections: int = 0
        self.rate_limited: int = 0
        self.max_in_flight: int = 0
        self._in_flight = 0
        self._bucket: tuple[float, float] | None = None
        self._tokens = 0.0
        self._refilled = 0.0
        self._sockets: set[socket.socket] = set()
        self._server = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. http://127.0.0.1:54321."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        """Serve in a daemon thread (the socket is already bound, so `url` works before)."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"{type(self).__name__}-{self.url}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open keep-alive connections and join the serving thread."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def rate_limit(self, rps: float, burst: int) -> None:
        """Token bucket of `burst` tokens refilled at `rps`; over it: 429 + Retry-After."""
        if rps <= 0 or burst < 1:
            raise ValueError("rate_limit needs rps > 0 and burst >= 1")
        with self._lock:
            self._bucket = (float(rps), float(burst))
            self._tokens = float(burst)
            self._refilled = time.monotonic()

    def reset(self) -> None:
        """Back to a fresh server: no history, faults, latency or rate limit, zero counters."""
        with self._lock:
            self.requests.clear()
            self.accepted.clear()
            self.violations.clear()
            self.faults.clear()
            self.fault_when = None
            self.latency = 0.0
            self.connections = 0
            self.rate_limited = 0
            self.max_in_flight = self._in_flight
            self._bucket = None

    def wait_for(self, n_accepted: int, timeout: float = 5.0) -> list[Received]:
        """Block until `n_accepted` requests are stored; for targets that deliver async."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.accepted) < n_accepted:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(self.accepted)} of {n_accepted} requests accepted after "
                        f"{timeout}s; {len(self.requests)} received; "
                        f"violations: {self.violations}"
                    )
                self._lock.wait(left)
            return list(self.accepted)

    def check(self, request: Received) -> list[str]:
        """Contract violations of one request; subclasses implement the vendor's rules."""
        raise NotImplementedError

    # Internals, called from handler threads.

    def _opened(self, sock: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            self._sockets.add(sock)

    def _closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def _handle(self, handler: _Handler) -> None:
        body = _read_body(handler)
        if body is None:
            # The client went away mid-body (killed, or its connection dropped): no request
            # reached the API, so nothing is recorded, checked or answered.
            handler.close_connection = True
            return
        parts = urlsplit(handler.path)
        request = Received(
            method=handler.command,
            path=parts.path,
            query={k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
            json=_parse_json(body),
            at=time.monotonic(),
        )
        with self._lock:
            self.requests.append(request)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            self._answer(handler, request)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _answer(self, handler: _Handler, request: Received) -> None:
        if self.latency > 0:
            time.sleep(self.latency)
        wait = self._over_rate()
        if wait is not None:
            _reply(handler, 429, b'{"error": "rate limited"}', {"Retry-After": str(wait)})
            return
        fault = self._next_fault(request)
        kind = fault.kind if fault is not None else None
        if fault is not None and kind == "delay":
            time.sleep(fault.seconds)
        elif fault is not None and kind in ("status", "redirect"):
            _reply(handler, fault.code, fault.body, fault.headers)
            return
        elif kind == "drop_before":
            _drop(handler)
            return
        try:
            problems = self.check(request)
        except Exception as exc:  # a checker bug must fail the test, not hang the client
            problems = [f"checker crashed: {exc!r}"]
        if problems:
            with self._lock:
                self.violations.extend(problems)
            _reply(handler, 400, json.dumps({"error": "; ".join(problems)}).encode())
            return
        with self._lock:
            self.accepted.append(request)
            self._lock.notify_all()
        if kind == "drop_after":
            _drop(handler)
        elif fault is not None and kind == "ok_body":
            _reply(handler, fault.code, fault.body)
        else:
            _reply(handler, self.ok_status, self.ok_body)

    def _next_fault(self, request: Received) -> Fault | None:
        with self._lock:
            if self.faults:
                return self.faults.pop(0)
            when = self.fault_when
        if when is None:
            return None
        try:
            return when(request)
        except Exception as exc:  # a broken test hook must show up, not hang the client
            with self._lock:
                self.violations.append(f"fault_when crashed: {exc!r}")
            return Fault.status(500, b'{"error": "fault_when crashed"}')

    def _over_rate(self) -> int | None:
        """None if a token was available, else the whole seconds until the next one."""
        with self._lock:
            if self._bucket is None:
                return None
            rps, burst = self._bucket
            now = time.monotonic()
            self._tokens = min(burst, self._tokens + (now - self._refilled) * rps)
            self._refilled = now
            if self._tokens >= 1:
                self._tokens -= 1
                return None
            self.rate_limited += 1
            return max(1, math.ceil((1 - self._tokens) / rps))


def post_to(request: Received, path: str) -> list[str]:
    """The problems of a request that is not a POST to `path` (both APIs take only that)."""
    problems = []
    if request.method != "POST":
        problems.append(f"method {request.method}: expected POST")
    if request.path != path:
        problems.append(f"path {request.path!r}: expected {path}")
    return problems


def _read_body(handler: BaseHTTPRequestHandler) -> bytes | None:
    """The request body, by Content-Length or chunked, so keep-alive stays in step; None
    when the connection closed before the Content-Length bytes arrived."""
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    try:
        length = int(handler.headers.get("Content-Length") or 0)
    except ValueError:
        handler.close_connection = True  # cannot find the next request's start
        return b""
    body = handler.rfile.read(length) if length > 0 else b""
    return body if len(body) == length else None


def _parse_json(body: bytes) -> Any:
    """Parsed body, or None if absent or not strict JSON (NaN/Infinity are not JSON)."""
    if not body:
        return None
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except ValueError:
        return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _reply(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Answer with framing a keep-alive client can rely on (Content-Length)."""
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    if body and not any(k.lower() == "content-type" for k in headers or {}):
        handler.send_header("Content-Type", "application/json")
    if body or not (status < 200 or status in (204, 304)):  # RFC 9110: none on 1xx/204/304
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if body:
        handler.wfile.write(body)
    handler.wfile.flush()


def _drop(handler: BaseHTTPRequestHandler) -> None:
    """Close without answering; shutdown makes the client see a reset, not a hang."""
    handler.close_connection = True
    _shutdown(handler.connection)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the peer
        sock.shutdown(socket.SHUT_RDWR)


def nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def zoned(value: Any) -> bool:
    """ISO-8601 date-time string carrying a zone ("Z" or an offset)."""
    if not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(re.sub(r"[Zz]$", "+00:00", value)).tzinfo is not None
    except ValueError:
        return False
