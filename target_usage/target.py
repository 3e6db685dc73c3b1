"""The target: settings, routing of streams to sinks, one client per API, STATE, summary."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Mapping
from typing import Any, NoReturn

from singer_sdk.exceptions import ConfigValidationError, RecordsWithoutSchemaException
from singer_sdk.singerlib.exceptions import InvalidInputLine
from singer_sdk.sinks import Sink

from target_usage import batch_files, explain, logs, settings
from target_usage.catalogue import HULL, SINK_APIS, SKALIN
from target_usage.changes import Changes
from target_usage.errors import ApiError, LedgerError, TargetUsageError
from target_usage.hull import HullApi, TokenSigner
from target_usage.outcomes import OutcomeStep
from target_usage.outputs import JsonlWriter, Redactor
from target_usage.record_path import LeanRecordPath
from target_usage.report import RunReport
from target_usage.sdk_seams import Interrupted, TargetSeams
from target_usage.sinks import SINK_CLASSES, Api, SkippedStreamSink
from target_usage.skalin import SkalinApi
from target_usage.transport import (
    Delivery,
    DryRunSender,
    HttpSender,
    Origin,
    Pacer,
    RetryPolicy,
    describe_ranges,
)

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


class TargetUsage(LeanRecordPath, TargetSeams):
    """Routes each stream to a sink and delivers its records to Skalin or Hull."""

    name = "target-usage"
    config_jsonschema = settings.CONFIG_SCHEMA

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings.check(self.config)
        self.report = RunReport()
        self.redactor = Redactor(settings.secret_values(self.config))
        self.changes = (
            Changes(
                self.config["ledger"],
                dry_run=self.config["dry_run"],
                full_resync=self.config["full_resync"],
                report=self.report,
            )
            if self.config["ledger"]
            else None
        )
        self.outcomes = OutcomeStep(
            self.config["invalid_records"],
            JsonlWriter(self.config["dead_letter_path"], append=True),
            self.report,
            self.logger,
            replay_columns=lambda kind, record: self.api_for(kind).replay_columns(kind, record),
            changes=self.changes,
        )
        self._apis: dict[str, Api] = {}
        self._deliveries: dict[str, Delivery] = {}
        self._deliveries_lock = threading.Lock()  # drain threads ask for them at once
        self._dry_run_writer = JsonlWriter(self.config["dry_run_path"], append=False)
        self.samples = explain.Samples() if self.config["dry_run"] else None
        self._stop_progress = threading.Event()
        self._signals = 0

    def process_batch_files(self, message_dict: dict) -> None:
        """Each record of a BATCH message's files takes the RECORD path (see batch_files)."""
        stream = message_dict.get("stream")
        for record in batch_files.records_of(message_dict):
            self._process_record_message({"type": "RECORD", "stream": stream, "record": record})

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
        name = SINK_APIS[kind]
        if name not in self._apis:
            self._apis[name] = self._build_api(name)
        return self._apis[name]

    def _build_api(self, name: str) -> Api:
        config = self.config
        if name == SKALIN:
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
        rate = config["skalin_requests_per_second"] if api.name == SKALIN and not dry_run else None
        workers = 1 if dry_run else config["max_concurrent_requests"]
        sender = (
            DryRunSender(self._dry_run_writer, self.redactor)
            if dry_run
            else HttpSender(float(config["request_timeout"]), workers)
        )
        return Delivery(
            api=api,
            outcomes=self.outcomes.queue,
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

    def hand_over(self, api: Api, kind: str, items: list[object], origins: list[Origin]) -> None:
        """Queue a sink's batch for delivery (only its changed items, with a ledger),
        applying outcomes while it waits and after."""
        with self._stopping_on_ledger_error():
            if self.changes is not None:
                items, origins = self.changes.select(api, kind, items, origins)
            if items:
                delivery = self.delivery_for(api)
                delivery.submit(kind, items, origins, while_waiting=self.outcomes.apply)
            self.outcomes.apply()

    def flush_deliveries(self) -> None:
        """Block until every record handed to an API is delivered or set aside, and apply
        the outcomes (so `invalid_records: fail` stops the run here)."""
        with self._stopping_on_ledger_error():
            for delivery in list(self._deliveries.values()):
                delivery.flush(while_waiting=self.outcomes.apply)
            self.outcomes.apply()

    @contextlib.contextmanager
    def _stopping_on_ledger_error(self) -> Any:
        """A ledger that cannot be read or written ends the run: requests in flight
        finish, nothing queued is sent, and the error (no STATE) reaches the CLI."""
        try:
            yield
        except LedgerError:
            for delivery in list(self._deliveries.values()):
                delivery.close()
            raise

    # STATE and the end of the run

    def before_state(self) -> bool:
        """Deliver everything read so far; no STATE at all in a dry run.

        A dry run delivered nothing, so STATE would move Meltano's bookmarks past records
        that were never sent.
        """
        self.flush_deliveries()
        return not self.config["dry_run"]

    def process_endofpipe(self) -> None:
        self.message_reader.busy = True  # a signal now lets this final drain finish
        super().process_endofpipe()
        self.flush_deliveries()
        if self.message_reader.stop_signal is not None:
            sys.exit(128 + self.message_reader.stop_signal)
        if self.changes is not None and not self.outcomes.failures:
            self._prune_ledger(self.changes)

    def _prune_ledger(self, changes: Changes) -> None:
        """After a successful run: forget event keys no run carried for the retention."""
        days = self.config["ledger_retention_days"]
        pruned = changes.prune(days)
        if pruned:
            self.logger.info(
                "Ledger %s: %s not seen for %d days forgotten (ledger_retention_days).",
                changes.name,
                logs.plural(pruned, "event key", "event keys"),
                days,
            )

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
        logs.quiet_sdk_output()
        try:
            super().invoke(*args, **kwargs)
        except (TargetUsageError, InvalidInputLine, RecordsWithoutSchemaException) as error:
            cls.logger.error("%s", error)
            sys.exit(1)

    def on_signal(self, signum: int) -> None:
        """Deliver what was read, emit the STATE that covers it, exit 128+signal.

        Inside a message (a drain may be waiting on backpressure) the handler only asks the
        reader to stop after it; waiting for input, it stops at once. The SDK's own handler
        drains re-entrantly and exits 0, telling an orchestrator the run completed.
        """
        self._signals += 1
        if self._signals > 1:
            self._stop_now(signum)
        self.logger.warning(
            "Received %s: delivering what was read (in-flight requests finish or are "
            "retried), then stopping; a second signal stops at once.",
            logs.signal_name(signum),
        )
        if self.message_reader.busy:
            self.message_reader.stop_signal = signum
            return
        self._stop(signum)

    def _stop_now(self, signum: int) -> NoReturn:
        """A second signal: send nothing more and exit at once.

        Every STATE already written covers only delivered records, and none is written
        now; requests in flight are abandoned (their records are resent by the rerun, with
        the same ids).
        """
        self.logger.error(
            "Received %s again: stopping now. Nothing more is sent and no STATE is "
            "emitted past records not delivered; rerun to resend them.",
            logs.signal_name(signum),
        )
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(128 + signum)

    def _stop(self, signum: int) -> None:
        code = 128 + signum
        try:
            self.drain_all(is_endofpipe=True)
            self.flush_deliveries()
        except Exception as error:
            self.logger.error("%s", error)
            code = 1
        sys.exit(code)

    def _explanation(self) -> list[str]:
        """Dry run: where each field of each stream's first item came from (explain.py)."""
        apis: dict[str, Api] = {}

        def build_for(kind: str) -> Any:
            name = SINK_APIS[kind]
            if name not in apis:
                apis[name] = explain.frozen(self._build_api(name))
            return explain.sent_item(apis[name], kind)

        return explain.report(self.samples, build_for, self._dry_run_writer.path)

    def _name_undelivered(self) -> None:
        """A failed request's error names every record handed over and not delivered: its
        own, other failed requests', and those dropped unstarted when the run stopped."""
        failures = self.outcomes.failures
        undelivered = [o for failure in failures for o in failure.undelivered]
        undelivered += [o for d in self._deliveries.values() for o in d.dropped]
        for failure in failures:
            if isinstance(failure.error, ApiError) and undelivered:
                failure.error.where = describe_ranges(undelivered)

    def _start_progress(self) -> threading.Thread | None:
        interval = float(self.config["progress_interval"])
        if interval <= 0:
            return None

        def report() -> None:
            while not self._stop_progress.wait(interval):
                deliveries = list(self._deliveries.values())
                waited = sum(d.pacer.waited_seconds for d in deliveries)
                retries = sum(d.retries for d in deliveries)
                self.logger.info(self.report.progress(waited, retries))
                for delivery in deliveries:
                    self._report_trouble(delivery)

        thread = threading.Thread(target=report, name="progress", daemon=True)
        thread.start()
        return thread

    def _report_trouble(self, delivery: Delivery) -> None:
        """A line while an API keeps failing: how, for how long, when the next try is."""
        trouble = delivery.trouble
        if trouble is None:
            return
        now = delivery.clock()
        self.logger.warning(
            "%s keeps failing: %s for %.0fs; next try in %.0fs (%d retries so far).",
            delivery.api.name,
            trouble.what,
            now - trouble.since,
            max(0.0, trouble.next_try_at - now),
            delivery.retries,
        )

    def _close(self) -> None:
        for delivery in self._deliveries.values():
            delivery.close()
        self.outcomes.settle()
        self._name_undelivered()
        self._dry_run_writer.close()
        self.outcomes.close()
        if self.changes is not None:
            self.changes.close()
        if self.samples is not None:
            for line in self._explanation():
                self.logger.info("%s", line)
        for line in self.report.lines(dry_run=self.config["dry_run"]):
            self.logger.info(line)
        signer = getattr(self._apis.get(HULL), "signer", None)
        if signer is not None:
            self.logger.info("  Hull tokens signed: %d (one per subject, reused)", signer.signed)
        if self.config["dry_run"] and self._dry_run_writer.lines:
            self.logger.info(
                "  %s written to %s (what would have been sent, one per line)",
                logs.plural(self._dry_run_writer.lines, "request"),
                self._dry_run_writer.path,
            )
