"""Exceptions, one base class, so the CLI can tell a user error from a bug."""

from __future__ import annotations

from target_usage.logs import plural

BODY_EXCERPT_CHARS = 500


class TargetUsageError(Exception):
    """An error the user can act on; its message says what happened and what to do."""


class InvalidRecordError(TargetUsageError):
    """A record the sink cannot turn into a valid API item (pure builders raise it)."""

    def __init__(self, reason: str, fix: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.fix = fix


class RejectedRecordError(TargetUsageError):
    """A record refused under `invalid_records: fail`, located by stream and position."""

    def __init__(self, stream: str, position: int, error: InvalidRecordError) -> None:
        fix = error.fix or "fix the record upstream"
        message = (
            f"Stream '{stream}', record #{position}: {error.reason}. "
            f"Fix: {fix}, or set invalid_records to 'skip' or 'dead_letter'."
        )
        super().__init__(message)
        self.stream = stream
        self.position = position


class ApiError(TargetUsageError):
    """A request that failed for good: names the API, the status, the body, the settings
    to check and the records not delivered (`where`, completed when the run ends)."""

    def __init__(
        self,
        api: str,
        status: int | None,
        body: str,
        *,
        attempts: int,
        where: str = "",
        cause: str = "",
        hint: str = "",
        note: str = "",
    ) -> None:
        super().__init__(api, status)
        self.api = api
        self.status = status
        self.body = body[:BODY_EXCERPT_CHARS]
        self.attempts = attempts
        self.where = where
        self.cause = cause
        self.hint = hint
        self.note = note

    def __str__(self) -> str:
        outcome = f"HTTP {self.status}" if self.status is not None else self.cause
        text = f"{self.api} request failed after {plural(self.attempts, 'attempt')}: {outcome}"
        if self.note:
            text += f" ({self.note})"
        if self.body:
            text += f"; response body: {self.body!r}"
        if self.hint:
            text += f"; {self.hint}"
        if self.where:
            text += f"; undelivered: {self.where}"
        return text + ". No STATE was emitted past these records; rerun to resend them."


class LedgerError(TargetUsageError):
    """The ledger cannot be opened, read or written: names it (password redacted) and the cause."""
