"""The ledger on real SQLite files: what it remembers, what it forgets, how it fails."""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from target_usage import ledger as ledger_module
from target_usage.errors import LedgerError
from target_usage.ledger import (
    DIGEST_BYTES,
    KEY_HASH_BYTES,
    KNOWN_CHUNK_KEYS,
    SCHEMA_VERSION,
    Ledger,
    LedgerRow,
    digest_of,
    key_hash,
    ledger_name,
    subject_text,
)
from target_usage.settings import secret_values

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
ORG = "acme.hullapp.io"


def rows(count: int, *, version: str = "v1", start: int = 0) -> list[LedgerRow]:
    return [
        LedgerRow(key_hash(f"event-{i}"), digest_of(f"{version}-{i}".encode()), f"u{i}@x.io")
        for i in range(start, start + count)
    ]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite"


@pytest.fixture
def ledger(path: Path) -> Iterator[Ledger]:
    opened = Ledger.open(str(path), read_only=False)
    yield opened
    opened.close()


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# Hashing


def test_key_hash_is_sixteen_stable_bytes_that_keep_part_boundaries() -> None:
    assert len(key_hash("a")) == KEY_HASH_BYTES
    assert key_hash("ada@x.io", "plan") == key_hash(b"ada@x.io", "plan")
    assert key_hash("ab", "c") != key_hash("a", "bc")
    assert key_hash("a") != key_hash("a", "")


def test_subject_text_lists_identifiers_sorted_by_name() -> None:
    assert subject_text({"external_id": "42", "email": "ada@x.io"}) == (
        "email=ada@x.io external_id=42"
    )


def test_digest_is_short_and_changes_with_any_byte() -> None:
    assert len(digest_of(b'{"plan":"pro"}')) == DIGEST_BYTES
    assert digest_of(b'{"plan":"pro"}') == digest_of(b'{"plan":"pro"}')
    assert digest_of(b'{"plan":"pro"}') != digest_of(b'{"plan":"pro "}')


# Round trips


def test_first_open_creates_a_wal_mode_ledger_file(path: Path, ledger: Ledger) -> None:
    assert path.exists()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT version FROM target_usage_ledger_schema").fetchall() == [
            (SCHEMA_VERSION,)
        ]


def test_recorded_items_are_known_with_their_digest_per_destination_and_sink(
    ledger: Ledger,
) -> None:
    sent = rows(3)
    ledger.record(ORG, "track", sent, now=NOW)

    unknown = key_hash("never-sent")
    known = ledger.known(ORG, "track", [r.key for r in sent] + [unknown])

    assert known == {r.key: r.digest for r in sent}
    assert ledger.known("other.hullapp.io", "track", [r.key for r in sent]) == {}
    assert ledger.known(ORG, "traits", [r.key for r in sent]) == {}


def test_a_new_ledger_is_created_with_its_missing_folders(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ledgers" / "prod.sqlite"

    Ledger.open(f"sqlite:///{path}", read_only=False).close()

    assert path.is_file()


def test_recorded_items_survive_closing_and_reopening(path: Path) -> None:
    first = Ledger.open(str(path), read_only=False)
    first.record(ORG, "traits", rows(2), now=NOW)
    first.close()

    again = Ledger.open(f"sqlite:///{path}", read_only=False)
    try:
        assert len(again.known(ORG, "traits", [r.key for r in rows(2)])) == 2
    finally:
        again.close()


def test_recording_a_key_again_replaces_its_digest(ledger: Ledger) -> None:
    ledger.record(ORG, "traits", rows(2, version="old"), now=NOW)
    ledger.record(ORG, "traits", rows(1, version="new"), now=NOW + timedelta(hours=1))

    known = ledger.known(ORG, "traits", [r.key for r in rows(2)])

    assert known == {
        rows(1)[0].key: rows(1, version="new")[0].digest,
        rows(2)[1].key: rows(2, version="old")[1].digest,
    }


def test_refused_items_are_not_known_until_delivered(ledger: Ledger, path: Path) -> None:
    ledger.record(ORG, "track", rows(1, version="old"), now=NOW)
    ledger.record_refused(ORG, "track", rows(1, version="new"), reason="HTTP 400", now=NOW)

    assert ledger.known(ORG, "track", [rows(1)[0].key]) == {}
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT status, reason FROM target_usage_ledger").fetchall() == [
            ("refused", "HTTP 400")
        ]

    ledger.record(ORG, "track", rows(1, version="new"), now=NOW)
    assert ledger.known(ORG, "track", [rows(1)[0].key]) == {
        rows(1)[0].key: rows(1, version="new")[0].digest
    }


