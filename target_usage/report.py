"""Counters for the run summary: what came in, what went out, what was set aside."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from target_usage.transport import SendStats


@dataclass
class StreamStats:
    """One stream's tally; delivery fields are added from drain threads under the report lock."""

    stream: str
    sink: str
    records_in: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    sent: SendStats = field(default_factory=SendStats)
    deliver_seconds: float = 0.0

    def line(self) -> str:
        return (
            f"{self.sink} <- '{self.stream}': {self.records_in} records in, "
            f"{self.sent.items} items sent in {self.sent.requests} requests "
            f"({self.sent.retries} retries), {self.skipped} skipped, "
            f"{self.dead_lettered} dead-lettered, {self.deliver_seconds:.1f}s sending"
        )


class RunReport:
    """Per-stream statistics for the whole run, printed once at the end on stderr."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self.streams: dict[str, StreamStats] = {}

    def stream(self, stream: str, sink: str) -> StreamStats:
        with self._lock:
            return self.streams.setdefault(stream, StreamStats(stream, sink))

    def delivered(self, stats: StreamStats, sent: SendStats, seconds: float) -> None:
        with self._lock:
            stats.sent.add(sent)
            stats.deliver_seconds += seconds

    def lines(self, *, dry_run: bool) -> list[str]:
        elapsed = self._clock() - self._started
        mode = " (dry run: requests written, none sent)" if dry_run else ""
        head = f"Run summary after {elapsed:.1f}s{mode}:"
        return (
            [head, *(f"  {s.line()}" for s in self.streams.values())]
            if self.streams
            else [f"{head} no records received."]
        )
