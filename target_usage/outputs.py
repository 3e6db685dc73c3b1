"""Files the target writes besides stdout: dry-run requests and dead letters; redaction.

The dry-run file is written by the delivery workers of both APIs, so each line is written
whole under a lock and flushed at once: a crash never leaves a half line or loses a
rejected record that STATE already moved past.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

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
