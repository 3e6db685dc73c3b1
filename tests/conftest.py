"""Shared fixtures: loopback fake APIs, their configs, and an in-process target runner.
Message builders and the CLI runner live in tests/harness.py."""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from target_usage.target import TargetUsage
from target_usage.transport import RetryPolicy
from tests.fakes import FakeHull, FakeSkalin
from tests.harness import (
    CLIENT_ID,
    HULL_CONNECTOR,
    HULL_ORG,
    HULL_SECRET,
    Message,
    Run,
    encode,
    hull_settings,
    skalin_settings,
)


@pytest.fixture
def run_target(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> Callable[[dict, Iterable[Message]], Run]:
    """Run the target in this process, as the SDK's own test helpers do; log as stderr."""

    def run(config: dict, messages: Iterable[Message]) -> Run:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            target = TargetUsage(config=config)
            target.listen(io.StringIO(encode(messages).decode()))
        out, _ = capsys.readouterr()
        states = [json.loads(x) for x in out.splitlines() if x.strip()]
        return Run(0, out, caplog.text, states)

    return run


@pytest.fixture
def skalin() -> Iterator[FakeSkalin]:
    with FakeSkalin(client_id=CLIENT_ID) as server:
        yield server
        assert server.violations == []


@pytest.fixture
def skalin_config(skalin: FakeSkalin, tmp_path: Path) -> dict:
    return skalin_settings(skalin.url, tmp_path)


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
    return hull_settings(hull.url, tmp_path)


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody may write to, root included (root ignores modes: make it immutable)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = os.geteuid() == 0
    if immutable:
        done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"running as root and chattr +i is refused here: {done.stderr!r}")
    try:
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)
