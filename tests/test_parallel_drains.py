"""Sinks drained in parallel (the SDK drains every sink at once at the end of input) hand
their batches to one delivery per API, so every batch is flushed before the run ends."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from target_usage.target import TargetUsage
from target_usage.transport import Delivery
from tests.fakes import FakeSkalin
from tests.harness import run_cli, singer_lines

STREAMS = 8  # the SDK's default max_parallelism: all drained at once at end of input
ROUNDS = 50


def test_every_stream_drained_at_once_at_the_end_is_delivered(
    skalin: FakeSkalin, skalin_config: dict, tmp_path: Path
) -> None:
    messages = [
        line
        for n in range(STREAMS)
        for line in singer_lines(
            f"s{n}-features", [{"email": f"u{n}-{i}@x.io", "name": "x"} for i in range(30)]
        )
    ]
    run = run_cli(skalin_config, messages, tmp_path)
    assert run.exit_code == 0, run.stderr
    assert len(skalin.features) == STREAMS * 30


def deliveries_asked_at_once(target: TargetUsage) -> set[int]:
    """Ids of the Skalin deliveries `STREAMS` threads get when they ask at the same time."""
    api = target.api_for("features")
    start = threading.Barrier(STREAMS)
    got: list[Delivery] = []

    def ask() -> None:
        start.wait()
        got.append(target.delivery_for(api))

    threads = [threading.Thread(target=ask) for _ in range(STREAMS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {id(delivery) for delivery in got}


def test_sinks_asking_at_once_share_one_delivery_per_api(skalin_config: dict) -> None:
    """Two deliveries for one API would leave one unflushed: its records lost, exit 0.

    A tiny thread switch interval makes the drain threads interleave as they do on a
    loaded machine; rounds make a missing lock show every time.
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(ROUNDS):
            assert len(deliveries_asked_at_once(TargetUsage(config=skalin_config))) == 1
    finally:
        sys.setswitchinterval(previous)
