"""docs/shaping-your-data.md shows real requests: each example row, put through its documented
stream_maps and a dry run, becomes exactly the request the page shows.

Blocks of the page are tagged `<!-- shaping: SINK ROLE -->`. Hull requests carry the time
they were sent and freshly signed tokens, which the page shows as `<now>` and `<token>`;
the token's claims are compared with the clock-set ones (iat, nbf, exp) left as shown.

`python tests/test_shaping_docs.py` rewrites the request and claims blocks from a dry run.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jwt
import pytest

from target_usage.target import TargetUsage

DOC = Path(__file__).resolve().parents[1] / "docs" / "shaping-your-data.md"
SINKS = ("identities", "features", "traits", "track", "alias", "unalias")
HULL_SINKS = ("traits", "track", "alias", "unalias")
BLOCK = re.compile(r"<!-- shaping: (\S+) (\S+) -->\n```(\w+)\n(.*?)\n```", re.DOTALL)
NOW, TOKEN = "<now>", "<token>"
CLOCK_CLAIMS = ("iat", "nbf", "exp")


def blocks(text: str) -> dict[tuple[str, str], str]:
    return {(sink, role): body for sink, role, _, body in BLOCK.findall(text)}


def block(sink: str, role: str) -> Any:
    return json.loads(blocks(DOC.read_text())[(sink, role)])


def schema_of(record: dict[str, Any]) -> dict[str, Any]:
    """A permissive schema typed from the values, as a tap would declare the columns."""
    kinds = {bool: "boolean", int: "integer", float: "number", dict: "object", list: "array"}
    return {
        "type": "object",
        "properties": {
            name: {"type": [kinds.get(type(value), "string"), "null"]}
            for name, value in record.items()
        },
    }


def dry_run(config: dict[str, Any], messages: Iterable[dict[str, Any]]) -> list[dict]:
    """The requests the target writes for these Singer messages, dry-run in this process."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "requests.jsonl"
        settings = {**config, "dry_run_path": str(path), "dead_letter_path": f"{tmp}/dl.jsonl"}
        text = "".join(json.dumps(m) + "\n" for m in messages)
        TargetUsage(config=settings).listen(io.StringIO(text))
        return [json.loads(line) for line in path.read_text().splitlines()]


def example_run(sink: str) -> list[dict[str, Any]]:
    record = block(sink, "record")
    schema = {
        "type": "SCHEMA",
        "stream": record["stream"],
        "schema": schema_of(record["record"]),
        "key_properties": ["id"] if "id" in record["record"] else [],
    }
    config = {**block("all", "config"), **block(sink, "stream-maps")}
    return dry_run(config, [schema, record])


def masked(request: dict[str, Any]) -> dict[str, Any]:
    """The request with what depends on the clock replaced by placeholders."""
    if request["api"] != "Hull":
        return request
    body = request["body"]
    batch = [{**e, "headers": {"Hull-Access-Token": TOKEN}} for e in body["batch"]]
    return {**request, "body": {"batch": batch, "timestamp": NOW, "sentAt": NOW}}


def claims_of(request: dict[str, Any], shown: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one entry's token claims, verified, its clock claims replaced by those `shown`."""
    config = block("all", "config")
    (entry,) = request["body"]["batch"]
    claims = jwt.decode(
        entry["headers"]["Hull-Access-Token"],
        config["hull_connector_secret"],
        algorithms=["HS256"],
    )
    assert claims["nbf"] == claims["iat"]
    assert claims["exp"] - claims["iat"] == 3600
    shown = shown or {"iat": 1793610000, "nbf": 1793610000, "exp": 1793613600}
    return {**claims, **{k: shown[k] for k in CLOCK_CLAIMS}}


@pytest.mark.parametrize("sink", SINKS)
def test_example_row_becomes_the_request_shown(sink: str) -> None:
    (request,) = example_run(sink)

    assert masked(request) == block(sink, "request")


@pytest.mark.parametrize("sink", HULL_SINKS)
def test_example_token_carries_the_claims_shown(sink: str) -> None:
    (request,) = example_run(sink)
    shown = block(sink, "claims")

    assert claims_of(request, shown) == shown


def test_every_sink_has_every_block() -> None:
    found = set(blocks(DOC.read_text()))
    for sink in SINKS:
        roles = {"source", "view", "stream-maps", "record", "request"}
        roles |= {"claims"} if sink in HULL_SINKS else set()
        assert {(sink, role) for role in roles} <= found


def regenerate() -> None:
    """Rewrite the request and claims blocks from a dry run of each example."""
    text = DOC.read_text()
    for sink in SINKS:
        (request,) = example_run(sink)
        shown = {("request"): masked(request)}
        if sink in HULL_SINKS:
            shown["claims"] = claims_of(request)
        for role, value in shown.items():
            pattern = re.compile(
                rf"(<!-- shaping: {sink} {role} -->\n```json\n)(.*?)(\n```)", re.DOTALL
            )
            rendered = json.dumps(value, indent=2, ensure_ascii=False)
            text = pattern.sub(lambda m, r=rendered: m[1] + r + m[3], text)
    DOC.write_text(text)


if __name__ == "__main__":
    regenerate()
