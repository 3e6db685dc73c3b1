"""Input the target cannot read ends the run with one line saying where, and exit 1: no
traceback, whatever is malformed (the input, a BATCH file, the config file, stdout)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

from tests.fakes import FakeSkalin
from tests.harness import encode, record_message, run_cli, schema_message, state_message

FEATURE = {"email": "ada@example.com", "name": "export-report"}


def dry_run(tmp_path: Path) -> dict:
    return {
        "dry_run": True,
        "dry_run_path": str(tmp_path / "requests.jsonl"),
        "skalin_client_id": "client",
    }


def run_bytes(args: list[str], stdin: bytes, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "target_usage", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        cwd=cwd,
    )


def assert_one_line_error(stderr: str, expected: str) -> None:
    errors = [line for line in stderr.splitlines() if "ERROR" in line]
    assert "Traceback" not in stderr, stderr
    assert len(errors) == 1, stderr
    assert expected in errors[0], stderr


def test_input_that_is_not_utf8_is_named_by_its_line(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(dry_run(tmp_path)))
    good = encode([schema_message("features"), record_message("features", FEATURE)])
    bad = b'{"type": "RECORD", "stream": "features", "record": {"email": "\xff@x.io"}}\n'

    done = run_bytes(["--config", "config.json"], good + bad, tmp_path)

    assert done.returncode == 1
    assert_one_line_error(
        done.stderr.decode(), "Input line 3 is not a JSON Singer message (Invalid UTF-8"
    )


def test_json_nested_a_thousand_deep_is_named_by_its_line(tmp_path: Path) -> None:
    nested = '{"type": "RECORD", "stream": "features", "record": ' + "[" * 1000 + "]" * 1000 + "}"

    run = run_cli(dry_run(tmp_path), [schema_message("features"), nested], tmp_path)

    assert run.exit_code == 1
    assert_one_line_error(run.stderr, "Input line 2 is not a JSON Singer message (nested too")


def batch_message(url: str, compression: str = "none") -> dict:
    return {
        "type": "BATCH",
        "stream": "features",
        "encoding": {"format": "jsonl", "compression": compression},
        "manifest": [url],
    }


def test_a_batch_file_line_that_is_not_json_is_named_by_file_and_line(tmp_path: Path) -> None:
    batch = tmp_path / "batch.jsonl"
    batch.write_text(json.dumps(FEATURE) + "\nnot json\n")

    run = run_cli(
        dry_run(tmp_path),
        [schema_message("features"), batch_message(batch.as_uri())],
        tmp_path,
    )

    assert run.exit_code == 1
    assert_one_line_error(run.stderr, f"BATCH file {batch.as_uri()} (stream 'features'), line 2")


def test_records_of_batch_files_are_delivered_like_records(tmp_path: Path) -> None:
    """The SDK would pass them to process_batch unbuilt, and they would vanish."""
    batch = tmp_path / "batch.jsonl.gz"
    rows = [FEATURE, {**FEATURE, "name": "share-report"}, {"email": "x@y.io"}]
    batch.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    config = {**dry_run(tmp_path), "invalid_records": "skip"}

    run = run_cli(
        config,
        [schema_message("features"), batch_message(batch.as_uri(), "gzip")],
        tmp_path,
    )

    assert run.exit_code == 0, run.stderr
    (request,) = [json.loads(x) for x in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert [f["name"] for f in request["body"]["features"]] == ["export-report", "share-report"]
    # The third has no feature name: it follows invalid_records with its position.
    assert "Stream 'features', record #3 skipped" in run.stderr


def test_a_config_file_that_is_not_json_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"skalin_client_id": "c",\n')

    done = run_bytes(["--config", "config.json"], b"", tmp_path)

    assert done.returncode == 1
    assert_one_line_error(done.stderr.decode(), "Config file config.json is not JSON")


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    done = run_bytes(["--config", "missing.json"], b"", tmp_path)

    assert done.returncode == 1
    assert_one_line_error(done.stderr.decode(), "Config file missing.json cannot be read")


def test_a_closed_stdout_ends_the_run_with_one_line(tmp_path: Path) -> None:
    """`target-usage ... | true`: the reader of STATE is gone before STATE is written."""
    with FakeSkalin(client_id="client") as skalin:
        config = {"skalin_url": skalin.url, "skalin_client_id": "client"}
        (tmp_path / "config.json").write_text(json.dumps(config))
        messages = [
            schema_message("features"),
            record_message("features", FEATURE),
            state_message({"bookmarks": {"features": 1}}),
        ]
        process = subprocess.Popen(
            [sys.executable, "-m", "target_usage", "--config", "config.json"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
        )
        process.stdout.close()  # type: ignore[union-attr]
        _, stderr = process.communicate(encode(messages), timeout=60)

    assert process.returncode == 1
    assert_one_line_error(stderr.decode(), "stdout was closed before STATE could be written")
