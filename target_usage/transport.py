"""The one way requests leave the process: pacing, concurrency, retries, poison isolation.

Both APIs share this module, so the delivery rules of the spec live here once:
retry 408/429/5xx (not 501/505) and network errors with capped exponential backoff and
jitter, honour `Retry-After`, stop after `max_retries`; split a request the API refuses
for its content until the offending records are isolated; stop at once on auth and
endpoint errors. Retrying a POST is safe only because every item carries a stable id.

Sinks hand batches to a `Delivery` and go on reading (pipelining); its workers send them
under one pacer. `flush()` waits for everything handed over, and the target calls it
before each STATE, so STATE never runs ahead of delivery.
"""

from __future__ import annotations

import email.utils
import http.client
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
import urllib3

from target_usage import __version__
from target_usage.errors import ApiError
from target_usage.outputs import JsonlWriter, Redactor

RETRYABLE_STATUSES = frozenset(
    {408, 429} | {status for status in range(500, 600) if status not in (501, 505)}
)
# Final statuses that say the request (not a record in it) is wrong: no point splitting.
ENDPOINT_STATUSES = frozenset({401, 403, 404, 405})
USER_AGENT = f"target-usage/{__version__}"


@dataclass(frozen=True)
class Request:
    """One HTTP POST, built before each attempt (with the same items and ids)."""

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
    """Paces request starts at `rate` per second for every thread of an API (GCRA).

    Up to `burst` requests may start at once after an idle spell, then starts are spaced
    evenly; a small burst fills the budget from the first second without ever exceeding
    it. `hold` pushes every thread back when the server says it is overloaded (a 429
    counts for the whole IP).
    """

    def __init__(
        self,
        rate: float | None,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / rate if rate else 0.0
        self._tolerance = self._interval * max(0, burst - 1)
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._held_until = 0.0
        self._lock = threading.Lock()
        self.waited_seconds = 0.0

    def wait(self) -> None:
        """Sleep until this caller may start a request.

        A slot booked before a `hold` is not honoured: the caller waits out the hold and
        books again, so a 429 stops requests already waiting for their turn too.
        """
        while True:
            with self._lock:
                now = self._clock()
                booked = now >= self._held_until
                if booked:
                    due = max(now, self._next)
                    self._next = due + self._interval
                    wait = max(0.0, due - self._tolerance - now)
                else:
                    wait = self._held_until - now
                self.waited_seconds += wait
            if wait > 0:
                self._sleep(wait)
            if booked:
                with self._lock:
                    if self._clock() >= self._held_until:
                        return

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._held_until = max(self._held_until, self._clock() + seconds)
            self._next = max(self._next, self._held_until)


@dataclass(frozen=True)
class Answer:
    """One attempt's outcome: a status (None for a network error), body and Retry-After."""

    status: int | None
    body: str = ""
    retry_after: str | None = None
    cause: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Sender(Protocol):
    """One attempt at one request: over HTTP, or into the dry-run file."""

    def attempt(self, request: Request) -> Answer: ...

    def close(self) -> None: ...


class _QuietHTTPConnection(urllib3.connection.HTTPConnection):
    # http.client's wire dump (a global HTTPConnection.debuglevel) print()s request headers,
    # the Hull secret among them, to stdout: Singer's STATE channel. Never for our requests.
    debuglevel = 0


class _QuietHTTPSConnection(urllib3.connection.HTTPSConnection):
    debuglevel = 0


class _QuietHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _QuietHTTPConnection


class _QuietHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _QuietHTTPSConnection


REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class HttpSender:
    """POSTs over keep-alive connections, pooled to the API's concurrency.

    urllib3 directly, not `requests` on top of it: per request, `requests` looks up proxy
    variables and netrc, merges settings, prepares cookies and guesses the body's charset,
    about 0.8 ms of CPU that a target sending 2,000 requests per 200k records pays for
    nothing (no proxies, cookies or auth are used here).
    """

    def __init__(self, timeout_seconds: float, pool_size: int) -> None:
        self.timeout_seconds = timeout_seconds
        # One pool manager shared by the workers: thread safe, a pool per host.
        self._pools = urllib3.PoolManager(num_pools=2, maxsize=pool_size)
        self._pools.pool_classes_by_scheme = {"http": _QuietHTTPPool, "https": _QuietHTTPSPool}
        self._timeout = urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds)
        # URL -> (its host's pool, path and query): an API posts to one URL, parsed once.
        self._routes: dict[str, tuple[urllib3.HTTPConnectionPool, str]] = {}

    def attempt(self, request: Request) -> Answer:
        headers = {"User-Agent": USER_AGENT, **request.headers}
        try:
            pool, path = self._route(request.url)
            response = pool.urlopen(
                "POST",
                path,
                body=request.body,
                headers=headers,
                timeout=self._timeout,
                retries=False,
                redirect=False,
            )
        except urllib3.exceptions.TimeoutError:
            return Answer(None, cause=f"no answer within request_timeout ({self.timeout_seconds}s)")
        except (
            urllib3.exceptions.HTTPError,
            http.client.HTTPException,
            OSError,
            ValueError,
        ) as error:
            # Only the type: some messages quote header values, the Hull secret among them.
            return Answer(None, cause=f"network error ({type(error).__name__})")
        location = response.headers.get("Location")
        if response.status in REDIRECT_STATUSES and location is not None:
            # Never replay a POST (and its secret header) to wherever a redirect points.
            return Answer(response.status, f"redirect to {location!r} not followed")
        body = response.data.decode("utf-8", errors="replace")
        return Answer(response.status, body, response.headers.get("Retry-After"))

    def _route(self, url: str) -> tuple[urllib3.HTTPConnectionPool, str]:
        route = self._routes.get(url)
        if route is None:
            pool = self._pools.connection_from_url(url)
            route = self._routes[url] = (pool, urllib3.util.parse_url(url).request_uri)
        return route

    def close(self) -> None:
        self._pools.clear()


