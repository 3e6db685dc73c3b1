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
import enum
import http.client
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

import msgspec
import urllib3

from target_usage import __version__
from target_usage.errors import ApiError
from target_usage.logs import plural
from target_usage.outputs import JsonlWriter, Redactor

RETRYABLE_STATUSES = frozenset(
    {408, 429} | {status for status in range(500, 600) if status not in (501, 505)}
)
# Final statuses that say the request (who sends it, or where) is wrong, not a record in it.
CREDENTIALS_STATUSES = frozenset({401, 403})
ENDPOINT_STATUSES = frozenset({404, 405})
USER_AGENT = f"target-usage/{__version__}"


@dataclass(frozen=True)
class Request:
    """One HTTP POST, built before each attempt (with the same items and ids)."""

    api: str
    url: str
    headers: Mapping[str, str]
    body: bytes


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


class Verdict(enum.Enum):
    """What to do after one attempt."""

    DELIVERED = "delivered"
    RETRY = "retry"  # this worker waits, then resends
    HOLD = "hold"  # every worker of the API waits (the server asked, for the whole client)
    REFUSED_CONTENT = "refused content"  # final, about what was sent: isolate the records
    REFUSED_REQUEST = "refused request"  # final, about who sends or where: end the run
    GAVE_UP = "gave up"  # retryable, but the retries are spent


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    delay: float = 0.0


@dataclass(frozen=True)
class RetryPolicy:
    """Every rule about retrying, in one place, as urllib3's `Retry`: which answers retry,
    for how long, when to give up, and whether a final refusal is about the content or the
    request. Pure, so tests need no sockets."""

    max_retries: int = 8
    retry_statuses: frozenset[int] = RETRYABLE_STATUSES
    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 60.0
    retry_after_cap_seconds: float = 300.0

    def decide(self, answer: Answer, retries: int) -> Decision:
        """The verdict on an answer after `retries` retries of its request."""
        status = answer.status
        if answer.ok:
            return Decision(Verdict.DELIVERED)
        if status is None or status in self.retry_statuses:
            if retries >= self.max_retries:
                return Decision(Verdict.GAVE_UP)
            delay = self.delay(retries + 1, answer.retry_after)
            # A 429 with Retry-After speaks for the whole client (the limit is per IP).
            hold = status == 429 and answer.retry_after is not None
            return Decision(Verdict.HOLD if hold else Verdict.RETRY, delay)
        if 400 <= status < 500 and self.request_fault(status) is None:
            return Decision(Verdict.REFUSED_CONTENT)
        return Decision(Verdict.REFUSED_REQUEST)

    @staticmethod
    def request_fault(status: int | None) -> Literal["credentials", "endpoint"] | None:
        """Which settings a final status blames: who we are, where we send, or neither."""
        if status in CREDENTIALS_STATUSES:
            return "credentials"
        if status is not None and (status in ENDPOINT_STATUSES or 300 <= status < 400):
            return "endpoint"
        return None

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
        self._waiters = 0
        self._waiting_since = 0.0
        self._waited = 0.0

    @property
    def waited_seconds(self) -> float:
        """Wall-clock time during which at least one caller was waiting (not a sum over
        callers: sixteen workers held by one 429 wait its length once)."""
        with self._lock:
            ongoing = self._clock() - self._waiting_since if self._waiters else 0.0
            return self._waited + ongoing

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
                if wait > 0:
                    self._waiting(+1)
            if wait > 0:
                try:
                    self._sleep(wait)
                finally:
                    with self._lock:
                        self._waiting(-1)
            if booked:
                with self._lock:
                    if self._clock() >= self._held_until:
                        return

    def _waiting(self, change: int) -> None:
        """Count callers asleep (lock held); time runs while there is at least one."""
        if change > 0 and self._waiters == 0:
            self._waiting_since = self._clock()
        self._waiters += change
        if change < 0 and self._waiters == 0:
            self._waited += self._clock() - self._waiting_since

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


