"""Strict fake Skalin and Hull HTTP servers on 127.0.0.1 for end-to-end tests.

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

import jwt

__all__ = ["FakeHull", "FakeServer", "FakeSkalin", "Fault", "Received"]


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


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, by Content-Length or chunked, so keep-alive stays in step."""
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
    return handler.rfile.read(length) if length > 0 else b""


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


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _zoned(value: Any) -> bool:
    """ISO-8601 date-time string carrying a zone ("Z" or an offset)."""
    if not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(re.sub(r"[Zz]$", "+00:00", value)).tzinfo is not None
    except ValueError:
        return False


# Skalin collect: POST /hit/bulk?rec=1&client_id=...

SKALIN_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
SKALIN_LOCALTIME = re.compile(r"^\d{2}:\d{2}:\d{2}$")
SKALIN_ITEM_KEYS = frozenset(
    {"eventId", "identity", "customerId", "visitId", "ts", "localtime", "url", "cip"}
)
SKALIN_MAX_ITEMS = 100


class FakeSkalin(FakeServer):
    """Skalin's collect bulk endpoint, checked field by field against its doc."""

    ok_status = 200
    ok_body = b'{"status": "ok"}'

    def __init__(self, client_id: str) -> None:
        super().__init__()
        self.client_id = client_id

    @property
    def identities(self) -> list[dict[str, Any]]:
        """All stored identity items, in arrival order."""
        return self._items("identities")

    @property
    def features(self) -> list[dict[str, Any]]:
        """All stored feature items, in arrival order."""
        return self._items("features")

    def _items(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            accepted = list(self.accepted)
        return [item for r in accepted for item in r.json.get(kind, [])]

    def check(self, request: Received) -> list[str]:
        problems = []
        if request.method != "POST":
            problems.append(f"method {request.method}: expected POST")
        if request.path != "/hit/bulk":
            problems.append(f"path {request.path!r}: expected /hit/bulk")
        if request.query.get("rec") != "1":
            problems.append(f"query rec={request.query.get('rec')!r}: expected '1'")
        if request.query.get("client_id") != self.client_id:
            problems.append(
                f"query client_id={request.query.get('client_id')!r}: expected {self.client_id!r}"
            )
        problems += [
            f"query {k!r}: unknown parameter" for k in request.query.keys() - {"rec", "client_id"}
        ]
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("application/json"):
            problems.append(f"header Content-Type {content_type!r}: expected application/json")
        body = request.json
        if not isinstance(body, dict):
            return [*problems, "body: not a JSON object"]
        problems += [
            f"body key {k!r}: unknown (identities, features)"
            for k in sorted(body.keys() - {"identities", "features"})
        ]
        for kind in ("identities", "features"):
            if kind not in body:
                continue
            items = body[kind]
            if not isinstance(items, list):
                problems.append(f"{kind}: not a list")
                continue
            if len(items) > SKALIN_MAX_ITEMS:
                problems.append(f"{kind}: {len(items)} items (max {SKALIN_MAX_ITEMS})")
            for n, item in enumerate(items):
                problems += [f"{kind}[{n}].{p}" for p in _skalin_item(item, kind)]
        return problems


def _skalin_item(item: Any, kind: str) -> list[str]:
    """Problems of one identities/features item, each starting with the field name."""
    if not isinstance(item, dict):
        return [f"item: not an object but {type(item).__name__}"]
    allowed = SKALIN_ITEM_KEYS | ({"name"} if kind == "features" else set())
    problems = [f"{k}: unknown key" for k in sorted(item.keys() - allowed)]
    identity = item.get("identity")
    if not isinstance(identity, dict):
        problems.append(f"identity: required object, got {identity!r}")
    else:
        problems += [
            f"identity.{k}: unknown key (email, id)"
            for k in sorted(identity.keys() - {"email", "id"})
        ]
        problems += [
            f"identity.{k}: {identity[k]!r} is not a non-empty string"
            for k in ("email", "id")
            if k in identity and not _nonempty_str(identity[k])
        ]
        if not identity.keys() & {"email", "id"}:
            problems.append("identity: needs email or id")
    for key in ("eventId", "visitId"):
        if key in item and not (isinstance(item[key], str) and len(item[key]) == 16):
            problems.append(f"{key}: {item[key]!r} is not a 16-character string")
    if "ts" in item:
        ts = item["ts"]
        if not (isinstance(ts, str) and SKALIN_TS.match(ts)):
            problems.append(f"ts: {ts!r} is not YYYY-MM-DDTHH:mm:ss")
        else:
            try:
                datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S")
            except ValueError:
                problems.append(f"ts: {ts!r} is not a valid date-time")
    if "localtime" in item:
        localtime = item["localtime"]
        if not (isinstance(localtime, str) and SKALIN_LOCALTIME.match(localtime)):
            problems.append(f"localtime: {localtime!r} is not HH:mm:ss")
    problems += [
        f"{k}: {item[k]!r} is not a string"
        for k in ("customerId", "url", "cip")
        if k in item and not isinstance(item[k], str)
    ]
    if kind == "features" and not _nonempty_str(item.get("name")):
        problems.append(f"name: required non-empty string, got {item.get('name')!r}")
    return problems


# Hull firehose: POST / with a batch of JWT-signed entries

HULL_TYPES = frozenset({"traits", "track", "alias", "unalias"})
HULL_USER_KEYS = frozenset({"email", "external_id", "anonymous_id", "id"})
HULL_ACCOUNT_KEYS = frozenset({"domain", "external_id", "anonymous_id", "id"})
HULL_CLAIMS = frozenset(
    {
        "iss",
        "iat",
        "nbf",
        "exp",
        "io.hull.subjectType",
        "io.hull.asUser",
        "io.hull.asAccount",
        "io.hull.create",
        "io.hull.active",
    }
)
HULL_TRACK_KEYS = frozenset(
    {"event", "properties", "event_id", "ip", "url", "referer", "source", "type", "created_at"}
)
HULL_OPERATIONS = frozenset({"set", "setIfNull", "inc", "dec"})
HULL_MAX_TRAITS = 2000
HULL_MAX_TRAIT_BYTES = 2048
HULL_LEEWAY_SECONDS = 60
# Time a request may take between the client building it and the server reading it.
HULL_TRANSIT_SECONDS = 1


class FakeHull(FakeServer):
    """Hull's firehose: checks headers, batch shape, each entry's JWT and body."""

    ok_status = 204
    ok_body = b""

    def __init__(
        self,
        organization: str,
        connector_id: str,
        secret: str,
        max_batch: int = 100,
        max_body_bytes: int = 1_000_000,
    ) -> None:
        super().__init__()
        self.organization = organization
        self.connector_id = connector_id
        self.secret = secret
        self.max_batch = max_batch
        self.max_body_bytes = max_body_bytes
        self.now: Callable[[], float] = time.time

    @property
    def entries(self) -> list[dict[str, Any]]:
        """Stored entries as {type, timestamp, body, claims, token}, in arrival order."""
        with self._lock:
            accepted = list(self.accepted)
        found = []
        for request in accepted:
            for entry in request.json["batch"]:
                token = entry["headers"]["Hull-Access-Token"]
                found.append(
                    {
                        "type": entry["type"],
                        "timestamp": entry["timestamp"],
                        "body": entry["body"],
                        "claims": jwt.decode(token, options={"verify_signature": False}),
                        "token": token,
                    }
                )
        return found

    @property
    def tokens_seen(self) -> set[str]:
        """Distinct JWTs among stored entries (to check token reuse/caching)."""
        return {entry["token"] for entry in self.entries}

    def check(self, request: Received) -> list[str]:
        problems = []
        if request.method != "POST":
            problems.append(f"method {request.method}: expected POST")
        if request.path != "/":
            problems.append(f"path {request.path!r}: expected /")
        content_type = request.headers.get("content-type")
        if (content_type or "").split(";")[0].strip().lower() != "application/json":
            problems.append(f"header Content-Type {content_type!r}: expected application/json")
        for name, expected in (
            ("Hull-App-Id", self.connector_id),
            ("Hull-Organization", self.organization),
            ("Hull-Access-Token", self.secret),
        ):
            got = request.headers.get(name.lower())
            if got is None:
                problems.append(f"header {name}: missing")
            elif got != expected:
                problems.append(f"header {name}: {got!r} is not the configured value")
        if len(request.body) >= self.max_body_bytes:
            problems.append(f"body: {len(request.body)} bytes (must be < {self.max_body_bytes})")
        body = request.json
        if not isinstance(body, dict):
            return [*problems, "body: not a JSON object"]
        if body.keys() != {"batch", "timestamp", "sentAt"}:
            problems.append(f"body keys {sorted(body)}: expected batch, sentAt, timestamp")
        problems += [
            f"{k}: {body[k]!r} is not ISO-8601 with a zone"
            for k in ("timestamp", "sentAt")
            if k in body and not _zoned(body[k])
        ]
        batch = body.get("batch")
        if not isinstance(batch, list) or not batch:
            return [*problems, "batch: must be a non-empty list"]
        if len(batch) > self.max_batch:
            problems.append(f"batch: {len(batch)} entries (max {self.max_batch})")
        for n, entry in enumerate(batch):
            problems += [f"batch[{n}].{p}" for p in self._entry(entry)]
        return problems

    def _entry(self, entry: Any) -> list[str]:
        if not isinstance(entry, dict):
            return [f"entry: not an object but {type(entry).__name__}"]
        problems = []
        if entry.keys() != {"type", "timestamp", "headers", "body"}:
            problems.append(f"keys {sorted(entry)}: expected body, headers, timestamp, type")
        kind = entry.get("type")
        if kind not in HULL_TYPES:
            problems.append(f"type: {kind!r} not in {sorted(HULL_TYPES)}")
        if not _zoned(entry.get("timestamp")):
            problems.append(f"timestamp: {entry.get('timestamp')!r} is not ISO-8601 with a zone")
        headers = entry.get("headers")
        if not (
            isinstance(headers, dict)
            and headers.keys() == {"Hull-Access-Token"}
            and _nonempty_str(headers["Hull-Access-Token"])
        ):
            problems.append(f"headers: {headers!r} is not {{'Hull-Access-Token': jwt}}")
        else:
            problems += [
                f"headers.Hull-Access-Token: {p}"
                for p in self._claims(headers["Hull-Access-Token"])
            ]
        body = entry.get("body")
        if not isinstance(body, dict):
            problems.append(f"body: not an object but {type(body).__name__}")
        elif kind == "track":
            problems += [f"body.{p}" for p in _hull_track(body)]
        elif kind in ("alias", "unalias"):
            if body.keys() != {"anonymous_id"} or not _nonempty_str(body["anonymous_id"]):
                problems.append(f"body: {body!r} is not {{'anonymous_id': non-empty string}}")
        elif kind == "traits":
            problems += [f"body.{p}" for p in _hull_traits(body)]
        return problems

    def _claims(self, token: str) -> list[str]:
        """Verify the JWT with the connector secret against `now()`, then its claims."""
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                options={
                    "require": ["iss", "iat"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            return [f"{type(exc).__name__}: {exc}"]
        problems = [f"claim {k!r}: unknown" for k in sorted(claims.keys() - HULL_CLAIMS)]
        if claims["iss"] != self.connector_id:
            problems.append(f"claim iss: {claims['iss']!r} is not the connector id")
        now = self.now()
        for key in ("iat", "nbf", "exp"):
            value = claims.get(key)
            if key in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
                problems.append(f"claim {key}: {value!r} is not a number")
        if _number(claims.get("nbf")) and claims["nbf"] > now + HULL_LEEWAY_SECONDS:
            problems.append(f"claim nbf: {claims['nbf']} is in the future (now {now:.0f})")
        if _number(claims.get("exp")) and claims["exp"] <= now - HULL_LEEWAY_SECONDS:
            problems.append(f"claim exp: token expired at {claims['exp']} (now {now:.0f})")
        problems += _stale(claims, now)
        subject = claims.get("io.hull.subjectType")
        if subject not in ("user", "account"):
            problems.append(f"claim io.hull.subjectType: {subject!r} is not user or account")
        for claim, keys in (
            ("io.hull.asUser", HULL_USER_KEYS),
            ("io.hull.asAccount", HULL_ACCOUNT_KEYS),
        ):
            if claim in claims:
                problems += [f"claim {claim}{p}" for p in _identifiers(claims[claim], keys)]
        if "io.hull.asUser" not in claims and "io.hull.asAccount" not in claims:
            problems.append("claims: need io.hull.asUser or io.hull.asAccount")
        if subject == "user" and "io.hull.asUser" not in claims:
            problems.append("claim io.hull.asUser: required when subjectType is user")
        if subject == "account" and "io.hull.asAccount" not in claims:
            problems.append("claim io.hull.asAccount: required when subjectType is account")
        problems += [
            f"claim {k}: {claims[k]!r} is not a boolean"
            for k in ("io.hull.create", "io.hull.active")
            if k in claims and not isinstance(claims[k], bool)
        ]
        return problems


def _stale(claims: Mapping[str, Any], now: float) -> list[str]:
    """The target's own rule, not Hull's: no token is sent older than half its lifetime
    (spec, "Tokens are valid when sent"), so a token never nears `exp` in a batch or retry."""
    issued, expires = claims.get("iat"), claims.get("exp")
    if not (_number(issued) and _number(expires)):
        return []
    age, half_life = now - issued, (expires - issued) / 2
    if age <= half_life + HULL_TRANSIT_SECONDS:
        return []
    return [f"claim iat: the token is {age:.0f}s old, over half its lifetime ({half_life:.0f}s)"]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _identifiers(value: Any, keys: frozenset[str]) -> list[str]:
    """Problems of an asUser/asAccount claim, each starting with a suffix of its name."""
    if not isinstance(value, dict):
        return [f": {value!r} is not an object"]
    if not value:
        return [": has no identifier"]
    allowed = ", ".join(sorted(keys))
    problems = [f".{k}: unknown key ({allowed})" for k in sorted(value.keys() - keys)]
    problems += [
        f".{k}: {v!r} is not a non-empty string" for k, v in value.items() if not _nonempty_str(v)
    ]
    return problems


def _hull_track(body: dict[str, Any]) -> list[str]:
    problems = [f"{k}: unknown track key" for k in sorted(body.keys() - HULL_TRACK_KEYS)]
    if not _nonempty_str(body.get("event")):
        problems.append(f"event: required non-empty string, got {body.get('event')!r}")
    if "properties" in body and not isinstance(body["properties"], dict):
        problems.append("properties: not an object")
    if "created_at" in body and not _zoned(body["created_at"]):
        problems.append(f"created_at: {body['created_at']!r} is not ISO-8601 with a zone")
    problems += [
        f"{k}: {body[k]!r} is not a string"
        for k in ("event_id", "ip", "url", "referer", "source", "type")
        if k in body and not isinstance(body[k], str)
    ]
    return problems


def _hull_traits(body: dict[str, Any]) -> list[str]:
    problems = []
    if len(body) > HULL_MAX_TRAITS:
        problems.append(f"{len(body)} traits (max {HULL_MAX_TRAITS})")
    for name, value in body.items():
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        if size > HULL_MAX_TRAIT_BYTES:
            problems.append(f"{name}: value is {size} bytes of JSON (max {HULL_MAX_TRAIT_BYTES})")
        if isinstance(value, dict) and not (
            value.keys() == {"operation", "value"} and value["operation"] in HULL_OPERATIONS
        ):
            problems.append(
                f"{name}: object value must be {{'operation': one of "
                f"{sorted(HULL_OPERATIONS)}, 'value': v}}, got {value!r}"
            )
    return problems
