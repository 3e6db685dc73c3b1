"""STATE passes through unchanged, and only once what came before it is delivered."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fakes import FakeSkalin, Fault
from tests.harness import record_message, run_cli, schema_message, singer_lines, state_message

# Written by hand: exact decimals and long numbers must come back as the tap wrote them.
RAW_STATE = (
    '{"type": "STATE", "value": {"bookmarks": {"public-features": {'
    '"replication_key": "updated_at", '
    '"replication_key_value": "2024-05-01T10:00:00.123456+00:00", '
    '"ratio": 0.1, "exact": 1.10, "big": 12345678901234567890.5, "tiny": 1e-7, '
    '"nested": {"list": [1, 2.5, {"ü": "naïve ✓"}], "none": null, "flag": true}}}, '
    '"currently_syncing": "日本語"}}'
)


def test_state_with_floats_nested_values_and_unicode_passes_through_unchanged(
    skalin: FakeSkalin, skalin_config: dict, tmp_path: Path
) -> None:
    """singer-sdk 0.54 crashes on floats in STATE (its json.dumps meets Decimals)."""
    messages = [*singer_lines("public-features", [{"email": "a@x.io", "name": "f"}]), RAW_STATE]
    run = run_cli(skalin_config, messages, tmp_path)
    assert run.exit_code == 0, run.stderr
    assert len(run.states) == 1
    assert run.states[0] == json.loads(RAW_STATE)["value"]
    assert '"exact":1.10' in run.stdout
    assert '"big":12345678901234567890.5' in run.stdout
    assert '"currently_syncing":"日本語"' in run.stdout


def test_state_waits_for_the_delivery_of_everything_before_it(
    skalin: FakeSkalin, skalin_config: dict, tmp_path: Path
) -> None:
    skalin.latency = 0.2
    skalin.faults.append(Fault.status(503))
    config = {**skalin_config, "batch_size_rows": 100}
    rows = [{"email": f"u{i}@x.io", "name": "f"} for i in range(1000)]
    run = run_cli(config, [*singer_lines("features", rows), state_message({"n": 1000})], tmp_path)
    assert run.exit_code == 0, run.stderr
    assert run.states == [{"n": 1000}]
    assert len(skalin.features) == 1000


def test_no_state_covers_a_batch_that_failed_last(
    skalin: FakeSkalin, skalin_config: dict, tmp_path: Path
) -> None:
    """With pipelining on, the last batch fails for good while earlier ones succeed."""
    skalin.fault_when = lambda req: (
        Fault.status(503, body=b"down")
        if any(f["identity"]["email"] == "u999@x.io" for f in req.json.get("features", []))
        else None
    )
    config = {**skalin_config, "batch_size_rows": 100, "max_retries": 0}
    rows = [{"email": f"u{i}@x.io", "name": "f"} for i in range(1000)]
    messages = [
        *singer_lines("features", rows[:500]),
        state_message({"n": 500}),
        *[record_message("features", r) for r in rows[500:]],
        state_message({"n": 1000}),
    ]
    run = run_cli(config, messages, tmp_path)
    assert run.exit_code == 1
    assert run.states == []
    assert "HTTP 503" in run.stderr
    assert "records #901-#1000" in run.stderr


def test_a_malformed_input_line_is_named_by_its_number(
    skalin: FakeSkalin, skalin_config: dict, tmp_path: Path
) -> None:
    messages = [
        schema_message("features"),
        record_message("features", {"email": "a", "name": "f"}),
        '{"type": "RECORD", "stream": "features", "record": {"email": ',
    ]
    run = run_cli(skalin_config, messages, tmp_path)
    assert run.exit_code == 1
    assert "Input line 3 is not a JSON Singer message" in run.stderr
    assert run.states == []


def test_a_record_failing_its_schema_follows_invalid_records(
    skalin: FakeSkalin, skalin_config: dict, tmp_path: Path
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "email": {"type": "string"},
            "name": {"type": "string"},
            "seats": {"type": "integer"},
        },
    }
    messages = [
        schema_message("features", schema),
        record_message("features", {"email": "a@x.io", "name": "f", "seats": 3}),
        record_message("features", {"email": "b@x.io", "name": "f", "seats": "three"}),
        state_message({"n": 2}),
    ]
    config = {**skalin_config, "invalid_records": "dead_letter"}
    run = run_cli(config, messages, tmp_path)
    assert run.exit_code == 0, run.stderr
    assert len(skalin.features) == 1
    dead = [json.loads(x) for x in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert dead[1]["position"] == 2
    assert "does not match the stream's SCHEMA" in dead[1]["reason"]
    assert run.states == [{"n": 2}]
    failing = run_cli(skalin_config, messages, tmp_path)
    assert failing.exit_code == 1
    assert "Stream 'features', record #2: does not match the stream's SCHEMA" in failing.stderr


def test_a_long_run_emits_state_periodically_not_only_at_the_end(
    skalin: FakeSkalin, skalin_config: dict, run_target, monkeypatch
) -> None:
    """The SDK drains every few minutes; each drain writes the STATE its deliveries cover."""
    monkeypatch.setattr("target_usage.target.TargetUsage._MAX_RECORD_AGE_IN_MINUTES", 0.0)
    rows = [{"email": f"u{i}@x.io", "name": "f"} for i in range(30)]
    messages = [schema_message("features")]
    for n in range(3):
        messages += [record_message("features", r) for r in rows[n * 10 : (n + 1) * 10]]
        messages.append(state_message({"n": (n + 1) * 10}))
    run = run_target(skalin_config, messages)
    distinct = [s for n, s in enumerate(run.states) if n == 0 or s != run.states[n - 1]]
    assert distinct == [{"n": 10}, {"n": 20}, {"n": 30}]
    assert len(skalin.features) == 30


def test_progress_lines_go_to_stderr_at_the_interval_and_can_be_silenced(
    skalin: FakeSkalin, skalin_config: dict, tmp_path: Path
) -> None:
    skalin.latency = 0.05
    config = {
        **skalin_config,
        "progress_interval": 0.2,
        "batch_size_rows": 100,
        "skalin_requests_per_second": 10,
    }
    rows = [{"email": f"u{i}@x.io", "name": "f"} for i in range(1000)]
    run = run_cli(config, singer_lines("features", rows), tmp_path)
    assert run.exit_code == 0, run.stderr
    progress = [line for line in run.stderr.splitlines() if "Progress after" in line]
    assert progress
    assert "records read" in progress[-1]
    assert "delivered: features" in progress[-1]
    assert "waiting on rate limits" in progress[-1]
    assert "Progress" not in run.stdout
    quiet = run_cli({**config, "progress_interval": 0}, singer_lines("features", rows), tmp_path)
    assert "Progress after" not in quiet.stderr
