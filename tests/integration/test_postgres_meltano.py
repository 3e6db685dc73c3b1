"""PostgreSQL → Meltano (tap-postgres, INCREMENTAL) → target-usage → Skalin and Hull.

The whole pipeline runs as a user would run it (`meltano run tap-postgres target-usage`)
against a real PostgreSQL and the strict loopback fake APIs, which verify every request
and every token. Every row must arrive once, in the shape the contract gives; a second run
must send only the rows added since (and, as singer-sdk reads the bookmark value again with
`>=`, the bookmark's own row, identical to its first delivery), Meltano keeping the bookmarks
in its system database.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from target_usage.records import id16
from tests.fakes import FakeHull, FakeSkalin
from tests.harness import CLIENT_ID, HULL_CONNECTOR, HULL_ORG, HULL_SECRET
from tests.integration import warehouse
from tests.integration.conftest import MeltanoProject, Postgres

pytestmark = pytest.mark.integration

FIRST = {"identities": 700, "features": 2000, "traits": 450, "track": 1350}
ADDED = 40  # rows per table inserted before the incremental run
STATE_ID = "prod:tap-postgres-to-target-usage"
HEX16 = frozenset("0123456789abcdef")
SKALIN_KINDS = ("identities", "features")


# Expected items, computed from the inserted rows


def utc_seconds(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def utc_millis(value: datetime) -> str:
    at = value.astimezone(UTC)
    return f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}Z"


def present(**values: Any) -> dict[str, Any]:
    """The values that are neither null nor empty: what the APIs are sent."""
    return {k: v for k, v in values.items() if v is not None and v != ""}


def skalin_item(row: dict[str, Any], kind: str) -> dict[str, Any]:
    """The item a row becomes, except the ids only checked for shape (digests of content)."""
    item = present(
        identity=present(email=row["email"], id=row["user_id"]),
        customerId=row["customer_id"],
        ts=utc_seconds(row["ts"]) if row["ts"] else None,
        url=row["url"],
    )
    if kind == "features":
        item |= present(
            localtime=row["localtime"].strftime("%H:%M:%S") if row["localtime"] else None,
            cip=row["ip"],
            name=row["name"],
        )
        if row["event_id"] is not None:
            item["eventId"] = id16(row["event_id"])
    return item


def check_skalin(item: dict[str, Any], row: dict[str, Any], kind: str) -> None:
    expected = skalin_item(row, kind)
    for name in ("eventId", "visitId"):
        assert len(item[name]) == 16
        assert set(item[name]) <= HEX16 or name in expected
    assert item == {"eventId": item["eventId"], **expected, "visitId": item["visitId"]}


def hull_subject(row: dict[str, Any]) -> dict[str, Any]:
    user = present(email=row["email"], external_id=row["external_id"])
    user |= present(anonymous_id=row.get("anonymous_id"))
    account = present(domain=row["account_domain"])
    claims: dict[str, Any] = {"io.hull.subjectType": "user" if user else "account"}
    if user:
        claims["io.hull.asUser"] = user
    if account:
        claims["io.hull.asAccount"] = account
    return claims


def same_instant(sent: str, expected: datetime) -> bool:
    return datetime.fromisoformat(sent) == expected


def check_trait(entry: dict[str, Any], row: dict[str, Any]) -> None:
    body = entry["body"]
    assert set(body) == {
        k
        for k in ("plan", "seats", "mrr", "nps", "logins", "last_seen_at", "updated_at")
        if row[k] is not None
    }
    assert (body["plan"], body["seats"], body["logins"]) == (
        row["plan"],
        row["seats"],
        row["logins"],
    )
    if row["mrr"] is not None:
        assert Decimal(str(body["mrr"])) == row["mrr"]
    if row["nps"] is not None:
        assert body["nps"] == row["nps"]
    assert same_instant(body["last_seen_at"], row["last_seen_at"])
    assert same_instant(body["updated_at"], row["updated_at"])


def check_track(entry: dict[str, Any], row: dict[str, Any]) -> None:
    body = dict(entry["body"])
    event_id = body.pop("event_id")
    if row["event_id"] is not None:
        assert event_id == row["event_id"]
    else:
        assert len(event_id) == 16
        assert set(event_id) <= HEX16
    assert body == present(
        event=row["event"],
        properties=row["properties"],
        ip=row["ip"],
        url=row["url"],
        source=row["source"],
        created_at=utc_millis(row["created_at"]),
    )
    assert entry["timestamp"] == body["created_at"]


# What the fake APIs stored


def skalin_items(skalin: FakeSkalin, kind: str) -> list[dict[str, Any]]:
    return [item for r in skalin.accepted for item in r.json.get(kind, [])]


def hull_entries(hull: FakeHull, kind: str) -> list[dict[str, Any]]:
    return [e for e in hull.entries if e["type"] == kind]


def subject_claims(entry: dict[str, Any]) -> dict[str, Any]:
    claims = entry["claims"]
    assert claims["iss"] == HULL_CONNECTOR
    assert claims["exp"] - claims["iat"] == 3600
    return {k: v for k, v in claims.items() if k.startswith("io.hull.as") or k.endswith("Type")}


def row_key(kind: str, row: dict[str, Any]) -> Any:
    """What tells a row's item apart from the others of its kind."""
    if kind == "identities":
        return json.dumps(present(email=row["email"], id=row["user_id"]), sort_keys=True)
    if kind == "features":
        return row["url"]
    if kind == "traits":
        return json.dumps(hull_subject(row), sort_keys=True)
    return row["id"]


