"""Delivery to a strict loopback Skalin: batching, retries, pacing, concurrency, dry run,
invalid-record policies and at-least-once, asserted on what the server received.

Single faults (429, slow answers, drops, refused records, redirects, exhausted retries)
have their home in the fault matrix (tests/faults/), which measures them through the CLI."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from target_usage.errors import ApiError, RejectedRecordError
from tests.fakes import FakeSkalin, Fault
from tests.harness import (
    CLIENT_ID,
    record_message,
    run_cli,
    schema_message,
    singer_lines,
    state_message,
)


def features(n: int, start: int = 0) -> list[dict]:
    return [
        {
            "email": f"user{i}@x.io",
            "name": "export",
            "ts": f"2024-05-01T10:{i % 60:02d}:00Z",
            "customer_id": f"c{i % 7}",
        }
        for i in range(start, start + n)
    ]


def test_every_record_arrives_once_in_requests_of_at_most_100(
    skalin: FakeSkalin, skalin_config: dict, run_target
) -> None:
    messages = [
        *singer_lines("public-features", features(250)),
        *singer_lines("identities", [{"user_id": f"u{i}"} for i in range(130)]),
        state_message({"bookmarks": {"public-features": {"replication_key_value": 250}}}),
    ]
    run = run_target(skalin_config, messages)
    assert len(skalin.features) == 250
    assert len(skalin.identities) == 130
    assert len({f["eventId"] for f in skalin.features}) == 250
    assert all(r.query == {"rec": "1", "client_id": CLIENT_ID} for r in skalin.accepted)
    assert sum(len(r.json.get("features", [])) for r in skalin.accepted) == 250
    assert sum(len(r.json.get("identities", [])) for r in skalin.accepted) == 130
    assert run.states == [{"bookmarks": {"public-features": {"replication_key_value": 250}}}]
    assert "stream 'public-features' -> features: 250 records in, 250 items sent in" in run.stderr


def test_a_replay_sends_identical_ids(skalin: FakeSkalin, skalin_config: dict, run_target) -> None:
    messages = singer_lines("features", [{"email": "a@x.io", "name": "x"}, *features(20)])
    config = {**skalin_config, "ledger": ""}  # a replay without the ledger sends all again
    run_target(config, messages)
    run_target(config, messages)
    first, second = skalin.features[:21], skalin.features[21:]
    assert [f["eventId"] for f in first] == [f["eventId"] for f in second]
    assert [f["visitId"] for f in first] == [f["visitId"] for f in second]


def test_transient_faults_are_retried_until_delivered(
    skalin: FakeSkalin, skalin_config: dict, run_target, fast_backoff
) -> None:
    skalin.faults += [
        Fault.status(503),
        Fault.status(429, retry_after="1"),
        Fault.drop_before(),
        Fault.status(408),
    ]
    config = {**skalin_config, "max_retries": 4}
    run = run_target(config, [*singer_lines("features", features(10)), state_message({"n": 1})])
    assert len(skalin.features) == 10
    assert len(skalin.requests) == 5
    assert run.states == [{"n": 1}]
    assert "in 1 request (4 retries)" in run.stderr


def test_identities_ride_along_in_features_requests(
    skalin: FakeSkalin, skalin_config: dict, run_target
) -> None:
    """Skalin's limit counts requests, so one request carries up to 100 of each kind."""
    config = {**skalin_config, "skalin_requests_per_second": 5}
    messages = [
        *singer_lines("features", features(300)),
        *singer_lines("identities", [{"user_id": f"u{i}"} for i in range(300)]),
    ]
    run_target(config, messages)
    assert len(skalin.features) == len(skalin.identities) == 300
    both = [r for r in skalin.accepted if set(r.json) == {"features", "identities"}]
    assert len(both) >= 2
    assert len(skalin.accepted) <= 4


