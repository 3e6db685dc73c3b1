"""What a run prints: warnings, progress and the summary at the default level; the SDK's
per-batch chatter only when asked for with DEBUG; record contents never.

The SDK logs at INFO a line per drained batch ("Draining..."), METRIC lines per batch and
per stream, and its start-up banners: a sync of thousands of records buries the summary
under them. At DEBUG it logs every record's batch context once per record ("Processed
record: ..."), which holds every item built so far: output quadratic in the input, and
every record's personal data. One filter on the output handlers decides all of this, so it
holds whether the SDK's console handler or Meltano's logging config (`SINGER_SDK_LOG_CONFIG`)
is in place.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

PACKAGE_DIR = str(Path(__file__).resolve().parent)
# SDK log messages (their format strings) that are never printed, at any level.
NEVER_PRINTED = frozenset({"Processed record: %s"})


class RunOutput(logging.Filter):
    """Lets through warnings and errors, this package's own lines, and the rest only when
    their logger is at DEBUG; never the messages in `NEVER_PRINTED`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in NEVER_PRINTED:
            return False
        if record.levelno >= logging.WARNING or record.pathname.startswith(PACKAGE_DIR):
            return True
        # Asked for: DEBUG for everything (LOGLEVEL, `meltano --log-level=debug`) or for
        # that logger (a logging config).
        return any(
            logging.getLogger(name).isEnabledFor(logging.DEBUG) for name in ("", record.name)
        )


def quiet_sdk_output() -> None:
    """Install the filter on every handler of the root logger (once)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RunOutput) for f in handler.filters):
            handler.addFilter(RunOutput())


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """`1 record`, `2 records`, `1 retry`, `3 retries`."""
    if count != 1:
        noun = plural_noun or (noun[:-1] + "ies" if noun.endswith("y") else noun + "s")
    return f"{count:,} {noun}"


def signal_name(signum: int) -> str:
    """`SIGINT`, not `signal 2`."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
