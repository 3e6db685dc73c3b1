"""What a run prints on stderr: little at the default level, linear and free of record
contents at DEBUG, worded for a reader."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fakes import FakeSkalin, Fault
from tests.harness import record_message, run_cli, schema_message, state_message

FEATURE_SCHEMA = {
    "type": "object",
    "properties": {
        "email": {"type": "string"},
        "name": {"type": "string"},
        "ts": {"type": "string", "format": "date-time"},
    },
}


# The harness drops TARGET_USAGE_* variables of the caller; a run asks for its own.
DEBUG = {"TARGET_USAGE_LOGLEVEL": "DEBUG"}


def features(count: int) -> list[dict]:
    rows = (
        {"email": f"person-{n}@example.com", "name": "export", "ts": "2026-11-02T09:20:31Z"}
        for n in range(count)
    )
    return [
        schema_message("features", FEATURE_SCHEMA),
        *(record_message("features", row) for row in rows),
        state_message({"bookmarks": {"features": count}}),
    ]


def dry_run_config(tmp_path: Path) -> dict:
    return {
        "dry_run": True,
        "dry_run_path": str(tmp_path / "requests.jsonl"),
        "skalin_client_id": "client",
        "batch_size_rows": 50,
    }


def test_a_default_run_prints_no_sdk_batch_lines_and_ends_with_the_summary(
    tmp_path: Path,
) -> None:
    run = run_cli(dry_run_config(tmp_path), features(500), tmp_path)

    assert run.exit_code == 0, run.stderr
    lines = run.stderr.splitlines()
    assert not [line for line in lines if "METRIC" in line or "Draining" in line]
    # The explanation of the first item (test_explain.py), then the summary, last.
    assert len(lines) <= 12, run.stderr
    assert "Run summary" in lines[-3]
    assert lines[-1].endswith(
        f"|   10 requests written to {tmp_path / 'requests.jsonl'} "
        "(what would have been sent, one per line)"
    )


def summary_block_and_after(stderr: str) -> list[str]:
    """The log messages from the summary's heading to the end of the output."""
    messages = [line.split("| ", 3)[-1] for line in stderr.splitlines()]
    start = next(i for i, m in enumerate(messages) if m.startswith("Run summary"))
    return messages[start:]


HULL_AND_SKALIN_INPUT = [
    schema_message("features", FEATURE_SCHEMA),
    record_message("features", features(1)[1]["record"]),
    schema_message("track"),
    record_message("track", {"email": "t@example.com", "event": "Paid"}),
    schema_message("traits"),
    record_message("traits", {"email": "u@example.com", "plan": "pro"}),
    record_message("traits", {"email": "v@example.com", "plan": "pro"}),
    state_message({"done": True}),
]


@pytest.mark.parametrize("dry_run", [False, True])
def test_the_summary_block_with_hull_streams_is_the_end_of_the_output(
    skalin_config: dict, hull_config: dict, tmp_path: Path, dry_run: bool
) -> None:
    """Every line after the summary's heading is one of its indented lines: a stream per
    line, then the Hull tokens signed and, in a dry run, the requests written."""
    run = run_cli(
        {**skalin_config, **hull_config, "dry_run": dry_run}, HULL_AND_SKALIN_INPUT, tmp_path
    )

    assert run.exit_code == 0, run.stderr
    _, *block = summary_block_and_after(run.stderr)
    assert all(line.startswith("  ") for line in block), block
    assert [line.split(" ->")[0] for line in block[:3]] == [
        "  stream 'features'",
        "  stream 'track'",
        "  stream 'traits'",
    ]
    assert block[3] == "  Hull tokens signed: 3 (one per subject, reused)"
    if dry_run:
        # Two or three requests: track and traits share one when queued together.
        assert len(block) == 5
        assert re.fullmatch(
            rf"  [23] requests written to {re.escape(str(tmp_path / 'requests.jsonl'))} "
            r"\(what would have been sent, one per line\)",
            block[4],
        ), block[4]
    else:
        assert block[4:] == []


def test_the_summary_names_stream_and_sink_says_would_and_counts_in_proper_plurals(
    tmp_path: Path,
) -> None:
    run = run_cli(dry_run_config(tmp_path), features(1), tmp_path)

    assert run.exit_code == 0, run.stderr
    assert (
        "stream 'features' -> features: 1 record in, 1 item would be sent in 1 request "
        "(0 retries)" in run.stderr
    )
    assert "  1 request written to" in run.stderr


def test_one_of_each_count_is_singular_in_a_real_run(
    skalin: FakeSkalin, skalin_config: dict, tmp_path: Path
) -> None:
    skalin.faults.append(Fault.status(503, b"overloaded"))
    run = run_cli(skalin_config, features(1), tmp_path)

    assert run.exit_code == 0, run.stderr
    assert (
        "stream 'features' -> features: 1 record in, 1 item sent in 1 request (1 retry)"
        in run.stderr
    )


def test_a_failed_run_of_one_record_names_1_attempt_and_1_record(
    skalin: FakeSkalin, skalin_config: dict, tmp_path: Path
) -> None:
    skalin.fault_when = lambda request: Fault.status(401, b"unknown client")
    run = run_cli(skalin_config, features(1), tmp_path)

    assert run.exit_code == 1
    assert "Skalin request failed after 1 attempt: HTTP 401" in run.stderr
    assert "undelivered: stream 'features' records #1 (1 record)." in run.stderr


def test_sdk_metrics_are_printed_when_debug_is_asked_for(tmp_path: Path) -> None:
    run = run_cli(dry_run_config(tmp_path), features(100), tmp_path, env=DEBUG)

    assert run.exit_code == 0, run.stderr
    assert "METRIC" in run.stderr


def test_debug_output_grows_linearly_and_carries_no_record_contents(
    skalin_config: dict, tmp_path: Path
) -> None:
    sizes = {}
    for count in (200, 800):
        workdir = tmp_path / str(count)
        workdir.mkdir()
        run = run_cli({**skalin_config, "batch_size_rows": 50}, features(count), workdir, env=DEBUG)
        assert run.exit_code == 0, run.stderr[-2000:]
        assert "person-" not in run.stderr  # no record's email, at any level
        sizes[count] = len(run.stderr)

    # Four times the records: at most about four times the output (per-batch lines), where
    # logging every record's batch context grows with the square of the input.
    assert sizes[800] < 5 * sizes[200], sizes