class Origin(msgspec.Struct, frozen=True, gc=False):
    """Where an item came from: enough to count it, blame it, or dead-letter its record."""

    stream: str
    sink: str
    position: int
    record: Mapping[str, object]


@dataclass
class Part:
    """A slice of one sink's batch: items of one kind and the origin of each."""

    kind: str
    items: list[object]
    origins: list[Origin]


@dataclass(frozen=True)
class Delivered:
    """A request the API accepted; each group is one part's origins (one stream's items)."""

    groups: list[list[Origin]]
    retries: int


@dataclass(frozen=True)
class Refused:
    """A record the API refused alone, for its content."""

    origin: Origin
    reason: str


@dataclass(frozen=True)
class Failed:
    """A request that failed for good: the run ends, these records were not delivered."""

    error: BaseException
    undelivered: list[Origin]
    retries: int = 0


@dataclass(frozen=True)
class Trouble:
    """An API that keeps failing: since when, how, and when the next try is due."""

    since: float
    what: str
    next_try_at: float


Outcome = Delivered | Refused | Failed


class Api(Protocol):
    """What delivery needs from an API module."""

    name: str

    def split(self, kind: str, items: Sequence[object]) -> Iterable[tuple[int, int]]: ...

    def request_for(self, parts: Sequence[Part]) -> Request: ...

    def can_join(self, parts: Sequence[Part], candidate: Part) -> bool: ...

    # Which settings to check when the API refuses who we are (401/403) or where we
    # send (404/405, redirects).
    credentials_hint: str
    endpoint_hint: str


def _nothing() -> None:
    """The default of `while_waiting`."""


Member = tuple[Part, int]  # one item of a part, during isolation