def test_ten_thousand_keys_are_looked_up_one_query_per_chunk(ledger: Ledger) -> None:
    sent = rows(10_000)
    ledger.record(ORG, "features", sent[::2], now=NOW)
    selects: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
    try:
        known = ledger.known(ORG, "features", [r.key for r in sent])
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", count)

    assert known == {r.key: r.digest for r in sent[::2]}
    assert len(selects) == -(-10_000 // KNOWN_CHUNK_KEYS)


# Read-only (dry runs)


def test_read_only_ledger_reads_and_leaves_the_file_byte_identical(path: Path) -> None:
    writer = Ledger.open(str(path), read_only=False)
    writer.record(ORG, "track", rows(5), now=NOW)
    writer.close()
    before, files = file_digest(path), sorted(os.listdir(path.parent))

    reader = Ledger.open(str(path), read_only=True)
    try:
        assert len(reader.known(ORG, "track", [r.key for r in rows(5)])) == 5
        with pytest.raises(LedgerError, match="read-only"):
            reader.record(ORG, "track", rows(1, version="changed"), now=NOW)
        with pytest.raises(LedgerError, match="read-only"):
            reader.prune(NOW)
    finally:
        reader.close()

    assert file_digest(path) == before
    assert sorted(os.listdir(path.parent)) == files


def test_read_only_ledger_that_does_not_exist_reads_empty_and_is_not_created(
    path: Path,
) -> None:
    reader = Ledger.open(str(path), read_only=True)
    try:
        assert reader.known(ORG, "track", [key_hash("e")]) == {}
    finally:
        reader.close()

    assert os.listdir(path.parent) == []


# Retention


def test_prune_deletes_only_event_keys_not_seen_since_the_cutoff(ledger: Ledger) -> None:
    old, cutoff = NOW - timedelta(days=100), NOW - timedelta(days=90)
    for sink in ("identities", "features", "track", "traits", "alias"):
        ledger.record(ORG, sink, rows(2), now=old)
    ledger.touch(ORG, "track", [rows(1)[0].key], now=NOW)  # still carried by the sync

    deleted = ledger.prune(cutoff)

    assert deleted == 5
    assert ledger.known(ORG, "identities", [r.key for r in rows(2)]) == {}
    assert ledger.known(ORG, "features", [r.key for r in rows(2)]) == {}
    assert list(ledger.known(ORG, "track", [r.key for r in rows(2)])) == [rows(1)[0].key]
    assert len(ledger.known(ORG, "traits", [r.key for r in rows(2)])) == 2
    assert len(ledger.known(ORG, "alias", [r.key for r in rows(2)])) == 2


def test_touch_rewrites_a_key_at_most_once_a_day(ledger: Ledger, path: Path) -> None:
    ledger.record(ORG, "track", rows(1), now=NOW - timedelta(days=3))
    key = rows(1)[0].key

    def seen() -> int:
        with sqlite3.connect(path) as conn:
            return conn.execute("SELECT seen_at FROM target_usage_ledger").fetchone()[0]

    ledger.touch(ORG, "track", [key], now=NOW)
    after_first = seen()
    ledger.touch(ORG, "track", [key], now=NOW + timedelta(hours=23))
    after_second = seen()
    ledger.touch(ORG, "track", [key], now=NOW + timedelta(hours=25))

    assert after_first == int(NOW.timestamp())
    assert after_second == after_first
    assert seen() == int((NOW + timedelta(hours=25)).timestamp())


def test_lookup_names_stale_only_the_delivered_keys_not_seen_for_a_day(ledger: Ledger) -> None:
    ledger.record(ORG, "track", rows(1), now=NOW - timedelta(days=3))
    ledger.record(ORG, "track", rows(1, start=1), now=NOW - timedelta(hours=23))
    ledger.record_refused(ORG, "track", rows(1, start=2), reason="400", now=NOW - timedelta(days=3))
    keys = [r.key for r in rows(3)]

    found = ledger.lookup(ORG, "track", keys, now=NOW)

    assert found.digests == {r.key: r.digest for r in rows(2)}
    assert found.stale == {rows(1)[0].key}
    assert ledger.lookup(ORG, "track", keys, now=None).stale == set()


# Schema versions


def test_opening_runs_the_migration_steps_an_older_ledger_misses(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = Ledger.open(str(path), read_only=False)
    older.record(ORG, "traits", rows(1), now=NOW)
    older.close()

    def add_note_column(conn: sa.Connection) -> None:
        conn.exec_driver_sql("ALTER TABLE target_usage_ledger ADD COLUMN note TEXT")

    # The next release of the schema: one step more.
    monkeypatch.setattr(ledger_module, "MIGRATIONS", (*ledger_module.MIGRATIONS, add_note_column))
    monkeypatch.setattr(ledger_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    for _ in range(2):  # the second open finds nothing left to do
        newer = Ledger.open(str(path), read_only=False)
        try:
            assert newer.known(ORG, "traits", [rows(1)[0].key]) == {
                rows(1)[0].key: rows(1)[0].digest
            }
        finally:
            newer.close()

    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM target_usage_ledger_schema").fetchall() == [
            (SCHEMA_VERSION + 1,)
        ]
        columns = [row[1] for row in conn.execute("PRAGMA table_info(target_usage_ledger)")]
        assert columns[-1] == "note"


def test_a_ledger_of_a_newer_schema_version_is_refused_by_name(path: Path) -> None:
    Ledger.open(str(path), read_only=False).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE target_usage_ledger_schema SET version = ?", (SCHEMA_VERSION + 1,))

    for read_only in (False, True):
        with pytest.raises(LedgerError, match=r"newer than this target-usage knows") as error:
            Ledger.open(str(path), read_only=read_only)
        assert str(path) in str(error.value)


# Failures at start-up


def test_a_file_that_is_not_a_database_is_named_with_the_cause(path: Path) -> None:
    path.write_text("email,plan\nada@x.io,pro\n" * 200)
    before = file_digest(path)

    for read_only in (False, True):
        with pytest.raises(LedgerError) as error:
            Ledger.open(str(path), read_only=read_only)
        assert str(path) in str(error.value)
        assert "not a database" in str(error.value)
    assert file_digest(path) == before


def test_a_ledger_locked_by_another_process_beyond_the_timeout_fails_clearly(
    path: Path,
) -> None:
    Ledger.open(str(path), read_only=False).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            f"conn = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
            "conn.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LedgerError) as error:
            Ledger.open(str(path), read_only=False, busy_timeout=0.2)
    finally:
        holder.communicate("", timeout=30)

    message = str(error.value)
    assert str(path) in message
    assert "database is locked" in message
    assert "another process held it for more than 0.2 s" in message


def test_a_ledger_in_a_read_only_folder_fails_clearly(read_only_folder: Path) -> None:
    location = str(read_only_folder / "ledger.sqlite")

    with pytest.raises(LedgerError) as error:
        Ledger.open(location, read_only=False)

    message = str(error.value)
    assert location in message
    assert "unable to open database file" in message
    assert "may create and write files there" in message
    assert os.listdir(read_only_folder) == []


def test_a_ledger_whose_folder_cannot_be_created_fails_clearly(read_only_folder: Path) -> None:
    location = str(read_only_folder / "ledgers" / "ledger.sqlite")

    with pytest.raises(LedgerError) as error:
        Ledger.open(location, read_only=False)

    assert location in str(error.value)
    assert "could not create its folder" in str(error.value)
    assert os.listdir(read_only_folder) == []


def _closed_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_postgresql_ledger_is_named_with_its_password_redacted() -> None:
    port = _closed_loopback_port()
    location = f"postgresql://usage:Pa55-secret@127.0.0.1:{port}/ledger"

    with pytest.raises(LedgerError) as error:
        Ledger.open(location, read_only=False)

    message = str(error.value)
    assert "Pa55-secret" not in message
    assert f"'postgresql://usage:***@127.0.0.1:{port}/ledger'" in message
    assert "check the host, port, credentials" in message


def test_a_postgresql_ledger_without_its_driver_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the extra were not installed

    with pytest.raises(LedgerError, match=r"pip install 'target-usage\[postgres\]'") as error:
        Ledger.open("postgresql://usage:Pa55-secret@127.0.0.1/ledger", read_only=True)
    assert "Pa55-secret" not in str(error.value)


def test_the_ledger_url_password_is_among_the_redacted_secrets() -> None:
    config = {"ledger": "postgresql://usage:p%40ss-word@db.internal/ledger"}

    assert {"p%40ss-word", "p@ss-word"} <= set(secret_values(config))
    assert secret_values({"ledger": "target-usage-ledger.sqlite"}) == []
    assert ledger_name("postgresql://usage:p@ss@db.internal:x/ledger") == (
        "postgresql://usage:***@db.internal:x/ledger"
    )


def test_the_postgres_extra_brings_the_driver_and_ci_installs_it() -> None:
    root = Path(__file__).resolve().parents[1]
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]

    assert extras["postgres"] == ["psycopg[binary]>=3.2"]
    assert '-e ".[test,postgres]"' in (root / ".ci" / "run").read_text()
    assert ledger_module.POSTGRES_EXTRA_HINT == "pip install 'target-usage[postgres]'"
