"""meltano.yml declares the loader's settings as the target defines them, and holds no secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from target_usage.settings import CONFIG_SCHEMA

PROJECT = yaml.safe_load((Path(__file__).resolve().parents[1] / "meltano.yml").read_text())
LOADER = next(p for p in PROJECT["plugins"]["loaders"] if p["name"] == "target-usage")
DECLARED = {s["name"]: s for s in LOADER["settings"]}
TARGET_SETTINGS = CONFIG_SCHEMA["properties"]
# Meltano 4's `decimal` kind yields config it cannot serialize once set from the
# environment or `meltano config set`, so number settings are declared as whole numbers.
KIND_OF_TYPE = {"boolean": "boolean", "integer": "integer", "number": "integer", "object": "object"}


def expected_kind(spec: dict[str, Any]) -> str:
    if spec.get("secret"):
        return "password"
    if "enum" in spec:
        return "options"
    (json_type,) = [t for t in spec["type"] if t != "null"]
    return KIND_OF_TYPE.get(json_type, "string")


@pytest.mark.parametrize("name", sorted(TARGET_SETTINGS))
def test_every_target_setting_is_declared_with_its_kind_and_default(name: str) -> None:
    spec, declared = TARGET_SETTINGS[name], DECLARED.get(name)

    assert declared is not None, f"meltano.yml does not declare '{name}'"
    assert declared["kind"] == expected_kind(spec)
    if "default" in spec and spec["default"] != {}:
        assert declared["value"] == spec["default"]
    if "enum" in spec:
        assert [o["value"] for o in declared["options"]] == [v for v in spec["enum"] if v]
    assert declared.get("sensitive", False) == bool(spec.get("secret"))


def test_meltano_declares_only_settings_the_target_knows() -> None:
    sdk_settings = {"batch_size_rows", "validate_records", "stream_maps", "stream_map_config"}
    sdk_settings |= {"flattening_enabled", "flattening_max_depth"}

    assert set(DECLARED) - set(TARGET_SETTINGS) <= sdk_settings


def test_no_secret_value_is_committed() -> None:
    secrets = {name for name, s in DECLARED.items() if s.get("sensitive")}
    configs = [LOADER.get("config", {})] + [
        loader.get("config", {})
        for environment in PROJECT["environments"]
        for loader in environment.get("config", {}).get("plugins", {}).get("loaders", [])
    ]

    for config in configs:
        for name in secrets & set(config):
            assert config[name].startswith("PLACEHOLDER"), f"{name} holds a value"