@dataclass
class Delivery:
    """Per-API outbox: workers take parts, pace, send, retry, isolate poison records.

    Workers only send and put outcome values on `outcomes`; the reading thread applies
    them (counts, invalid-record policy, dead letters). `max_pending_parts` bounds what is
    handed over but not yet delivered: a sink that runs ahead of the API waits in `submit`
    (backpressure), so memory stays flat; `while_waiting` runs on the waiting thread each
    time a part finishes, so outcomes are applied while it waits.
    """

    api: Api
    sender: Sender
    policy: RetryPolicy
    pacer: Pacer
    redactor: Redactor
    workers: int
    max_pending_parts: int
    outcomes: queue.SimpleQueue[Outcome] = field(default_factory=queue.SimpleQueue)
    clock: Callable[[], float] = time.monotonic
    # Live, for progress lines: retries so far, and the API's trouble while it lasts.
    retries: int = 0
    trouble: Trouble | None = None
    # Origins of parts dropped unstarted when the run ended early.
    dropped: list[Origin] = field(default_factory=list)
    # Whether the API accepted a request of this run: until it has, a refusal is blamed
    # on the request (wrong client id, organization...), never on a record.
    accepted: bool = False
    _queue: deque[Part] = field(default_factory=deque)
    _pending: int = 0
    _claimed: int = 0
    _failure: BaseException | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _closed: bool = False
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def submit(
        self,
        kind: str,
        items: list[object],
        origins: list[Origin],
        *,
        while_waiting: Callable[[], None] = _nothing,
    ) -> None:
        """Queue a batch for sending; blocks while too much is pending; raises a past failure."""
        for start, end in self.api.split(kind, items):
            part = Part(kind, items[start:end], origins[start:end])
            with self._cond:
                self._wait(lambda: self._pending < self.max_pending_parts, while_waiting)
                self._queue.append(part)
                self._pending += 1
                self._start_workers()
                self._cond.notify_all()

    def flush(self, *, while_waiting: Callable[[], None] = _nothing) -> None:
        """Wait until everything submitted is delivered or set aside; raise the first failure."""
        with self._cond:
            self._wait(lambda: self._pending == 0, while_waiting)

    def _wait(self, ready: Callable[[], bool], while_waiting: Callable[[], None]) -> None:
        """Wait (lock held) until `ready` or a failure, running `while_waiting` unlocked
        each time a part finishes; raise the failure."""
        while self._failure is None and not ready():
            self._cond.wait()
            self._cond.release()
            try:
                while_waiting()
            finally:
                self._cond.acquire()
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
        self.dropped += [origin for part in self._queue for origin in part.origins]
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
            settled: set[int] = set()
            try:
                self._deliver(parts, settled)
            except BaseException as error:  # surfaced to the reading thread by submit/flush
                undelivered = [o for p in parts for o in p.origins if id(o) not in settled]
                retries = error.attempts - 1 if isinstance(error, ApiError) else 0
                self.outcomes.put(Failed(error, undelivered, retries))
                with self._cond:
                    self._failure = self._failure or error
            finally:
                with self._cond:
                    self._pending -= len(parts)
                    self._cond.notify_all()

    def _deliver(self, parts: list[Part], settled: set[int]) -> None:
        """Send parts as one request; on a content refusal, isolate the records refused."""
        refused = self._try(parts, parts, settled, paced=True)
        if refused is not None:
            self._isolate(parts, refused, settled)

    def _isolate(self, parts: list[Part], answer: Answer, settled: set[int]) -> None:
        """Group testing, iterative and bounded: find the records the API refuses alone.

        A refused set holds at least one bad record: halve it and send the first half. If
        that goes through, the second half must hold the bad record; if not, the second
        half is set aside untested. Set-aside halves are sent together once no refused set
        is left (one bad record in 100 costs 7 test requests plus that one); if that
        request is refused too, each is then tried alone, so a request of only bad records
        costs about two requests per record, never a deeper stack.
        """
        refused: list[tuple[list[Member], Answer]] = [
            ([(part, i) for part in parts for i in range(len(part.items))], answer)
        ]
        untested: list[list[Member]] = []
        one_by_one: list[list[Member]] = []
        while refused or untested or one_by_one:
            if refused:
                suspects, last = refused.pop()
                if len(suspects) == 1:
                    self._refuse(suspects[0], last, parts, settled)
                    continue
                half = len(suspects) // 2
                trial = self._try(_regroup(suspects[:half]), parts, settled)
                if trial is None:
                    refused.append((suspects[half:], last))
                else:
                    untested.append(suspects[half:])
                    refused.append((suspects[:half], trial))
            elif one_by_one:
                group = one_by_one.pop()
                trial = self._try(_regroup(group), parts, settled)
                if trial is not None:
                    refused.append((group, trial))
            elif len(untested) == 1:
                one_by_one, untested = untested, []
            else:
                trial = self._try(
                    _regroup([m for group in untested for m in group]), parts, settled
                )
                one_by_one = untested if trial is not None else []
                untested = []

    def _try(
        self, trial_parts: list[Part], parts: list[Part], settled: set[int], *, paced: bool = False
    ) -> Answer | None:
        """Send `trial_parts` (some or all of `parts`): None once delivered, the answer if
        refused for their content; any other final answer ends the run, naming `parts`."""
        trial, decision, retries = self._send(trial_parts, paced=paced)
        if decision.verdict is Verdict.DELIVERED:
            self._delivered(trial_parts, retries, settled)
            return None
        if decision.verdict is Verdict.REFUSED_CONTENT:
            return trial
        raise self._error(trial, retries, parts)

    def _refuse(self, member: Member, answer: Answer, parts: list[Part], settled: set[int]) -> None:
        """Blame one record, once the API has shown it accepts this run's requests."""
        if not self.accepted:
            raise self._error(
                answer,
                0,
                parts,
                hint=self.api.credentials_hint,
                note="every request of this run was refused so far, so the request is wrong, "
                "not a record",
            )
        part, index = member
        body = self.redactor.text(answer.body)[:300]
        reason = f"{self.api.name} refused it alone: HTTP {answer.status}, body {body!r}"
        origin = part.origins[index]
        settled.add(id(origin))
        self.outcomes.put(Refused(origin, reason))

    def _delivered(self, parts: list[Part], retries: int, settled: set[int]) -> None:
        self.accepted = True
        settled.update(id(origin) for part in parts for origin in part.origins)
        self.outcomes.put(Delivered([part.origins for part in parts], retries))

    def _send(self, parts: list[Part], *, paced: bool = False) -> tuple[Answer, Decision, int]:
        """One request with retries; returns the final answer, the policy's verdict on it
        and the retries it took.

        The request is built through the API before every attempt: Hull tokens must be
        valid when sent, however long the parts waited in the queue or in retries.
        """
        retries = 0
        while True:
            if not paced or retries:
                self.pacer.wait()
            answer = self.sender.attempt(self.api.request_for(parts))
            decision = self.policy.decide(answer, retries)
            if decision.verdict in (Verdict.HOLD, Verdict.RETRY):
                self._troubled(answer, decision.delay)
            else:
                self.trouble = None
            if decision.verdict is Verdict.HOLD:
                self.pacer.hold(decision.delay)
            elif decision.verdict is Verdict.RETRY:
                time.sleep(decision.delay)
            else:
                return answer, decision, retries
            retries += 1

    def _troubled(self, answer: Answer, delay: float) -> None:
        """Note a retry: counted at once, and the API's trouble kept for progress lines."""
        now = self.clock()
        what = f"HTTP {answer.status}" if answer.status is not None else answer.cause
        since = self.trouble.since if self.trouble is not None else now
        with self._cond:
            self.retries += 1
        self.trouble = Trouble(since, what, now + delay)

    def _error(
        self,
        answer: Answer,
        retries: int,
        parts: list[Part],
        *,
        hint: str = "",
        note: str = "",
    ) -> ApiError:
        if not hint:
            fault = self.policy.request_fault(answer.status)
            hints = {"credentials": self.api.credentials_hint, "endpoint": self.api.endpoint_hint}
            hint = hints[fault] if fault else ""
        return ApiError(
            self.api.name,
            answer.status,
            self.redactor.text(answer.body),
            attempts=retries + 1,
            where=describe_ranges(o for part in parts for o in part.origins),
            cause=answer.cause,
            hint=hint,
            note=note,
        )