class DryRunSender:
    """Writes each request as it would be sent, secrets redacted; sends nothing."""

    def __init__(self, writer: JsonlWriter, redactor: Redactor) -> None:
        self._writer = writer
        self._redactor = redactor

    def attempt(self, request: Request) -> Answer:
        self._writer.write(
            {
                "api": request.api,
                "method": "POST",
                "url": request.url,
                "headers": self._redactor.headers(request.headers),
                # Raw keeps the exact bytes that would be sent, yet readable as JSON.
                "body": msgspec.Raw(request.body),
            }
        )
        return Answer(200)

    def close(self) -> None:
        self._writer.close()


@dataclass
class Part:
    """A slice of one sink's batch: items of one kind, where they came from, and who to tell."""

    kind: str
    items: list[Any]
    origins: list[Any]
    owner: Any  # the sink: receives `delivered(stats)` and `rejected(origin, reason)`


class Api(Protocol):
    """What delivery needs from an API module."""

    name: str

    def split(self, kind: str, items: Sequence[Any]) -> Iterable[tuple[int, int]]: ...

    def request_for(self, parts: Sequence[Part]) -> Request: ...

    def can_join(self, parts: Sequence[Part], candidate: Part) -> bool: ...

    # Which settings to check when the API refuses who we are (401/403) or where we
    # send (404/405, redirects).
    credentials_hint: str
    endpoint_hint: str


