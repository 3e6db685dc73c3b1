"""Benchmark: target-usage against do-nothing singer-sdk targets on the same input.

Each case runs every contender as a real subprocess reading the same Singer file,
several rounds (contenders take turns, so a busy neighbour on a shared machine weighs on
all of them alike), and reports medians of wall time, CPU time (user + system, from
wait4: the child's alone), records/s, peak RSS, and ratios to the two yardsticks (the
SDK's default do-nothing target and its fastest one). It ends with the goals table of
issue #14: each goal, the number measured beside it, and whether it is met.

    python benchmarks/bench.py                       # all cases
    python benchmarks/bench.py --cases features --records 50000 --rounds 3
    python benchmarks/bench.py --save base.json      # then --compare base.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server import BenchServer

HERE = Path(__file__).resolve().parent
SCHEMA = {
    "type": "object",
    "properties": {
        "email": {"type": ["string", "null"]},
        "user_id": {"type": ["string", "null"]},
        "customer_id": {"type": ["string", "null"]},
        "account_domain": {"type": ["string", "null"]},
        "name": {"type": ["string", "null"]},
        "event": {"type": ["string", "null"]},
        "ts": {"type": ["string", "null"], "format": "date-time"},
        "url": {"type": ["string", "null"]},
        "ip": {"type": ["string", "null"]},
        "duration_ms": {"type": ["number", "null"]},
        "seats": {"type": ["integer", "null"]},
        "is_trial": {"type": ["boolean", "null"]},
        "plan": {
            "type": ["object", "null"],
            "properties": {"tier": {"type": "string"}, "price": {"type": "number"}},
        },
    },
}


def usage_row(i: int) -> dict:
    """A rich usage row as a warehouse view would emit it; 2,000 users, 50 accounts."""
    return {
        "email": f"user{i % 2000}@example.com",
        "user_id": f"u-{i % 2000}",
        "customer_id": f"acct-{i % 50}",
        "account_domain": f"acct{i % 50}.example.com",
        "name": f"feature-{i % 37}",
        "event": f"feature-{i % 37}",
        "ts": f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{i * 7 % 60:02d}.{i % 1000:03d}"
        "+01:00",
        "url": f"https://app.example.com/p/{i % 300}",
        "ip": f"203.0.113.{i % 250}",
        "duration_ms": i % 5000 + 0.25,
        "seats": i % 40,
        "is_trial": i % 3 == 0,
        "plan": {"tier": "pro" if i % 2 else "team", "price": 49.5},
    }


def write_input(path: Path, streams: tuple[str, ...], records: int) -> None:
    """`records` rows spread round-robin over `streams`, then one STATE."""
    with path.open("w") as out:
        for stream in streams:
            schema = {"type": "SCHEMA", "stream": stream, "schema": SCHEMA, "key_properties": []}
            out.write(json.dumps(schema) + "\n")
        for i in range(records):
            stream = streams[i % len(streams)]
            out.write(json.dumps({"type": "RECORD", "stream": stream, "record": usage_row(i)}))
            out.write("\n")
        out.write(json.dumps({"type": "STATE", "value": {"bookmarks": {"rows": records}}}) + "\n")


@dataclass
class Outcome:
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    exit_code: int


def run(command: list[str], input_path: Path, log_path: Path) -> Outcome:
    """Run one contender; CPU time and peak RSS come from wait4: this child's alone."""
    started = time.perf_counter()
    with input_path.open("rb") as stdin, log_path.open("wb") as stderr:
        process = subprocess.Popen(command, stdin=stdin, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    return Outcome(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, code)


@dataclass
class Case:
    name: str
    streams: tuple[str, ...]
    records: int
    config: Callable[[str], dict]
    server: dict = field(default_factory=dict)
    yardsticks: bool = True


def skalin_config(url: str) -> dict:
    # Cases a-d run without the ledger (each round would find the last one's keys); the
    # ledger's cases are in ledger_cases.py.
    return {"skalin_url": url, "skalin_client_id": "bench", "ledger": ""}


def skalin_dry_run(url: str) -> dict:
    return {**skalin_config(url), "dry_run": True, "dry_run_path": os.devnull}


def hull_config(url: str) -> dict:
    return {
        "hull_firehose_url": url,
        "hull_organization": "bench.hullapp.io",
        "hull_connector_id": "bench-connector",
        "hull_connector_secret": "bench-secret-0123456789abcdef0123456789",
        "ledger": "",
    }


# Skalin's documented limit, enforced by the server: 429 with Retry-After above it.
SKALIN_LIMITS = {"latency": 0.1, "rps": 100, "burst": 100}
CASES = {
    "features": Case("a. features, instant server", ("features",), 200_000, skalin_config),
    "features-dry": Case(
        "a'. features, dry run (no API pacing)", ("features",), 200_000, skalin_dry_run
    ),
    "hull-track": Case("b. Hull track, instant server", ("track",), 200_000, hull_config),
    "paced": Case(
        "c. features, 100 ms latency, 100 req/s enforced, default settings",
        ("features",),
        20_000,
        skalin_config,
        SKALIN_LIMITS,
        yardsticks=False,
    ),
    "mixed": Case(
        "c'. identities + features interleaved, 100 ms latency, 100 req/s enforced",
        ("identities", "features"),
        40_000,
        skalin_config,
        SKALIN_LIMITS,
        yardsticks=False,
    ),
    "memory-100k": Case(
        "d. memory, 100k features", ("features",), 100_000, skalin_config, yardsticks=False
    ),
    "memory-1m": Case(
        "d. memory, 1M features", ("features",), 1_000_000, skalin_config, yardsticks=False
    ),
}


# The ledger's cases (goal e), run by ledger_cases.py: e (on vs off), e1 (unchanged rerun),
# e2 (1M features, 1M-key ledger).
LEDGER_CASE_KEYS = ("e", "e1", "e2")


def contenders(case: Case, config_path: Path) -> dict[str, list[str]]:
    python = sys.executable
    found = {"target-usage": [python, "-m", "target_usage", "--config", str(config_path)]}
    if case.yardsticks:
        noop = str(HERE / "noop_target.py")
        found["noop-default"] = [python, noop, "default"]
        found["noop-fast"] = [python, noop, "fast"]
    return found


def bench_case(case: Case, rounds: int, workdir: Path) -> dict:
    input_path = workdir / f"{'+'.join(case.streams)}-{case.records}.singer"
    if not input_path.exists():
        write_input(input_path, case.streams, case.records)
    server = BenchServer(**case.server)
    outcomes: dict[str, list[Outcome]] = {}
    received: dict[str, int | float] = {}
    try:
        config_path = workdir / "config.json"
        config_path.write_text(json.dumps(case.config(server.url)))
        commands = contenders(case, config_path)
        for _ in range(rounds):
            for name, command in commands.items():
                server.requests = server.items = server.rate_limited = 0
                server.first_at = 0.0
                outcome = run(command, input_path, workdir / f"{name}.log")
                if outcome.exit_code != 0:
                    tail = (workdir / f"{name}.log").read_text()[-2000:]
                    raise SystemExit(f"{name} failed ({outcome.exit_code}):\n{tail}")
                outcomes.setdefault(name, []).append(outcome)
                if name == "target-usage":
                    received = {
                        "items_received": server.items,
                        "requests": server.requests,
                        "rate_limited": server.rate_limited,
                        "send_window_s": server.last_at - server.first_at,
                    }
    finally:
        server.close()
    results: dict[str, dict] = {}
    for name, runs in outcomes.items():
        seconds = statistics.median(o.seconds for o in runs)
        results[name] = {
            "seconds": seconds,
            "cpu_seconds": statistics.median(o.cpu_seconds for o in runs),
            "records_per_s": case.records / seconds,
            "peak_rss_mb": max(o.peak_rss_mb for o in runs),
            **(received if name == "target-usage" else {}),
        }
    return results


def print_case(case: Case, results: dict, baseline: dict | None) -> None:
    print(f"\n## {case.name} ({case.records:,} records)")
    print(
        f"{'contender':<14} {'median s':>9} {'CPU s':>7} {'records/s':>11} {'peak MB':>8} "
        f"{'vs default':>10} {'vs fast':>8} {'vs saved':>9}"
    )
    default = results.get("noop-default", {}).get("records_per_s")
    fast = results.get("noop-fast", {}).get("records_per_s")
    for name, r in results.items():
        rate = r["records_per_s"]
        saved = (baseline or {}).get(case.name, {}).get(name, {}).get("records_per_s")
        print(
            f"{name:<14} {r['seconds']:>9.2f} {r['cpu_seconds']:>7.2f} {rate:>11,.0f} "
            f"{r['peak_rss_mb']:>8.0f} "
            f"{_ratio(rate, default):>10} {_ratio(rate, fast):>8} {_ratio(rate, saved):>9}"
        )
    ours = results["target-usage"]
    print(
        f"server received {ours['items_received']:,} items in {ours['requests']:,} requests, "
        f"{ours['rate_limited']} answered 429"
    )


def _tokens_signed(log: Path) -> int | None:
    """The run summary's token count, for Hull cases."""
    for line in log.read_text().splitlines():
        if "Hull tokens signed: " in line:
            return int(line.rsplit("Hull tokens signed: ", 1)[1].split()[0])
    return None


def _ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}x" if base else "-"


