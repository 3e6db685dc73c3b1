"""Do-nothing singer-sdk targets: the yardsticks the benchmark divides by.

`default` uses the SDK as the cookiecutter does (json reader, jsonschema validation);
`fast` uses the SDK's fastest path (msgspec reader, fastjsonschema validation), the
practical ceiling of any SDK target. Both read, validate and batch, then drop.
"""

from __future__ import annotations

import sys
from typing import Any

import fastjsonschema
from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecReader
from singer_sdk.exceptions import InvalidRecord
from singer_sdk.sinks import BatchSink
from singer_sdk.sinks.core import BaseJSONSchemaValidator

from target_usage.sinks import compile_validator


class FastJsonSchemaValidator(BaseJSONSchemaValidator):
    """The SDK's validator interface over fastjsonschema, as the SDK docs suggest."""

    def __init__(self, schema: dict[str, Any]) -> None:
        super().__init__(schema)
        self._validate = compile_validator(schema)

    def validate(self, record: dict[str, Any]) -> None:
        try:
            self._validate(record)
        except fastjsonschema.JsonSchemaValueException as error:
            raise InvalidRecord(error.message, record) from error


class NoopSink(BatchSink):
    def process_batch(self, context: dict[str, Any]) -> None:
        """Drop the batch: only the SDK's own cost is measured."""


class FastNoopSink(NoopSink):
    def get_validator(self) -> FastJsonSchemaValidator:
        return FastJsonSchemaValidator(self.schema)


class NoopTarget(Target):
    name = "target-noop"
    config_jsonschema = th.PropertiesList().to_dict()
    default_sink_class = NoopSink


class FastNoopTarget(NoopTarget):
    message_reader_class = MsgSpecReader
    default_sink_class = FastNoopSink


if __name__ == "__main__":
    kind = sys.argv.pop(1)
    (FastNoopTarget if kind == "fast" else NoopTarget).cli()
