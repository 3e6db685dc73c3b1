"""Numbers used as identifiers name one person however they are written, through the
installed CLI against the strict fake APIs. Values no rule can represent (out-of-range
timestamps, booleans, objects, arrays or blanks as identifiers) are fault-matrix rows in
tests/faults/test_fault_matrix.py."""

from __future__ import annotations

from pathlib import Path

from tests.fakes import FakeHull, FakeSkalin
from tests.harness import run_cli, schema_message


def record_line(stream: str, record_json: str) -> str:
    """A RECORD written by hand, so numbers keep the exact form a tap emitted (1E+2, 1.0)."""
    return f'{{"type": "RECORD", "stream": "{stream}", "record": {record_json}}}'


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
