"""Files the target writes besides stdout: dry-run requests and dead letters; redaction.

Writers are shared by sinks that drain in parallel threads, so each line is written
whole under a lock and flushed at once: a crash never leaves a half line or loses a
rejected record that STATE already moved past.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from target_usage.errors import RejectedRecordError
from target_usage.records import encode_json

REDACTED = "***"
# A signed JWT (header.payload.signature, base64url; both JSON parts start `{"` = `eyJ`):
# a server echoing a request quotes the per-entry tokens, each usable until it expires.
JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
# The user-info of a URL (`https://user:password@host`).
URL_USER_INFO = re.compile(r"(?<=://)[^/?#@\s]+@")


class Redactor:
    """Replaces what could leak wherever it could leak (headers, quoted bodies, messages):
    secret values, signed tokens and the user-info of URLs."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def text(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = JWT.sub(REDACTED, text)
        return URL_USER_INFO.sub(REDACTED + "@", text)

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {name: self.text(value) for name, value in headers.items()}


class JsonlWriter:
    """Appends or truncates a JSONL file, opened on first write, one flushed line per call."""

    def __init__(self, path: str | Path, *, append: bool) -> None:
        self.path = Path(path)
        self._mode = "ab" if append else "wb"
        self._file: IO[bytes] | None = None
        self._lock = threading.Lock()
        self.lines = 0

    def write(self, line: Any) -> None:
        data = encode_json(line) + b"\n"
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open(self._mode)
            self._file.write(data)
            self._file.flush()
            self.lines += 1

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class Rejects:
    """Applies `invalid_records` to a record no valid API item can be made of.

    `dead_letter` lines are Singer messages (one SCHEMA per stream, then a RECORD per
    rejected record with `reason` and `position` beside it), so the file, once fixed, can
    be piped straight back into the target. Records get the ids their first try used, so
    a replay updates rather than duplicates.
    """

    WARNINGS_PER_STREAM = 5

    def __init__(
        self, policy: str, writer: JsonlWriter, report: Any, logger: logging.Logger
    ) -> None:
        self.policy = policy
        self._writer = writer
        self._report = report
        self._logger = logger
        self._schemas_written: set[str] = set()
        self._lock = threading.Lock()

    def reject(self, sink: Any, position: int, record: Mapping[str, Any], error: Any) -> None:
        stream = sink.stream_name
        if self.policy == "fail":
            raise RejectedRecordError(stream, position, error)
        dead = self.policy == "dead_letter"
        if dead:
            self._dead_letter(sink, position, record, error.reason)
            verb = f"dead-lettered to {self._writer.path}"
        else:
            verb = "skipped (invalid_records: skip)"
        count = self._report.set_aside(sink.stats, dead_lettered=dead)
        if count <= self.WARNINGS_PER_STREAM:
            more = (
                " Further ones are counted in the run summary."
                if count == self.WARNINGS_PER_STREAM
                else ""
            )
            self._logger.warning(
                "Stream '%s', record #%d %s: %s.%s", stream, position, verb, error.reason, more
            )

    def _dead_letter(
        self, sink: Any, position: int, record: Mapping[str, Any], reason: str
    ) -> None:
        stream = sink.stream_name
        line = {
            "type": "RECORD",
            "stream": stream,
            "record": {**record, **sink.api.replay_columns(sink.kind, record)},
            "reason": reason,
            "position": position,
            "sink": sink.kind,
        }
        with self._lock:
            if stream not in self._schemas_written:
                self._schemas_written.add(stream)
                schema = sink.original_schema
                if "properties" in schema and "event_id" not in schema["properties"]:
                    schema = {
                        **schema,
                        "properties": {**schema["properties"], "event_id": {"type": ["string"]}},
                    }
                self._writer.write(
                    {
                        "type": "SCHEMA",
                        "stream": stream,
                        "schema": schema,
                        "key_properties": list(sink.key_properties),
                    }
                )
            self._writer.write(line)

    def close(self) -> None:
        self._writer.close()
