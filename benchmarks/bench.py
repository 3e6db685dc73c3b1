"""Benchmark: target-usage against do-nothing singer-sdk targets on the same input.

Each case runs every contender as a real subprocess reading the same Singer file,
several rounds, and reports the median wall time, records/s, peak RSS and the ratio to
the two yardsticks (the SDK's default do-nothing target and its fastest one).

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
    peak_rss_mb: float
    exit_code: int


def run(command: list[str], input_path: Path, log_path: Path) -> Outcome:
    """Run one contender; peak RSS comes from wait4, so it is this child's alone."""
    started = time.perf_counter()
    with input_path.open("rb") as stdin, log_path.open("wb") as stderr:
        process = subprocess.Popen(command, stdin=stdin, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    return Outcome(seconds, usage.ru_maxrss / 1024, code)


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
    results: dict[str, dict] = {}
    server = BenchServer(**case.server)
    try:
        config_path = workdir / "config.json"
        config_path.write_text(json.dumps(case.config(server.url)))
        for name, command in contenders(case, config_path).items():
            outcomes = []
            for _ in range(rounds):
                server.requests = server.items = server.rate_limited = 0
                server.first_at = 0.0
                outcome = run(command, input_path, workdir / f"{name}.log")
                if outcome.exit_code != 0:
                    tail = (workdir / f"{name}.log").read_text()[-2000:]
                    raise SystemExit(f"{name} failed ({outcome.exit_code}):\n{tail}")
                outcomes.append(outcome)
            seconds = statistics.median(o.seconds for o in outcomes)
            results[name] = {
                "seconds": seconds,
                "records_per_s": case.records / seconds,
                "peak_rss_mb": max(o.peak_rss_mb for o in outcomes),
                "items_received": server.items if name == "target-usage" else None,
                "requests": server.requests if name == "target-usage" else None,
                "rate_limited": server.rate_limited if name == "target-usage" else None,
                "send_window_s": server.last_at - server.first_at,
            }
    finally:
        server.close()
    return results


def print_case(case: Case, results: dict, baseline: dict | None) -> None:
    print(f"\n## {case.name} ({case.records:,} records)")
    print(
        f"{'contender':<14} {'median s':>9} {'records/s':>11} {'peak MB':>8} "
        f"{'vs default':>10} {'vs fast':>8} {'vs saved':>9}"
    )
    default = results.get("noop-default", {}).get("records_per_s")
    fast = results.get("noop-fast", {}).get("records_per_s")
    for name, r in results.items():
        rate = r["records_per_s"]
        saved = (baseline or {}).get(case.name, {}).get(name, {}).get("records_per_s")
        print(
            f"{name:<14} {r['seconds']:>9.2f} {rate:>11,.0f} {r['peak_rss_mb']:>8.0f} "
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


def headline(key: str, case: Case, results: dict) -> str:
    """The one number each case is about."""
    ours = results["target-usage"]
    if case.server.get("rps"):
        ceiling = case.server["rps"] * 100
        rate = ours["items_received"] / (ours["send_window_s"] + 1 / case.server["rps"])
        return (
            f"{key}: {rate:,.0f} items/s = {rate / ceiling:.0%} of the {ceiling:,} ceiling, "
            f"{ours['requests']} requests, {ours['rate_limited']} x 429"
        )
    if key.startswith("memory"):
        return f"{key}: peak RSS {ours['peak_rss_mb']:.0f} MB"
    default = results.get("noop-default", {}).get("records_per_s")
    fast = results.get("noop-fast", {}).get("records_per_s")
    return (
        f"{key}: {ours['records_per_s']:,.0f} rec/s ({_ratio(ours['records_per_s'], default)} "
        f"default noop, {_ratio(ours['records_per_s'], fast)} fast noop)"
    )


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
    summary = []
    with tempfile.TemporaryDirectory(prefix="target-usage-bench-") as tmp:
        for key in args.cases.split(","):
            if key in LEDGER_CASE_KEYS:  # issue #14 goal e: ledger_cases.py
                from ledger_cases import run_ledger_case

                summary += run_ledger_case(key, Path(tmp), args.records, args.rounds)
                continue
            case = CASES[key]
            if args.records:
                case = dataclasses.replace(case, records=args.records)
            results = bench_case(case, args.rounds, Path(tmp))
            everything[case.name] = results
            print_case(case, results, baseline)
            signed = _tokens_signed(Path(tmp) / "target-usage.log")
            if signed is not None:
                print(f"tokens signed: {signed:,} ({signed / case.records:.4f} per record)")
            summary.append(headline(key, case, results))
    small = everything.get(CASES["memory-100k"].name, {}).get("target-usage")
    large = everything.get(CASES["memory-1m"].name, {}).get("target-usage")
    if small and large:
        summary.append(f"memory 1M/100k: {large['peak_rss_mb'] / small['peak_rss_mb']:.2f}x")
    print("\nsummary:\n  " + "\n  ".join(summary))
    if args.save:
        args.save.write_text(json.dumps(everything, indent=2))


if __name__ == "__main__":
    main()
