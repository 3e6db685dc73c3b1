"""Two target processes at once on overlapping inputs, sharing one PostgreSQL ledger (the
sharding path of docs/scaling.md), through the real CLI against one fake Skalin."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeSkalin
from tests.harness import (
    CLIENT_ID,
    RUN_TIMEOUT_SECONDS,
    encode,
    run_cli,
    singer_lines,
    skalin_settings,
    start_cli,
    state_message,
)

pytestmark = pytest.mark.integration


def features(start: int, end: int) -> list[dict[str, Any]]:
    """Rows without event_id: their ids are digests of their content, the same in any process."""
    return [
        {"email": f"u{i}@x.io", "name": "export", "ts": "2026-11-02T09:00:00Z", "seq": i}
        for i in range(start, end)
    ]


def test_two_processes_sharing_one_postgresql_ledger_deliver_every_record_the_overlap_at_most_twice(
    location: str, tmp_path: Path
) -> None:
    with FakeSkalin(client_id=CLIENT_ID) as skalin:
        skalin.latency = 0.01
        shards = {"a": features(0, 2000), "b": features(1000, 3000)}
        processes = []
        for name, rows in shards.items():
            workdir = tmp_path / name
            workdir.mkdir()
            config = {
                **skalin_settings(skalin.url, workdir),
                "ledger": location,
                "max_concurrent_requests": 2,
                "progress_interval": 0,
            }
            messages = [*singer_lines("features", rows), state_message({"shard": name})]
            process = start_cli(config, workdir)
            processes.append((process, encode(messages)))
        results = [p.communicate(data, timeout=RUN_TIMEOUT_SECONDS) for p, data in processes]

        sent = skalin.features
        rerun = run_cli(
            {**skalin_settings(skalin.url, tmp_path), "ledger": location},
            singer_lines("features", features(0, 3000)),
            tmp_path,
        )
        assert skalin.violations == []

    for (process, _), (stdout, stderr), name in zip(processes, results, shards, strict=True):
        assert process.returncode == 0, stderr.decode()[-3000:]
        assert json.loads(stdout) == {"shard": name}
    per_record = Counter(item["identity"]["email"] for item in sent)
    ids: dict[str, set[str]] = {}
    for item in sent:
        ids.setdefault(item["identity"]["email"], set()).add(item["eventId"])
    assert set(per_record) == {f"u{i}@x.io" for i in range(3000)}  # every record delivered
    assert max(per_record.values()) <= 2  # the overlap at most twice
    assert all(len(found) == 1 for found in ids.values())  # with the same ids
    assert all(per_record[f"u{i}@x.io"] == 1 for i in (*range(1000), *range(2000, 3000)))
    assert rerun.exit_code == 0
    assert "0 items sent in 0 requests (0 retries), 3,000 unchanged" in rerun.stderr