def sent_key(kind: str, sent: dict[str, Any]) -> Any:
    if kind == "identities":
        return json.dumps(sent["identity"], sort_keys=True)
    if kind == "features":
        return sent["url"]
    if kind == "traits":
        return json.dumps(subject_claims(sent), sort_keys=True)
    return sent["body"]["properties"]["n"]


def check_delivery(
    skalin: FakeSkalin, hull: FakeHull, rows: dict[str, list[dict[str, Any]]]
) -> dict[str, dict[Any, Any]]:
    """Every row arrived once, in its shape; returns what was sent, by kind and row key."""
    found: dict[str, dict[Any, Any]] = {}
    for kind, expected in rows.items():
        sent = skalin_items(skalin, kind) if kind in SKALIN_KINDS else hull_entries(hull, kind)
        by_key = {sent_key(kind, item): item for item in sent}
        assert len(by_key) == len(sent), f"{kind}: a row arrived twice"
        assert set(by_key) == {row_key(kind, row) for row in expected}, kind
        for row in expected:
            item = by_key[row_key(kind, row)]
            if kind in SKALIN_KINDS:
                check_skalin(item, row, kind)
            elif kind == "traits":
                check_trait(item, row)
            else:
                assert subject_claims(item) == hull_subject(row)
                check_track(item, row)
        ids = [i["eventId"] if kind in SKALIN_KINDS else i["body"].get("event_id") for i in sent]
        if kind != "traits":
            assert len(set(ids)) == len(ids), f"{kind}: event ids collide"
        found[kind] = by_key
    return found


def run_pipeline(
    project: MeltanoProject, postgres: Postgres, skalin: FakeSkalin, hull: FakeHull, tmp: Path
) -> float:
    started = time.monotonic()
    project.run(
        "--environment=prod",
        "run",
        "tap-postgres",
        "target-usage",
        env={
            **postgres.tap_env("warehouse"),
            "TARGET_USAGE_SKALIN_URL": skalin.url,
            "TARGET_USAGE_SKALIN_CLIENT_ID": CLIENT_ID,
            "TARGET_USAGE_HULL_FIREHOSE_URL": hull.url,
            "TARGET_USAGE_HULL_ORGANIZATION": HULL_ORG,
            "TARGET_USAGE_HULL_CONNECTOR_ID": HULL_CONNECTOR,
            "TARGET_USAGE_HULL_CONNECTOR_SECRET": HULL_SECRET,
            "TARGET_USAGE_DEAD_LETTER_PATH": str(tmp / "rejected.jsonl"),
            "TARGET_USAGE_MAX_RETRIES": "3",
            "TARGET_USAGE_PROGRESS_INTERVAL": "0",
        },
    )
    return time.monotonic() - started


def test_postgres_rows_reach_the_apis_once_then_only_new_rows(
    postgres: Postgres,
    meltano_project: MeltanoProject,
    skalin: FakeSkalin,
    hull: FakeHull,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    with postgres.connect() as admin:
        admin.execute("DROP DATABASE IF EXISTS warehouse")
        admin.execute("CREATE DATABASE warehouse")
    with postgres.connect("warehouse") as db:
        warehouse.create_tables(db)
        first = {t: warehouse.insert(db, t, range(1, n + 1)) for t, n in FIRST.items()}

    first_seconds = run_pipeline(meltano_project, postgres, skalin, hull, tmp_path)
    sent_first = check_delivery(skalin, hull, first)
    assert (skalin.violations, hull.violations) == ([], [])  # tokens verified, contract kept
    assert not (tmp_path / "rejected.jsonl").exists()
    state = json.loads(meltano_project.run("--environment=prod", "state", "get", STATE_ID).stdout)
    bookmarks = state["singer_state"]["bookmarks"]
    for table, rows in first.items():
        bookmark = bookmarks[f"public-{table}"]
        assert bookmark["replication_key"] == "updated_at"
        assert same_instant(bookmark["replication_key_value"], rows[-1]["updated_at"])

    # Incremental: the rows added since, and the bookmark's row again (read with `>=`),
    # which the ledger finds unchanged (same key, same digest), so it is not sent again.
    skalin.reset()
    hull.reset()
    with postgres.connect("warehouse") as db:
        added = {t: warehouse.insert(db, t, range(n + 1, n + 1 + ADDED)) for t, n in FIRST.items()}
    second_seconds = run_pipeline(meltano_project, postgres, skalin, hull, tmp_path)
    sent_second = check_delivery(skalin, hull, added)
    for table, rows in first.items():
        assert row_key(table, rows[-1]) in sent_first[table]
        assert row_key(table, rows[-1]) not in sent_second[table]
    print(
        f"\npostgres -> meltano -> target-usage: first run {sum(FIRST.values())} rows {FIRST} "
        f"in {first_seconds:.1f}s; incremental run {ADDED} new rows per table (+1 bookmark "
        f"row each) in {second_seconds:.1f}s; whole test {time.monotonic() - started:.1f}s",
        file=sys.stderr,
    )
