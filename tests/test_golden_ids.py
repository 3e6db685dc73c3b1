"""Ids and whole items are byte-identical across rewrites of the builders.

Both APIs deduplicate on the ids we send, so a faster builder that changed one eventId,
visitId or event_id would make every replayed record a new event. The sample
(`tests/data/golden_sample.jsonl`) is decoded exactly as the SDK's msgspec reader decodes
input (numbers as Decimal) and run through the APIs' own request building;
`tests/data/golden_ids.json` holds what the builders produced before any speed work
(regenerate only for a deliberate, documented change: `python -m tests.test_golden_ids`).

Cases the spec's "Values no rule can represent" changed on purpose are kept out of the
golden file: an integral decimal identifier (`1.0`, `1E+2`) was sent as "1.0" / "1E+2"
(now "1" / "100", so its visitId and Hull claims change too); a boolean, object, array or
blank identifier was sent (now the record is invalid); an out-of-range timestamp crashed
the run (now the record is invalid); a year below 1000 lost its padding
(`999-01-01T00:00:00`, now `0999-...`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from singer_sdk.contrib.msgspec import decoder

from target_usage.hull import HullApi, TokenSigner
from target_usage.skalin import SkalinApi
from target_usage.transport import Part

DATA = Path(__file__).parent / "data"
# One line per case, {"kind", "record"}: identities and features share rows on purpose.
SAMPLE_PATH = DATA / "golden_sample.jsonl"
GOLDEN_PATH = DATA / "golden_ids.json"
SECRET = "golden-secret-0123456789abcdef0123456789"
FIXED_NOW = datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)


def _skalin() -> SkalinApi:
    return SkalinApi("https://collect.skalin.io", "golden", clock=lambda: FIXED_NOW)


def _hull() -> HullApi:
    signer = TokenSigner("golden-connector", SECRET, 3600, True, False, clock=FIXED_NOW.timestamp)
    return HullApi("https://firehose.hullapp.io", "golden.hullapp.io", signer)


def _sent(kind: str, record: dict[str, Any], skalin: SkalinApi, hull: HullApi) -> dict[str, Any]:
    """The item exactly as its request body carries it; a Hull token reduced to its subject."""
    api = skalin if kind in ("identities", "features") else hull
    item = api.build(kind, record)
    body = json.loads(api.request_for([Part(kind, [item], [])]).body)
    if api is skalin:
        return body[kind][0]
    entry = body["batch"][0]
    token = entry.pop("headers")["Hull-Access-Token"]
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    entry["subject"] = {k: v for k, v in claims.items() if k.startswith("io.hull.as")}
    return entry


def current() -> list[dict[str, Any]]:
    skalin, hull = _skalin(), _hull()
    found = []
    for line in SAMPLE_PATH.read_text().splitlines():
        case = decoder.decode(line)  # as the SDK's reader decodes input: numbers as Decimal
        sent = _sent(case["kind"], case["record"], skalin, hull)
        found.append({"kind": case["kind"], "record": line, "sent": sent})
    return found


def test_ids_and_items_are_identical_to_the_golden_sample() -> None:
    golden = json.loads(GOLDEN_PATH.read_text())
    for expected, actual in zip(golden, current(), strict=True):
        assert actual == expected, expected["record"]


def test_the_golden_sample_covers_every_kind_and_id_source() -> None:
    golden = json.loads(GOLDEN_PATH.read_text())
    kinds = {case["kind"] for case in golden}
    assert kinds == {"identities", "features", "traits", "track", "alias", "unalias"}
    event_ids = [c["sent"].get("eventId") or c["sent"]["body"].get("event_id") for c in golden]
    assert len({e for e in event_ids if e}) >= 25


if __name__ == "__main__":
    GOLDEN_PATH.write_text(json.dumps(current(), indent=1, ensure_ascii=False) + "\n")
