"""The SQL of docs/shaping-your-data.md, run for real: its source tables and views are created
in PostgreSQL, each example row is inserted, and `meltano run tap-postgres target-usage`
dry-runs the views. Every sink must get exactly the item or entry the page shows, which the
page's stream_maps also produce (tests/test_shaping_docs.py): both ways are equivalent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import MeltanoProject, Postgres
from tests.test_shaping_docs import DOC, HULL_SINKS, SINKS, block, blocks, claims_of, masked

pytestmark = pytest.mark.integration

SKALIN_SINKS = ("identities", "features")


def items_by_sink(requests: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Skalin items and Hull entries (one request each, as the page shows them), by sink."""
    found: dict[str, list[dict[str, Any]]] = {}
    for request in requests:
        if request["api"] == "Skalin":
            for sink in SKALIN_SINKS:
                found.setdefault(sink, []).extend(request["body"].get(sink, []))
        else:
            for entry in request["body"]["batch"]:
                found.setdefault(entry["type"], []).append(
                    {**request, "body": {**request["body"], "batch": [entry]}}
                )
    return found


def test_documented_views_give_the_documented_requests(
    postgres: Postgres, meltano_project: MeltanoProject, tmp_path: Path
) -> None:
    sql = blocks(DOC.read_text())
    with postgres.connect() as admin:
        admin.execute("DROP DATABASE IF EXISTS shaping")
        admin.execute("CREATE DATABASE shaping")
        admin.execute("ALTER DATABASE shaping SET timezone TO 'UTC'")
    with postgres.connect("shaping") as db:
        db.execute("CREATE SCHEMA app")
        db.execute("CREATE SCHEMA usage")
        for sink in SINKS:
            db.execute(sql[(sink, "source")])
            db.execute(sql[(sink, "view")])
            record = block(sink, "record")
            table = "app." + record["stream"].split("-", 1)[1]
            db.execute(
                f"INSERT INTO {table} SELECT * FROM jsonb_populate_record(NULL::{table}, %s)",
                [json.dumps(record["record"])],
            )
    config = block("all", "config")
    requests_path = tmp_path / "requests.jsonl"

    meltano_project.run(
        "run",
        "tap-postgres",
        "target-usage",
        env={
            **postgres.tap_env("shaping"),
            "TAP_POSTGRES_FILTER_SCHEMAS": '["usage"]',
            "TAP_POSTGRES__SELECT": '["usage-*.*"]',
            "TAP_POSTGRES__METADATA": json.dumps(
                {"usage-*": {"replication-method": "INCREMENTAL", "replication-key": "updated_at"}}
            ),
            **{f"TARGET_USAGE_{name.upper()}": str(value) for name, value in config.items()},
            "TARGET_USAGE_DRY_RUN_PATH": str(requests_path),
            "TARGET_USAGE_PROGRESS_INTERVAL": "0",
        },
    )

    requests = [json.loads(line) for line in requests_path.read_text().splitlines()]
    sent = items_by_sink(requests)
    assert set(sent) == set(SINKS)
    for sink in SKALIN_SINKS:
        assert sent[sink] == block(sink, "request")["body"][sink], sink
    for sink in HULL_SINKS:
        (request,) = sent[sink]
        assert masked(request) == block(sink, "request"), sink
        shown = block(sink, "claims")
        assert claims_of(request, shown) == shown, sink
