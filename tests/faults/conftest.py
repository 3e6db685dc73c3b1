"""Fixtures of the fault suite: fresh loopback servers per scenario and a bench to run on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeHull, FakeSkalin
from tests.faults import render_reliability
from tests.faults.harness import (
    Ledger,
    Outcome,
    Servers,
    accepted_items,
    after_last_state,
    assert_no_secret,
    base_config,
    dead_records,
    records_of,
    skipped_count,
)
from tests.harness import CLIENT_ID, HULL_CONNECTOR, HULL_ORG, HULL_SECRET, Message, Run, run_cli


class Bench:
    """One scenario's servers, working directory and ledger of what its runs did."""

    def __init__(self, servers: Servers, workdir: Path) -> None:
        self.servers = servers
        self.workdir = workdir
        self.ledger: Ledger | None = None

    @property
    def skalin(self) -> FakeSkalin:
        return self.servers.skalin

    @property
    def hull(self) -> FakeHull:
        return self.servers.hull

    @property
    def dead_letter_path(self) -> Path:
        return self.workdir / "rejected.jsonl"

    @property
    def dry_run_path(self) -> Path:
        return self.workdir / "requests.jsonl"

    def config(self, **overrides: Any) -> dict[str, Any]:
        return {**base_config(self.servers, self.workdir), **overrides}

    def start(self, messages: list[Message]) -> None:
        """Declare the scenario's input: its records are what must be accounted for."""
        self.ledger = Ledger(records_of(messages))

    def marks(self) -> tuple[int, int]:
        return len(self.skalin.accepted), len(self.hull.accepted)

    def finish(self, run: Run) -> Run:
        """After a run: let late handlers finish, check no secret leaked, count set-asides."""
        self.servers.settle()
        assert run.stray == [], "stdout holds more than Singer STATE lines"
        assert_no_secret(run, self.dead_letter_path, self.dry_run_path)
        assert self.ledger is not None
        self.ledger.skipped += skipped_count(run)
        return run

    def run(self, config: dict[str, Any], messages: list[Message], **kwargs: Any) -> Run:
        return self.finish(run_cli(config, messages, self.workdir, **kwargs))

    def rerun(self, config: dict[str, Any], messages: list[Message], first: Run) -> Run:
        """What a user does after a failed run: rerun from its last STATE, server healthy."""
        self.servers.heal()
        run = self.run(config, after_last_state(messages, first.states))
        assert run.exit_code == 0, run.stderr
        return run

    def outcome(self, row: str, **kwargs: Any) -> Outcome:
        """Reconcile everything stored so far with the input, and record the matrix row."""
        assert self.ledger is not None
        self.ledger.items = accepted_items(self.skalin) + accepted_items(self.hull)
        self.ledger.dead = dead_records(self.dead_letter_path)
        measured = self.ledger.outcome(row, **kwargs)
        assert measured.lost == 0, measured
        render_reliability.record(measured)
        return measured


@pytest.fixture
def servers() -> Iterator[Servers]:
    with (
        FakeSkalin(client_id=CLIENT_ID) as skalin,
        FakeHull(HULL_ORG, HULL_CONNECTOR, HULL_SECRET) as hull,
    ):
        yield Servers(skalin, hull)
        assert skalin.violations == []
        assert hull.violations == []


@pytest.fixture
def bench(servers: Servers, tmp_path: Path) -> Bench:
    return Bench(servers, tmp_path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The check of docs/reliability.md needs every row measured: run it last."""
    last = [i for i in items if getattr(i, "module", None) and i.module.__name__.endswith("_doc")]
    for item in last:
        items.remove(item)
        items.append(item)