Measured = tuple[str, bool] | None  # what to print beside the goal, and whether it is met


def _cpu_cheaper(by_key: dict[str, dict]) -> Measured:
    results = by_key.get("features")
    if not results:
        return None
    ours, default = results["target-usage"]["cpu_seconds"], results["noop-default"]["cpu_seconds"]
    fast = results["noop-fast"]["cpu_seconds"]
    text = (
        f"{ours:.1f} s vs {default:.1f} s: {default / ours:.2f}x cheaper "
        f"(the fast do-nothing target: {fast:.1f} s, {default / fast:.2f}x)"
    )
    return text, default / ours >= 4


def _track_rate(by_key: dict[str, dict]) -> Measured:
    results = by_key.get("hull-track")
    if not results:
        return None
    ours = results["target-usage"]["records_per_s"]
    default = results["noop-default"]["records_per_s"]
    fast = results["noop-fast"]["records_per_s"]
    text = f"{ours / default:.2f}x ({ours:,.0f}/s; default {default:,.0f}/s, fast {fast:,.0f}/s)"
    return text, ours / default >= 3.5


def _paced(by_key: dict[str, dict]) -> Measured:
    results = by_key.get("paced")
    if not results:
        return None
    ours = results["target-usage"]
    rps = CASES["paced"].server["rps"]
    ceiling = rps * 100
    rate = ours["items_received"] / (ours["send_window_s"] + 1 / rps)
    share = rate / ceiling
    text = f"{share:.2f} of the {ceiling:,} items/s ceiling, {ours['rate_limited']} x 429"
    return text, share >= 0.95 and ours["rate_limited"] == 0


