"""Six thin batch sinks: turn each record into an API item, batch, hand over to the API.

A sink knows nothing of payload rules (the API modules own them) nor of HTTP (the
transport owns it). Items are built as records arrive, so a bad record is reported at
its exact position, and a batch holds compact items rather than whole records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import fastjsonschema
from singer_sdk.exceptions import InvalidJSONSchema
from singer_sdk.sinks import BatchSink
from singer_sdk.sinks.core import BaseJSONSchemaValidator

from target_usage.errors import InvalidRecordError
from target_usage.transport import Api as DeliveryApi
from target_usage.transport import SendStats

if TYPE_CHECKING:
    from target_usage.target import TargetUsage

# Enough items for every request slot of an API to be busy during one drain.
DEFAULT_BATCH_ROWS = 2000


class Api(DeliveryApi, Protocol):
    """What a sink needs from an API module: delivery's needs, plus building items."""

    def build(self, kind: str, record: Mapping[str, Any]) -> Any: ...

    def replay_columns(self, kind: str, record: Mapping[str, Any]) -> dict[str, Any]: ...


def compile_validator(schema: dict[str, Any]) -> Callable[[dict[str, Any]], Any]:
    """fastjsonschema: the verdicts of the SDK's default validator, several times faster."""
    try:
        return fastjsonschema.compile(schema, use_formats=False)
    except fastjsonschema.JsonSchemaDefinitionException as error:
        raise InvalidJSONSchema(f"Schema Validation Error: {error}") from error


class UsageSink(BatchSink):
    """Shared behaviour of the six sinks; a subclass only names its kind."""

    kind: ClassVar[str]
    MAX_SIZE_DEFAULT = DEFAULT_BATCH_ROWS

    def __init__(self, target: TargetUsage, *args: Any, **kwargs: Any) -> None:
        super().__init__(target, *args, **kwargs)
        self.usage_target = target
        self.api: Api = target.api_for(self.kind)
        self.stats = target.report.stream(self.stream_name, self.kind)
        self._position = 0

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        """None: records are validated in `process_record`, so a record that does not match
        its schema follows `invalid_records` like any other bad record."""
        self._check_schema = compile_validator(self.schema) if self.validate_schema else None
        return None

    def _parse_timestamps_in_record(self, record: dict, schema: dict, treatment: Any) -> None:
        """Leave values as the tap sent them.

        The builders parse the timestamps they use (with a clear invalid-record error when
        one is unreadable), and every other value should reach the API, or the dead-letter
        file, unchanged. The SDK's pass would parse every date-time column of every record,
        the largest single cost of the read path, only for the builders to parse it again.
        """

    def process_record(self, record: dict[str, Any], context: dict[str, Any]) -> None:
        self._position += 1
        self.stats.records_in += 1
        try:
            if self._check_schema is not None:
                self._validate(record)
            item = self.api.build(self.kind, record)
        except InvalidRecordError as error:
            self.usage_target.rejects.reject(self, self._position, record, error)
            return
        # The record is kept until delivered, to dead-letter it if the API refuses it.
        context.setdefault("built", []).append((item, (self._position, record)))
        if self.usage_target.samples is not None:  # a dry run explains its first items
            self.usage_target.samples.offer(self.stream_name, self.kind, self._position, record)

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
            self.usage_target.delivery_for(self.api).submit(self.kind, items, origins, self)

    # Called by delivery workers.

    def delivered(self, sent: SendStats) -> None:
        self.usage_target.report.delivered(self.stats, sent)

    def rejected(self, origin: tuple[int, dict[str, Any]], reason: str) -> None:
        position, record = origin
        error = InvalidRecordError(reason, fix="correct the values the API refused")
        self.usage_target.rejects.reject(self, position, record, error)

    def describe(self, origins: list[tuple[int, dict[str, Any]]]) -> str:
        positions = [position for position, _ in origins]
        return (
            f"stream '{self.stream_name}' records #{min(positions)}-#{max(positions)}"
            f" ({len(positions)} records)"
        )


class IdentitiesSink(UsageSink):
    kind = "identities"


class FeaturesSink(UsageSink):
    kind = "features"


class TraitsSink(UsageSink):
    kind = "traits"


class TrackSink(UsageSink):
    kind = "track"


class AliasSink(UsageSink):
    kind = "alias"


class UnaliasSink(UsageSink):
    kind = "unalias"


class SkippedStreamSink(BatchSink):
    """A stream no rule routes, skipped because `unmapped_streams` is `skip`; counted."""

    def __init__(self, target: TargetUsage, *args: Any, **kwargs: Any) -> None:
        super().__init__(target, *args, **kwargs)
        self.stats = target.report.stream(self.stream_name, "(skipped: unmapped)")

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        return None

    def process_record(self, record: dict[str, Any], context: dict[str, Any]) -> None:
        self.stats.records_in += 1
        self.stats.skipped += 1

    def process_batch(self, context: dict[str, Any]) -> None:
        """Nothing to deliver: the records were counted and dropped as configured."""


SINK_CLASSES: dict[str, type[UsageSink]] = {
    cls.kind: cls
    for cls in (IdentitiesSink, FeaturesSink, TraitsSink, TrackSink, AliasSink, UnaliasSink)
}
