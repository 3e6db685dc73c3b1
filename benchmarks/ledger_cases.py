"""Issue #14 goal e: what the ledger costs in a run, each case on a temporary SQLite ledger.

- e.   CPU seconds of cases a (features) and b (Hull track) with the ledger on (empty)
       against off (`ledger: ""`): goal at most 10 % more.
- e'.  An unchanged rerun of 200k track (everything in the ledger): 0 requests, and
       records/s at least half the fast do-nothing target's.
- e''. 1M features against a ledger holding their 1M keys: peak RSS at most 150 MB; also
       the ledger's size on disk per million keys.

Run through `bench.py --cases e,e1,e2` (or this file alone, same options).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import bench
from server import BenchServer

from target_usage.ledger import Ledger, ledger_sink
from target_usage.skalin import SkalinApi

HERE = Path(__file__).resolve().parent
FILL_CHUNK = 10_000


@dataclass
class Measured:
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    requests: int


def measure(command: list[str], input_path: Path, log_path: Path, server: BenchServer) -> Measured:
    """One subprocess run: wall and CPU time (user + system, from wait4), peak RSS, requests."""
    server.requests = server.items = server.rate_limited = 0
    started = time.perf_counter()
    with input_path.open("rb") as stdin, log_path.open("wb") as stderr:
        process = subprocess.Popen(command, stdin=stdin, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command} failed:\n{log_path.read_text()[-2000:]}")
    return Measured(
        time.perf_counter() - started,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        server.requests,
    )


def target(config: dict, workdir: Path, name: str) -> list[str]:
    path = workdir / f"{name}.json"
    path.write_text(json.dumps(config))
    return [sys.executable, "-m", "target_usage", "--config", str(path)]


def fresh(path: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def case_e(workdir: Path, records: int, rounds: int) -> list[str]:
    """Ledger on (a fresh, empty file each round) against off, for features and track."""
    lines = []
    for key in ("features", "hull-track"):
        case = bench.CASES[key]
        input_path = workdir / f"{'+'.join(case.streams)}-{records}.singer"
        if not input_path.exists():
            bench.write_input(input_path, case.streams, records)
        server = BenchServer(**case.server)
        try:
            base = case.config(server.url)
            ledger = workdir / "e.sqlite"
            cpu = {}
            for label, setting in (("off", ""), ("on", str(ledger))):
                command = target({**base, "ledger": setting}, workdir, f"e-{label}")
                runs = []
                for _ in range(rounds):
                    fresh(ledger)
                    runs.append(measure(command, input_path, workdir / "e.log", server))
                cpu[label] = statistics.median(r.cpu_seconds for r in runs)
        finally:
            server.close()
        more = cpu["on"] / cpu["off"] - 1
        lines.append(
            f"e. {key}, {records:,} records: CPU {cpu['on']:.1f} s with the ledger vs "
            f"{cpu['off']:.1f} s without: {more:+.0%} (goal <= +10%)"
        )
    return lines


def case_e1(workdir: Path, records: int, rounds: int) -> list[str]:
    """An unchanged rerun of track, every key in the ledger, against the fast noop."""
    case = bench.CASES["hull-track"]
    input_path = workdir / f"track-{records}.singer"
    if not input_path.exists():
        bench.write_input(input_path, case.streams, records)
    server = BenchServer()
    ledger = fresh(workdir / "e1.sqlite")
    try:
        command = target({**case.config(server.url), "ledger": str(ledger)}, workdir, "e1")
        measure(command, input_path, workdir / "e1.log", server)  # fills the ledger
        reruns = [measure(command, input_path, workdir / "e1.log", server) for _ in range(rounds)]
        noop = [sys.executable, str(HERE / "noop_target.py"), "fast"]
        fast = [measure(noop, input_path, workdir / "noop.log", server) for _ in range(rounds)]
    finally:
        server.close()
    rate = records / statistics.median(r.seconds for r in reruns)
    fast_rate = records / statistics.median(r.seconds for r in fast)
    return [
        f"e'. unchanged rerun of {records:,} track: {rate:,.0f} rec/s = "
        f"{rate / fast_rate:.2f}x the fast noop ({fast_rate:,.0f} rec/s; goal >= 0.5x), "
        f"{max(r.requests for r in reruns)} requests (goal 0), CPU "
        f"{statistics.median(r.cpu_seconds for r in reruns):.1f} s"
    ]


def fill(ledger_path: Path, client_id: str, records: int) -> None:
    """Records the keys of the first `records` usage rows as delivered, as a run would."""
    api = SkalinApi("http://unused", client_id)
    ledger = Ledger.open(str(ledger_path), read_only=False)
    now = datetime.now(UTC)
    try:
        for start in range(0, records, FILL_CHUNK):
            rows = [
                api.ledger_row("features", api.build("features", bench.usage_row(i)))
                for i in range(start, min(start + FILL_CHUNK, records))
            ]
            ledger.record(client_id, ledger_sink("features"), rows, now=now)
    finally:
        ledger.close()


def case_e2(workdir: Path, records: int, rounds: int) -> list[str]:
    """1M features against a ledger holding their 1M keys: memory, and size on disk."""
    case = bench.CASES["features"]
    input_path = workdir / f"features-{records}.singer"
    if not input_path.exists():
        bench.write_input(input_path, case.streams, records)
    server = BenchServer()
    ledger = fresh(workdir / "e2.sqlite")
    try:
        config = {**case.config(server.url), "ledger": str(ledger)}
        fill(ledger, config["skalin_client_id"], records)
        size = disk_bytes(ledger)
        command = target(config, workdir, "e2")
        runs = [measure(command, input_path, workdir / "e2.log", server) for _ in range(rounds)]
    finally:
        server.close()
    peak = max(r.peak_rss_mb for r in runs)
    return [
        f"e''. {records:,} features, {records:,}-key ledger: peak RSS {peak:.0f} MB "
        f"(goal <= 150 MB), {max(r.requests for r in runs)} requests, "
        f"{records / statistics.median(r.seconds for r in runs):,.0f} rec/s; ledger "
        f"{size / records * 1e6 / 1e6:.0f} MB on disk per million keys"
    ]


# Case key → (function, default record count)
LEDGER_CASES: dict[str, tuple[Callable[..., list[str]], int]] = {
    "e": (case_e, 200_000),
    "e1": (case_e1, 200_000),
    "e2": (case_e2, 1_000_000),
}


def run_ledger_case(key: str, workdir: Path, records: int | None, rounds: int) -> list[str]:
    """Runs case `key` (e, e1, e2) and prints its lines; `records` overrides its default."""
    function, default = LEDGER_CASES[key]
    lines = function(workdir, records or default, rounds)
    for line in lines:
        print(line)
    return lines


if __name__ == "__main__":
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", default=",".join(LEDGER_CASES))
    parser.add_argument("--records", type=int)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="target-usage-bench-") as tmp:
        for case_key in args.cases.split(","):
            run_ledger_case(case_key, Path(tmp), args.records, args.rounds)
