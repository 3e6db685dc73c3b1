"""Strict fake Hull firehose with JWT-signed entries (see tests/fakes/server.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from tests.fakes.server import FakeServer, Received, nonempty_str, post_to, zoned

# Hull firehose: POST / with a batch of JWT-signed entries

HULL_TYPES = frozenset({"traits", "track", "alias", "unalias"})
HULL_USER_KEYS = frozenset({"email", "external_id", "anonymous_id", "id"})
HULL_ACCOUNT_KEYS = frozenset({"domain", "external_id", "anonymous_id", "id"})
HULL_CLAIMS = frozenset(
    {
        "iss",
        "iat",
        "nbf",
        "exp",
        "io.hull.subjectType",
        "io.hull.asUser",
        "io.hull.asAccount",
        "io.hull.create",
        "io.hull.active",
    }
)
HULL_TRACK_KEYS = frozenset(
    {"event", "properties", "event_id", "ip", "url", "referer", "source", "type", "created_at"}
)
HULL_OPERATIONS = frozenset({"set", "setIfNull", "inc", "dec"})
HULL_MAX_TRAITS = 2000
HULL_MAX_TRAIT_BYTES = 2048
HULL_LEEWAY_SECONDS = 60
# Time a request may take between the client building it and the server reading it.
HULL_TRANSIT_SECONDS = 1


class FakeHull(FakeServer):
    """Hull's firehose: checks headers, batch shape, each entry's JWT and body."""

    ok_status = 204
    ok_body = b""

    def __init__(
        self,
        organization: str,
        connector_id: str,
        secret: str,
        max_batch: int = 100,
        max_body_bytes: int = 1_000_000,
    ) -> None:
        super().__init__()
        self.organization = organization
        self.connector_id = connector_id
        self.secret = secret
        self.max_batch = max_batch
        self.max_body_bytes = max_body_bytes
        self.now: Callable[[], float] = time.time

    @property
    def entries(self) -> list[dict[str, Any]]:
        """Stored entries as {type, timestamp, body, claims, token}, in arrival order."""
        with self._lock:
            accepted = list(self.accepted)
        found = []
        for request in accepted:
            for entry in request.json["batch"]:
                token = entry["headers"]["Hull-Access-Token"]
                found.append(
                    {
                        "type": entry["type"],
                        "timestamp": entry["timestamp"],
                        "body": entry["body"],
                        "claims": jwt.decode(token, options={"verify_signature": False}),
                        "token": token,
                    }
                )
        return found

    @property
    def tokens_seen(self) -> set[str]:
        """Distinct JWTs among stored entries (to check token reuse/caching)."""
        return {entry["token"] for entry in self.entries}

    def check(self, request: Received) -> list[str]:
        problems = post_to(request, "/")
        content_type = request.headers.get("content-type")
        if (content_type or "").split(";")[0].strip().lower() != "application/json":
            problems.append(f"header Content-Type {content_type!r}: expected application/json")
        for name, expected in (
            ("Hull-App-Id", self.connector_id),
            ("Hull-Organization", self.organization),
            ("Hull-Access-Token", self.secret),
        ):
            got = request.headers.get(name.lower())
            if got is None:
                problems.append(f"header {name}: missing")
            elif got != expected:
                problems.append(f"header {name}: {got!r} is not the configured value")
        if len(request.body) >= self.max_body_bytes:
            problems.append(f"body: {len(request.body)} bytes (must be < {self.max_body_bytes})")
        body = request.json
        if not isinstance(body, dict):
            return [*problems, "body: not a JSON object"]
        if body.keys() != {"batch", "timestamp", "sentAt"}:
            problems.append(f"body keys {sorted(body)}: expected batch, sentAt, timestamp")
        problems += [
            f"{k}: {body[k]!r} is not ISO-8601 with a zone"
            for k in ("timestamp", "sentAt")
            if k in body and not zoned(body[k])
        ]
        batch = body.get("batch")
        if not isinstance(batch, list) or not batch:
            return [*problems, "batch: must be a non-empty list"]
        if len(batch) > self.max_batch:
            problems.append(f"batch: {len(batch)} entries (max {self.max_batch})")
        for n, entry in enumerate(batch):
            problems += [f"batch[{n}].{p}" for p in self._entry(entry)]
        return problems

    def _entry(self, entry: Any) -> list[str]:
        if not isinstance(entry, dict):
            return [f"entry: not an object but {type(entry).__name__}"]
        problems = []
        if entry.keys() != {"type", "timestamp", "headers", "body"}:
            problems.append(f"keys {sorted(entry)}: expected body, headers, timestamp, type")
        kind = entry.get("type")
        if kind not in HULL_TYPES:
            problems.append(f"type: {kind!r} not in {sorted(HULL_TYPES)}")
        if not zoned(entry.get("timestamp")):
            problems.append(f"timestamp: {entry.get('timestamp')!r} is not ISO-8601 with a zone")
        headers = entry.get("headers")
        if not (
            isinstance(headers, dict)
            and headers.keys() == {"Hull-Access-Token"}
            and nonempty_str(headers["Hull-Access-Token"])
        ):
            problems.append(f"headers: {headers!r} is not {{'Hull-Access-Token': jwt}}")
        else:
            problems += [
                f"headers.Hull-Access-Token: {p}"
                for p in self._claims(headers["Hull-Access-Token"])
            ]
        body = entry.get("body")
        if not isinstance(body, dict):
            problems.append(f"body: not an object but {type(body).__name__}")
        elif kind == "track":
            problems += [f"body.{p}" for p in _hull_track(body)]
        elif kind in ("alias", "unalias"):
            if body.keys() != {"anonymous_id"} or not nonempty_str(body["anonymous_id"]):
                problems.append(f"body: {body!r} is not {{'anonymous_id': non-empty string}}")
        elif kind == "traits":
            problems += [f"body.{p}" for p in _hull_traits(body)]
        return problems

    def _claims(self, token: str) -> list[str]:
        """Verify the JWT with the connector secret against `now()`, then its claims."""
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                options={
                    "require": ["iss", "iat"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            return [f"{type(exc).__name__}: {exc}"]
        problems = [f"claim {k!r}: unknown" for k in sorted(claims.keys() - HULL_CLAIMS)]
        if claims["iss"] != self.connector_id:
            problems.append(f"claim iss: {claims['iss']!r} is not the connector id")
        now = self.now()
        for key in ("iat", "nbf", "exp"):
            value = claims.get(key)
            if key in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
                problems.append(f"claim {key}: {value!r} is not a number")
        if _number(claims.get("nbf")) and claims["nbf"] > now + HULL_LEEWAY_SECONDS:
            problems.append(f"claim nbf: {claims['nbf']} is in the future (now {now:.0f})")
        if _number(claims.get("exp")) and claims["exp"] <= now - HULL_LEEWAY_SECONDS:
            problems.append(f"claim exp: token expired at {claims['exp']} (now {now:.0f})")
        problems += _stale(claims, now)
        subject = claims.get("io.hull.subjectType")
        if subject not in ("user", "account"):
            problems.append(f"claim io.hull.subjectType: {subject!r} is not user or account")
        for claim, keys in (
            ("io.hull.asUser", HULL_USER_KEYS),
            ("io.hull.asAccount", HULL_ACCOUNT_KEYS),
        ):
            if claim in claims:
                problems += [f"claim {claim}{p}" for p in _identifiers(claims[claim], keys)]
        if "io.hull.asUser" not in claims and "io.hull.asAccount" not in claims:
            problems.append("claims: need io.hull.asUser or io.hull.asAccount")
        if subject == "user" and "io.hull.asUser" not in claims:
            problems.append("claim io.hull.asUser: required when subjectType is user")
        if subject == "account" and "io.hull.asAccount" not in claims:
            problems.append("claim io.hull.asAccount: required when subjectType is account")
        problems += [
            f"claim {k}: {claims[k]!r} is not a boolean"
            for k in ("io.hull.create", "io.hull.active")
            if k in claims and not isinstance(claims[k], bool)
        ]
        return problems


def _stale(claims: Mapping[str, Any], now: float) -> list[str]:
    """The target's own rule, not Hull's: no token is sent older than half its lifetime
    (spec, "Tokens are valid when sent"), so a token never nears `exp` in a batch or retry."""
    issued, expires = claims.get("iat"), claims.get("exp")
    if not (_number(issued) and _number(expires)):
        return []
    age, half_life = now - issued, (expires - issued) / 2
    if age <= half_life + HULL_TRANSIT_SECONDS:
        return []
    return [f"claim iat: the token is {age:.0f}s old, over half its lifetime ({half_life:.0f}s)"]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _identifiers(value: Any, keys: frozenset[str]) -> list[str]:
    """Problems of an asUser/asAccount claim, each starting with a suffix of its name."""
    if not isinstance(value, dict):
        return [f": {value!r} is not an object"]
    if not value:
        return [": has no identifier"]
    allowed = ", ".join(sorted(keys))
    problems = [f".{k}: unknown key ({allowed})" for k in sorted(value.keys() - keys)]
    problems += [
        f".{k}: {v!r} is not a non-empty string" for k, v in value.items() if not nonempty_str(v)
    ]
    return problems


def _hull_track(body: dict[str, Any]) -> list[str]:
    problems = [f"{k}: unknown track key" for k in sorted(body.keys() - HULL_TRACK_KEYS)]
    if not nonempty_str(body.get("event")):
        problems.append(f"event: required non-empty string, got {body.get('event')!r}")
    if "properties" in body and not isinstance(body["properties"], dict):
        problems.append("properties: not an object")
    if "created_at" in body and not zoned(body["created_at"]):
        problems.append(f"created_at: {body['created_at']!r} is not ISO-8601 with a zone")
    problems += [
        f"{k}: {body[k]!r} is not a string"
        for k in ("event_id", "ip", "url", "referer", "source", "type")
        if k in body and not isinstance(body[k], str)
    ]
    return problems


def _hull_traits(body: dict[str, Any]) -> list[str]:
    problems = []
    if len(body) > HULL_MAX_TRAITS:
        problems.append(f"{len(body)} traits (max {HULL_MAX_TRAITS})")
    for name, value in body.items():
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        if size > HULL_MAX_TRAIT_BYTES:
            problems.append(f"{name}: value is {size} bytes of JSON (max {HULL_MAX_TRAIT_BYTES})")
        if isinstance(value, dict) and not (
            value.keys() == {"operation", "value"} and value["operation"] in HULL_OPERATIONS
        ):
            problems.append(
                f"{name}: object value must be {{'operation': one of "
                f"{sorted(HULL_OPERATIONS)}, 'value': v}}, got {value!r}"
            )
    return problems
