"""Micro-benchmark of the ledger alone: record and lookup cost per 1k keys, size per 1M keys.

Records go in as the delivery path will write them, one call per accepted request of
`--request-items` items; lookups as a sink will ask, one call per batch of `--batch-keys`.

    python benchmarks/ledger_bench.py                      # SQLite, 1M keys
    python benchmarks/ledger_bench.py --keys 200000 --location postgresql://u:p@host/db
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from target_usage.ledger import Ledger, LedgerRow, digest_of, key_hash

DESTINATION = "acme.hullapp.io"
SINK = "track"


def sqlite_bytes(location: str) -> int | None:
    """The ledger's size on disk (file, WAL and shared memory), for an SQLite path."""
    if "://" in location and not location.startswith("sqlite:///"):
        return None
    path = Path(location.removeprefix("sqlite:///"))
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return sum(f.stat().st_size for f in files if f.exists())


def measure(location: str, *, keys: int, request_items: int, batch_keys: int) -> dict:
    """Fills a fresh ledger with `keys` keys and looks them all up again; returns the costs."""
    rows = [
        LedgerRow(key_hash(f"event-{i:012d}"), digest_of(b"body-%d" % i), f"user{i % 2000}@x.io")
        for i in range(keys)
    ]
    now = datetime.now(UTC)
    ledger = Ledger.open(location, read_only=False)
    try:
        started = time.perf_counter()
        for start in range(0, keys, request_items):
            ledger.record(DESTINATION, SINK, rows[start : start + request_items], now=now)
        recorded = time.perf_counter() - started

        started = time.perf_counter()
        found = 0
        for start in range(0, keys, batch_keys):
            batch = [row.key for row in rows[start : start + batch_keys]]
            found += len(ledger.known(DESTINATION, SINK, batch))
        looked_up = time.perf_counter() - started
    finally:
        ledger.close()
    assert found == keys, f"{found} of {keys} keys found again"
    size = sqlite_bytes(location)
    return {
        "keys": keys,
        "record_ms_per_1k_keys": round(recorded / keys * 1000 * 1000, 2),
        "lookup_ms_per_1k_keys": round(looked_up / keys * 1000 * 1000, 2),
        "bytes_per_key": round(size / keys, 1) if size else None,
        "mb_per_million_keys": round(size / keys * 1_000_000 / 1e6, 1) if size else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--request-items", type=int, default=100, help="keys per record call")
    parser.add_argument("--batch-keys", type=int, default=10_000, help="keys per known call")
    parser.add_argument("--location", help="ledger to fill (default: a fresh SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        location = args.location or str(Path(folder) / "ledger.sqlite")
        result = measure(
            location, keys=args.keys, request_items=args.request_items, batch_keys=args.batch_keys
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
