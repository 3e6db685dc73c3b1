"""Skalin collect `/hit/bulk`: records become identity and feature items, 100 per array.

Every column rule of the spec's Skalin table lives here and nowhere else. Builders are
pure: the clock is a parameter, ids are digests of content, so a replay of the same
record produces the same item byte for byte.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cached_property
from typing import Any, ClassVar, NamedTuple
from urllib.parse import urlencode

from target_usage.catalogue import SKALIN
from target_usage.errors import InvalidRecordError
from target_usage.ledger import LedgerRow, digest_of, key_hash, subject_text
from target_usage.records import (
    ShapePlans,
    as_text,
    canonical_json,
    clock_time,
    content_digest,
    digest16,
    encode_json,
    first_present,
    first_present_column,
    id16,
    identifier_text,
    utc_seconds_of,
)
from target_usage.transport import Part, Request, public_url

API_NAME = SKALIN
SKALIN_MAX_ITEMS_PER_ARRAY = 100
SUBJECT_CACHE_SIZE = 10_000  # people whose `subject` text is kept: a sync has many rows each

# Spec column → accepted column names, snake_case first, then the Skalin doc's camelCase.
EVENT_ID = ("event_id", "eventId")
CUSTOMER_ID = ("customer_id", "customerId")
VISIT_ID = ("visit_id", "visitId")
TS = ("ts", "timestamp")
IP = ("cip", "ip")
FEATURE_NAME = ("name", "feature")
# Visit ids remembered: (person, customer, day) triples of one sync repeat often.
VISIT_CACHE_SIZE = 65_536


class Columns(NamedTuple):
    """Which accepted columns of each field a record shape has, in preference order
    (see `ShapePlans`): a record is then read without probing absent aliases."""

    customer: tuple[str, ...]
    event: tuple[str, ...]
    visit: tuple[str, ...]
    ts: tuple[str, ...]
    localtime: tuple[str, ...]
    url: tuple[str, ...]
    ip: tuple[str, ...]
    name: tuple[str, ...]


def _columns(shape: tuple[str, ...]) -> Columns:
    def present(names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(name for name in names if name in shape)

    return Columns(
        *(present(names) for names in (CUSTOMER_ID, EVENT_ID, VISIT_ID, TS)),
        *(present(names) for names in (("localtime",), ("url",), IP, FEATURE_NAME)),
    )


_columns_of = ShapePlans(_columns)


def build_identity(record: Mapping[str, Any], *, now: datetime) -> dict[str, Any]:
    """An `identities` item; raises `InvalidRecordError` when the record names no one."""
    return _build_item(record, _columns_of(record), "identities", now)


def build_feature(record: Mapping[str, Any], *, now: datetime) -> dict[str, Any]:
    """A `features` item: an identity item plus the feature's required `name`."""
    columns = _columns_of(record)
    item = _build_item(record, columns, "features", now)
    name, _ = first_present_column(record, columns.name)
    if name is None:
        raise InvalidRecordError(
            "no feature name (column 'name' or 'feature')",
            fix="add a 'name' column holding the feature's name",
        )
    item["name"] = as_text(name)
    return item


def _build_item(
    record: Mapping[str, Any], columns: Columns, kind: str, now: datetime
) -> dict[str, Any]:
    identity = _identity(record)
    customer, customer_column = first_present_column(record, columns.customer)
    customer_id = identifier_text(customer, customer_column) if customer is not None else None
    stamp = _ts(record, columns.ts)
    event, _ = first_present_column(record, columns.event)
    visit, _ = first_present_column(record, columns.visit)

    item: dict[str, Any] = {
        "eventId": id16(event) if event is not None else content_digest(record, kind),
        "identity": identity,
    }
    if customer_id is not None:
        item["customerId"] = customer_id
    if visit is not None:
        item["visitId"] = id16(visit)
    else:
        day = stamp[:10] if stamp is not None else now.astimezone(UTC).date().isoformat()
        item["visitId"] = _visit_digest(identity.get("email"), identity.get("id"), customer_id, day)
    if stamp is not None:
        item["ts"] = stamp
    localtime, _ = first_present_column(record, columns.localtime)
    if localtime is not None:
        item["localtime"] = clock_time(localtime, "localtime")
    url, _ = first_present_column(record, columns.url)
    if url is not None:
        item["url"] = as_text(url)
    ip, _ = first_present_column(record, columns.ip)
    if ip is not None:
        item["cip"] = as_text(ip)
    return item


