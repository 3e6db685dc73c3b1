"""The ledger on the real PostgreSQL of the integration suite: shared by concurrent writers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from target_usage.errors import LedgerError
from target_usage.ledger import Ledger, LedgerRow, digest_of, key_hash
from tests.integration.conftest import Postgres
from tests.test_ledger_docs import ADA, BOB, doc_queries, filled_ledger
from tests.test_ledger_docs import NOW as DOC_NOW

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
ORG = "acme.hullapp.io"
WRITERS = 2
ROUNDS = 20


def rows(count: int, *, version: str = "v1") -> list[LedgerRow]:
    return [
        LedgerRow(key_hash(f"event-{i}"), digest_of(f"{version}-{i}".encode()), f"u{i}@x.io")
        for i in range(count)
    ]


def test_postgresql_ledger_round_trip(location: str) -> None:
    ledger = Ledger.open(location, read_only=False)
    try:
        ledger.record(ORG, "traits", rows(3, version="old"), now=NOW - timedelta(days=200))
        ledger.record(ORG, "traits", rows(1, version="new"), now=NOW)
        ledger.record(ORG, "track", rows(2), now=NOW - timedelta(days=200))
        ledger.record_refused(ORG, "features", rows(1), reason="HTTP 400", now=NOW)

        known = ledger.known(ORG, "traits", [r.key for r in rows(4)])
        pruned = ledger.prune(NOW - timedelta(days=90))

        assert known == {
            rows(1)[0].key: rows(1, version="new")[0].digest,
            **{r.key: r.digest for r in rows(3, version="old")[1:]},
        }
        assert ledger.known(ORG, "features", [rows(1)[0].key]) == {}
        assert pruned == 2  # the old track keys; traits stay
        assert ledger.known(ORG, "track", [r.key for r in rows(2)]) == {}
        assert len(ledger.known(ORG, "traits", [r.key for r in rows(3)])) == 3
    finally:
        ledger.close()

    reader = Ledger.open(location, read_only=True)
    try:
        assert len(reader.known(ORG, "traits", [r.key for r in rows(3)])) == 3
    finally:
        reader.close()


def test_two_writers_upserting_the_same_keys_at_once_both_succeed(location: str) -> None:
    """Two processes sharing one ledger: overlapping keys, opposite orders, no deadlock."""
    start = threading.Barrier(WRITERS)
    errors: list[BaseException] = []
    versions = [f"writer-{n}" for n in range(WRITERS)]

    def write(version: str, reverse: bool) -> None:
        try:
            start.wait(timeout=30)
            ledger = Ledger.open(location, read_only=False)  # both create the schema at once
            try:
                for round_ in range(ROUNDS):
                    batch = rows(500, version=version)[round_ * 10 : round_ * 10 + 300]
                    ledger.record(ORG, "track", batch[::-1] if reverse else batch, now=NOW)
            finally:
                ledger.close()
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=write, args=(version, n % 2 == 1))
        for n, version in enumerate(versions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    ledger = Ledger.open(location, read_only=True)
    try:
        known = ledger.known(ORG, "track", [r.key for r in rows(500)])
    finally:
        ledger.close()
    expected_keys = {r.key for r in rows(500)[: (ROUNDS - 1) * 10 + 300]}
    assert set(known) == expected_keys
    written = {r.key: {r.digest} for r in rows(500, version=versions[0])}
    for r in rows(500, version=versions[1]):
        written[r.key].add(r.digest)
    assert all(digest in written[key] for key, digest in known.items())


def test_a_postgresql_ledger_with_a_wrong_password_names_it_redacted(
    postgres: Postgres,
) -> None:
    location = (
        f"postgresql://{postgres.user}:Wrong-Secret-42@{postgres.host}:{postgres.port}/postgres"
    )

    with pytest.raises(LedgerError) as error:
        Ledger.open(location, read_only=False)

    message = str(error.value)
    assert "Wrong-Secret-42" not in message
    assert f"postgresql://{postgres.user}:***@{postgres.host}:{postgres.port}/postgres" in message
    assert "password authentication failed" in message


def test_docs_psql_queries_answer_as_documented(location: str, postgres: Postgres) -> None:
    filled_ledger(location)
    queries = doc_queries("psql")
    assert len(queries) == 5

    with postgres.connect(location.rsplit("/", 1)[1]) as conn:
        person, last, per_sink, refused = (conn.execute(q).fetchall() for q in queries[:4])
        assert [(row[0], row[1]) for row in person] == [
            ("track", "refused"),
            ("traits", "delivered"),
        ]
        assert [(row[1], row[2]) for row in last] == [
            ("traits", DOC_NOW),
            ("track", DOC_NOW - timedelta(days=1)),
        ]
        assert [row[1:] for row in per_sink] == [
            ("track", "delivered", 1),
            ("track", "refused", 1),
            ("traits", "delivered", 1),
        ]
        assert [(row[0], row[1], row[2]) for row in refused] == [("track", ADA, "HTTP 400")]
        conn.execute(queries[4])
        assert conn.execute("SELECT subject FROM target_usage_ledger").fetchall() == [(BOB,)]
