"""Values no rule can represent never crash a run: they are invalid records naming the
column, and numbers used as identifiers name one person however they are written.
Through the installed CLI against the strict fake APIs."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fakes import FakeHull, FakeSkalin
from tests.harness import run_cli, schema_message, state_message


def record_line(stream: str, record_json: str) -> str:
    """A RECORD written by hand, so numbers keep the exact form a tap emitted (1E+2, 1.0)."""
    return f'{{"type": "RECORD", "stream": "{stream}", "record": {record_json}}}'


def dead_letters(config: dict) -> list[dict]:
    lines = Path(config["dead_letter_path"]).read_text().splitlines()
    return [json.loads(line) for line in lines if json.loads(line)["type"] == "RECORD"]


def test_out_of_range_timestamps_are_dead_lettered_naming_the_column_never_a_crash(
    skalin: FakeSkalin, skalin_config: dict, hull: FakeHull, hull_config: dict, tmp_path: Path
) -> None:
    config = {**skalin_config, **hull_config, "invalid_records": "dead_letter"}
    messages = [
        schema_message("features"),
        record_line(
            "features", '{"email": "a@x.io", "name": "n", "ts": "0001-01-01T00:30:00+01:00"}'
        ),
        record_line(
            "features", '{"email": "b@x.io", "name": "n", "ts": "9999-12-31T23:59:59-01:00"}'
        ),
        record_line("features", '{"email": "c@x.io", "name": "n", "timestamp": 1E+20}'),
        record_line("features", '{"email": "d@x.io", "name": "n", "ts": "0999-01-01T00:00:00"}'),
        schema_message("track"),
        record_line(
            "track", '{"email": "e@x.io", "event": "e", "created_at": "9999-12-31T23:59:59-01:00"}'
        ),
        record_line(
            "track", '{"email": "f@x.io", "event": "e", "created_at": "2024-05-01T00:00:00Z"}'
        ),
        schema_message("traits"),
        record_line(
            "traits", '{"email": "g@x.io", "plan": "p", "timestamp": "0001-01-01T00:30:00+01:00"}'
        ),
        state_message({"done": True}),
    ]
    run = run_cli(config, messages, tmp_path)
    assert run.exit_code == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert "OverflowError" not in run.stderr
    assert run.states == [{"done": True}]
    assert [(d["stream"], d["position"]) for d in dead_letters(config)] == [
        ("features", 1),
        ("features", 2),
        ("features", 3),
        ("track", 1),
        ("traits", 1),
    ]
    reasons = [d["reason"] for d in dead_letters(config)]
    assert [r.split("'")[1] for r in reasons] == [
        "ts",
        "ts",
        "timestamp",
        "created_at",
        "timestamp",
    ]
    assert all("outside the years 1-9999" in r for r in reasons)
    assert [f["ts"] for f in skalin.features] == ["0999-01-01T00:00:00"]
    assert [e["body"]["event"] for e in hull.entries] == ["e"]


def test_integral_numbers_as_identifiers_name_one_person_however_written(
    skalin: FakeSkalin, skalin_config: dict, hull: FakeHull, hull_config: dict, tmp_path: Path
) -> None:
    config = {**skalin_config, **hull_config}
    day = '"ts": "2024-05-01T10:00:00Z"'
    messages = [
        schema_message("identities"),
        *(
            record_line("identities", f'{{"user_id": {n}, "customer_id": {c}, {day}}}')
            for n, c in (("1", "7"), ("1.0", "7.00"), ("1E+2", "7E0"), ("2.50", "0.5E1"))
        ),
        schema_message("traits"),
        record_line("traits", '{"external_id": 1.0, "account_external_id": 1E+1, "plan": "p"}'),
        schema_message("alias"),
        record_line("alias", '{"external_id": 3, "anonymous_id": 4.0}'),
    ]
    run = run_cli(config, messages, tmp_path)
    assert run.exit_code == 0, run.stderr
    identities = skalin.identities
    assert [i["identity"]["id"] for i in identities] == ["1", "1", "100", "2.5"]
    assert [i["customerId"] for i in identities] == ["7", "7", "7", "5"]
    assert identities[0]["visitId"] == identities[1]["visitId"] != identities[2]["visitId"]
    by_type = {entry["type"]: entry for entry in hull.entries}  # sinks drain in parallel
    traits, alias = by_type["traits"], by_type["alias"]
    assert traits["claims"]["io.hull.asUser"] == {"external_id": "1"}
    assert traits["claims"]["io.hull.asAccount"] == {"external_id": "10"}
    assert alias["body"] == {"anonymous_id": "4"}


def test_booleans_objects_arrays_and_blank_strings_as_identifiers_are_invalid_records(
    skalin: FakeSkalin, skalin_config: dict, hull: FakeHull, hull_config: dict, tmp_path: Path
) -> None:
    config = {**skalin_config, **hull_config, "invalid_records": "dead_letter"}
    messages = [
        schema_message("identities"),
        record_line("identities", '{"user_id": true}'),
        record_line("identities", '{"email": {"a": 1}}'),
        record_line("identities", '{"email": "a@x.io", "customer_id": [1]}'),
        record_line("identities", '{"email": "  "}'),
        record_line("identities", '{"email": "ok@x.io", "user_id": ""}'),
        schema_message("traits"),
        record_line("traits", '{"email": false, "plan": "p"}'),
        record_line("traits", '{"email": "a@x.io", "account_domain": ["a.com"], "plan": "p"}'),
        schema_message("unalias"),
        record_line("unalias", '{"email": "a@x.io", "anonymous_id": {"id": 1}}'),
    ]
    run = run_cli(config, messages, tmp_path)
    assert run.exit_code == 0, run.stderr
    rejected = dead_letters(config)
    assert [(d["stream"], d["position"], d["reason"].split("'")[1]) for d in rejected] == [
        ("identities", 1, "user_id"),
        ("identities", 2, "email"),
        ("identities", 3, "customer_id"),
        ("identities", 4, "email"),
        ("traits", 1, "email"),
        ("traits", 2, "account_domain"),
        ("unalias", 1, "anonymous_id"),
    ]
    assert all("cannot identify anyone" in d["reason"] for d in rejected)
    assert [i["identity"] for i in skalin.identities] == [{"email": "ok@x.io"}]
    assert hull.entries == []