def _memory(by_key: dict[str, dict]) -> Measured:
    large = by_key.get("memory-1m", {}).get("target-usage")
    if not large:
        return None
    small = by_key.get("memory-100k", {}).get("target-usage")
    peak = large["peak_rss_mb"]
    if not small:
        return f"{peak:.0f} MB (run memory-100k for the ratio)", peak <= 150
    ratio = peak / small["peak_rss_mb"]
    return f"{peak:.0f} MB, {ratio:.2f}x the 100k peak", peak <= 150 and ratio <= 1.2


# Issue #14's table: case, goal, how to measure it (None: not measured in this run).
GOALS: list[tuple[str, str, Callable[[dict[str, dict]], Measured]]] = [
    (
        "a. features: CPU seconds vs the SDK default do-nothing target",
        ">= 4x cheaper",
        _cpu_cheaper,
    ),
    ("b. track: records/s vs the default do-nothing target", ">= 3.5x", _track_rate),
    (
        "c. 20k features, 100 ms latency, 100 requests/s enforced, default settings",
        ">= 0.95, 0 x 429",
        _paced,
    ),
    ("d. peak RSS, 1M features", "<= 150 MB, <= 1.2x the 100k peak", _memory),
    ("e. ledger on (empty) vs off, cases a and b", "<= 10 % more CPU", lambda m: _ledger(m, "e")),
    (
        "e'. unchanged rerun of 200k track (everything in the ledger)",
        "0 requests, >= 0.5x the fast do-nothing target's records/s",
        lambda m: _ledger(m, "e1"),
    ),
    ("e''. 1M features with a 1M-key ledger", "RSS <= 150 MB", lambda m: _ledger(m, "e2")),
]


def _ledger(by_key: dict, key: str) -> tuple[str, bool | None] | None:
    """Ledger cases print their own lines (ledger_cases.py): point at them."""
    return ("the ledger case's lines below the table", None) if key in by_key else None


def goals_table(by_key: dict[str, dict]) -> str:
    """Issue #14's table, measured: '-' where this run did not measure a case."""
    lines = ["| case | measured | goal | met |", "|---|---|---|---|"]
    for row, goal, measure in GOALS:
        measured = measure(by_key)
        text, met = measured if measured else ("-", None)
        verdict = {True: "yes", False: "**no**", None: "-"}[met]
        lines.append(f"| {row} | {text} | {goal} | {verdict} |")
    return "\n".join(lines)


def _load() -> str:
    """Load average, to tell a quiet machine from a shared busy one."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cases", default=",".join([*CASES, *LEDGER_CASE_KEYS]))
    parser.add_argument("--records", type=int, help="override every case's record count")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--save", type=Path)
    parser.add_argument("--compare", type=Path)
    args = parser.parse_args()
    baseline = json.loads(args.compare.read_text()) if args.compare else None
    everything = {}
    by_key = {}
    print(f"start: {_load()}")
    with tempfile.TemporaryDirectory(prefix="target-usage-bench-") as tmp:
        for key in args.cases.split(","):
            if key in LEDGER_CASE_KEYS:  # issue #14 goal e: ledger_cases.py
                from ledger_cases import run_ledger_case

                by_key[key] = run_ledger_case(key, Path(tmp), args.records, args.rounds)
                continue
            case = CASES[key]
            if args.records:
                case = dataclasses.replace(case, records=args.records)
            results = bench_case(case, args.rounds, Path(tmp))
            everything[case.name] = by_key[key] = results
            print_case(case, results, baseline)
            signed = _tokens_signed(Path(tmp) / "target-usage.log")
            if signed is not None:
                print(f"tokens signed: {signed:,} ({signed / case.records:.4f} per record)")
    print(f"\nend: {_load()}; medians of {args.rounds} rounds\n")
    print(goals_table(by_key))
    for key in LEDGER_CASE_KEYS:
        for line in by_key.get(key, []):
            print(line)
    if args.save:
        args.save.write_text(json.dumps(everything, indent=2))


if __name__ == "__main__":
    main()
