"""Strict fake Skalin collect `/hit/bulk` (see tests/fakes/server.py)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from tests.fakes.server import FakeServer, Received, nonempty_str, post_to

# Skalin collect: POST /hit/bulk?rec=1&client_id=...

SKALIN_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
SKALIN_LOCALTIME = re.compile(r"^\d{2}:\d{2}:\d{2}$")
SKALIN_ITEM_KEYS = frozenset(
    {"eventId", "identity", "customerId", "visitId", "ts", "localtime", "url", "cip"}
)
SKALIN_MAX_ITEMS = 100


class FakeSkalin(FakeServer):
    """Skalin's collect bulk endpoint, checked field by field against its doc."""

    ok_status = 200
    ok_body = b'{"status": "ok"}'

    def __init__(self, client_id: str) -> None:
        super().__init__()
        self.client_id = client_id

    @property
    def identities(self) -> list[dict[str, Any]]:
        """All stored identity items, in arrival order."""
        return self._items("identities")

    @property
    def features(self) -> list[dict[str, Any]]:
        """All stored feature items, in arrival order."""
        return self._items("features")

    def _items(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            accepted = list(self.accepted)
        return [item for r in accepted for item in r.json.get(kind, [])]

    def check(self, request: Received) -> list[str]:
        problems = post_to(request, "/hit/bulk")
        if request.query.get("rec") != "1":
            problems.append(f"query rec={request.query.get('rec')!r}: expected '1'")
        if request.query.get("client_id") != self.client_id:
            problems.append(
                f"query client_id={request.query.get('client_id')!r}: expected {self.client_id!r}"
            )
        problems += [
            f"query {k!r}: unknown parameter" for k in request.query.keys() - {"rec", "client_id"}
        ]
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("application/json"):
            problems.append(f"header Content-Type {content_type!r}: expected application/json")
        body = request.json
        if not isinstance(body, dict):
            return [*problems, "body: not a JSON object"]
        problems += [
            f"body key {k!r}: unknown (identities, features)"
            for k in sorted(body.keys() - {"identities", "features"})
        ]
        for kind in ("identities", "features"):
            if kind not in body:
                continue
            items = body[kind]
            if not isinstance(items, list):
                problems.append(f"{kind}: not a list")
                continue
            if len(items) > SKALIN_MAX_ITEMS:
                problems.append(f"{kind}: {len(items)} items (max {SKALIN_MAX_ITEMS})")
            for n, item in enumerate(items):
                problems += [f"{kind}[{n}].{p}" for p in _skalin_item(item, kind)]
        return problems


def _skalin_item(item: Any, kind: str) -> list[str]:
    """Problems of one identities/features item, each starting with the field name."""
    if not isinstance(item, dict):
        return [f"item: not an object but {type(item).__name__}"]
    allowed = SKALIN_ITEM_KEYS | ({"name"} if kind == "features" else set())
    problems = [f"{k}: unknown key" for k in sorted(item.keys() - allowed)]
    identity = item.get("identity")
    if not isinstance(identity, dict):
        problems.append(f"identity: required object, got {identity!r}")
    else:
        problems += [
            f"identity.{k}: unknown key (email, id)"
            for k in sorted(identity.keys() - {"email", "id"})
        ]
        problems += [
            f"identity.{k}: {identity[k]!r} is not a non-empty string"
            for k in ("email", "id")
            if k in identity and not nonempty_str(identity[k])
        ]
        if not identity.keys() & {"email", "id"}:
            problems.append("identity: needs email or id")
    for key in ("eventId", "visitId"):
        if key in item and not (isinstance(item[key], str) and len(item[key]) == 16):
            problems.append(f"{key}: {item[key]!r} is not a 16-character string")
    if "ts" in item:
        ts = item["ts"]
        if not (isinstance(ts, str) and SKALIN_TS.match(ts)):
            problems.append(f"ts: {ts!r} is not YYYY-MM-DDTHH:mm:ss")
        else:
            try:
                datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S")
            except ValueError:
                problems.append(f"ts: {ts!r} is not a valid date-time")
    if "localtime" in item:
        localtime = item["localtime"]
        if not (isinstance(localtime, str) and SKALIN_LOCALTIME.match(localtime)):
            problems.append(f"localtime: {localtime!r} is not HH:mm:ss")
    problems += [
        f"{k}: {item[k]!r} is not a string"
        for k in ("customerId", "url", "cip")
        if k in item and not isinstance(item[k], str)
    ]
    if kind == "features" and not nonempty_str(item.get("name")):
        problems.append(f"name: required non-empty string, got {item.get('name')!r}")
    return problems