@dataclass
class Delivery:
    """Per-API outbox: workers take parts, pace, send, retry, isolate poison records.

    `max_pending_parts` bounds what is handed over but not yet delivered: a sink that
    runs ahead of the API waits in `submit` (backpressure), so memory stays flat.
    """

    api: Api
    sender: Sender
    policy: RetryPolicy
    pacer: Pacer
    redactor: Redactor
    workers: int
    max_pending_parts: int
    sleep: Callable[[float], None] = time.sleep
    _queue: deque[Part] = field(default_factory=deque)
    _pending: int = 0
    _claimed: int = 0
    _failure: BaseException | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _closed: bool = False
    _cond: threading.Condition = field(
        default_factory=lambda: threading.Condition(threading.RLock())
    )

    def submit(self, kind: str, items: list[Any], origins: list[Any], owner: Any) -> None:
        """Queue a batch for sending; blocks while too much is pending; raises a past failure."""
        for start, end in self.api.split(kind, items):
            part = Part(kind, items[start:end], origins[start:end], owner)
            with self._cond:
                self._cond.wait_for(
                    lambda: self._failure is not None or self._pending < self.max_pending_parts
                )
                self._raise_failure()
                self._queue.append(part)
                self._pending += 1
                self._start_workers()
                self._cond.notify_all()

    def flush(self) -> None:
        """Wait until everything submitted is delivered or set aside; raise the first failure."""
        with self._cond:
            self._cond.wait_for(lambda: self._failure is not None or self._pending == 0)
            self._raise_failure()

    def close(self) -> None:
        """Let in-flight requests finish; drop what was never started (the run is ending,
        successfully only once `flush` has emptied the queue)."""
        with self._cond:
            self._closed = True
            self._drop_queued()
        for thread in self._threads:
            thread.join()
        self.sender.close()

    def _drop_queued(self) -> None:
        """Forget parts no worker has started (called with the lock held)."""
        self._pending -= len(self._queue)
        self._queue.clear()
        self._cond.notify_all()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _start_workers(self) -> None:
        while len(self._threads) < min(self.workers, self._pending):
            thread = threading.Thread(
                target=self._work, name=f"{self.api.name}-send-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: len(self._queue) > self._claimed or self._closed)
                if self._failure is not None:
                    # The run is failing: send nothing more, STATE will not be written.
                    self._drop_queued()
                if len(self._queue) <= self._claimed:
                    return
                # Claim a queued part, but take it only once a pacer slot is ours: parts
                # wait in the queue, where one of another kind can still join them.
                self._claimed += 1
            self.pacer.wait()
            with self._cond:
                self._claimed -= 1
                if not self._queue:
                    continue
                parts = [self._queue.popleft()]
                # Skalin: identities and features waiting together ride in one request.
                for candidate in list(self._queue):
                    if self.api.can_join(parts, candidate):
                        self._queue.remove(candidate)
                        parts.append(candidate)
            try:
                self._deliver(parts, paced=True)
            except BaseException as error:  # surfaced to the reading thread by submit/flush
                with self._cond:
                    self._failure = self._failure or error
            finally:
                with self._cond:
                    self._pending -= len(parts)
                    self._cond.notify_all()

    def _deliver(self, parts: list[Part], *, paced: bool = False) -> None:
        """Send parts as one request; on a content refusal, isolate the records refused."""
        answer, retries = self._send(parts, paced=paced)
        if answer.ok:
            _report_delivered(parts, retries)
            return
        if not self._is_content_refusal(answer):
            raise self._error(answer, retries, parts)
        self._isolate(parts, answer)

    def _is_content_refusal(self, answer: Answer) -> bool:
        """A final 4xx about what was sent (400, 413, 422...), not about where or who."""
        status = answer.status
        return (
            status is not None
            and 400 <= status < 500
            and status not in ENDPOINT_STATUSES
            and not self.policy.is_retryable(status)
        )

    def _isolate(self, parts: list[Part], answer: Answer) -> None:
        """Group testing: halve the refused set, send one half, keep the half that must fail.

        A refused set holds at least one bad record. If its first half goes through, the
        second half must hold the bad record and needs no test of its own; if the first
        half is refused, the second is set aside untested and sent once at the end with
        every other set-aside half (they fit in one request). One bad record in 100 thus
        costs 7 test requests plus that final one.
        """
        suspects = [(part, i) for part in parts for i in range(len(part.items))]
        set_aside: list[tuple[Part, int]] = []
        last = answer
        while len(suspects) > 1:
            half = len(suspects) // 2
            first, second = suspects[:half], suspects[half:]
            trial_parts = _regroup(first)
            trial, retries = self._send(trial_parts)
            if trial.ok:
                _report_delivered(trial_parts, retries)
                suspects = second
            elif not self._is_content_refusal(trial):
                raise self._error(trial, retries, parts)
            else:
                set_aside += second
                suspects, last = first, trial
        part, index = suspects[0]
        body = self.redactor.text(last.body)[:300]
        reason = f"{self.api.name} refused it alone: HTTP {last.status}, body {body!r}"
        part.owner.rejected(part.origins[index], reason)
        if set_aside:
            self._deliver(_regroup(set_aside))

    def _send(self, parts: list[Part], *, paced: bool = False) -> tuple[Answer, int]:
        """One request with retries; returns the final answer and the retries it took.

        The request is built before every attempt: Hull tokens must be valid when sent.
        """
        retries = 0
        while True:
            if not paced or retries:
                self.pacer.wait()
            answer = self.sender.attempt(self.api.request_for(parts))
            retryable = answer.status is None or self.policy.is_retryable(answer.status)
            if answer.ok or not retryable or retries >= self.policy.max_retries:
                return answer, retries
            retries += 1
            delay = self.policy.delay(retries, answer.retry_after)
            if answer.status == 429 and answer.retry_after is not None:
                self.pacer.hold(delay)
            else:
                self.sleep(delay)

    def _settings_hint(self, status: int | None) -> str:
        if status in (401, 403):
            return self.api.credentials_hint
        if status is not None and (status in (404, 405) or 300 <= status < 400):
            return self.api.endpoint_hint
        return ""

    def _error(self, answer: Answer, retries: int, parts: list[Part]) -> ApiError:
        where = "; ".join(part.owner.describe(part.origins) for part in parts)
        hint = self._settings_hint(answer.status)
        body = self.redactor.text(answer.body)
        if hint:
            body = f"{body} ({hint})" if body else hint
        return ApiError(
            self.api.name,
            answer.status,
            body,
            attempts=retries + 1,
            where=where,
            cause=answer.cause,
        )


def _regroup(members: list[tuple[Part, int]]) -> list[Part]:
    """Rebuild parts (one per original part and kind) from (part, index) members."""
    grouped: dict[int, Part] = {}
    for part, index in members:
        target = grouped.setdefault(id(part), Part(part.kind, [], [], part.owner))
        target.items.append(part.items[index])
        target.origins.append(part.origins[index])
    return list(grouped.values())


def _report_delivered(parts: list[Part], retries: int) -> None:
    """Each stream whose items rode in the request counts it (a merged Skalin request counts
    for both its identities' and its features' stream)."""
    for part in parts:
        part.owner.delivered(SendStats(1, retries, len(part.items)))
