"""Six thin batch sinks: turn each record into an API item, batch, hand over to the API.

A sink knows nothing of payload rules (the API modules own them) nor of HTTP (the
transport owns it). Items are built as records arrive, so a bad record is reported at
its exact position, and a batch holds compact items rather than whole records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol

import fastjsonschema
from singer_sdk.exceptions import InvalidJSONSchema
from singer_sdk.sinks import BatchSink
from singer_sdk.sinks.core import BaseJSONSchemaValidator

from target_usage.catalogue import SINKS
from target_usage.changes import LedgerApi
from target_usage.errors import InvalidRecordError
from target_usage.explain import Samples
from target_usage.outcomes import OutcomeStep, StreamSchema
from target_usage.report import RunReport
from target_usage.sdk_seams import SinkSeams
from target_usage.transport import Api as DeliveryApi
from target_usage.transport import Origin

# Enough items for every request slot of an API to be busy during one drain.
DEFAULT_BATCH_ROWS = 2000


class Api(DeliveryApi, LedgerApi, Protocol):
    """What a sink needs from an API module: delivery's and the ledger's needs, plus
    building items."""

    def build(self, kind: str, record: Mapping[str, Any]) -> Any: ...

    def replay_columns(self, kind: str, record: Mapping[str, Any]) -> dict[str, Any]: ...


class SinkHost(Protocol):
    """What a sink needs from the target: its API, the counts, and where batches go."""

    report: RunReport
    outcomes: OutcomeStep
    samples: Samples | None  # a dry run's first items, to explain

    def api_for(self, kind: str) -> Api: ...

    def hand_over(
        self, api: Api, kind: str, items: list[object], origins: list[Origin]
    ) -> None: ...


def compile_validator(schema: dict[str, Any]) -> Callable[[dict[str, Any]], Any]:
    """fastjsonschema: the verdicts of the SDK's default validator, several times faster."""
    try:
        return fastjsonschema.compile(schema, use_formats=False)
    except fastjsonschema.JsonSchemaDefinitionException as error:
        raise InvalidJSONSchema(f"Schema Validation Error: {error}") from error


class UsageSink(SinkSeams):
    """Shared behaviour of the six sinks; a subclass only names its kind."""

    kind: ClassVar[str]
    MAX_SIZE_DEFAULT = DEFAULT_BATCH_ROWS

    def __init__(self, target: SinkHost, *args: Any, **kwargs: Any) -> None:
        super().__init__(target, *args, **kwargs)  # type: ignore[arg-type]
        self.host = target
        self.api: Api = target.api_for(self.kind)
        self.stats = target.report.stream(self.stream_name, self.kind)
        self._no_outcomes_queued = target.outcomes.queue.empty
        # Positions count within the stream for the whole run, across SCHEMA changes.
        target.outcomes.schema_seen(
            self.stream_name,
            self.stats.records_in + 1,
            StreamSchema(self.original_schema, tuple(self.key_properties)),
        )

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        """None: records are validated in `process_record`, so a record that does not match
        its schema follows `invalid_records` like any other bad record."""
        self._check_schema = compile_validator(self.schema) if self.validate_schema else None
        return None

    def process_record(self, record: dict[str, Any], context: dict[str, Any]) -> None:
        if not self._no_outcomes_queued():
            # A request accepted while this batch is read is recorded now, not at the next
            # hand-over: a kill -9 then resends only the requests in flight.
            self.host.outcomes.apply()
        self.stats.records_in += 1
        position = self.stats.records_in
        try:
            if self._check_schema is not None:
                self._validate(record)
            item = self.api.build(self.kind, record)
        except InvalidRecordError as error:
            origin = Origin(self.stream_name, self.kind, position, record)
            self.host.outcomes.reject(origin, error)
            return
        # The record is kept until delivered, to dead-letter it if the API refuses it.
        origin = Origin(self.stream_name, self.kind, position, record)
        context.setdefault("built", []).append((item, origin))
        if self.host.samples is not None:  # a dry run explains its first items
            self.host.samples.offer(self.stream_name, self.kind, position, record)

    def _validate(self, record: dict[str, Any]) -> None:
        try:
            self._check_schema(record)
        except fastjsonschema.JsonSchemaValueException as error:
            raise InvalidRecordError(
                f"does not match the stream's SCHEMA: {error.message}",
                fix="fix the tap's output or its SCHEMA message (or set validate_records false)",
            ) from None

    def process_batch(self, context: dict[str, Any]) -> None:
        """Hand the batch over and return: reading goes on while it is sent."""
        built = context.get("built")
        if built:
            items, origins = (list(column) for column in zip(*built, strict=True))
            self.host.hand_over(self.api, self.kind, items, origins)


class SkippedStreamSink(BatchSink):
    """A stream no rule routes, skipped because `unmapped_streams` is `skip`; counted."""

    def __init__(self, target: SinkHost, *args: Any, **kwargs: Any) -> None:
        super().__init__(target, *args, **kwargs)  # type: ignore[arg-type]
        self.stats = target.report.stream(self.stream_name, "(skipped: unmapped)")

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        return None

    def process_record(self, record: dict[str, Any], context: dict[str, Any]) -> None:
        self.stats.records_in += 1
        self.stats.skipped += 1

    def process_batch(self, context: dict[str, Any]) -> None:
        """Nothing to deliver: the records were counted and dropped as configured."""


# One class per sink of the catalogue; a class differs from another only by its kind.
SINK_CLASSES: dict[str, type[UsageSink]] = {
    kind: type(f"{kind.capitalize()}Sink", (UsageSink,), {"kind": kind}) for kind in SINKS
}
