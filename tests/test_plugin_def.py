"""meltano-plugin.yml is the loader's definition as `--about` gives it, kind by kind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from target_usage.plugin_def import render

PLUGIN_FILE = Path(__file__).resolve().parents[1] / "meltano-plugin.yml"
REGENERATE = "python -m target_usage.plugin_def > meltano-plugin.yml"


def about() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "target_usage", "--about", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


ABOUT = about()
PROPERTIES = ABOUT["settings"]["properties"]
DECLARED = yaml.safe_load(PLUGIN_FILE.read_text())
SETTINGS = {s["name"]: s for s in DECLARED["settings"]}
# Meltano kinds of JSON Schema types; `number` is `integer` (Meltano 4's `decimal` kind
# yields a Decimal it cannot write into the plugin's config file).
KINDS = {"boolean": "boolean", "integer": "integer", "number": "integer"}
KINDS |= {"object": "object", "array": "array", "string": "string"}


def test_the_file_is_the_generator_output() -> None:
    assert PLUGIN_FILE.read_text() == render(), f"meltano-plugin.yml is stale: run `{REGENERATE}`"


def test_the_plugin_is_the_loader_about_describes() -> None:
    assert DECLARED["name"] == ABOUT["name"] == DECLARED["executable"]
    assert DECLARED["description"] == ABOUT["description"]
    assert DECLARED["capabilities"] == ABOUT["capabilities"]
    # Meltano parses the loader's JSON log lines, keeping their levels, only with this.
    assert "structured-logging" in DECLARED["capabilities"]
    assert list(SETTINGS) == list(PROPERTIES)


@pytest.mark.parametrize("name", list(PROPERTIES))
def test_every_setting_has_its_kind_default_and_description(name: str) -> None:
    spec, declared = PROPERTIES[name], SETTINGS[name]
    (json_type,) = [t for t in spec["type"] if t != "null"]

    if spec.get("secret"):
        assert declared["kind"] == "password"
        assert declared["sensitive"] is True
    elif "enum" in spec:
        assert declared["kind"] == "options"
        assert [o["value"] for o in declared["options"]] == [v for v in spec["enum"] if v]
    else:
        assert declared["kind"] == KINDS[json_type]
    assert declared.get("value") == spec.get("default")
    assert declared.get("description") == spec.get("description")
