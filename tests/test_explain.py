"""A dry run ends by showing the first item of each stream, each field with the columns it
was made of, so a first run (no account needed) explains what would be sent."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.harness import HULL_CONNECTOR, HULL_ORG, HULL_SECRET, run_cli, singer_lines

# README's example row, as a warehouse names its columns; stream_maps renames them.
RAW = {
    "user_email": "ada@example.com",
    "account": "acme",
    "feature_name": "export-report",
    "happened_at": "2026-11-02 09:20:31.52",
    "page": "https://app.example.com/reports",
}
STREAM_MAPS = {
    "app-events": {
        "__alias__": "features",
        "__else__": "__NULL__",
        "email": "user_email",
        "customer_id": "account",
        "name": "feature_name",
        "ts": "happened_at",
        "url": "page",
    }
}


def explanation(stderr: str) -> list[str]:
    """The log messages from the explanation's heading to the end."""
    messages = [line.split("| ", 3)[-1] for line in stderr.splitlines()]
    start = next(i for i, m in enumerate(messages) if m.startswith("What would be sent"))
    return messages[start:]


def test_a_dry_run_shows_each_field_of_the_first_item_with_its_columns(tmp_path: Path) -> None:
    config = {
        "dry_run": True,
        "dry_run_path": str(tmp_path / "requests.jsonl"),
        "skalin_client_id": "client",
        "stream_maps": STREAM_MAPS,
    }

    run = run_cli(config, singer_lines("app-events", [RAW, {**RAW, "account": "b"}]), tmp_path)

    assert run.exit_code == 0, run.stderr
    told = explanation(run.stderr)
    assert told[0].startswith(f"What would be sent: one request per line of {tmp_path}")
    (request,) = [json.loads(x) for x in (tmp_path / "requests.jsonl").read_text().splitlines()]
    item = request["body"]["features"][0]
    sources = {
        "eventId": "every column",
        "identity.email": "email",
        "customerId": "customer_id",
        "visitId": "email + customer_id + ts",
        "ts": "ts",
        "url": "url",
        "name": "name",
    }
    value = {**item, "identity.email": item["identity"]["email"]}
    assert told[1:9] == [
        "  features item from stream 'features' record #1:",
        *(f"    {field} = {json.dumps(value[field])}  <- {src}" for field, src in sources.items()),
    ]
    # Then the summary, which stays last.
    assert told[9].startswith("Run summary")
    assert told[-1].startswith("  1 request written to")


def test_hull_token_claims_are_traced_to_their_columns(tmp_path: Path) -> None:
    config = {
        "dry_run": True,
        "dry_run_path": str(tmp_path / "requests.jsonl"),
        "hull_organization": HULL_ORG,
        "hull_connector_id": HULL_CONNECTOR,
        "hull_connector_secret": HULL_SECRET,
    }
    row = {"email": "ada@example.com", "account_domain": "example.com", "event": "Opened"}

    run = run_cli(config, singer_lines("analytics.track", [row]), tmp_path)

    assert run.exit_code == 0, run.stderr
    told = explanation(run.stderr)
    assert (
        '    headers.Hull-Access-Token.io.hull.asUser.email = "ada@example.com"  <- email' in told
    )
    assert (
        '    headers.Hull-Access-Token.io.hull.asAccount.domain = "example.com"  '
        "<- account_domain" in told
    )
    assert (
        f'    headers.Hull-Access-Token.iss = "{HULL_CONNECTOR}"  '
        "<- no column (set by the target: a setting or the clock)" in told
    )
    assert '    body.event = "Opened"  <- event' in told
    assert HULL_SECRET not in run.stderr


def test_a_real_run_does_not_explain(skalin_config: dict, tmp_path: Path) -> None:
    row = {"email": "ada@example.com", "name": "export-report"}
    run = run_cli(skalin_config, singer_lines("features", [row]), tmp_path)

    assert run.exit_code == 0, run.stderr
    assert "What would be sent" not in run.stderr


REPO = Path(__file__).resolve().parents[1]
TRY_IT_START, TRY_IT_END = "<!-- try-it:start -->\n```\n", "```\n<!-- try-it:end -->"


def timeless(lines: list[str]) -> list[str]:
    """Lines without what varies from run to run: durations, and how many requests the
    dry-run file got (identities and features share a request only when both are queued
    together, which depends on which of the SDK's parallel drains hands over first)."""
    return [
        re.sub(r"\d+ requests? written", "N requests written", re.sub(r"\d+\.\ds\b", "N.Ns", line))
        for line in lines
    ]


def test_readme_try_it_shows_what_the_quick_start_command_prints(tmp_path: Path) -> None:
    config, sample = REPO / "examples/config.dry-run.json", REPO / "examples/usage.singer"
    done = subprocess.run(
        [sys.executable, "-m", "target_usage", "--config", str(config), "--input", str(sample)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=True,
    )

    readme = (REPO / "README.md").read_text()
    shown = readme.split(TRY_IT_START, 1)[1].split(TRY_IT_END, 1)[0].splitlines()
    assert timeless(explanation(done.stderr)) == timeless(shown)
