"""The target: settings, routing of streams to sinks, one client per API, STATE, summary."""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec
from singer_sdk import Target
from singer_sdk.contrib.msgspec import MsgSpecReader, decoder
from singer_sdk.exceptions import ConfigValidationError, RecordsWithoutSchemaException
from singer_sdk.singerlib.exceptions import InvalidInputLine
from singer_sdk.sinks import Sink

from target_usage import settings
from target_usage.errors import TargetUsageError
from target_usage.hull import API_NAME as HULL_API
from target_usage.hull import HullApi, TokenSigner
from target_usage.outputs import JsonlWriter, Redactor, Rejects
from target_usage.record_path import LeanRecordPath
from target_usage.records import encode_json
from target_usage.report import RunReport
from target_usage.sinks import SINK_CLASSES, Api, SkippedStreamSink
from target_usage.skalin import API_NAME as SKALIN_API
from target_usage.skalin import SKALIN_SINKS, SkalinApi
from target_usage.transport import Delivery, DryRunSender, HttpSender, Pacer, RetryPolicy

_SEGMENT_SEPARATORS = re.compile(r"__|[-.]")
# Requests handed over but not yet sent, per worker: enough to keep every worker busy
# while the reader builds the next batch, few enough to keep memory flat.
PENDING_PARTS_PER_WORKER = 4


def route(stream: str, stream_sinks: Mapping[str, str]) -> str | None:
    """The sink a stream goes to: `stream_sinks`, else its name, else its last segment."""
    if stream in stream_sinks:
        return stream_sinks[stream]
    for candidate in (stream, _SEGMENT_SEPARATORS.split(stream)[-1]):
        if candidate in settings.SINKS:
            return candidate
    return None


