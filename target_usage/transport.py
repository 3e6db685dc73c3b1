"""The one way requests leave the process: session, pacing, concurrency, retries.

Both APIs share this module, so the delivery rules of the spec live here once:
retry 408/429/5xx (not 501/505) and network errors with capped exponential backoff and
jitter, honour `Retry-After`, stop after `max_retries`, and raise an `ApiError` that
names the API, the status and the body. Retrying a POST is safe only because every
item carries a stable id.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import msgspec
import requests
from requests.adapters import HTTPAdapter

from target_usage import __version__
from target_usage.errors import ApiError
from target_usage.outputs import JsonlWriter, Redactor

RETRYABLE_STATUSES = frozenset(
    {408, 429} | {status for status in range(500, 600) if status not in (501, 505)}
)
USER_AGENT = f"target-usage/{__version__}"


@dataclass(frozen=True)
class Request:
    """One HTTP POST, built once; retries resend the same bytes."""

    api: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    items: int


@dataclass
class SendStats:
    """What delivering some requests cost; summed into the run summary."""

    requests: int = 0
    retries: int = 0
    items: int = 0

    def add(self, other: SendStats) -> None:
        self.requests += other.requests
        self.retries += other.retries
        self.items += other.items


@dataclass(frozen=True)
class RetryPolicy:
    """The whole retry policy in one place; `delay` is pure so tests need no sockets."""

    max_retries: int = 8
    retry_statuses: frozenset[int] = RETRYABLE_STATUSES
    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 60.0
    retry_after_cap_seconds: float = 300.0

    def is_retryable(self, status: int) -> bool:
        return status in self.retry_statuses

    def delay(
        self,
        retry_number: int,
        retry_after: str | None = None,
        *,
        now: float | None = None,
        rng: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait before retry `retry_number` (1-based).

        A server's `Retry-After` wins (capped); otherwise the backoff doubles from the base,
        capped, with jitter in [50%, 100%] so clients that failed together spread out.
        """
        asked = parse_retry_after(retry_after, now=now)
        if asked is not None:
            return min(asked, self.retry_after_cap_seconds)
        ceiling = min(self.backoff_cap_seconds, self.backoff_base_seconds * 2 ** (retry_number - 1))
        return ceiling * (0.5 + rng() / 2)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a `Retry-After` header: delta-seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


class Pacer:
    """Spaces request starts evenly at `rate` per second, shared by every thread of an API.

    Even spacing never bursts, so a per-IP limit is never hit; `hold` pushes every thread
    back when the server says it is overloaded (a 429 counts for the whole IP).
    """

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / rate if rate else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()
        self.waited_seconds = 0.0

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self._interval
            wait = start - now
            self.waited_seconds += wait
        if wait > 0:
            self._sleep(wait)

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._next = max(self._next, self._clock() + seconds)


class Transport(Protocol):
    """Sends requests: over HTTP, or into the dry-run file."""

    def send_all(self, requests_: list[Request]) -> SendStats: ...

    def close(self) -> None: ...


@dataclass
class HttpTransport:
    """Concurrent, paced, retrying POSTs over one keep-alive session per API."""

    api: str
    policy: RetryPolicy
    timeout_seconds: float
    concurrency: int
    pacer: Pacer
    redactor: Redactor
    sleep: Callable[[float], None] = time.sleep
    _session: requests.Session = field(init=False)
    _pool: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        # requests' Session is shared across threads here: its connection pool (urllib3)
        # is thread safe, and no cookies or auth state are used.
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self.concurrency, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers["User-Agent"] = USER_AGENT
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"{self.api}-send")

    def submit_all(self, requests_: Iterable[Request]) -> list[Future[SendStats]]:
        return [self._pool.submit(self.send, request) for request in requests_]

    def send_all(self, requests_: list[Request]) -> SendStats:
        """Send every request concurrently; raise the first failure after all have settled."""
        return wait_all(self.submit_all(requests_))

    def send(self, request: Request) -> SendStats:
        """One request with retries; returns its cost or raises `ApiError`."""
        retries = 0
        while True:
            self.pacer.wait()
            status, body, retry_after, cause = self._attempt(request)
            if status is not None and 200 <= status < 300:
                return SendStats(requests=1, retries=retries, items=request.items)
            retryable = self.policy.is_retryable(status) if status is not None else True
            if not retryable or retries >= self.policy.max_retries:
                raise ApiError(
                    self.api, status, self.redactor.text(body), attempts=retries + 1, cause=cause
                )
            retries += 1
            delay = self.policy.delay(retries, retry_after)
            if status == 429 and retry_after is not None:
                self.pacer.hold(delay)
            else:
                self.sleep(delay)

    def _attempt(self, request: Request) -> tuple[int | None, str, str | None, str]:
        """Status, body, Retry-After and a cause for one try; network errors give no status."""
        try:
            response = self._session.post(
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=self.timeout_seconds,
                allow_redirects=False,
            )
        except requests.Timeout:
            return None, "", None, f"no answer within request_timeout ({self.timeout_seconds}s)"
        except requests.RequestException as error:
            return None, "", None, f"network error ({type(error).__name__})"
        body = response.text
        if response.is_redirect:
            # Never replay a POST (and its token) to wherever the redirect points.
            location = response.headers.get("Location", "")
            return response.status_code, f"redirect to {location!r} not followed", None, ""
        return response.status_code, body, response.headers.get("Retry-After"), ""

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._session.close()


def wait_all(futures: list[Future[SendStats]]) -> SendStats:
    """Sum the stats of settled futures; re-raise the first error once none is in flight."""
    total = SendStats()
    failure: BaseException | None = None
    for future in futures:
        error = future.exception()
        if error is None:
            total.add(future.result())
        elif failure is None:
            failure = error
    if failure is not None:
        raise failure
    return total


@dataclass
class DryRunTransport:
    """Writes each request as it would be sent, secrets redacted, and sends nothing."""

    writer: JsonlWriter
    redactor: Redactor

    def send_all(self, requests_: list[Request]) -> SendStats:
        for request in requests_:
            self.writer.write(
                {
                    "api": request.api,
                    "method": "POST",
                    "url": request.url,
                    "headers": self.redactor.headers(request.headers),
                    # Raw keeps the exact bytes that would be sent, yet readable as JSON.
                    "body": msgspec.Raw(request.body),
                }
            )
        return SendStats(requests=len(requests_), items=sum(r.items for r in requests_))

    def close(self) -> None:
        self.writer.close()
