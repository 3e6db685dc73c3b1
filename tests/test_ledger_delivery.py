"""The ledger in delivery, through the real CLI against the fake APIs and real SQLite files:
reruns send only what changed, and a ledger that cannot be used stops the run."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from target_usage.hull import HullApi, TokenSigner, ledger_row
from target_usage.skalin import build_feature
from target_usage.skalin import ledger_row as skalin_ledger_row
from tests.fakes import FakeHull, FakeSkalin
from tests.fakes.server import Fault
from tests.faults.harness import after_last_state, run_cli_interrupted, state
from tests.harness import (
    HULL_CONNECTOR,
    HULL_ORG,
    HULL_SECRET,
    Run,
    hull_settings,
    record_message,
    run_cli,
    schema_message,
    singer_lines,
    skalin_settings,
    state_message,
)


def features(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "email": f"u{i}@x.io",
            "name": "export",
            "event_id": f"f-{i}",
            "ts": "2026-11-02T09:00:00Z",
        }
        for i in range(start, start + count)
    ]


def traits(count: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"email": f"u{i}@x.io", "plan": "pro", "seats": i, **extra} for i in range(count)]


def tracks(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"email": f"u{i}@x.io", "event": "Exported", "event_id": f"t-{i}"}
        for i in range(start, start + count)
    ]


def hull_entries(hull: FakeHull, since: int = 0) -> list[dict[str, Any]]:
    return hull.entries[since:]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def config(skalin: FakeSkalin, hull: FakeHull, tmp_path: Path) -> dict[str, Any]:
    return {
        **skalin_settings(skalin.url, tmp_path),
        **hull_settings(hull.url, tmp_path),
        "progress_interval": 0,
    }


def ok(run: Run) -> Run:
    assert run.exit_code == 0, run.stderr[-3000:]
    return run


# Reruns send only what changed


def test_a_second_run_of_the_same_input_sends_nothing_exits_0_and_still_emits_state(
    skalin: FakeSkalin, hull: FakeHull, config: dict, tmp_path: Path
) -> None:
    messages = [
        *singer_lines("features", features(250)),
        *singer_lines("traits", traits(120)),
        state_message({"done": 1}),
    ]
    first = ok(run_cli(config, messages, tmp_path))
    requests = len(skalin.requests) + len(hull.requests)

    second = ok(run_cli(config, messages, tmp_path))

    assert (len(skalin.features), len(hull.entries)) == (250, 120)
    assert len(skalin.requests) + len(hull.requests) == requests
    assert first.states == second.states == [{"done": 1}]
    assert "0 items sent in 0 requests (0 retries), 250 unchanged" in second.stderr
    assert "0 items sent in 0 requests (0 retries), 120 unchanged" in second.stderr


def test_changing_a_tenth_of_traits_rows_and_adding_track_rows_sends_exactly_those(
    hull: FakeHull, config: dict, tmp_path: Path
) -> None:
    rows = traits(200)
    ok(
        run_cli(
            config, [*singer_lines("traits", rows), *singer_lines("track", tracks(50))], tmp_path
        )
    )
    before = len(hull.entries)
    changed = [dict(row, plan="team") if i % 10 == 0 else row for i, row in enumerate(rows)]

    run = ok(
        run_cli(
            config,
            [*singer_lines("traits", changed), *singer_lines("track", tracks(80))],
            tmp_path,
        )
    )

    sent = hull_entries(hull, before)
    assert sorted(e["body"]["seats"] for e in sent if e["type"] == "traits") == list(
        range(0, 200, 10)
    )
    assert all(e["body"]["plan"] == "team" for e in sent if e["type"] == "traits")
    assert sorted(e["body"]["event_id"] for e in sent if e["type"] == "track") == sorted(
        f"t-{i}" for i in range(50, 80)
    )
    assert "180 unchanged" in run.stderr
    assert "50 unchanged" in run.stderr


def test_a_changed_hull_timestamp_alone_is_not_a_change(
    hull: FakeHull, config: dict, tmp_path: Path
) -> None:
    ok(
        run_cli(
            config, singer_lines("traits", traits(5, timestamp="2026-11-01T00:00:00Z")), tmp_path
        )
    )

    ok(
        run_cli(
            config, singer_lines("traits", traits(5, timestamp="2026-11-30T00:00:00Z")), tmp_path
        )
    )

    assert len(hull.entries) == 5


def test_a_changed_attribute_value_is_sent(hull: FakeHull, config: dict, tmp_path: Path) -> None:
    ok(run_cli(config, singer_lines("traits", traits(5)), tmp_path))

    ok(
        run_cli(
            config, singer_lines("traits", traits(5, plan="team")[:1] + traits(5)[1:]), tmp_path
        )
    )

    assert [e["body"]["plan"] for e in hull.entries] == ["pro"] * 5 + ["team"]


def test_a_new_attribute_set_for_the_same_person_is_its_own_key(
    hull: FakeHull, config: dict, tmp_path: Path
) -> None:
    plans = [{"email": "ada@x.io", "plan": "pro"}]
    scores = [{"email": "ada@x.io", "score": 7}]
    ok(run_cli(config, singer_lines("traits", plans), tmp_path))

    ok(run_cli(config, singer_lines("traits", scores), tmp_path))
    both = [*singer_lines("plans-traits", plans), *singer_lines("scores-traits", scores)]
    ok(run_cli(config, both, tmp_path))

    assert [e["body"] for e in hull.entries] == [{"plan": "pro"}, {"score": 7}]


def test_alias_then_unalias_then_alias_of_one_pair_are_all_sent(
    hull: FakeHull, config: dict, tmp_path: Path
) -> None:
    pair = [{"email": "ada@x.io", "anonymous_id": "anon-1"}]
    for kind in ("alias", "unalias", "alias", "alias"):
        ok(run_cli(config, singer_lines(kind, pair), tmp_path))

    assert [e["type"] for e in hull.entries] == ["alias", "unalias", "alias"]


def test_a_destination_change_sends_everything_again(
    skalin: FakeSkalin, hull: FakeHull, config: dict, tmp_path: Path
) -> None:
    messages = [*singer_lines("features", features(30)), *singer_lines("traits", traits(20))]
    ok(run_cli(config, messages, tmp_path))
    with (
        FakeSkalin(client_id="client-0002") as other_skalin,
        FakeHull("other.hullapp.io", HULL_CONNECTOR, HULL_SECRET) as other_hull,
    ):
        moved = {
            **config,
            "skalin_url": other_skalin.url,
            "skalin_client_id": "client-0002",
            "hull_firehose_url": other_hull.url,
            "hull_organization": "other.hullapp.io",
        }
        ok(run_cli(moved, messages, tmp_path))
        assert (len(other_skalin.features), len(other_hull.entries)) == (30, 20)
        assert other_skalin.violations == other_hull.violations == []


def test_full_resync_sends_everything_and_refreshes_the_ledger(
    skalin: FakeSkalin, config: dict, tmp_path: Path
) -> None:
    messages = singer_lines("features", features(40))
    ok(run_cli(config, messages, tmp_path))
    ledger = sqlite3.connect(tmp_path / "ledger.sqlite")
    ledger.execute("UPDATE target_usage_ledger SET recorded_at = 0")
    ledger.commit()

    ok(run_cli({**config, "full_resync": True}, messages, tmp_path))
    ok(run_cli(config, messages, tmp_path))

    assert len(skalin.features) == 80
    refreshed = ledger.execute(
        "SELECT count(*) FROM target_usage_ledger WHERE recorded_at > 0"
    ).fetchone()
    assert refreshed == (40,)


def test_a_successful_run_prunes_event_keys_older_than_the_retention_and_keeps_traits(
    config: dict, tmp_path: Path
) -> None:
    ok(
        run_cli(
            config,
            [*singer_lines("track", tracks(10)), *singer_lines("traits", traits(3))],
            tmp_path,
        )
    )
    old = int((datetime.now(UTC) - timedelta(days=31)).timestamp())
    ledger = sqlite3.connect(tmp_path / "ledger.sqlite")
    ledger.execute("UPDATE target_usage_ledger SET seen_at = ?", (old,))
    ledger.commit()

    run = ok(
        run_cli(
            {**config, "ledger_retention_days": 30},
            singer_lines("track", tracks(4, start=8)),  # t-8, t-9 carried again: kept
            tmp_path,
        )
    )

    kept = ledger.execute(
        "SELECT sink, count(*) FROM target_usage_ledger GROUP BY sink ORDER BY sink"
    ).fetchall()
    assert kept == [("track", 4), ("traits", 3)]
    assert "8 event keys not seen for 30 days forgotten" in run.stderr


def test_a_failed_run_prunes_nothing(hull: FakeHull, config: dict, tmp_path: Path) -> None:
    ok(run_cli(config, singer_lines("track", tracks(10)), tmp_path))
    old = int((datetime.now(UTC) - timedelta(days=400)).timestamp())
    ledger = sqlite3.connect(tmp_path / "ledger.sqlite")
    ledger.execute("UPDATE target_usage_ledger SET seen_at = ?", (old,))
    ledger.commit()
    hull.faults.append(Fault.status(401))

    run = run_cli(config, singer_lines("track", tracks(3, start=10)), tmp_path)

    assert run.exit_code == 1
    assert ledger.execute("SELECT count(*) FROM target_usage_ledger").fetchone() == (10,)


# Dry runs read the ledger and never write it


def test_a_dry_run_says_what_is_unchanged_and_leaves_the_ledger_byte_identical(
    skalin: FakeSkalin, config: dict, tmp_path: Path
) -> None:
    ok(run_cli(config, singer_lines("features", features(30)), tmp_path))
    path = tmp_path / "ledger.sqlite"
    before = file_digest(path)
    requests = len(skalin.requests)

    run = ok(run_cli({**config, "dry_run": True}, singer_lines("features", features(35)), tmp_path))

    assert file_digest(path) == before
    assert len(skalin.requests) == requests
    written = (tmp_path / "requests.jsonl").read_text().splitlines()
    assert len(written) == 1
    assert written[0].count('"eventId"') == 5
    assert "5 items would be sent in 1 request (0 retries), 30 unchanged" in run.stderr


def test_a_dry_run_without_a_ledger_file_does_not_create_it(config: dict, tmp_path: Path) -> None:
    run = ok(run_cli({**config, "dry_run": True}, singer_lines("features", features(3)), tmp_path))

    assert "3 items would be sent" in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if "ledger" in p.name) == []


# A kill -9 loses at most the records of the requests in flight


def test_kill_9_mid_run_then_a_rerun_from_the_last_state_resends_at_most_the_in_flight_items(
    skalin: FakeSkalin, config: dict, tmp_path: Path
) -> None:
    # Requests are answered while the reader reads on: each answer is recorded at the next
    # record, so only the requests in flight at the kill are sent twice.
    rows = features(8000)
    messages = [
        schema_message("features"),
        *(record_message("features", row) for row in rows[:100]),
        state(100),
        *(record_message("features", row) for row in rows[100:]),
        state(8000),
    ]
    config = {**config, "max_concurrent_requests": 4, "skalin_requests_per_second": 25}

    killed = run_cli_interrupted(
        config,
        messages,
        tmp_path,
        signum=signal.SIGKILL,
        when=lambda: len(skalin.accepted) >= 45,
        chunk=len(messages),  # all input at once: the reader never waits on the tap
    )
    first = [f["eventId"] for f in skalin.features]
    rerun = ok(run_cli(config, after_last_state(messages, killed.states), tmp_path))
    second = [f["eventId"] for f in skalin.features[len(first) :]]

    assert killed.exit_code == -signal.SIGKILL
    assert len(set(first) | set(second)) == 8000  # nothing lost
    assert len(set(first) & set(second)) <= 4 * 100  # max_concurrent_requests x 100 items
    assert rerun.states[-1] == state(8000)["value"]


# A ledger that cannot be used stops the run before anything is sent, without STATE


def failing(run: Run, *, naming: str) -> None:
    assert run.exit_code == 1
    assert run.states == []
    assert f"Ledger {naming!r}" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_ledger_that_is_not_a_database_stops_the_run_before_anything_is_sent(
    skalin: FakeSkalin, config: dict, tmp_path: Path
) -> None:
    path = tmp_path / "not-a-ledger.sqlite"
    path.write_bytes(b"this is a spreadsheet, not a database\n" * 200)
    messages = [*singer_lines("features", features(10)), state_message({"n": 1})]

    run = run_cli({**config, "ledger": str(path)}, messages, tmp_path)

    failing(run, naming=str(path))
    assert "not an SQLite ledger" in run.stderr
    assert skalin.requests == []


@pytest.fixture
def locked_ledger(tmp_path: Path) -> Iterator[Path]:
    """A ledger another process holds a write transaction on until the test ends."""
    path = tmp_path / "locked.sqlite"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
            "c.execute('PRAGMA journal_mode=WAL'); c.execute('CREATE TABLE t (x)')\n"
            "c.execute('BEGIN IMMEDIATE'); c.execute('INSERT INTO t VALUES (1)')\n"
            "print('locked', flush=True); time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        yield path
    finally:
        holder.kill()
        holder.wait()


def test_a_ledger_locked_beyond_the_timeout_stops_the_run_before_anything_is_sent(
    skalin: FakeSkalin, config: dict, tmp_path: Path, locked_ledger: Path
) -> None:
    messages = [*singer_lines("features", features(10)), state_message({"n": 1})]
    started = time.monotonic()

    run = run_cli({**config, "ledger": str(locked_ledger)}, messages, tmp_path)

    failing(run, naming=str(locked_ledger))
    assert "held it for more than 30 s" in run.stderr
    assert time.monotonic() - started >= 30
    assert skalin.requests == []


def test_a_ledger_in_a_read_only_folder_stops_the_run_before_anything_is_sent(
    skalin: FakeSkalin, config: dict, tmp_path: Path, read_only_folder: Path
) -> None:
    path = read_only_folder / "ledger.sqlite"
    messages = [*singer_lines("features", features(10)), state_message({"n": 1})]

    run = run_cli({**config, "ledger": str(path)}, messages, tmp_path)

    failing(run, naming=str(path))
    assert "may create and write files there" in run.stderr
    assert skalin.requests == []


def test_an_unreachable_postgresql_ledger_stops_the_run_with_its_password_redacted(
    skalin: FakeSkalin, config: dict, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    location = f"postgresql://usage:Pa55-secret-word@127.0.0.1:{port}/ledger"
    messages = [*singer_lines("features", features(10)), state_message({"n": 1})]

    run = run_cli({**config, "ledger": location}, messages, tmp_path)

    failing(run, naming=f"postgresql://usage:***@127.0.0.1:{port}/ledger")
    assert "Pa55-secret-word" not in run.stderr + run.stdout
    assert skalin.requests == []


# Keys and digests


def test_a_skalin_item_without_ts_has_the_same_digest_on_another_day() -> None:
    record = {"email": "ada@x.io", "name": "export", "event_id": "e-1"}
    monday = build_feature(record, now=datetime(2026, 11, 30, 12, tzinfo=UTC))
    tuesday = build_feature(record, now=datetime(2026, 12, 1, 12, tzinfo=UTC))

    assert monday["visitId"] != tuesday["visitId"]
    assert skalin_ledger_row(monday) == skalin_ledger_row(tuesday)


def test_a_skalin_item_with_ts_changes_digest_with_its_visit() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    record = {"email": "ada@x.io", "name": "export", "event_id": "e-1"}
    one = build_feature({**record, "ts": "2026-11-01T10:00:00Z"}, now=now)
    other = build_feature({**record, "ts": "2026-11-02T10:00:00Z"}, now=now)

    assert skalin_ledger_row(one).key == skalin_ledger_row(other).key
    assert skalin_ledger_row(one).digest != skalin_ledger_row(other).digest


def test_hull_digests_leave_out_the_token_and_the_timestamp() -> None:
    clock = [1_780_000_000.0]
    signer = TokenSigner(HULL_CONNECTOR, HULL_SECRET, 600, True, True, clock=lambda: clock[0])
    api = HullApi("http://127.0.0.1:1/", HULL_ORG, signer)
    record = {"email": "ada@x.io", "plan": "pro"}
    first = api.build("traits", record)
    clock[0] += 86_400
    later = api.build("traits", record)

    assert first.timestamp != later.timestamp
    assert ledger_row(first) == ledger_row(later)
    assert ledger_row(first).subject == "email=ada@x.io"


def test_a_refused_item_is_kept_as_refused_and_sent_again_by_the_next_run(
    skalin: FakeSkalin, config: dict, tmp_path: Path
) -> None:
    skalin.fault_when = lambda req: (
        Fault.status(400, body=b'{"error":"bad name"}')
        if any(f.get("name") == "poison" for f in (req.json or {}).get("features", []))
        else None
    )
    rows = [*features(20), {"email": "p@x.io", "name": "poison", "event_id": "f-poison"}]
    messages = singer_lines("features", rows)
    first = ok(run_cli({**config, "invalid_records": "skip"}, messages, tmp_path))
    statuses = sqlite3.connect(tmp_path / "ledger.sqlite").execute(
        "SELECT status, subject, count(*) FROM target_usage_ledger GROUP BY status, subject "
        "HAVING status = 'refused'"
    )
    assert statuses.fetchall() == [("refused", "email=p@x.io", 1)]
    skalin.fault_when = lambda req: None

    second = ok(run_cli(config, messages, tmp_path))

    assert "1 skipped" in first.stderr
    assert "1 item sent in 1 request (0 retries), 20 unchanged" in second.stderr
    assert [f["name"] for f in skalin.features].count("poison") == 1
