"""The lean per-record path (target_usage/record_path.py) sends exactly what the SDK's own
path sends: the same requests and the same dead letters, for records with and without
the SDK's metadata columns, good and bad."""

from __future__ import annotations

import json
from pathlib import Path

from tests.harness import record_message, run_cli, state_message

RECORDS = [
    {"email": "a@x.io", "name": "export", "ts": "2024-05-01T09:30:00+02:00", "plan": "pro"},
    {"email": "b@x.io", "name": "export", "_sdc_extracted_at": "2024-05-01T00:00:00Z"},
    {"email": "c@x.io", "feature": "login", "_sdc_deleted_at": None, "_sdc_sequence": 7},
    {"email": "d@x.io"},  # no feature name: dead-lettered
    {"email": "e@x.io", "name": "x", "_sdc_custom": "kept by the SDK, left out of ids"},
    {"email": "f@x.io", "_sdc_batched_at": "2024-05-01T00:00:00Z"},  # dead-lettered
]


def dry_run(config: dict, tmp_path: Path, key_properties: list[str]) -> tuple[list, list]:
    """Requests and dead letters of one dry run; key properties send records the SDK's way."""
    tmp_path.mkdir()
    config = {
        **config,
        "dry_run": True,
        "dry_run_path": str(tmp_path / "requests.jsonl"),
        "dead_letter_path": str(tmp_path / "rejected.jsonl"),
        "invalid_records": "dead_letter",
    }
    schema = {"type": "object", "properties": {}, "additionalProperties": True}
    messages = [
        {
            "type": "SCHEMA",
            "stream": "features",
            "schema": schema,
            "key_properties": key_properties,
        },
        *(record_message("features", record) for record in RECORDS),
        state_message({"n": 6}),
    ]
    run = run_cli(config, messages, tmp_path)
    assert run.exit_code == 0, run.stderr
    requests = [json.loads(line)["body"] for line in (tmp_path / "requests.jsonl").open()]
    rejected = [json.loads(line) for line in (tmp_path / "rejected.jsonl").open()]
    return requests, [line for line in rejected if line["type"] == "RECORD"]


def test_the_lean_path_sends_and_dead_letters_what_the_sdk_path_does(
    skalin_config: dict, tmp_path: Path
) -> None:
    lean = dry_run(skalin_config, tmp_path / "lean", key_properties=[])
    sdk = dry_run(skalin_config, tmp_path / "sdk", key_properties=["email"])
    assert lean == sdk
    requests, rejected = lean
    assert [f["identity"]["email"] for f in requests[0]["features"]] == [
        "a@x.io",
        "b@x.io",
        "c@x.io",
        "e@x.io",
    ]
    assert [(r["position"], sorted(r["record"])) for r in rejected] == [
        (4, ["email", "event_id"]),
        (6, ["email", "event_id"]),
    ]
    assert "_sdc_extracted_at" not in json.dumps(lean)
