"""Strict fake Skalin and Hull servers on 127.0.0.1 that the tests start.

Each server checks every request the way the vendor doc describes and records what
it accepted; a request breaking the contract is answered 400 and listed in
`violations`, which the fixtures assert empty. Faults (statuses with Retry-After,
slow answers, dropped connections before or after storing, redirects) are queued per
request or chosen by content, and a token bucket can enforce a rate limit.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass(frozen=True)
class Fault:
    """What to do to one request instead of (or before) answering it normally."""

    kind: str
    code: int = 0
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @classmethod
    def status(cls, code: int, body: bytes = b"", retry_after: str | None = None) -> Fault:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return cls("status", code, body or b'{"error":"injected"}', headers)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        return cls("delay", seconds=seconds)

    @classmethod
    def drop_before(cls) -> Fault:
        return cls("drop_before")

    @classmethod
    def drop_after(cls) -> Fault:
        return cls("drop_after")

    @classmethod
    def redirect(cls, location: str, code: int = 307) -> Fault:
        return cls("status", code, b"", {"Location": location})

    @classmethod
    def ok_body(cls, code: int, body: bytes) -> Fault:
        return cls("ok_body", code, body)


class FakeServer:
    """Threaded HTTP/1.1 server with keep-alive, contract checks, faults and a rate limit."""

    ok_status = 200
    ok_body = b'{"status":"ok"}'

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[Received] = []
        self.accepted: list[Received] = []
        self.violations: list[str] = []
        self.faults: list[Fault] = []
        self.fault_when: Callable[[Received], Fault | None] | None = None
        self.latency = 0.0
        self.connections = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.rate_limited = 0
        self._bucket: tuple[float, float] | None = None
        self._tokens = 0.0
        self._refilled = time.monotonic()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def rate_limit(self, rps: float, burst: int) -> None:
        self._bucket = (rps, float(burst))
        self._tokens = float(burst)
        self._refilled = time.monotonic()

    def check(self, request: Received) -> list[str]:
        """Contract violations of one request; subclasses implement the vendor's rules."""
        raise NotImplementedError

    # Internals

    def _next_fault(self, request: Received) -> Fault | None:
        with self._lock:
            if self.faults:
                return self.faults.pop(0)
        return self.fault_when(request) if self.fault_when else None

    def _over_rate(self) -> bool:
        if self._bucket is None:
            return False
        rps, burst = self._bucket
        with self._lock:
            now = time.monotonic()
            self._tokens = min(burst, self._tokens + (now - self._refilled) * rps)
            self._refilled = now
            if self._tokens >= 1:
                self._tokens -= 1
                return False
            self.rate_limited += 1
            return True

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        parts = urlsplit(handler.path)
        request = Received(
            handler.command,
            parts.path,
            {k: v[0] for k, v in parse_qs(parts.query).items()},
            {k.lower(): v for k, v in handler.headers.items()},
            body,
            time.monotonic(),
        )
        with self._lock:
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._answer(handler, request)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer(self, handler: BaseHTTPRequestHandler, request: Received) -> None:
        if self.latency:
            time.sleep(self.latency)
        if self._over_rate():
            _reply(handler, 429, b'{"error":"rate limited"}', {"Retry-After": "1"})
            return
        fault = self._next_fault(request)
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
        elif fault is not None and fault.kind == "drop_before":
            _drop(handler)
            return
        elif fault is not None and fault.kind == "status":
            _reply(handler, fault.code, fault.body, fault.headers)
            return
        problems = self.check(request)
        if problems:
            with self._lock:
                self.violations += problems
            _reply(handler, 400, json.dumps({"error": "; ".join(problems)}).encode())
            return
        with self._lock:
            self.accepted.append(request)
        if fault is not None and fault.kind == "drop_after":
            _drop(handler)
        elif fault is not None and fault.kind == "ok_body":
            _reply(handler, fault.code, fault.body)
        else:
            _reply(handler, self.ok_status, self.ok_body)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server.connections += 1

            def do_POST(self) -> None:
                server._handle(self)

            do_GET = do_PUT = do_POST

            def log_message(self, *args: object) -> None:
                """Quiet: tests read what was received, not an access log."""

        return Handler


def _reply(
    handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict | None = None
) -> None:
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    if body:
        handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _drop(handler: BaseHTTPRequestHandler) -> None:
    handler.close_connection = True
    with contextlib.suppress(OSError):
        handler.connection.shutdown(socket.SHUT_RDWR)


# Skalin collect /hit/bulk

SKALIN_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
SKALIN_LOCALTIME = re.compile(r"^\d{2}:\d{2}:\d{2}$")
SKALIN_ITEM_KEYS = {"eventId", "identity", "customerId", "visitId", "ts", "localtime", "url", "cip"}


