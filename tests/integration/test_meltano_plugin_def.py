"""README "Add target-usage to your Meltano project", run as written in a new project.

A fresh `meltano init`, the loader added from meltano-plugin.yml (pip_url pointing at this
checkout, installed by Meltano into its own venv), tap-jsonl from the package index reading
a file whose columns are not the contract's, settings of each kind set with
`meltano config set`, the secret in `.env`, one setting from a `TARGET_USAGE_*` variable,
and a dry run through `meltano run`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from tests.integration.conftest import (
    REPO,
    MeltanoProject,
    unavailable,
    venv_executable,
)

pytestmark = pytest.mark.integration

SECRET = "dot-env-secret-0123456789abcdef"
EVENTS = [
    {
        "user_email": "ada@example.com",
        "account": "acme",
        "feature_name": "export-report",
        "happened_at": "2026-11-02T09:20:31Z",
    },
    {
        "user_email": "grace@example.com",
        "account": "globex",
        "feature_name": "share-dashboard",
        "happened_at": "2026-11-02T10:00:00Z",
    },
]
# README's recipe: the tap's columns renamed to the contract's, every other column dropped.
STREAM_MAPS = {
    "usage_events": {
        "email": "user_email",
        "customer_id": "account",
        "name": "feature_name",
        "ts": "happened_at",
        "__else__": "__NULL__",
    }
}


def repository_plugin(name: str) -> dict[str, Any]:
    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    (found,) = (p for kind in project["plugins"].values() for p in kind if p["name"] == name)
    return {k: v for k, v in found.items() if k != "config"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> MeltanoProject:
    meltano = venv_executable("meltano")
    if meltano is None:
        unavailable("meltano is not installed (pip install -e '.[test]')")
    root = tmp_path_factory.mktemp("meltano-user")
    MeltanoProject(root, meltano).run("init", "demo", "--no_usage_stats")
    project = MeltanoProject(root / "demo", meltano)
    # As README says: the plugin file with pip_url pointing at the checkout.
    plugin = re.sub(
        r"(?m)^pip_url: .*$", f"pip_url: {REPO}", (REPO / "meltano-plugin.yml").read_text()
    )
    (project.root / "target-usage.yml").write_text(plugin)
    project.run("add", "--plugin-type", "loader", "target-usage", "--from-ref", "target-usage.yml")
    # The same tap the repository's project uses, so its install is cached.
    (project.root / "tap-jsonl.yml").write_text(yaml.safe_dump(repository_plugin("tap-jsonl")))
    project.run("add", "--plugin-type", "extractor", "tap-jsonl", "--from-ref", "tap-jsonl.yml")
    data = project.root / "data"
    data.mkdir()
    (data / "usage_events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EVENTS))

    def config(plugin: str, setting: str, value: str) -> None:
        project.run("config", "set", plugin, setting, value)

    config("tap-jsonl", "path", "$MELTANO_PROJECT_ROOT/data/*.jsonl")
    config("tap-jsonl", "stream_name", "usage_events")
    config("target-usage", "dry_run", "true")  # a boolean
    config("target-usage", "max_retries", "3")  # an integer
    config("target-usage", "stream_sinks", '{"usage_events": "features"}')  # an object
    config("target-usage", "stream_maps", json.dumps(STREAM_MAPS))
    config("target-usage", "skalin_client_id", "demo-client")
    config("target-usage", "hull_connector_secret", SECRET)  # sensitive: written to .env
    return project


def test_settings_land_typed_and_the_secret_in_dot_env(project: MeltanoProject) -> None:
    text = (project.root / "meltano.yml").read_text()
    (loader,) = yaml.safe_load(text)["plugins"]["loaders"]

    assert loader["config"]["dry_run"] is True
    assert loader["config"]["max_retries"] == 3
    assert loader["config"]["stream_sinks"] == {"usage_events": "features"}
    assert SECRET not in text
    assert f"TARGET_USAGE_HULL_CONNECTOR_SECRET='{SECRET}'" in (project.root / ".env").read_text()


def test_meltano_run_dry_runs_the_renamed_columns(project: MeltanoProject) -> None:
    done = project.run(
        "run",
        "tap-jsonl",
        "target-usage",
        env={"TARGET_USAGE_DRY_RUN_PATH": "output/requests.jsonl"},
    )

    lines = (project.root / "output" / "requests.jsonl").read_text().splitlines()
    (request,) = [json.loads(line) for line in lines]
    assert request["url"] == "https://collect.skalin.io/hit/bulk?rec=1&client_id=demo-client"
    features = request["body"]["features"]
    assert [f["identity"] for f in features] == [{"email": e["user_email"]} for e in EVENTS]
    assert [f["name"] for f in features] == [e["feature_name"] for e in EVENTS]
    assert [f["customerId"] for f in features] == [e["account"] for e in EVENTS]
    assert [f["ts"] for f in features] == ["2026-11-02T09:20:31", "2026-11-02T10:00:00"]
    output = done.stdout + done.stderr
    assert SECRET not in output
    target_lines = [line for line in output.splitlines() if "] target-usage" in line]
    assert "stream 'usage_events' -> features: 2 records in" in "\n".join(target_lines)
    assert not [line for line in target_lines if "METRIC" in line or "Draining" in line]


def test_the_loader_errors_show_as_errors_under_meltano(project: MeltanoProject) -> None:
    bad = project.root / "data" / "usage_events_bad.jsonl"
    bad.write_text(json.dumps({**EVENTS[0], "user_email": ""}) + "\n")
    try:
        done = project.run("run", "tap-jsonl", "target-usage", check=False)
    finally:
        bad.unlink()

    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if "[error" in line]
    assert any("target-usage" in line and "no identity" in line for line in errors), done.stderr
