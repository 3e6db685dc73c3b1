"""The shipped Meltano project and sample, run as README says, and the same tap piped by hand."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes import FakeHull, FakeSkalin
from tests.harness import CLIENT_ID, HULL_CONNECTOR, HULL_ORG, HULL_SECRET
from tests.integration.conftest import (
    REPO,
    MeltanoProject,
    meltano_env,
    project_copy,
    unavailable,
    venv_executable,
)

pytestmark = pytest.mark.integration

SAMPLE = REPO / "examples" / "jsonl"
# README's example: this record of the sample becomes exactly this item.
README_FEATURE = {
    "eventId": "e7258c8edd76eaea",
    "identity": {"email": "ada@example.com"},
    "customerId": "acme",
    "visitId": "a3c06ba5f6083746",
    "ts": "2026-11-02T09:20:31",
    "url": "https://app.example.com/reports",
    "cip": "203.0.113.7",
    "name": "export-report",
}


def sample(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (SAMPLE / f"{name}.jsonl").read_text().splitlines()]


def plugin(name: str) -> dict[str, Any]:
    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    return next(p for kind in project["plugins"].values() for p in kind if p["name"] == name)


def test_meltano_run_dry_runs_the_sample(meltano_project: MeltanoProject) -> None:
    requests_file = meltano_project.root / "output" / "target-usage-requests.jsonl"
    requests_file.unlink(missing_ok=True)

    meltano_project.run("run", "tap-jsonl", "target-usage")

    requests = [json.loads(line) for line in requests_file.read_text().splitlines()]
    skalin = [r for r in requests if r["api"] == "Skalin"]
    assert {r["url"] for r in skalin} == {
        "https://collect.skalin.io/hit/bulk?rec=1&client_id=sample-client-id"
    }
    items = {
        k: [i for r in skalin for i in r["body"].get(k, [])] for k in ("identities", "features")
    }
    assert items["features"][0] == README_FEATURE
    for kind, sent in items.items():
        assert len(sent) == len(sample(kind))
    hull = [r for r in requests if r["api"] == "Hull"]
    # The connector secret never reaches the file.
    assert {r["headers"]["Hull-Access-Token"] for r in hull} == {"***"}
    kinds = [entry["type"] for r in hull for entry in r["body"]["batch"]]
    assert sorted(kinds) == ["track"] * len(sample("track")) + ["traits"] * len(sample("traits"))
    # A dry run emits no STATE, so Meltano keeps no bookmark past records never sent.
    listed = meltano_project.run("state", "list").stdout
    assert "tap-jsonl-to-target-usage" not in listed


def test_tap_jsonl_piped_into_target_usage_delivers_the_sample(
    meltano_project: MeltanoProject, skalin: FakeSkalin, hull: FakeHull, tmp_path: Path
) -> None:
    tap_config = dict(plugin("tap-jsonl")["config"])
    tap_config["path"] = str(SAMPLE / "*.jsonl")
    target_config = {
        "skalin_url": skalin.url,
        "skalin_client_id": CLIENT_ID,
        "hull_firehose_url": hull.url,
        "hull_organization": HULL_ORG,
        "hull_connector_id": HULL_CONNECTOR,
        "hull_connector_secret": HULL_SECRET,
        "dead_letter_path": str(tmp_path / "rejected.jsonl"),
    }
    (tmp_path / "tap.json").write_text(json.dumps(tap_config))
    (tmp_path / "target.json").write_text(json.dumps(target_config))
    tap = meltano_project.executable("extractors", "tap-jsonl")
    target = venv_executable("target-usage")
    assert target is not None
    pipeline = f"{shlex.quote(tap)} --config tap.json | {shlex.quote(target)} --config target.json"

    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", pipeline],
        cwd=tmp_path,
        env=meltano_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr[-4000:]
    sent = {
        kind: [item for r in skalin.accepted for item in r.json.get(kind, [])]
        for kind in ("identities", "features")
    }
    assert [i["identity"] for i in sent["identities"]] == [
        {k: v for k, v in (("email", r.get("email")), ("id", r.get("user_id"))) if v}
        for r in sample("identities")
    ]
    assert sent["features"][0] == README_FEATURE
    assert [i["name"] for i in sent["features"]] == [r["name"] for r in sample("features")]
    assert [e["body"]["event"] for e in hull.entries if e["type"] == "track"] == [
        r["event"] for r in sample("track")
    ]
    traits = [e["body"] for e in hull.entries if e["type"] == "traits"]
    assert traits[0] == {
        "plan": "enterprise",
        "seats": 40,
        "logins": {"operation": "inc", "value": 1},
    }
    assert len(traits) == len(sample("traits"))
    # STATE comes back once the records it covers are delivered.
    states = [json.loads(line) for line in done.stdout.splitlines()]
    assert states
    assert all("bookmarks" in s for s in states)


def test_meltano_config_sets_settings_where_they_belong(tmp_path: Path) -> None:
    meltano = venv_executable("meltano")
    if meltano is None:
        unavailable("meltano is not installed (pip install -e '.[test]')")
    project = MeltanoProject(project_copy(tmp_path / "project"), meltano)
    shutil.copy(REPO / "meltano.yml", project.root / "meltano.yml")  # the file as shipped

    project.run("config", "set", "target-usage", "skalin_client_id", "X")
    project.run("config", "set", "target-usage", "hull_connector_secret", "s3cret-value")
    project.run("config", "set", "target-usage", "invalid_records", "dead_letter")
    refused = project.run("config", "set", "target-usage", "invalid_records", "bogus", check=False)

    assert refused.returncode != 0
    assert "not a valid choice" in refused.stdout + refused.stderr
    text = (project.root / "meltano.yml").read_text()
    assert "s3cret-value" not in text  # sensitive: written to .env, never meltano.yml
    assert (
        "TARGET_USAGE_HULL_CONNECTOR_SECRET='s3cret-value'" in (project.root / ".env").read_text()
    )
    (loader,) = yaml.safe_load(text)["plugins"]["loaders"]
    assert loader["config"]["skalin_client_id"] == "X"
    assert loader["config"]["invalid_records"] == "dead_letter"
    listed = project.run("config", "list", "target-usage").stdout
    assert "skalin_client_id [env: TARGET_USAGE_SKALIN_CLIENT_ID]" in listed
    assert "s3cret-value" not in listed