def _identity(record: Mapping[str, Any]) -> dict[str, str]:
    email = record.get("email")
    user_id = record.get("user_id")
    identity = {}
    if email is not None and email != "":
        identity["email"] = identifier_text(email, "email")
    if user_id is not None and user_id != "":
        identity["id"] = identifier_text(user_id, "user_id")
    if not identity:
        raise InvalidRecordError(
            "no identity: both 'email' and 'user_id' are missing or empty",
            fix="add an 'email' or 'user_id' column (stream_maps can rename one)",
        )
    return identity


def _ts(record: Mapping[str, Any], columns: tuple[str, ...]) -> str | None:
    value, column = first_present_column(record, columns)
    return utc_seconds_of(value, column) if value is not None else None


def visit_id(identity: Mapping[str, str], customer_id: str | None, day: date) -> str:
    """One visit per person, customer and UTC day; shared by their identities and features.

    Without it Skalin would give every event of a request one shared visit id.
    """
    return _visit_digest(identity.get("email"), identity.get("id"), customer_id, day.isoformat())


@functools.lru_cache(maxsize=VISIT_CACHE_SIZE)
def _visit_digest(email: str | None, user_id: str | None, customer_id: str | None, day: str) -> str:
    """Remembered: a person's events of one day share it, and digesting costs more."""
    identity = {"email": email, "id": user_id}
    present = {key: value for key, value in identity.items() if value is not None}
    return digest16(canonical_json(["visit", present, customer_id, day]))


@dataclass
class SkalinApi:
    """Turns records into items and items into `/hit/bulk` requests."""

    base_url: str
    client_id: str
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    name = API_NAME
    credentials_hint = "check skalin_client_id"
    HEADERS: ClassVar[dict[str, str]] = {
        "Content-Type": "application/json",
        "Cache-Control": "no-cache",
    }

    @property
    def endpoint_hint(self) -> str:
        return f"check skalin_url: requests go to {public_url(self.url)}"

    @cached_property
    def url(self) -> str:
        query = urlencode({"rec": 1, "client_id": self.client_id})
        return f"{self.base_url.rstrip('/')}/hit/bulk?{query}"

    def build(self, kind: str, record: Mapping[str, Any]) -> dict[str, Any]:
        builder = build_feature if kind == "features" else build_identity
        return builder(record, now=self.clock())

    def split(self, kind: str, items: Sequence[Any]) -> Iterator[tuple[int, int]]:
        for start in range(0, len(items), SKALIN_MAX_ITEMS_PER_ARRAY):
            yield start, min(start + SKALIN_MAX_ITEMS_PER_ARRAY, len(items))

    def can_join(self, parts: Sequence[Part], candidate: Part) -> bool:
        """The limit counts requests: one request carries up to 100 of each kind."""
        return all(part.kind != candidate.kind for part in parts)

    def request_for(self, parts: Sequence[Part]) -> Request:
        body: dict[str, list[Any]] = {}
        for part in parts:
            body.setdefault(part.kind, []).extend(part.items)
        return Request(API_NAME, self.url, self.HEADERS, encode_json(body))

    @property
    def destination(self) -> str:
        """Where items go, for the ledger: another client id holds none of them."""
        return self.client_id

    def ledger_row(self, kind: str, item: Mapping[str, Any]) -> LedgerRow:
        """The item's ledger key (its eventId) and the digest of what is sent."""
        return ledger_row(item)

    def replay_columns(self, kind: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Columns that give a dead-lettered record, once fixed, the ids of its first try."""
        if first_present(record, *EVENT_ID) is not None:
            return {}
        return {"event_id": content_digest(record, kind)}


def ledger_row(item: Mapping[str, Any]) -> LedgerRow:
    """Key: the eventId. Digest: the item as sent, except a visitId derived from today.

    An item without `ts` gets the visitId of the day it is sent (see `visit_id`), which
    changes daily while the data does not; it is left out of such an item's digest, so an
    unchanged row is not resent the next day. With `ts`, the visitId follows the data.
    """
    sent = item if "ts" in item else {k: v for k, v in item.items() if k != "visitId"}
    return LedgerRow(key_hash(item["eventId"]), digest_of(encode_json(sent)), _subject(item))


def _subject(item: Mapping[str, Any]) -> str:
    identity = item["identity"]
    found = (identity.get("email"), identity.get("id"), item.get("customerId"))
    # As text, so that the cache never takes 1 for True (equal keys, other texts).
    return _subject_text(*(None if value is None else str(value) for value in found))


@functools.lru_cache(maxsize=SUBJECT_CACHE_SIZE)
def _subject_text(email: str | None, user_id: str | None, customer_id: str | None) -> str:
    """The `subject` column of a person's items; cached, as a sync has many rows per person."""
    names = {"email": email, "user_id": user_id, "customer_id": customer_id}
    return subject_text({name: value for name, value in names.items() if value is not None})