class Interrupted(Exception):
    """A termination signal arrived while a message was being processed."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


class UsageReader(MsgSpecReader):
    """The SDK's msgspec reader, telling which input line is not JSON (and not echoing it),
    and stopping between messages when a termination signal asks it to.
    """

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0
        self.busy = False
        self.stop_signal: int | None = None

    def process_lines(self, file_input: Any, callbacks: Any) -> Any:
        return super().process_lines(self._between_messages(file_input), callbacks)

    def _between_messages(self, file_input: Any) -> Iterator[str]:
        """Yield lines; between two messages (never inside one) honour a pending stop."""
        for line in file_input or self.default_input:
            self.busy = True
            yield line
            self.busy = False
            if self.stop_signal is not None:
                raise Interrupted(self.stop_signal)

    def deserialize_json(self, line: str) -> dict:
        self.line_number += 1
        try:
            return decoder.decode(line)  # type: ignore[no-any-return]
        except msgspec.DecodeError as error:
            msg = (
                f"Input line {self.line_number} is not a JSON Singer message ({error}; it "
                f"starts {line[:80]!r}). Check the tap's output. No STATE was emitted past it."
            )
            raise InvalidInputLine(msg) from None


class TargetUsage(LeanRecordPath, Target):
    """Routes each stream to a sink and delivers its records to Skalin or Hull."""

    name = "target-usage"
    config_jsonschema = settings.CONFIG_SCHEMA
    message_reader_class = UsageReader

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings.check(self.config)
        self.report = RunReport()
        self.redactor = Redactor(settings.secret_values(self.config))
        self.rejects = Rejects(
            self.config["invalid_records"],
            JsonlWriter(self.config["dead_letter_path"], append=True),
            self.report,
            self.logger,
        )
        self._apis: dict[str, Api] = {}
        self._deliveries: dict[str, Delivery] = {}
        self._deliveries_lock = threading.Lock()  # drain threads ask for them at once
        self._dry_run_writer = JsonlWriter(self.config["dry_run_path"], append=False)
        self._stop_progress = threading.Event()

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

    # Routing

    def get_sink_class(self, stream_name: str) -> type[Sink]:
        sink = route(stream_name, self.config["stream_sinks"])
        if sink is None:
            return self._unmapped(stream_name)
        problems = settings.missing_for_sink(self.config, sink, stream_name)
        if problems:
            raise ConfigValidationError("Config validation failed", errors=problems)
        return SINK_CLASSES[sink]

    def _unmapped(self, stream: str) -> type[Sink]:
        advice = (
            f'map it with "stream_sinks": {{"{stream}": "<sink>"}} (sinks: '
            f"{', '.join(settings.SINKS)}), rename it with stream_maps, or set "
            "unmapped_streams to 'skip'"
        )
        if self.config["unmapped_streams"] == "skip":
            self.logger.warning(
                "Stream '%s' matches no sink and is skipped; to send it, %s.",
                stream,
                advice.split(", or set")[0],
            )
            return SkippedStreamSink
        msg = f"Stream '{stream}' matches no sink: {advice}."
        raise ConfigValidationError(msg, errors=[msg])

    # One client and one transport per API, shared by every sink and drain thread

    def api_for(self, kind: str) -> Api:
        name = SKALIN_API if kind in SKALIN_SINKS else HULL_API
        if name not in self._apis:
            self._apis[name] = self._build_api(name)
        return self._apis[name]

    def _build_api(self, name: str) -> Api:
        config = self.config
        if name == SKALIN_API:
            return SkalinApi(config["skalin_url"], config["skalin_client_id"])
        signer = TokenSigner(
            connector_id=config["hull_connector_id"],
            secret=config["hull_connector_secret"],
            ttl_seconds=config["hull_token_ttl"],
            create=config["hull_create"],
            active=config["hull_active"],
        )
        return HullApi(
            url=config["hull_firehose_url"],
            organization=config["hull_organization"],
            signer=signer,
            batch_size=config["hull_batch_size"],
            send_nulls=config["hull_send_nulls"],
        )

    def delivery_for(self, api: Api) -> Delivery:
        with self._deliveries_lock:
            delivery = self._deliveries.get(api.name)
            if delivery is None:
                delivery = self._deliveries[api.name] = self._build_delivery(api)
        return delivery

    def _build_delivery(self, api: Api) -> Delivery:
        config = self.config
        dry_run = config["dry_run"]
        # Only Skalin documents a rate limit; Hull's is unknown, so it is bounded by concurrency.
        rate = (
            config["skalin_requests_per_second"] if api.name == SKALIN_API and not dry_run else None
        )
        workers = 1 if dry_run else config["max_concurrent_requests"]
        sender = (
            DryRunSender(self._dry_run_writer, self.redactor)
            if dry_run
            else HttpSender(float(config["request_timeout"]), workers)
        )
        return Delivery(
            api=api,
            sender=sender,
            policy=RetryPolicy(
                max_retries=config["max_retries"],
                retry_after_cap_seconds=float(config["retry_after_cap"]),
            ),
            # A burst of a tenth of a second's budget fills it from the start, far below
            # Skalin's documented 500 requests/s burst.
            pacer=Pacer(rate, burst=max(1, int((rate or 0) / 10))),
            redactor=self.redactor,
            workers=workers,
            max_pending_parts=PENDING_PARTS_PER_WORKER * workers,
        )

    def flush_deliveries(self) -> None:
        """Block until every record handed to an API is delivered or set aside."""
        for delivery in list(self._deliveries.values()):
            delivery.flush()

    # STATE and the end of the run

    def _write_state_message(self, state: dict) -> None:
        """Emit STATE as received (Decimals and floats kept); never in a dry run.

        A dry run delivered nothing, so STATE would move Meltano's bookmarks past records
        that were never sent.
        """
        self.flush_deliveries()
        if self.config["dry_run"]:
            return
        sys.stdout.write(encode_json(state).decode() + "\n")
        sys.stdout.flush()

    def process_endofpipe(self) -> None:
        self.message_reader.busy = True  # a signal now lets this final drain finish
        super().process_endofpipe()
        self.flush_deliveries()
        if self.message_reader.stop_signal is not None:
            sys.exit(128 + self.message_reader.stop_signal)

    def listen(self, file_input: Any = None) -> None:
        progress = self._start_progress()
        try:
            try:
                super().listen(file_input)
            except Interrupted as stop:
                self._stop(stop.signum)
        finally:
            self._stop_progress.set()
            if progress is not None:
                progress.join()
            self._close()

    @classmethod
    def invoke(cls, *args: Any, **kwargs: Any) -> None:
        """Errors the user can act on end the run with their message alone, no traceback."""
        try:
            super().invoke(*args, **kwargs)
        except (TargetUsageError, InvalidInputLine, RecordsWithoutSchemaException) as error:
            cls.logger.error("%s", error)
            sys.exit(1)

    def _handle_termination(self, signum: int, frame: Any) -> None:
        """Deliver what was read, emit the STATE that covers it, exit 128+signal.

        Inside a message (a drain may be waiting on backpressure) the handler only asks the
        reader to stop after it; waiting for input, it stops at once. The SDK's own handler
        drains re-entrantly and exits 0, telling an orchestrator the run completed.
        """
        self.logger.warning(
            "Received signal %d: delivering what was read (in-flight requests finish or are "
            "retried), then stopping.",
            signum,
        )
        if self.message_reader.busy:
            self.message_reader.stop_signal = signum
            return
        self._stop(signum)

    def _stop(self, signum: int) -> None:
        code = 128 + signum
        try:
            self.drain_all(is_endofpipe=True)
            self.flush_deliveries()
        except Exception as error:
            self.logger.error("%s", error)
            code = 1
        sys.exit(code)

    def _start_progress(self) -> threading.Thread | None:
        interval = float(self.config["progress_interval"])
        if interval <= 0:
            return None

        def report() -> None:
            while not self._stop_progress.wait(interval):
                waited = sum(d.pacer.waited_seconds for d in list(self._deliveries.values()))
                self.logger.info(self.report.progress(waited))

        thread = threading.Thread(target=report, name="progress", daemon=True)
        thread.start()
        return thread

    def _close(self) -> None:
        for delivery in self._deliveries.values():
            delivery.close()
        self._dry_run_writer.close()
        self.rejects.close()
        for line in self.report.lines(dry_run=self.config["dry_run"]):
            self.logger.info(line)
        signer = getattr(self._apis.get(HULL_API), "signer", None)
        if signer is not None:
            self.logger.info("  Hull tokens signed: %d (one per subject, reused)", signer.signed)
        if self.config["dry_run"] and self._dry_run_writer.lines:
            self.logger.info(
                "Dry run: %d requests written to %s",
                self._dry_run_writer.lines,
                self._dry_run_writer.path,
            )
