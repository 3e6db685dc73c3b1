"""Counters for the run summary and progress lines: what came in, went out, was set aside.

Only the thread that reads input writes counts (outcomes of delivery are applied there);
the progress thread reads snapshots of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from target_usage.logs import plural
from target_usage.transport import SendStats


@dataclass
class StreamStats:
    stream: str
    sink: str
    records_in: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    unchanged: int = 0  # items the ledger says the destination already holds
    sent: SendStats = field(default_factory=SendStats)
    first_sent_at: float | None = None
    last_sent_at: float | None = None

    def line(self, *, dry_run: bool = False) -> str:
        window = (
            self.last_sent_at - self.first_sent_at
            if self.first_sent_at is not None and self.last_sent_at is not None
            else 0.0
        )
        sent = "would be sent" if dry_run else "sent"
        return (
            f"stream '{self.stream}' -> {self.sink}: "
            f"{plural(self.records_in, 'record')} in, "
            f"{plural(self.sent.items, 'item')} {sent} in {plural(self.sent.requests, 'request')} "
            f"({plural(self.sent.retries, 'retry')}), {self.unchanged:,} unchanged, "
            f"{self.skipped:,} skipped, "
            f"{self.dead_lettered:,} dead-lettered, {window:.1f}s sending"
        )


class RunReport:
    """Per-stream statistics for the whole run."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.streams: dict[str, StreamStats] = {}

    def stream(self, stream: str, sink: str) -> StreamStats:
        return self.streams.setdefault(stream, StreamStats(stream, sink))

    def delivered(self, stats: StreamStats, sent: SendStats) -> None:
        now = self._clock()
        stats.sent.add(sent)
        if stats.first_sent_at is None:
            stats.first_sent_at = now
        stats.last_sent_at = now

    def unchanged(self, stats: StreamStats) -> None:
        """Count an item not sent because the ledger holds it with the same digest."""
        stats.unchanged += 1

    def set_aside(self, stats: StreamStats, *, dead_lettered: bool) -> int:
        """Count a skipped or dead-lettered record; returns how many this stream has had."""
        if dead_lettered:
            stats.dead_lettered += 1
        else:
            stats.skipped += 1
        return stats.skipped + stats.dead_lettered

    def elapsed(self) -> float:
        return self._clock() - self.started

    def lines(self, *, dry_run: bool) -> list[str]:
        mode = " (dry run: nothing was sent)" if dry_run else ""
        head = f"Run summary after {self.elapsed():.1f}s{mode}:"
        if not self.streams:
            return [f"{head} no records received."]
        return [head, *(f"  {s.line(dry_run=dry_run)}" for s in self.streams.values())]

    def progress(self, waited_seconds: float, retries: int) -> str:
        """One line for long runs: read, delivered per sink, rate, retries so far (counted
        as they happen), wall time spent waiting on rate limits."""
        streams = list(self.streams.values())  # a snapshot: the reader may add a stream
        read = sum(s.records_in for s in streams)
        sent: dict[str, int] = {}
        for s in streams:
            sent[s.sink] = sent.get(s.sink, 0) + s.sent.items
        elapsed = max(self.elapsed(), 1e-9)
        per_sink = ", ".join(f"{sink} {n}" for sink, n in sent.items()) or "none yet"
        unchanged = sum(s.unchanged for s in streams)
        return (
            f"Progress after {elapsed:.0f}s: {plural(read, 'record')} read "
            f"({read / elapsed:.0f}/s); delivered: {per_sink}; {unchanged:,} unchanged; "
            f"{plural(retries, 'retry')}; "
            f"{waited_seconds:.1f}s waiting on rate limits"
        )