def public_url(url: str) -> str:
    """A URL fit for messages: no user-info, no query string."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def describe_ranges(origins: Iterable[Origin], *, most: int = 5) -> str:
    """Records named by stream and position ranges: "stream 'a' records #1-#300 (300
    records)"; past `most` ranges of a stream, how many more."""
    by_stream: dict[str, set[int]] = {}
    for origin in origins:
        by_stream.setdefault(origin.stream, set()).add(origin.position)
    described = []
    for stream, positions in by_stream.items():
        ranges: list[list[int]] = []
        for position in sorted(positions):
            if ranges and position == ranges[-1][1] + 1:
                ranges[-1][1] = position
            else:
                ranges.append([position, position])
        shown = ", ".join(f"#{a}-#{b}" if a != b else f"#{a}" for a, b in ranges[:most])
        more = f" and {plural(len(ranges) - most, 'more range')}" if len(ranges) > most else ""
        described.append(
            f"stream '{stream}' records {shown}{more} ({plural(len(positions), 'record')})"
        )
    return "; ".join(described)


def _regroup(members: list[tuple[Part, int]]) -> list[Part]:
    """Rebuild parts (one per original part and kind) from (part, index) members."""
    grouped: dict[int, Part] = {}
    for part, index in members:
        target = grouped.setdefault(id(part), Part(part.kind, [], []))
        target.items.append(part.items[index])
        target.origins.append(part.origins[index])
    return list(grouped.values())
