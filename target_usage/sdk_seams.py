"""Every private singer-sdk hook the target relies on, in one place.

singer-sdk 0.54 offers no public way to change these behaviours, so the target overrides
private methods. Each override here does only the SDK-facing part and hands over to a
public method of the target (or sink, or reader); `SEAMS` records each one's signature in
the pinned SDK and why it is overridden, and tests/test_sdk_seams.py fails, naming the
seam, when an SDK upgrade changes one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import IO, Any

import click
import msgspec
from singer_sdk import Target
from singer_sdk.contrib.msgspec import MsgSpecReader, decoder
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers._classproperty import classproperty
from singer_sdk.singerlib.exceptions import InvalidInputLine
from singer_sdk.sinks import BatchSink, Sink

from target_usage import env_config, logs, settings
from target_usage.errors import TargetUsageError
from target_usage.outputs import Redactor
from target_usage.records import encode_json


@dataclass(frozen=True)
class Seam:
    """One overridden SDK method: where it is defined, its signature there, and why."""

    sdk_class: type
    name: str
    signature: str
    why: str


SEAMS = (
    Seam(
        Target,
        "_write_state_message",
        "(self, state: 'dict') -> 'None'",
        "STATE must wait for delivery, keep Decimals and floats, and never be written in a "
        "dry run; the SDK writes it with plain json.dumps as soon as a drain ends.",
    ),
    Seam(
        Target,
        "_handle_termination",
        "(self, signum: 'int', frame: 'FrameType | None') -> 'None'",
        "The SDK drains re-entrantly inside the signal handler and exits 0; the target "
        "stops between messages and exits 128+signal.",
    ),
    Seam(
        Target,
        "_validate_config",
        "(self, *, raise_errors: 'bool' = True) -> 'list[str]'",
        "The SDK's messages echo a wrong-typed secret's value; they are redacted.",
    ),
    Seam(
        Sink,
        "_parse_timestamps_in_record",
        "(self, record: 'dict', schema: 'dict', treatment: 'DatetimeErrorTreatmentEnum') -> 'None'",
        "Values must reach the API or the dead-letter file as the tap sent them, and the "
        "SDK's parse is the largest cost of the read path.",
    ),
    Seam(
        MsgSpecReader,
        "process_lines",
        "(self, file_input: 't.IO[_RT] | None', callbacks: 'dict[str, t.Callable[[dict], "
        "None]]') -> 't.Counter[str]'",
        "The only place to stop between two messages (never inside one) after a signal.",
    ),
    Seam(
        MsgSpecReader,
        "deserialize_json",
        "(self, line: 'str') -> 'dict'",
        "The SDK's message for a line that is not JSON gives no line number and echoes it.",
    ),
    Seam(
        Target,
        "_process_batch_message",
        "(self, message_dict: 'dict') -> 'None'",
        "The SDK hands BATCH files to process_batch_files, which this target's sinks do not "
        "implement: their records are silently dropped.",
    ),
    Seam(
        Target,
        "_process_record_message",
        "(self, message_dict: 'dict') -> 'None'",
        "The SDK runs about fifteen steps per record, several of them no-ops for these sinks "
        "(copy, map, validation and parsing hooks): record_path.py skips those, calling the "
        "SDK's own private steps (_get_context, _after_process_record, drain_one, "
        "_handle_max_record_age) in its order.",
    ),
    Seam(
        Target,
        "_env_var_config",
        "(cls) -> 'dict[str, t.Any]'",
        "The SDK's parser leaves numbers as strings and reads any unknown word as false.",
    ),
    Seam(
        Target,
        "cb_config",
        "(ctx: 'click.Context', param: 'click.Option', value: 'tuple[str, ...]') -> '_ConfigInput'",
        "A config file that is not JSON gives a traceback instead of one line.",
    ),
)


class Interrupted(Exception):
    """A termination signal arrived while a message was being processed."""

    def __init__(self, signum: int) -> None:
        super().__init__(logs.signal_name(signum))
        self.signum = signum


class UsageReader(MsgSpecReader):
    """The SDK's msgspec reader, telling which input line is not JSON or not UTF-8 (and not
    echoing it), and stopping between messages when a termination signal asks it to.

    Lines are read as bytes, so text that is not UTF-8 is caught on its own line instead of
    failing the text decoder somewhere in a buffer.
    """

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0
        self.busy = False
        self.stop_signal: int | None = None

    def process_lines(self, file_input: Any, callbacks: Any) -> Any:
        return super().process_lines(self._between_messages(file_input), callbacks)

    def _between_messages(self, file_input: IO[str] | IO[bytes] | None) -> Iterator[str | bytes]:
        """Yield lines; between two messages (never inside one) honour a pending stop."""
        source = file_input or self.default_input
        for line in getattr(source, "buffer", source):
            self.busy = True
            yield line
            self.busy = False
            if self.stop_signal is not None:
                raise Interrupted(self.stop_signal)

    def deserialize_json(self, line: str | bytes) -> dict:
        self.line_number += 1
        try:
            return decoder.decode(line)  # type: ignore[no-any-return]
        except (msgspec.DecodeError, RecursionError) as error:
            reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
            start = line[:80].decode(errors="replace") if isinstance(line, bytes) else line[:80]
            start = start.rstrip("\r\n")
            msg = (
                f"Input line {self.line_number} is not a JSON Singer message ({reason}; it "
                f"starts {start!r}). Check the tap's output. No STATE was emitted past it."
            )
            raise InvalidInputLine(msg) from None


class TargetSeams(Target):
    """The Target hooks; the target implements `before_state` and `on_signal`."""

    message_reader_class = UsageReader

    def before_state(self) -> bool:
        """Called before each STATE: make it safe to write; False to leave it unwritten."""
        raise NotImplementedError

    def on_signal(self, signum: int) -> None:
        """Called on SIGINT/SIGTERM, in the signal handler."""
        raise NotImplementedError

    def process_batch_files(self, message_dict: dict) -> None:
        """Called for each BATCH message."""
        raise NotImplementedError

    def _write_state_message(self, state: dict) -> None:
        """Emit STATE as received (Decimals and floats kept), once `before_state` allows."""
        if not self.before_state():
            return
        try:
            sys.stdout.write(encode_json(state).decode() + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            # Nothing more can be written there; keep the interpreter's exit flush quiet.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            msg = (
                "stdout was closed before STATE could be written (was the target piped into a "
                "command that exited?): the records read were delivered, but no bookmark "
                "was saved; rerun with stdout read to the end"
            )
            raise TargetUsageError(msg) from None

    def _process_batch_message(self, message_dict: dict) -> None:
        self.process_batch_files(message_dict)

    def process_record_message(self, message_dict: dict) -> None:
        """Called for each RECORD message: the SDK's own path, unless the target has a
        leaner one (record_path.py)."""
        Target._process_record_message(self, message_dict)

    def _process_record_message(self, message_dict: dict) -> None:
        self.process_record_message(message_dict)

    @classproperty
    def _env_var_config(cls) -> dict[str, Any]:
        """`--config=ENV`: every setting parsed by its schema type (the SDK's parser leaves
        numbers as strings and reads any unknown word as `false`).
        """
        schema = cls.config_jsonschema
        cls.append_builtin_config(schema)
        return env_config.parse_environment(schema, cls._env_var_prefix)

    @classmethod
    def cb_config(cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]) -> Any:
        """A config file that cannot be read or is not a JSON object: one line, exit 1."""
        for path in value:
            problem = None if path == "ENV" else env_config.config_file_problem(path)
            if problem:
                cls.logger.error("%s", problem)
                ctx.exit(1)
        return super().cb_config(ctx, param, value)

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        self.on_signal(signum)

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """The SDK's checks, with secret values kept out of its messages.

        A secret of the wrong type (a digits-only secret left unquoted) would otherwise be
        echoed: "987650... is not of type 'string'".
        """
        redactor = Redactor(settings.secret_values(self._config))
        try:
            errors = super()._validate_config(raise_errors=raise_errors)
        except ConfigValidationError as error:
            raise ConfigValidationError(
                redactor.text(str(error)), errors=[redactor.text(e) for e in error.errors]
            ) from None
        return [redactor.text(e) for e in errors]


class SinkSeams(BatchSink):
    """The Sink hooks."""

    def _parse_timestamps_in_record(self, record: dict, schema: dict, treatment: Any) -> None:
        """Leave values as the tap sent them.

        The builders parse the timestamps they use (with a clear invalid-record error when
        one is unreadable), and every other value should reach the API, or the dead-letter
        file, unchanged. The SDK's pass would parse every date-time column of every record,
        the largest single cost of the read path, only for the builders to parse it again.
        """
