"""docs/ledger.md's queries run as written against a real ledger and find what they promise."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from target_usage.ledger import Ledger, LedgerRow, digest_of, key_hash, subject_text

DOC = Path(__file__).resolve().parents[1] / "docs" / "ledger.md"
NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
ORG = "acme.hullapp.io"
ADA = subject_text({"email": "ada@example.com", "external_id": "42"})
BOB = subject_text({"email": "bob@example.com"})


def doc_queries(dialect: str) -> list[str]:
    """The SQL blocks whose first line says they are for `dialect` (sqlite3 or psql)."""
    blocks = re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    return [b for b in blocks if b.startswith("-- ") and dialect in b.splitlines()[0]]


def filled_ledger(location: str) -> None:
    ledger = Ledger.open(location, read_only=False)
    try:
        ledger.record(
            ORG, "traits", [LedgerRow(key_hash(ADA, "plan"), digest_of(b"1"), ADA)], now=NOW
        )
        ledger.record(
            ORG, "track", [LedgerRow(key_hash("e1"), digest_of(b"2"), BOB)], now=NOW - timedelta(1)
        )
        ledger.record_refused(
            ORG,
            "track",
            [LedgerRow(key_hash("e2"), digest_of(b"3"), ADA)],
            reason="HTTP 400",
            now=NOW,
        )
    finally:
        ledger.close()


def test_docs_sqlite3_queries_answer_as_documented(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    filled_ledger(str(path))
    queries = doc_queries("sqlite3")
    assert len(queries) == 5

    with sqlite3.connect(path) as conn:
        person, last, per_sink, refused = (conn.execute(q).fetchall() for q in queries[:4])
        assert [(row[0], row[1]) for row in person] == [
            ("track", "refused"),
            ("traits", "delivered"),
        ]
        assert last == [
            (ORG, "traits", "2026-12-01 03:00:00"),
            (ORG, "track", "2026-11-30 03:00:00"),
        ]
        assert per_sink == [
            (ORG, "track", "delivered", 1),
            (ORG, "track", "refused", 1),
            (ORG, "traits", "delivered", 1),
        ]
        assert refused == [("track", ADA, "HTTP 400", "2026-12-01 03:00:00")]
        conn.execute(queries[4])
        assert conn.execute("SELECT subject FROM target_usage_ledger").fetchall() == [(BOB,)]
