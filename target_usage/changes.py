"""Send only what changed: the ledger's two hooks in delivery.

`Changes.select` runs when a sink hands a batch over: one ledger lookup per batch, and
only the items whose key is not recorded with the same digest go on to delivery; the
others are counted `unchanged` (and are done, so STATE may pass them). `Changes.delivered`
and `Changes.refused` run in the outcome step, on the thread that applies outcomes, so a
request's items are recorded (committed) before any STATE that covers them.

A dry run opens the ledger read-only: it says what is unchanged and never writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from target_usage.ledger import Known, Ledger, LedgerRow, ledger_sink
from target_usage.report import RunReport
from target_usage.transport import Origin


class LedgerApi(Protocol):
    """What the ledger needs from an API module: where items go and each item's row."""

    @property
    def destination(self) -> str: ...

    def ledger_row(self, kind: str, item: Any) -> LedgerRow: ...


class Changes:
    """The ledger as delivery uses it. The lock serialises the SDK's parallel drains."""

    def __init__(
        self,
        location: str,
        *,
        dry_run: bool,
        full_resync: bool,
        report: RunReport,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._location = location
        self._dry_run = dry_run
        self._full_resync = full_resync
        self._report = report
        self._clock = clock
        self._ledger: Ledger | None = None
        self._lock = threading.RLock()
        # id(origin) → (origin, destination, row) of items handed over and not yet settled;
        # the origin is kept so its id is not reused before its outcome is applied.
        self._pending: dict[int, tuple[Origin, str, LedgerRow]] = {}
        # Rows of accepted requests not yet committed, per (destination, ledger sink).
        self._accepted: dict[tuple[str, str], list[LedgerRow]] = {}

    def open(self) -> None:
        """Opens the ledger now, so a ledger that cannot be used stops the run before
        anything is sent."""
        with self._lock:
            if self._ledger is None:
                self._ledger = Ledger.open(self._location, read_only=self._dry_run)

    @property
    def name(self) -> str:
        return self._ledger.name if self._ledger is not None else self._location

    def select(
        self, api: LedgerApi, kind: str, items: Sequence[Any], origins: Sequence[Origin]
    ) -> tuple[list[Any], list[Origin]]:
        """The items of a batch to send: all under `full_resync`, else the changed ones."""
        destination, sink = api.destination, ledger_sink(kind)
        rows = [api.ledger_row(kind, item) for item in items]
        with self._lock:
            self.open()
            assert self._ledger is not None
            now = self._clock()
            found = Known({}, set())
            if not self._full_resync:
                found = self._ledger.lookup(destination, sink, [row.key for row in rows], now=now)
            known: Mapping[bytes, bytes] = found.digests
            kept_items: list[Any] = []
            kept_origins: list[Origin] = []
            stale: list[bytes] = []
            for item, origin, row in zip(items, origins, rows, strict=True):
                if known.get(row.key) == row.digest:
                    if row.key in found.stale:  # not seen for a day: retention must see it
                        stale.append(row.key)
                    self._report.unchanged(self._report.stream(origin.stream, origin.sink))
                else:
                    kept_items.append(item)
                    kept_origins.append(origin)
                    self._pending[id(origin)] = (origin, destination, row)
            if stale and not self._dry_run:
                self._ledger.touch(destination, sink, stale, now=now)
        return kept_items, kept_origins

    def delivered(self, groups: Sequence[Sequence[Origin]]) -> None:
        """Notes the items of an accepted request; `commit` records them."""
        with self._lock:
            for group in groups:
                for origin in group:
                    pending = self._pending.pop(id(origin), None)
                    if pending is not None:
                        _, destination, row = pending
                        place = (destination, ledger_sink(origin.sink))
                        self._accepted.setdefault(place, []).append(row)

    def commit(self) -> None:
        """Records every accepted item noted so far, committed when this returns.

        The outcome step calls it after each round of outcomes: one transaction for all the
        requests answered since the last round, before any STATE can be written.
        """
        with self._lock:
            accepted, self._accepted = self._accepted, {}
            if self._dry_run or self._ledger is None:
                return
            now = self._clock()
            for (destination, sink), rows in accepted.items():
                self._ledger.record(destination, sink, rows, now=now)

    def refused(self, origin: Origin, reason: str) -> None:
        """Keeps a refused item as `refused`: never counted as delivered, so sent again."""
        with self._lock:
            pending = self._pending.pop(id(origin), None)
            if pending is None or self._dry_run or self._ledger is None:
                return
            _, destination, row = pending
            sink = ledger_sink(origin.sink)
            self._ledger.record_refused(destination, sink, [row], reason=reason, now=self._clock())

    def forget(self, origins: Sequence[Origin]) -> None:
        """Items that will not be delivered by this run: nothing to record for them."""
        with self._lock:
            for origin in origins:
                self._pending.pop(id(origin), None)

    def prune(self, retention_days: int) -> int:
        """After a successful run: deletes event keys not seen for `retention_days`."""
        with self._lock:
            if self._dry_run or self._ledger is None:
                return 0
            return self._ledger.prune(self._clock() - timedelta(days=retention_days))

    def close(self) -> None:
        with self._lock:
            if self._ledger is not None:
                self._ledger.close()
