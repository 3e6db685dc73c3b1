"""Delivery to a strict loopback Hull firehose that verifies every token with the secret."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from singer_sdk.exceptions import ConfigValidationError

from target_usage.hull import HullApi
from target_usage.target import TargetUsage
from tests.fakes import FakeHull, FakeSkalin, Fault
from tests.harness import (
    CLIENT_ID,
    HULL_SECRET,
    record_message,
    run_cli,
    schema_message,
    singer_lines,
    state_message,
)


def tracks(n: int) -> list[dict]:
    return [
        {
            "email": f"user{i % 25}@x.io",
            "event": "Report Exported",
            "report": f"r{i}",
            "created_at": f"2024-05-01T{i % 24:02d}:00:00+02:00",
            "ip": "10.0.0.1",
        }
        for i in range(n)
    ]


def test_users_accounts_and_linked_traits_arrive_with_verified_tokens(
    hull: FakeHull, hull_config: dict, run_target
) -> None:
    rows = [
        {"email": "a@x.io", "plan": "pro"},
        {"account_domain": "acme.com", "seats": 12},
        {"external_id": "u-7", "account_external_id": "acc-7", "role": "admin"},
    ]
    run = run_target(
        hull_config, [*singer_lines("warehouse__traits", rows), state_message({"n": 1})]
    )
    subjects = [
        (
            e["claims"]["io.hull.subjectType"],
            e["claims"].get("io.hull.asUser"),
            e["claims"].get("io.hull.asAccount"),
            e["body"],
        )
        for e in hull.entries
    ]
    assert subjects == [
        ("user", {"email": "a@x.io"}, None, {"plan": "pro"}),
        ("account", None, {"domain": "acme.com"}, {"seats": 12}),
        ("user", {"external_id": "u-7"}, {"external_id": "acc-7"}, {"role": "admin"}),
    ]
    assert run.states == [{"n": 1}]


def test_track_events_keep_their_ids_on_a_second_run_and_reuse_tokens(
    hull: FakeHull, hull_config: dict, run_target
) -> None:
    messages = singer_lines("analytics.track", tracks(300))
    hull_config = {**hull_config, "ledger": ""}  # the second run must send everything again
    run_target(hull_config, messages)
    first = hull.entries
    run_target(hull_config, messages)
    second = hull.entries[300:]
    assert len(first) == 300

    def ids(entries: list[dict]) -> list[tuple[str, str]]:
        return sorted((e["body"]["properties"]["report"], e["body"]["event_id"]) for e in entries)

    assert ids(first) == ids(second)
    assert len({e["body"]["event_id"] for e in first}) == 300
    assert len({e["token"] for e in first}) == 25  # one token per user, reused
    assert all(len(r.json["batch"]) <= 100 for r in hull.accepted)


def test_aliases_and_unaliases(hull: FakeHull, hull_config: dict, run_target) -> None:
    messages = [
        *singer_lines("alias", [{"email": "a@x.io", "anonymous_id": "anon-1"}]),
        *singer_lines("unalias", [{"external_id": "u1", "anonymous_id": "anon-2"}]),
    ]
    run_target(hull_config, messages)
    assert sorted((e["type"], e["body"]["anonymous_id"]) for e in hull.entries) == [
        ("alias", "anon-1"),
        ("unalias", "anon-2"),
    ]


def test_requests_stay_under_the_count_and_size_caps(
    hull: FakeHull, hull_config: dict, run_target
) -> None:
    hull.max_body_bytes = 50_000
    config = {**hull_config, "hull_batch_size": 40}
    rows = [{"email": f"u{i}@x.io", "bio": "x" * 1500} for i in range(200)]
    # The target knows the 1 MB cap; a 50 KB one on both sides shows the split with less data.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            "target_usage.target.HullApi", functools.partial(HullApi, max_body_bytes=50_000)
        )
        run_target(config, singer_lines("traits", rows))
    assert len(hull.entries) == 200
    assert max(len(r.json["batch"]) for r in hull.accepted) <= 40
    assert max(len(r.body) for r in hull.accepted) < 50_000
    assert len(hull.accepted) > 200 // 40


def test_hull_faults_are_retried(
    hull: FakeHull, hull_config: dict, run_target, fast_backoff
) -> None:
    hull.faults += [Fault.status(503), Fault.status(429, retry_after="1"), Fault.drop_after()]
    run_target(hull_config, singer_lines("track", tracks(5)))
    ids = [e["body"]["event_id"] for e in hull.entries]
    assert len(ids) == 10  # the dropped-after-storing batch came again, with the same ids
    assert ids[:5] == ids[5:]


def test_a_permanent_hull_error_fails_the_run_without_the_secret(
    hull: FakeHull, hull_config: dict, tmp_path: Path
) -> None:
    hull.faults.append(Fault.status(401, body=b'{"error":"bad token"}'))
    run = run_cli(
        hull_config, [*singer_lines("track", tracks(3)), state_message({"n": 1})], tmp_path
    )
    assert run.exit_code != 0
    assert "Hull request failed after 1 attempt: HTTP 401" in run.stderr
    assert "bad token" in run.stderr
    assert run.states == []
    assert HULL_SECRET not in run.stderr + run.stdout


def test_invalid_hull_records_follow_the_policy(
    hull: FakeHull, hull_config: dict, tmp_path: Path, run_target
) -> None:
    rows = [
        {"email": "a@x.io", "event": "ok"},
        {"email": "b@x.io"},
        {"event": "who"},
        {"email": "c@x.io", "event": "ok2"},
    ]
    config = {**hull_config, "invalid_records": "dead_letter"}
    run = run_target(config, singer_lines("track", rows))
    assert [e["body"]["event"] for e in hull.entries] == ["ok", "ok2"]
    dead = [json.loads(x) for x in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert [(d["position"], d["reason"][:20]) for d in dead[1:]] == [
        (2, "no event name (colum"),
        (3, "no user or account i"),
    ]
    assert "2 dead-lettered" in run.stderr


def test_hull_settings_are_required_only_for_hull_sinks(tmp_path: Path) -> None:
    target = TargetUsage(config={"skalin_client_id": "c"})
    with pytest.raises(ConfigValidationError) as caught:
        target._process_schema_message(schema_message("track"))
    assert [e.split("needs ")[1][:25] for e in caught.value.errors] == [
        "'hull_organization': add ",
        "'hull_connector_id': add ",
        "'hull_connector_secret': ",
    ]


def test_dry_run_redacts_the_secret_but_keeps_verifiable_tokens(
    hull: FakeHull, hull_config: dict, tmp_path: Path, run_target
) -> None:
    run = run_target({**hull_config, "dry_run": True}, singer_lines("track", tracks(3)))
    text = (tmp_path / "requests.jsonl").read_text()
    assert HULL_SECRET not in text
    assert HULL_SECRET not in run.stderr
    line = json.loads(text)
    assert line["headers"]["Hull-Access-Token"] == "***"
    assert hull.requests == []
    token = line["body"]["batch"][0]["headers"]["Hull-Access-Token"]
    assert HULL_SECRET not in json.dumps(
        __import__("jwt").decode(token, options={"verify_signature": False})
    )


def test_mixed_skalin_and_hull_streams_in_one_run(
    hull: FakeHull, hull_config: dict, skalin: FakeSkalin, skalin_config: dict, run_target
) -> None:
    config = {**skalin_config, **hull_config}
    messages = [
        schema_message("features"),
        schema_message("track"),
        schema_message("traits"),
        *[record_message("features", {"email": f"u{i}@x.io", "name": "f"}) for i in range(150)],
        *[record_message("track", t) for t in tracks(150)],
        *[record_message("traits", {"email": f"u{i}@x.io", "plan": "pro"}) for i in range(50)],
        state_message({"all": "done"}),
    ]
    run = run_target(config, messages)
    assert len(skalin.features) == 150
    assert len([e for e in hull.entries if e["type"] == "track"]) == 150
    assert len([e for e in hull.entries if e["type"] == "traits"]) == 50
    assert skalin.accepted[0].query["client_id"] == CLIENT_ID
    assert run.states == [{"all": "done"}]


def test_a_refused_hull_entry_is_isolated_and_the_rest_delivered(
    hull: FakeHull, hull_config: dict, run_target, tmp_path: Path
) -> None:
    hull.fault_when = lambda request: (
        Fault.status(400, body=b"bad entry")
        if any(e["body"].get("event") == "poison" for e in request.json["batch"])
        else None
    )
    rows = tracks(10)
    rows[4] = {"email": "p@x.io", "event": "poison"}
    run_target({**hull_config, "invalid_records": "dead_letter"}, singer_lines("track", rows))
    assert len(hull.entries) == 9
    dead = [json.loads(x) for x in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert dead[1]["position"] == 5
    assert "Hull refused it alone: HTTP 400, body 'bad entry'" in dead[1]["reason"]
    assert len(dead[1]["record"]["event_id"]) == 16
