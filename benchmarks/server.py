"""A lean loopback API for the benchmark: counts what it gets, adds latency, limits rate.

Unlike the tests' strict servers it checks nothing, so its own cost stays small; it
answers like Skalin (200) on /hit/bulk and like Hull (204) elsewhere.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class BenchServer:
    def __init__(self, *, latency: float = 0.0, rps: float = 0.0, burst: int = 100) -> None:
        self.latency = latency
        self.rps = rps
        self.burst = float(burst)
        self.requests = 0
        self.items = 0
        self.rate_limited = 0
        self.first_at = 0.0
        self.last_at = 0.0
        self._tokens = float(burst)
        self._refilled = time.monotonic()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _admit(self) -> bool:
        if not self.rps:
            return True
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.rps)
            self._refilled = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            self.rate_limited += 1
            return False

    def _count(self, body: bytes) -> None:
        data = json.loads(body)
        items = len(data["batch"]) if "batch" in data else sum(len(v) for v in data.values())
        with self._lock:
            now = time.monotonic()
            self.first_at = self.first_at or now
            self.last_at = now
            self.requests += 1
            self.items += items

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes: without NODELAY, Nagle and the
                # client's delayed ACK stall every 200 answer with a body by ~40 ms (and
                # cost the client ~0.45 ms of CPU), which no real API does. The tests'
                # fakes do the same (tests/fake_apis.py).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if server.latency:
                    time.sleep(server.latency)
                if not server._admit():
                    self._reply(429, b'{"error":"rate"}', {"Retry-After": "1"})
                    return
                server._count(body)
                if self.path.startswith("/hit/bulk"):
                    self._reply(200, b'{"status":"ok"}')
                else:
                    self._reply(204, b"")

            def _reply(self, status: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                """Silent."""

        return Handler
