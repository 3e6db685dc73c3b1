"""Singer and packaging conventions: config from the environment, --version, metadata."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.harness import HULL_SECRET, encode, record_message, schema_message

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def run_module(
    *args: str, env: dict[str, str], cwd: Path, stdin: str = ""
) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TARGET_USAGE_")}
    return subprocess.run(
        [sys.executable, "-m", "target_usage", *args],
        input=stdin,
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_config_env_reads_every_setting_from_target_usage_variables(tmp_path: Path) -> None:
    requests_path = tmp_path / "requests.jsonl"
    env = {
        "TARGET_USAGE_DRY_RUN": "true",
        "TARGET_USAGE_DRY_RUN_PATH": str(requests_path),
        "TARGET_USAGE_SKALIN_CLIENT_ID": "client-from-env",
        "TARGET_USAGE_HULL_ORGANIZATION": "env.hullapp.io",
        "TARGET_USAGE_HULL_CONNECTOR_ID": "connector-from-env",
        "TARGET_USAGE_HULL_CONNECTOR_SECRET": HULL_SECRET,
        "TARGET_USAGE_STREAM_SINKS": json.dumps({"product_events": "track"}),
    }
    messages = [
        schema_message("public-features"),
        record_message("public-features", {"email": "ada@example.com", "name": "export"}),
        schema_message("product_events"),
        record_message("product_events", {"email": "ada@example.com", "event": "Exported"}),
    ]

    done = run_module("--config=ENV", env=env, cwd=tmp_path, stdin=encode(messages).decode())

    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # a dry run emits no STATE
    requests = {r["api"]: r for r in map(json.loads, requests_path.read_text().splitlines())}
    assert requests["Skalin"]["url"].endswith("/hit/bulk?rec=1&client_id=client-from-env")
    hull = requests["Hull"]
    assert hull["headers"]["Hull-App-Id"] == "connector-from-env"
    assert hull["headers"]["Hull-Organization"] == "env.hullapp.io"
    assert hull["body"]["batch"][0]["type"] == "track"  # stream_sinks parsed from JSON
    assert HULL_SECRET not in requests_path.read_text() + done.stderr


def test_version_is_the_package_version(tmp_path: Path) -> None:
    done = run_module("--version", env={}, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"target-usage v{PYPROJECT['version']},")
    assert importlib.metadata.version("target-usage") == PYPROJECT["version"]


def test_installed_metadata_carries_license_and_classifiers() -> None:
    metadata = importlib.metadata.metadata("target-usage")

    # An SPDX expression (PEP 639): built by setuptools >= 77, as build-system requires.
    assert metadata["License-Expression"] == PYPROJECT["license"] == "Apache-2.0"
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert set(PYPROJECT["classifiers"]) <= set(metadata.get_all("Classifier"))
    assert not any(c.startswith("License ::") for c in PYPROJECT["classifiers"])


def test_changelog_has_an_entry_for_the_current_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()

    assert "Keep a Changelog" in changelog
    assert f"## [{PYPROJECT['version']}]" in changelog
