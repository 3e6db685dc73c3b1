"""Files the target writes besides stdout: dry-run requests and dead letters; redaction.

The dry-run file is written by the delivery workers of both APIs, so each line is written
whole under a lock and flushed at once: a crash never leaves a half line or loses a
rejected record that STATE already moved past.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

from target_usage.records import encode_json

REDACTED = "***"


class Redactor:
    """Replaces secret values wherever they could leak: headers, bodies, messages."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def text(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

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

    def write(self, line: object) -> None:
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
