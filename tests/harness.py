"""The one harness for running the target in tests: Singer message builders, configs for
the loopback fakes, and `run_cli`, which runs the installed CLI as a pipeline would.

tests/conftest.py (fixtures), the fault matrix (tests/faults/) and the integration suite
all build on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Recognisable values: the secret must never show up in any output; the client id is not
# a secret (it is in every URL) but is recognisable too.
CLIENT_ID = "client-0001"
HULL_ORG = "acme.hullapp.io"
HULL_CONNECTOR = "connector-0001"
HULL_SECRET = "hull-secret-RECOGNISABLE-0123456789abcdef"
ANY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": True}
RUN_TIMEOUT_SECONDS = 120.0

Message = dict[str, Any] | str


# Singer input


def schema_message(stream: str, schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "SCHEMA",
        "stream": stream,
        "schema": dict(schema or ANY_SCHEMA),
        "key_properties": [],
    }


def record_message(stream: str, record: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "RECORD", "stream": stream, "record": dict(record)}


def state_message(value: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "STATE", "value": dict(value)}


def singer_lines(
    stream: str, records: Iterable[Mapping[str, Any]], *, state: Mapping[str, Any] | None = None
) -> list[Message]:
    """One stream's SCHEMA, its RECORDs, and optionally a closing STATE."""
    lines: list[Message] = [schema_message(stream), *(record_message(stream, r) for r in records)]
    return [*lines, state_message(state)] if state is not None else lines


def encode(messages: Iterable[Message]) -> bytes:
    """Singer lines as a tap writes them (a str message is written as is)."""
    return b"".join(
        (m if isinstance(m, str) else json.dumps(m, separators=(",", ":"))).encode() + b"\n"
        for m in messages
    )


# Configs for the loopback fakes


def skalin_settings(url: str, workdir: Path) -> dict[str, Any]:
    """Delivers to a loopback Skalin quickly (few retries, short timeout)."""
    return {
        "skalin_url": url,
        "skalin_client_id": CLIENT_ID,
        **_common_settings(workdir),
    }


def hull_settings(url: str, workdir: Path) -> dict[str, Any]:
    return {
        "hull_firehose_url": url,
        "hull_organization": HULL_ORG,
        "hull_connector_id": HULL_CONNECTOR,
        "hull_connector_secret": HULL_SECRET,
        **_common_settings(workdir),
    }


def _common_settings(workdir: Path) -> dict[str, Any]:
    return {
        "dead_letter_path": str(workdir / "rejected.jsonl"),
        "dry_run_path": str(workdir / "requests.jsonl"),
        # Each test's own ledger, so no run sees what another test delivered.
        "ledger": str(workdir / "ledger.sqlite"),
        "max_retries": 3,
        "request_timeout": 5,
    }


# Running the CLI


@dataclass
class Run:
    """What a finished CLI run left: exit code, STATE lines, output, duration."""

    exit_code: int
    stdout: str
    stderr: str
    states: list[Any]
    seconds: float = 0.0
    # Monotonic clock readings, for runs that were signalled: the last signal, the end.
    signalled_at: float | None = None
    ended_at: float = 0.0

    @property
    def stray(self) -> list[str]:
        """stdout lines that are not JSON: anything there corrupts the Singer stream."""
        return [line for line in self.states if isinstance(line, str)]


def clean_env(
    extra: Mapping[str, str] | None = None, *, drop: tuple[str, ...] = ()
) -> dict[str, str]:
    """This environment without settings or logging overrides that would change a run
    (and without variables starting with any of `drop`)."""
    prefixes = ("TARGET_USAGE_", *drop)
    kept = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(prefixes) and k != "SINGER_SDK_LOG_CONFIG"
    }
    return {**kept, **(extra or {})}


def command(config: Mapping[str, Any], workdir: Path) -> list[str]:
    """The CLI invocation, with `config` written to the work directory."""
    path = workdir / "config.json"
    path.write_text(json.dumps(config))
    return [sys.executable, "-m", "target_usage", "--config", str(path)]


def states_of(stdout: str) -> list[Any]:
    """STATE values from stdout; a line that is not JSON is kept as text (see `Run.stray`)."""
    found: list[Any] = []
    for line in stdout.splitlines():
        if line.strip():
            try:
                found.append(json.loads(line))
            except ValueError:
                found.append(line)
    return found


def start_cli(
    config: Mapping[str, Any],
    workdir: Path,
    *,
    stdout: Any = subprocess.PIPE,
    stderr: Any = subprocess.PIPE,
) -> subprocess.Popen[bytes]:
    """Start the installed CLI with stdin open, for tests that feed it over time or run
    several at once."""
    return subprocess.Popen(
        command(config, workdir),
        stdin=subprocess.PIPE,
        stdout=stdout,
        stderr=stderr,
        cwd=workdir,
        env=clean_env(),
    )


def run_cli(
    config: Mapping[str, Any],
    messages: Iterable[Message],
    workdir: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = RUN_TIMEOUT_SECONDS,
) -> Run:
    """Run the installed CLI as a subprocess, exactly as a user's pipeline would."""
    started = time.monotonic()
    done = subprocess.run(
        command(config, workdir),
        input=encode(messages),
        capture_output=True,
        timeout=timeout,
        cwd=workdir,
        env=clean_env(env),
        check=False,
    )
    stdout = done.stdout.decode(errors="replace")
    return Run(
        done.returncode,
        stdout,
        done.stderr.decode(errors="replace"),
        states_of(stdout),
        time.monotonic() - started,
    )