@pytest.mark.parametrize(
    ("status", "hint"),
    [(403, "check skalin_client_id"), (404, "check skalin_url")],
)
def test_auth_and_endpoint_errors_stop_at_once_naming_the_setting(
    skalin: FakeSkalin, skalin_config: dict, run_target, capsys, status: int, hint: str
) -> None:
    skalin.faults.append(Fault.status(status, body=b'{"error":"no"}'))
    messages = [*singer_lines("public-features", features(120)), state_message({"n": 1})]
    with pytest.raises(ApiError) as caught:
        run_target(skalin_config, messages)
    message = str(caught.value)
    assert f"Skalin request failed after 1 attempt: HTTP {status}" in message
    assert hint in message
    assert re.search(r"undelivered: stream 'public-features' records #\d+-#\d+", message)
    assert capsys.readouterr().out == ""


def test_pacing_keeps_to_the_configured_rate(
    skalin: FakeSkalin, skalin_config: dict, run_target
) -> None:
    config = {**skalin_config, "skalin_requests_per_second": 5, "batch_size_rows": 100}
    run_target(config, singer_lines("features", features(1500)))
    starts = [r.at for r in skalin.requests]
    assert len(starts) == 15
    windows: dict[int, int] = {}
    for at in starts:
        second = int((at - starts[0]) // 1)
        windows[second] = windows.get(second, 0) + 1
    assert max(windows.values()) <= 5 + 1  # +1: a window boundary may fall between two starts
    assert starts[-1] - starts[0] >= 14 / 5 * 0.95


def test_requests_run_concurrently_up_to_the_limit(
    skalin: FakeSkalin, skalin_config: dict, run_target
) -> None:
    skalin.latency = 0.3
    config = {**skalin_config, "max_concurrent_requests": 3}
    run_target(config, singer_lines("features", features(1000)))
    assert len(skalin.accepted) == 10
    assert skalin.max_in_flight == 3
    assert skalin.connections <= 3


def test_all_sinks_share_one_pacer(skalin: FakeSkalin, skalin_config: dict, run_target) -> None:
    config = {**skalin_config, "skalin_requests_per_second": 4}
    messages = [
        *singer_lines("features", features(400)),
        *singer_lines("identities", [{"user_id": f"u{i}"} for i in range(400)]),
    ]
    run_target(config, messages)
    starts = sorted(r.at for r in skalin.requests)
    assert len(skalin.features) == len(skalin.identities) == 400
    assert starts[-1] - starts[0] >= (len(starts) - 1) / 4 * 0.95


def test_dry_run_writes_each_request_and_sends_nothing(
    skalin: FakeSkalin, skalin_config: dict, tmp_path: Path, run_target
) -> None:
    config = {**skalin_config, "dry_run": True}
    messages = [*singer_lines("features", features(150)), state_message({"n": 1})]
    run = run_target(config, messages)
    assert skalin.requests == []
    assert run.states == []
    lines = [json.loads(x) for x in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert [len(x["body"]["features"]) for x in lines] == [100, 50]
    assert lines[0]["method"] == "POST"
    assert lines[0]["url"] == f"{skalin.url}/hit/bulk?rec=1&client_id={CLIENT_ID}"
    assert lines[0]["headers"]["Content-Type"] == "application/json"
    assert "dry run" in run.stderr


def test_dry_run_body_is_what_a_real_run_sends(
    skalin: FakeSkalin, skalin_config: dict, tmp_path: Path, run_target
) -> None:
    messages = singer_lines("features", features(30))
    run_target({**skalin_config, "dry_run": True}, messages)
    run_target(skalin_config, messages)
    dry = json.loads((tmp_path / "requests.jsonl").read_text().splitlines()[0])["body"]
    assert dry == skalin.accepted[0].json


BAD = [
    {"email": "a@x.io", "name": "ok"},
    {"customer_id": "c"},
    {"email": "b@x.io"},
    {"email": "c@x.io", "name": "ok2"},
]


def test_invalid_record_fails_the_run_naming_stream_position_and_field(
    skalin: FakeSkalin, skalin_config: dict, run_target
) -> None:
    with pytest.raises(RejectedRecordError) as caught:
        run_target(skalin_config, singer_lines("features", BAD))
    message = str(caught.value)
    assert "Stream 'features', record #2" in message
    assert "'email' and 'user_id' are missing" in message
    assert "invalid_records" in message
    assert skalin.requests == []


def test_invalid_records_are_skipped_with_counts_when_asked(
    skalin: FakeSkalin, skalin_config: dict, run_target
) -> None:
    config = {**skalin_config, "invalid_records": "skip"}
    run = run_target(config, [*singer_lines("features", BAD), state_message({"n": 1})])
    assert [f["name"] for f in skalin.features] == ["ok", "ok2"]
    assert "record #2 skipped" in run.stderr
    assert "record #3 skipped" in run.stderr
    assert "no feature name" in run.stderr
    summary = "4 records in, 2 items sent in 1 request (0 retries), 0 unchanged, 2 skipped"
    assert summary in run.stderr
    assert run.states == [{"n": 1}]


def test_dead_letters_can_be_fixed_and_sent_again(
    skalin: FakeSkalin, skalin_config: dict, tmp_path: Path, run_target
) -> None:
    config = {**skalin_config, "invalid_records": "dead_letter"}
    run = run_target(config, singer_lines("features", BAD))
    assert "2 dead-lettered" in run.stderr
    dead = tmp_path / "rejected.jsonl"
    lines = [json.loads(x) for x in dead.read_text().splitlines()]
    assert [x["type"] for x in lines] == ["SCHEMA", "RECORD", "RECORD"]
    assert [x["position"] for x in lines[1:]] == [2, 3]
    assert [{**x["record"], "event_id": None} for x in lines[1:]] == [
        {**BAD[1], "event_id": None},
        {**BAD[2], "event_id": None},
    ]
    assert "no identity" in lines[1]["reason"]
    assert lines[1]["stream"] == "features"

    fixed = [lines[0]] + [
        {**x, "record": {"email": "fixed@x.io", "name": "repaired", **x["record"]}}
        for x in lines[1:]
    ]
    run_target({**skalin_config, "dead_letter_path": str(tmp_path / "again.jsonl")}, fixed)
    assert [f["name"] for f in skalin.features] == ["ok", "ok2", "repaired", "repaired"]
    # Each replayed record keeps the eventId it was given when first rejected.
    assert [f["eventId"] for f in skalin.features[2:]] == [
        x["record"]["event_id"] for x in lines[1:]
    ]


def test_cli_exits_non_zero_without_state_when_a_batch_fails_for_good(
    skalin: FakeSkalin, skalin_config: dict, tmp_path: Path
) -> None:
    skalin.fault_when = lambda req: (
        Fault.status(503, body=b'{"error":"shard down"}')
        if any(f.get("name") == "poison" for f in (req.json or {}).get("features", []))
        else None
    )
    config = {**skalin_config, "batch_size_rows": 100, "max_retries": 1}
    poison = [*features(150), {"email": "p@x.io", "name": "poison"}, *features(49, 150)]
    messages = [
        *singer_lines("features", features(50, 1000)),
        state_message({"bookmarks": {"features": 1}}),
        *[record_message("features", r) for r in poison],
        state_message({"bookmarks": {"features": 2}}),
    ]
    run = run_cli(config, messages, tmp_path)
    assert run.exit_code != 0
    assert "Skalin request failed after 2 attempts: HTTP 503" in run.stderr
    assert "shard down" in run.stderr
    assert "stream 'features' records #201-#250" in run.stderr
    assert run.states == []
    assert len(skalin.features) == 200


def test_summary_reports_each_sink(skalin: FakeSkalin, skalin_config: dict, tmp_path) -> None:
    run = run_cli(
        skalin_config,
        [
            *singer_lines("features", features(5)),
            schema_message("identities"),
            record_message("identities", {"email": "a@x.io"}),
        ],
        tmp_path,
    )
    assert run.exit_code == 0
    assert "Run summary after" in run.stderr
    assert "stream 'features' -> features: 5 records in, 5 items sent in 1 request " in run.stderr
    assert "stream 'identities' -> identities: 1 record in, 1 item sent" in run.stderr


def test_acceptance_mixed_timezones_arrive_once_in_utc_with_stable_ids(
    skalin: FakeSkalin, skalin_config: dict, run_target
) -> None:
    offsets = ["Z", "+02:00", "-07:00", "+05:30", ""]
    feature_rows = [
        {
            "row": i,
            "email": f"u{i % 40}@x.io",
            "name": f"f{i % 9}",
            "customer_id": f"c{i % 5}",
            "ts": f"2024-03-{10 + i % 3:02d}T{i % 24:02d}:15:30{offsets[i % 5]}",
        }
        for i in range(1050)
    ]
    identity_rows = [{"user_id": f"id{i}", "ts": 1710000000 + i * 3600} for i in range(230)]
    messages = [
        *singer_lines("public-features", feature_rows),
        *singer_lines("public-identities", identity_rows),
    ]
    skalin_config = {**skalin_config, "ledger": ""}  # the replay must send everything again
    run_target(skalin_config, messages)
    first_features, first_identities = skalin.features, skalin.identities
    assert len(first_features) == 1050
    assert len({f["eventId"] for f in first_features}) == 1050
    assert len(first_identities) == 230
    assert all(
        len(r.json.get("features", [])) <= 100 and len(r.json.get("identities", [])) <= 100
        for r in skalin.accepted
    )
    # ts in UTC: computed here independently of the target, compared as multisets.
    expected = sorted(
        datetime.fromisoformat(row["ts"].replace("Z", "+00:00"))
        .astimezone(UTC)
        .strftime("%Y-%m-%dT%H:%M:%S")
        if row["ts"][-1] == "Z" or "+" in row["ts"][10:] or "-" in row["ts"][10:]
        else row["ts"]
        for row in feature_rows
    )
    assert sorted(f["ts"] for f in first_features) == expected
    assert "2024-03-09T21:45:30" in expected  # 2024-03-10T03:15:30+05:30: the day changes
    assert sorted(i["ts"] for i in first_identities)[0] == "2024-03-09T16:00:00"
    per_visit = {
        (f["identity"]["email"], f.get("customerId"), f["ts"][:10]): f["visitId"]
        for f in first_features
    }
    for f in first_features:
        assert f["visitId"] == per_visit[(f["identity"]["email"], f["customerId"], f["ts"][:10])]
    assert len(set(per_visit.values())) == len(per_visit)

    skalin.accepted.clear()
    run_target(skalin_config, messages)
    assert sorted(f["eventId"] for f in skalin.features) == sorted(
        f["eventId"] for f in first_features
    )
    assert sorted(f["visitId"] for f in skalin.features) == sorted(
        f["visitId"] for f in first_features
    )


def test_positions_count_within_the_stream_across_schema_changes_and_dead_letters_repeat_it(
    skalin: FakeSkalin, skalin_config: dict, tmp_path: Path
) -> None:
    def schema(*extra: str) -> dict:
        columns = ("email", "name", *extra)
        return {"type": "object", "properties": {c: {"type": ["string", "null"]} for c in columns}}

    good, bad = features(1)[0], {"email": "nameless@x.io"}
    messages = [
        schema_message("f", schema()),
        record_message("f", good),
        record_message("f", bad),
        schema_message("f", schema("plan")),
        record_message("f", good),
        record_message("f", bad),
        schema_message("f", schema("plan", "seats")),
        record_message("f", bad),
        state_message({"n": 1}),
    ]
    config = {**skalin_config, "invalid_records": "dead_letter", "stream_sinks": {"f": "features"}}
    run = run_cli(config, messages, tmp_path)
    assert run.exit_code == 0, run.stderr
    letters = [json.loads(x) for x in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert [(line["type"], line.get("position")) for line in letters] == [
        ("SCHEMA", None),
        ("RECORD", 2),
        ("SCHEMA", None),
        ("RECORD", 4),
        ("SCHEMA", None),
        ("RECORD", 5),
    ]
    schemas = [set(line["schema"]["properties"]) for line in letters if line["type"] == "SCHEMA"]
    assert [("plan" in s, "seats" in s) for s in schemas] == [
        (False, False),
        (True, False),
        (True, True),
    ]
    for position in (2, 4, 5):
        assert f"Stream 'f', record #{position} dead-lettered" in run.stderr


@pytest.mark.parametrize(
    ("status", "hint"),
    [(401, "check skalin_client_id"), (404, "check skalin_url: requests go to {url}/hit/bulk")],
)
def test_the_settings_hint_survives_a_long_body_and_names_the_real_url(
    skalin: FakeSkalin, skalin_config: dict, tmp_path: Path, status: int, hint: str
) -> None:
    skalin.fault_when = lambda request: Fault.status(status, b"<html>" + b"x" * 3000)
    run = run_cli(skalin_config, singer_lines("features", features(3)), tmp_path)
    assert run.exit_code == 1
    assert hint.format(url=skalin.url) in run.stderr
    assert "{skalin_url}" not in run.stderr


def test_a_failed_run_names_every_undelivered_stream_and_range_and_counts_failed_attempts(
    skalin: FakeSkalin, skalin_config: dict, tmp_path: Path
) -> None:
    skalin.fault_when = lambda request: Fault.status(503, b"down")
    messages = [
        *singer_lines("features", features(300)),
        *singer_lines("identities", [{"user_id": f"u{i}"} for i in range(50)]),
    ]
    run = run_cli({**skalin_config, "max_retries": 1}, messages, tmp_path)
    assert run.exit_code == 1
    assert "stream 'features' records #1-#300 (300 records)" in run.stderr
    assert "stream 'identities' records #1-#50 (50 records)" in run.stderr
    retries = re.search(r"stream 'features' -> features: .* \(([\d,]+) retr(?:y|ies)\)", run.stderr)
    assert retries is not None
    assert int(retries.group(1).replace(",", "")) >= 1


def test_progress_shows_retries_as_they_happen_and_which_api_keeps_failing(
    skalin: FakeSkalin, skalin_config: dict, tmp_path: Path
) -> None:
    down_until = time.monotonic() + 3
    skalin.fault_when = lambda request: (
        Fault.status(503, b"down") if time.monotonic() < down_until else None
    )
    config = {**skalin_config, "max_retries": 8, "progress_interval": 0.5}
    run = run_cli(config, singer_lines("features", features(10)), tmp_path)
    assert run.exit_code == 0, run.stderr
    counted = [int(n) for n in re.findall(r"Progress after .*; (\d+) retr(?:y|ies);", run.stderr)]
    assert counted, "no progress line during the outage"
    assert max(counted) >= 1, "progress said 0 retries during the outage"
    assert re.search(r"Skalin keeps failing: HTTP 503 for \d+s; next try in \d+s", run.stderr)


def test_rate_limit_waiting_is_reported_as_wall_time_not_summed_over_workers(
    skalin: FakeSkalin, skalin_config: dict, tmp_path: Path
) -> None:
    limited: list[int] = []

    def first_eight(request: object) -> Fault | None:
        if len(limited) < 8:
            limited.append(1)
            return Fault.status(429, b"slow down", retry_after="1")
        return None

    skalin.fault_when = first_eight
    config = {**skalin_config, "max_concurrent_requests": 8, "progress_interval": 0.3}
    run = run_cli(config, singer_lines("features", features(800)), tmp_path)
    assert run.exit_code == 0, run.stderr
    waited = [float(s) for s in re.findall(r"([\d.]+)s waiting on rate limits", run.stderr)]
    assert waited
    assert max(waited) >= 0.5
    assert max(waited) < 3.0, f"{max(waited)}s reported for about 1s of wall time"