class FakeSkalin(FakeServer):
    """Skalin's bulk endpoint as its doc describes it."""

    def __init__(self, client_id: str) -> None:
        super().__init__()
        self.client_id = client_id

    @property
    def identities(self) -> list[dict]:
        return [i for r in self.accepted for i in r.json.get("identities", [])]

    @property
    def features(self) -> list[dict]:
        return [i for r in self.accepted for i in r.json.get("features", [])]

    def check(self, request: Received) -> list[str]:
        problems = []
        if (request.method, request.path) != ("POST", "/hit/bulk"):
            problems.append(f"{request.method} {request.path}: expected POST /hit/bulk")
        if request.query != {"rec": "1", "client_id": self.client_id}:
            problems.append(f"query {request.query}: expected rec=1 and client_id")
        if not request.headers.get("content-type", "").startswith("application/json"):
            problems.append("Content-Type is not application/json")
        body = request.json
        if not isinstance(body, dict) or not set(body) <= {"identities", "features"}:
            return [*problems, "body is not an object of identities/features"]
        for kind, items in body.items():
            if not isinstance(items, list):
                problems.append(f"{kind} is not a list")
                continue
            if len(items) > 100:
                problems.append(f"{len(items)} {kind} in one request (max 100)")
            for n, item in enumerate(items):
                problems += [f"{kind}[{n}]: {p}" for p in _skalin_item(item, kind)]
        return problems


def _skalin_item(item: Any, kind: str) -> list[str]:
    if not isinstance(item, dict):
        return ["not an object"]
    allowed = SKALIN_ITEM_KEYS | ({"name"} if kind == "features" else set())
    problems = [f"unknown key {k!r}" for k in set(item) - allowed]
    identity = item.get("identity")
    if (
        not isinstance(identity, dict)
        or not identity
        or not set(identity) <= {"email", "id"}
        or not all(isinstance(v, str) and v for v in identity.values())
    ):
        problems.append(f"identity {identity!r} needs email or id strings")
    for key in ("eventId", "visitId"):
        if key in item and not (isinstance(item[key], str) and len(item[key]) == 16):
            problems.append(f"{key} {item[key]!r} is not 16 characters")
    if "ts" in item:
        if not (isinstance(item["ts"], str) and SKALIN_TS.match(item["ts"])):
            problems.append(f"ts {item['ts']!r} is not YYYY-MM-DDTHH:mm:ss")
        else:
            datetime.fromisoformat(item["ts"])
    if "localtime" in item and not SKALIN_LOCALTIME.match(str(item["localtime"])):
        problems.append(f"localtime {item['localtime']!r} is not HH:mm:ss")
    for key in ("customerId", "url", "cip"):
        if key in item and not isinstance(item[key], str):
            problems.append(f"{key} is not a string")
    if kind == "features" and not (isinstance(item.get("name"), str) and item["name"]):
        problems.append("feature without name")
    return problems


# Hull firehose

HULL_USER_KEYS = {"email", "external_id", "anonymous_id", "id"}
HULL_ACCOUNT_KEYS = {"domain", "external_id", "anonymous_id", "id"}
HULL_CLAIMS = {"iss", "iat", "nbf", "exp"}
HULL_TRACK_KEYS = {
    "event",
    "properties",
    "event_id",
    "ip",
    "url",
    "referer",
    "source",
    "type",
    "created_at",
}
HULL_OPERATIONS = {"set", "setIfNull", "inc", "dec"}
LEEWAY_SECONDS = 60


