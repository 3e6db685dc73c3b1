"""Where delivery outcomes land: one step, on the thread that hands batches over.

Delivery workers only send; what happened comes back as values (`Delivered`, `Refused`,
`Failed`) on a queue. `OutcomeStep.apply` turns them into counts, applies
`invalid_records` to refused records (skip, dead-letter, or fail the run) and writes dead
letters. It runs when a batch is handed over, while a hand-over waits on backpressure,
before every STATE and at the end of the run, so STATE never passes an outcome that has
not been applied. Records no valid item can be built from take the same path.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from target_usage.changes import Changes
from target_usage.errors import InvalidRecordError, RejectedRecordError, TargetUsageError
from target_usage.outputs import JsonlWriter
from target_usage.report import RunReport
from target_usage.transport import Delivered, Failed, Origin, Outcome, Refused, SendStats

ReplayColumns = Callable[[str, Mapping[str, object]], Mapping[str, object]]


@dataclass(frozen=True)
class StreamSchema:
    """A stream's SCHEMA as the tap sent it, for the dead-letter file."""

    schema: Mapping[str, object]
    key_properties: Sequence[str]


class OutcomeStep:
    """Applies outcomes and `invalid_records`; the only writer of counts and dead letters.

    `dead_letter` lines are Singer messages (one SCHEMA per stream, then a RECORD per
    rejected record with `reason` and `position` beside it), so the file, once fixed, can
    be piped straight back into the target. Records get the ids their first try used, so
    a replay updates rather than duplicates.
    """

    WARNINGS_PER_STREAM = 5

    def __init__(
        self,
        policy: str,
        writer: JsonlWriter,
        report: RunReport,
        logger: logging.Logger,
        replay_columns: ReplayColumns,
        changes: Changes | None = None,
    ) -> None:
        self.policy = policy
        self.changes = changes  # the ledger, when on: records what was accepted or refused
        self.queue: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self.failures: list[Failed] = []
        self._writer = writer
        self._report = report
        self._logger = logger
        self._replay_columns = replay_columns
        # Per stream: (position of its first record, SCHEMA), in the order they came.
        self._schemas: dict[str, list[tuple[int, StreamSchema]]] = {}
        self._schema_written: dict[str, StreamSchema] = {}
        # The SDK drains sinks in parallel threads at a full drain, and each may hand over:
        # one at a time applies.
        self._lock = threading.Lock()

    def schema_seen(self, stream: str, first_position: int, schema: StreamSchema) -> None:
        """Remember the SCHEMA the records of `stream` from `first_position` on came under."""
        self._schemas.setdefault(stream, []).append((first_position, schema))

    def _schema_of(self, origin: Origin) -> StreamSchema:
        found = self._schemas[origin.stream][0][1]
        for first_position, schema in self._schemas[origin.stream]:
            if first_position <= origin.position:
                found = schema
        return found

    def apply(self) -> None:
        """Apply every outcome queued so far; raises under `invalid_records: fail`."""
        with self._lock:
            try:
                while True:
                    try:
                        outcome = self.queue.get_nowait()
                    except queue.Empty:
                        return
                    self._apply(outcome)
            finally:
                if self.changes is not None:  # the accepted items of this round, one commit
                    self.changes.commit()

    def settle(self) -> None:
        """At the end of a run that already failed: count what is left, raise nothing."""
        while True:
            try:
                self.apply()
            except TargetUsageError:
                continue
            return

    def reject(self, origin: Origin, error: InvalidRecordError) -> None:
        """Apply `invalid_records` to a record no valid item can be made of."""
        with self._lock:
            self._set_aside(origin, error)

    def _apply(self, outcome: Outcome) -> None:
        if isinstance(outcome, Delivered):
            if self.changes is not None:
                self.changes.delivered(outcome.groups)
            for group in outcome.groups:
                first = group[0]
                stats = self._report.stream(first.stream, first.sink)
                self._report.delivered(stats, SendStats(1, outcome.retries, len(group)))
        elif isinstance(outcome, Refused):
            if self.changes is not None:
                self.changes.refused(outcome.origin, outcome.reason)
            error = InvalidRecordError(outcome.reason, fix="correct the values the API refused")
            self._set_aside(outcome.origin, error)
        else:
            if self.changes is not None:
                self.changes.forget(outcome.undelivered)
            self.failures.append(outcome)
            # The attempts of a request that failed count too.
            for stream in {origin.stream: origin for origin in outcome.undelivered}.values():
                stats = self._report.stream(stream.stream, stream.sink)
                stats.sent.retries += outcome.retries

    def _set_aside(self, origin: Origin, error: InvalidRecordError) -> None:
        if self.policy == "fail":
            raise RejectedRecordError(origin.stream, origin.position, error)
        dead = self.policy == "dead_letter"
        if dead:
            self._dead_letter(origin, error.reason)
            verb = f"dead-lettered to {self._writer.path}"
        else:
            verb = "skipped (invalid_records: skip)"
        stats = self._report.stream(origin.stream, origin.sink)
        count = self._report.set_aside(stats, dead_lettered=dead)
        if count <= self.WARNINGS_PER_STREAM:
            more = (
                " Further ones are counted in the run summary."
                if count == self.WARNINGS_PER_STREAM
                else ""
            )
            self._logger.warning(
                "Stream '%s', record #%d %s: %s.%s",
                origin.stream,
                origin.position,
                verb,
                error.reason,
                more,
            )

    def _dead_letter(self, origin: Origin, reason: str) -> None:
        stream = origin.stream
        schema = self._schema_of(origin)
        if self._schema_written.get(stream) != schema:
            # Repeated whenever the stream's SCHEMA changed, so a replay reads each record
            # under the SCHEMA it came with.
            self._schema_written[stream] = schema
            self._writer.write(self._schema_line(stream, schema))
        self._writer.write(
            {
                "type": "RECORD",
                "stream": stream,
                "record": {**origin.record, **self._replay_columns(origin.sink, origin.record)},
                "reason": reason,
                "position": origin.position,
                "sink": origin.sink,
            }
        )

    def _schema_line(self, stream: str, known: StreamSchema) -> dict[str, object]:
        """The stream's SCHEMA, with the `event_id` column replays may carry."""
        schema = dict(known.schema)
        properties = schema.get("properties")
        if isinstance(properties, Mapping) and "event_id" not in properties:
            schema["properties"] = {**properties, "event_id": {"type": ["string"]}}
        return {
            "type": "SCHEMA",
            "stream": stream,
            "schema": schema,
            "key_properties": list(known.key_properties),
        }

    def close(self) -> None:
        self._writer.close()
