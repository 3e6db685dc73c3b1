"""`--config=ENV`: every setting comes from `TARGET_USAGE_<SETTING>`, typed by its schema."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from singer_sdk.exceptions import ConfigValidationError

from target_usage.env_config import json_type, parse_environment, variable_name
from target_usage.target import TargetUsage

PREFIX = "TARGET_USAGE_"
SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "usage.singer"
# A value of each JSON type, as a user would write it in a variable, and what it must become.
TYPED = {
    "boolean": ("false", False),
    "integer": ("7", 7),
    "number": ("2.5", 2.5),
    "object": ('{"a": "b"}', {"a": "b"}),
    "array": ('["a", "b"]', ["a", "b"]),
    "string": ("some text", "some text"),
}
UNPARSABLE = {
    "boolean": "maybe",
    "integer": "2.5",
    "number": "ten",
    "object": "[1]",
    "array": "{not json",
}


def full_schema() -> dict[str, Any]:
    schema = copy.deepcopy(TargetUsage.config_jsonschema)
    TargetUsage.append_builtin_config(schema)
    return schema


SETTINGS = sorted(full_schema()["properties"].items())


@pytest.mark.parametrize(("setting", "spec"), SETTINGS, ids=[s for s, _ in SETTINGS])
def test_every_setting_is_read_from_its_variable_with_its_type(
    setting: str, spec: dict[str, Any]
) -> None:
    text, expected = TYPED[json_type(spec)]

    config = parse_environment(full_schema(), PREFIX, {variable_name(PREFIX, setting): text})

    assert config == {setting: expected}


@pytest.mark.parametrize(
    ("setting", "spec"),
    [(s, spec) for s, spec in SETTINGS if json_type(spec) in UNPARSABLE],
    ids=[s for s, spec in SETTINGS if json_type(spec) in UNPARSABLE],
)
def test_a_value_that_does_not_parse_names_the_variable_and_the_type(
    setting: str, spec: dict[str, Any]
) -> None:
    kind = json_type(spec)
    variable = variable_name(PREFIX, setting)

    with pytest.raises(ConfigValidationError) as raised:
        parse_environment(full_schema(), PREFIX, {variable: UNPARSABLE[kind]})

    (problem,) = raised.value.errors
    assert problem.startswith(f"{variable} must be ")
    assert kind in problem.split(" for ")[0]


def test_numbers_keep_whole_values_whole_and_refuse_infinity() -> None:
    schema = full_schema()
    environ = {"TARGET_USAGE_REQUEST_TIMEOUT": "10", "TARGET_USAGE_RETRY_AFTER_CAP": "0.5"}

    config = parse_environment(schema, PREFIX, environ)

    assert config == {"request_timeout": 10, "retry_after_cap": 0.5}
    assert type(config["request_timeout"]) is int
    with pytest.raises(ConfigValidationError):
        parse_environment(schema, PREFIX, {"TARGET_USAGE_REQUEST_TIMEOUT": "inf"})


def run_env(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    return subprocess.run(
        [sys.executable, "-m", "target_usage", "--config=ENV", "--input", str(SAMPLE)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def test_numbers_booleans_and_objects_from_the_environment_configure_a_run(
    tmp_path: Path,
) -> None:
    done = run_env(
        {
            "TARGET_USAGE_DRY_RUN": "true",
            "TARGET_USAGE_DRY_RUN_PATH": "requests.jsonl",
            "TARGET_USAGE_SKALIN_CLIENT_ID": "env-client",
            "TARGET_USAGE_REQUEST_TIMEOUT": "10",
            "TARGET_USAGE_PROGRESS_INTERVAL": "2.5",
            "TARGET_USAGE_SKALIN_REQUESTS_PER_SECOND": "50",
            "TARGET_USAGE_STREAM_SINKS": '{"public-features": "identities"}',
        },
        tmp_path,
    )

    assert done.returncode == 0, done.stderr
    requests = [json.loads(line) for line in (tmp_path / "requests.jsonl").open()]
    assert requests
    assert all(r["url"].endswith("client_id=env-client") for r in requests)
    # stream_sinks sent the features stream to the identities sink: no features left.
    assert {key for r in requests for key in r["body"]} == {"identities"}


def test_a_bad_variable_stops_the_run_naming_it(tmp_path: Path) -> None:
    done = run_env({"TARGET_USAGE_REQUEST_TIMEOUT": "ten", "TARGET_USAGE_DRY_RUN": "yes"}, tmp_path)

    assert done.returncode == 1
    assert "TARGET_USAGE_REQUEST_TIMEOUT must be a number such as 2.5" in done.stderr
    assert "(got 'ten')" in done.stderr
    assert "Traceback" not in done.stderr