class FakeHull(FakeServer):
    """Hull's firehose: verifies every entry's JWT with the connector secret."""

    ok_status = 204
    ok_body = b""

    def __init__(
        self,
        organization: str,
        connector_id: str,
        secret: str,
        *,
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
    def entries(self) -> list[dict]:
        """Accepted entries with their decoded claims."""
        found = []
        for request in self.accepted:
            for entry in request.json["batch"]:
                token = entry["headers"]["Hull-Access-Token"]
                claims = jwt.decode(token, options={"verify_signature": False})
                found.append({**entry, "claims": claims, "token": token})
        return found

    @property
    def tokens_seen(self) -> set[str]:
        return {e["token"] for e in self.entries}

    def check(self, request: Received) -> list[str]:
        h = request.headers
        problems = []
        if (request.method, request.path) != ("POST", "/"):
            problems.append(f"{request.method} {request.path}: expected POST /")
        expected = {
            "content-type": "application/json",
            "hull-app-id": self.connector_id,
            "hull-organization": self.organization,
            "hull-access-token": self.secret,
        }
        problems += [f"header {k} is {h.get(k)!r}" for k, v in expected.items() if h.get(k) != v]
        if len(request.body) >= self.max_body_bytes:
            problems.append(f"body of {len(request.body)} bytes (max {self.max_body_bytes})")
        body = request.json
        if not isinstance(body, dict) or set(body) != {"batch", "timestamp", "sentAt"}:
            return [*problems, "body is not {batch, timestamp, sentAt}"]
        problems += [
            f"{k}: not ISO-8601 with a zone" for k in ("timestamp", "sentAt") if not _zoned(body[k])
        ]
        batch = body["batch"]
        if not isinstance(batch, list) or not 0 < len(batch) <= self.max_batch:
            return [*problems, f"batch of {len(batch)} entries (1..{self.max_batch})"]
        for n, entry in enumerate(batch):
            problems += [f"batch[{n}]: {p}" for p in self._entry(entry)]
        return problems

    def _entry(self, entry: Any) -> list[str]:
        if not isinstance(entry, dict) or set(entry) != {"type", "timestamp", "headers", "body"}:
            return ["entry is not {type, timestamp, headers, body}"]
        problems = []
        if entry["type"] not in ("traits", "track", "alias", "unalias"):
            problems.append(f"type {entry['type']!r}")
        if not _zoned(entry["timestamp"]):
            problems.append(f"timestamp {entry['timestamp']!r} is not ISO-8601 with a zone")
        headers = entry["headers"]
        if not isinstance(headers, dict) or set(headers) != {"Hull-Access-Token"}:
            return [*problems, "headers must hold only Hull-Access-Token"]
        problems += self._token(headers["Hull-Access-Token"])
        body = entry["body"]
        if not isinstance(body, dict):
            return [*problems, "body is not an object"]
        return problems + _hull_body(entry["type"], body)

    def _token(self, token: str) -> list[str]:
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
        except jwt.PyJWTError as error:
            return [f"JWT does not verify: {error}"]
        problems = []
        now = self.now()
        if claims["iss"] != self.connector_id:
            problems.append(f"iss {claims['iss']!r}")
        if "nbf" in claims and claims["nbf"] > now + LEEWAY_SECONDS:
            problems.append("token not yet valid (nbf)")
        if "exp" in claims and claims["exp"] <= now - LEEWAY_SECONDS:
            problems.append("token expired (exp)")
        unknown = {k for k in claims if k not in HULL_CLAIMS and not k.startswith("io.hull.")}
        problems += [f"unknown claim {k!r}" for k in unknown]
        subject = claims.get("io.hull.subjectType")
        user, account = claims.get("io.hull.asUser"), claims.get("io.hull.asAccount")
        problems += _identifiers(user, HULL_USER_KEYS, "asUser")
        problems += _identifiers(account, HULL_ACCOUNT_KEYS, "asAccount")
        if subject not in ("user", "account"):
            problems.append(f"subjectType {subject!r}")
        if subject == "user" and user is None:
            problems.append("subjectType user without asUser")
        if subject == "account" and account is None:
            problems.append("subjectType account without asAccount")
        for flag in ("io.hull.create", "io.hull.active"):
            if flag in claims and not isinstance(claims[flag], bool):
                problems.append(f"{flag} is not a boolean")
        return problems


def _identifiers(claim: Any, allowed: set[str], name: str) -> list[str]:
    if claim is None:
        return []
    if not isinstance(claim, dict) or not claim or not set(claim) <= allowed:
        return [f"{name} {claim!r} has keys outside {sorted(allowed)}"]
    return [f"{name}.{k} is {v!r}" for k, v in claim.items() if not (isinstance(v, str) and v)]


def _hull_body(kind: str, body: dict) -> list[str]:
    if kind == "track":
        problems = [f"track key {k!r}" for k in set(body) - HULL_TRACK_KEYS]
        if not (isinstance(body.get("event"), str) and body["event"]):
            problems.append("track without event")
        if "properties" in body and not isinstance(body["properties"], dict):
            problems.append("properties is not an object")
        if "created_at" in body and not _zoned(body["created_at"]):
            problems.append(f"created_at {body['created_at']!r} is not ISO-8601 with a zone")
        return problems
    if kind in ("alias", "unalias"):
        value = body.get("anonymous_id")
        ok = set(body) == {"anonymous_id"} and isinstance(value, str) and value
        return [] if ok else [f"{kind} body {body!r} is not {{anonymous_id}}"]
    problems = [] if len(body) <= 2000 else [f"{len(body)} attributes (max 2000)"]
    for key, value in body.items():
        if len(json.dumps(value).encode()) > 2048:
            problems.append(f"trait {key!r} over 2 KB")
        if isinstance(value, dict) and (
            set(value) != {"operation", "value"} or value["operation"] not in HULL_OPERATIONS
        ):
            problems.append(f"trait {key!r} is an object but not {{operation, value}}")
    return problems


def _zoned(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
    except ValueError:
        return False
