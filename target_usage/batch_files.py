"""Records of a Singer BATCH message, read from its manifest files line by line.

The SDK hands a BATCH file's records straight to `process_batch`, past `process_record`,
where this target builds items and applies `invalid_records`: they would be dropped
without a word, and a line that is not JSON ends the run with a traceback. Here each line
becomes a record that takes the RECORD path, and a bad line is told by file and line.
"""

from __future__ import annotations

import contextlib
import gzip
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec
from singer_sdk.contrib.msgspec import decoder
from singer_sdk.helpers._batch import StorageTarget

from target_usage.errors import TargetUsageError

SUPPORTED = "format 'jsonl', compression 'none' or 'gzip'"


def records_of(message: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Each record of the message's files, in order."""
    stream = message.get("stream")
    encoding = message.get("encoding") or {}
    compression = encoding.get("compression") or "none"
    if encoding.get("format") != "jsonl" or compression not in ("none", "gzip"):
        raise TargetUsageError(
            f"BATCH message of stream '{stream}' has encoding {dict(encoding)}: only "
            f"{SUPPORTED} is read. Send RECORD messages or JSONL batch files."
        )
    for url in message.get("manifest") or []:
        yield from _file_records(stream, url, gzipped=compression == "gzip")


def _file_records(stream: Any, url: str, *, gzipped: bool) -> Iterator[dict[str, Any]]:
    where = f"BATCH file {url} (stream '{stream}')"
    head, tail = StorageTarget.split_url(url)
    try:
        with (
            StorageTarget.from_url(head).open(tail, mode="rb") as raw,
            gzip.open(raw) if gzipped else contextlib.nullcontext(raw) as file,
        ):
            for number, line in enumerate(file, 1):
                if line.strip():
                    yield _record(line, f"{where}, line {number}")
    except OSError as error:  # missing, unreadable, or not gzip
        raise TargetUsageError(
            f"{where} cannot be read ({type(error).__name__}: {error.strerror or error}). "
            "No STATE was emitted past it."
        ) from None


def _record(line: bytes, where: str) -> dict[str, Any]:
    try:
        value = decoder.decode(line)
    except (msgspec.DecodeError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise TargetUsageError(
            f"{where} is not a JSON record ({reason}): batch files hold one JSON object per "
            "line. No STATE was emitted past it."
        ) from None
    if not isinstance(value, dict):
        raise TargetUsageError(
            f"{where} is a JSON {type(value).__name__}, not an object: batch files hold one "
            "JSON object per line. No STATE was emitted past it."
        )
    return value
