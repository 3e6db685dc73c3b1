"""Shared test fixtures: loopback fake APIs, Singer input builders and target runners."""

from __future__ import annotations

import functools
import io
import json
import logging
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from target_usage.target import TargetUsage
from target_usage.transport import RetryPolicy
from tests.fake_apis import FakeHull, FakeSkalin

CLIENT_ID = "client-0001"
HULL_ORG = "acme.hullapp.io"
HULL_CONNECTOR = "connector-0001"
HULL_SECRET = "hull-secret-RECOGNISABLE-0123456789abcdef"
ANY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": True}


def schema_message(stream: str, schema: dict | None = None) -> dict:
    return {
        "type": "SCHEMA",
        "stream": stream,
        "schema": schema or ANY_SCHEMA,
        "key_properties": [],
    }


def record_message(stream: str, record: dict) -> dict:
    return {"type": "RECORD", "stream": stream, "record": record}


def state_message(value: dict) -> dict:
    return {"type": "STATE", "value": value}


def singer_lines(stream: str, records: Iterable[dict], *, state: dict | None = None) -> list[dict]:
    """One stream's SCHEMA, its RECORDs, and optionally a closing STATE."""
    lines = [schema_message(stream), *(record_message(stream, r) for r in records)]
    return [*lines, state_message(state)] if state is not None else lines


def to_text(messages: Iterable[dict | str]) -> str:
    return "".join((m if isinstance(m, str) else json.dumps(m)) + "\n" for m in messages)


@dataclass
class Run:
    """What a finished target run left: its STATE lines and its log."""

    states: list[dict]
    stdout: str
    stderr: str
    exit_code: int = 0


@pytest.fixture
def run_target(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> Callable[[dict, Iterable[dict | str]], Run]:
    """Run the target in this process, as the SDK's own test helpers do; log as stderr."""

    def run(config: dict, messages: Iterable[dict | str]) -> Run:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            target = TargetUsage(config=config)
            target.listen(io.StringIO(to_text(messages)))
        out, _ = capsys.readouterr()
        return Run([json.loads(x) for x in out.splitlines() if x.strip()], out, caplog.text)

    return run


def run_cli(
    config: dict, messages: Iterable[dict | str], tmp_path: Path, *, timeout: float = 120
) -> Run:
    """Run the installed CLI as a subprocess, exactly as a user's pipeline would."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    done = subprocess.run(
        [sys.executable, "-m", "target_usage", "--config", str(config_path)],
        input=to_text(messages),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
    )
    states = [json.loads(x) for x in done.stdout.splitlines() if x.strip()]
    return Run(states, done.stdout, done.stderr, done.returncode)


@pytest.fixture
def skalin() -> Iterator[FakeSkalin]:
    with FakeSkalin(client_id=CLIENT_ID) as server:
        yield server
        assert server.violations == []


@pytest.fixture
def skalin_config(skalin: FakeSkalin, tmp_path: Path) -> dict:
    """A config that delivers to the loopback Skalin quickly (short backoff via few retries)."""
    return {
        "skalin_url": skalin.url,
        "skalin_client_id": CLIENT_ID,
        "dead_letter_path": str(tmp_path / "rejected.jsonl"),
        "dry_run_path": str(tmp_path / "requests.jsonl"),
        "max_retries": 3,
        "request_timeout": 5,
    }


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink backoff for in-process runs; the policy's real delays are pinned in test_transport."""
    monkeypatch.setattr(
        "target_usage.target.RetryPolicy",
        functools.partial(RetryPolicy, backoff_base_seconds=0.01),
    )


@pytest.fixture
def hull() -> Iterator[FakeHull]:
    with FakeHull(HULL_ORG, HULL_CONNECTOR, HULL_SECRET) as server:
        yield server
        assert server.violations == []


@pytest.fixture
def hull_config(hull: FakeHull, tmp_path: Path) -> dict:
    return {
        "hull_firehose_url": hull.url,
        "hull_organization": HULL_ORG,
        "hull_connector_id": HULL_CONNECTOR,
        "hull_connector_secret": HULL_SECRET,
        "dead_letter_path": str(tmp_path / "rejected.jsonl"),
        "dry_run_path": str(tmp_path / "requests.jsonl"),
        "max_retries": 3,
        "request_timeout": 5,
    }
