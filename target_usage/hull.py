"""Hull firehose: records become `traits`, `track`, `alias`, `unalias` entries, each with its
own HS256 token saying which user and/or account it applies to.

Every column rule of the spec's Hull table lives here. An entry is encoded when the record
arrives (so an oversized one is an invalid record at its own position), except its token:
that is attached when a request is built, before every attempt, so no token sent is older
than half of `hull_token_ttl`, however long the entry waited. Requests are cut by entry
count and by body size.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import jwt
import msgspec

from target_usage.catalogue import HULL
from target_usage.errors import InvalidRecordError
from target_usage.ledger import LedgerRow, digest_of, key_hash, subject_text
from target_usage.records import (
    SDC_PREFIX,
    ShapePlans,
    as_text,
    content_digest,
    encode_json,
    first_present,
    first_present_column,
    identifier_text,
    iso_utc,
    to_utc,
)
from target_usage.transport import Part, Request, public_url

API_NAME = HULL
HULL_MAX_BODY_BYTES = 1_000_000
HULL_MAX_VALUE_BYTES = 2048
HULL_MAX_ATTRIBUTES = 2000
TOKEN_CACHE_SIZE = 50_000
TRAIT_OPERATIONS = frozenset({"set", "setIfNull", "inc", "dec"})

# Column → claim key, in Hull's resolution order.
USER_IDENTIFIERS = {"external_id": "external_id", "email": "email", "anonymous_id": "anonymous_id"}
ACCOUNT_IDENTIFIERS = {
    "account_external_id": "external_id",
    "account_domain": "domain",
    "account_anonymous_id": "anonymous_id",
}
IDENTIFIER_COLUMNS = frozenset(USER_IDENTIFIERS) | frozenset(ACCOUNT_IDENTIFIERS)
TRACK_FIELDS = ("ip", "url", "referer", "source", "type")
TRACK_COLUMNS = frozenset({"event", "properties", "event_id", "created_at", "timestamp"}) | set(
    TRACK_FIELDS
)
NOT_PROPERTIES = IDENTIFIER_COLUMNS | TRACK_COLUMNS
# Envelope overhead: {"batch":[],"timestamp":"...","sentAt":"..."} with two 24-char times.
ENVELOPE_BYTES = 100


class Subject(NamedTuple):
    """Who an entry is about: the identifiers present, as sorted (claim key, value) pairs.

    A tuple, so the per-entry lookups of its token and token size hash it in C.
    """

    user: tuple[tuple[str, str], ...]
    account: tuple[tuple[str, str], ...]

    @property
    def kind(self) -> str:
        return "user" if self.user else "account"


class Shape(NamedTuple):
    """What the columns of one record shape are to the Hull builders (see `ShapePlans`)."""

    user: tuple[tuple[str, str], ...]  # (column, claim key) present, in claim key order
    account: tuple[tuple[str, str], ...]
    traits: tuple[str, ...]  # the body of `traits` without a `traits` column
    properties: tuple[str, ...]  # `track` properties without a `properties` column


def _shape(columns: tuple[str, ...]) -> Shape:
    def present(identifiers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        pairs = [(column, claim) for column, claim in identifiers.items() if column in columns]
        return tuple(sorted(pairs, key=lambda pair: pair[1]))

    def others(excluded: frozenset[str]) -> tuple[str, ...]:
        return tuple(
            c
            for c in columns
            if c not in excluded and c != "timestamp" and not c.startswith(SDC_PREFIX)
        )

    return Shape(
        present(USER_IDENTIFIERS),
        present(ACCOUNT_IDENTIFIERS),
        others(IDENTIFIER_COLUMNS),
        others(NOT_PROPERTIES),
    )


_shape_of = ShapePlans(_shape)


def subject_of(record: Mapping[str, Any], *, without: frozenset[str] = frozenset()) -> Subject:
    """The user and/or account a record names; never null or empty identifiers."""
    shape = _shape_of(record)
    user = _identifiers(record, shape.user, without)
    account = _identifiers(record, shape.account, without)
    if not user and not account:
        names = ", ".join(c for c in (*USER_IDENTIFIERS, *ACCOUNT_IDENTIFIERS) if c not in without)
        raise InvalidRecordError(
            f"no user or account identifier (one of {names})",
            fix="add an 'email' or 'external_id' column for a user, or 'account_domain' / "
            "'account_external_id' for an account",
        )
    return Subject(user, account)


def _identifiers(
    record: Mapping[str, Any], present: tuple[tuple[str, str], ...], without: frozenset[str]
) -> tuple[tuple[str, str], ...]:
    """(claim key, text) of the identifiers holding a value, in claim key order."""
    found = []
    for column, claim in present:
        value = record[column]
        if value is not None and value != "" and column not in without:
            found.append((claim, identifier_text(value, column)))
    return tuple(found)


class HullItem:
    """One firehose entry as read: who it is about and its encoded type, timestamp and body.

    `head` and `tail` are the entry's JSON around its token, so a request is the entry's
    bytes with a token valid at sending time spliced in. `size` is the encoded entry with a
    token, to cut requests under the size cap (a subject's token always has one length).
    The ledger digests `subject`, `kind` and `body`; token and timestamp change without the
    data changing. A plain slotted class: one is made per record, and a frozen dataclass's
    `__init__` costs twice as much.
    """

    __slots__ = ("body", "head", "kind", "size", "subject", "tail", "timestamp")

    def __init__(
        self,
        subject: Subject,
        kind: str,
        timestamp: str,
        body: bytes,
        head: bytes,
        tail: bytes,
        size: int,
    ) -> None:
        self.subject = subject
        self.kind = kind
        self.timestamp = timestamp
        self.body = body
        self.head = head
        self.tail = tail
        self.size = size

    def __len__(self) -> int:
        return self.size


def hull_item(
    subject: Subject, kind: str, timestamp: str, body: bytes, token_size: int
) -> HullItem:
    """An item encoded exactly as `{"type", "timestamp", "headers", "body"}` with a token of
    `token_size` bytes. `kind` and `timestamp` (ISO-8601 we formatted) need no escaping."""
    head = f'{{"type":"{kind}","timestamp":"{timestamp}","headers":{{"Hull-Access-Token":"'
    tail = b'"},"body":' + body + b"}"
    encoded_head = head.encode()
    size = len(encoded_head) + token_size + len(tail)
    return HullItem(subject, kind, timestamp, body, encoded_head, tail, size)


@dataclass
class TokenSigner:
    """Signs one token per subject and reuses it until half its lifetime has passed.

    A warehouse sync sends many entries per user, so signing per entry would dominate the
    cost; renewing at half-life keeps every token sent (even after retries) far from `exp`.
    Bounded LRU, thread safe.
    """

    connector_id: str
    secret: str
    ttl_seconds: int
    create: bool
    active: bool
    clock: Callable[[], float] = time.time
    capacity: int = TOKEN_CACHE_SIZE
    signed: int = 0
    _cache: OrderedDict[Subject, tuple[float, str]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def token(self, subject: Subject) -> str:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(subject)
            if cached is not None and now < cached[0]:
                self._cache.move_to_end(subject)
                return cached[1]
        issued = int(now)
        token = jwt.encode(self.claims(subject, issued), self.secret, algorithm="HS256")
        with self._lock:
            self.signed += 1
            self._cache[subject] = (issued + self.ttl_seconds / 2, token)
            self._cache.move_to_end(subject)
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return token

    def claims(self, subject: Subject, issued: int) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "iss": self.connector_id,
            "iat": issued,
            "nbf": issued,
            "exp": issued + self.ttl_seconds,
            "io.hull.subjectType": subject.kind,
        }
        if subject.user:
            claims["io.hull.asUser"] = dict(subject.user)
        if subject.account:
            claims["io.hull.asAccount"] = dict(subject.account)
        claims["io.hull.create"] = self.create
        claims["io.hull.active"] = self.active
        return claims


# Entry bodies: pure functions of the record.


def traits_body(record: Mapping[str, Any], *, send_nulls: bool) -> dict[str, Any]:
    """The `traits` object column, else every non-identifier, non-`_sdc_` column."""
    given = record.get("traits")
    if given is not None and not isinstance(given, dict):
        raise InvalidRecordError(
            "column 'traits' is not an object", fix="send 'traits' as a JSON object of attributes"
        )
    if given is not None:
        body = {k: v for k, v in given.items() if send_nulls or v is not None}
    else:
        columns = _shape_of(record).traits
        body = {k: record[k] for k in columns if send_nulls or record[k] is not None}
    if len(body) > HULL_MAX_ATTRIBUTES:
        raise InvalidRecordError(
            f"{len(body)} traits (Hull keeps at most {HULL_MAX_ATTRIBUTES} per profile)",
            fix="send fewer columns, or split them over several streams",
        )
    for name, value in body.items():
        _check_trait(name, value)
    return body


def _check_trait(name: str, value: Any) -> None:
    if isinstance(value, dict) and not (
        set(value) == {"operation", "value"} and value["operation"] in TRAIT_OPERATIONS
    ):
        raise InvalidRecordError(
            f'trait \'{name}\' is an object but not {{"operation": ..., "value": ...}}',
            fix="flatten it (flattening_enabled, or 'group/attr' columns) or send an operation",
        )
    size = len(encode_json(value))
    if size > HULL_MAX_VALUE_BYTES:
        raise InvalidRecordError(
            f"trait '{name}' is {size} bytes (Hull keeps at most {HULL_MAX_VALUE_BYTES})",
            fix=f"shorten '{name}' in the source; target-usage never truncates values",
        )


def track_body(record: Mapping[str, Any]) -> dict[str, Any]:
    event = first_present(record, "event")
    if event is None:
        raise InvalidRecordError(
            "no event name (column 'event')", fix="add an 'event' column naming the event"
        )
    given = record.get("properties")
    if given is not None and not isinstance(given, dict):
        raise InvalidRecordError(
            "column 'properties' is not an object", fix="send 'properties' as a JSON object"
        )
    if given is None:
        columns = _shape_of(record).properties
        given = {k: record[k] for k in columns if record[k] is not None}
    event_id = first_present(record, "event_id")
    body: dict[str, Any] = {
        "event": as_text(event),
        "properties": given,
        "event_id": as_text(event_id) if event_id is not None else content_digest(record, "track"),
    }
    for name in TRACK_FIELDS:
        value = record.get(name)
        if value is not None and value != "":
            body[name] = as_text(value)
    created = _moment(record, ("created_at", "timestamp"))
    if created is not None:
        body["created_at"] = iso_utc(created)
    return body


def _moment(record: Mapping[str, Any], columns: tuple[str, ...]) -> datetime | None:
    value, column = first_present_column(record, columns)
    return to_utc(value, column) if value is not None else None


def alias_body(record: Mapping[str, Any]) -> dict[str, Any]:
    alias = first_present(record, "anonymous_id")
    if alias is None:
        raise InvalidRecordError(
            "no 'anonymous_id' to alias", fix="add an 'anonymous_id' column holding the alias"
        )
    return {"anonymous_id": identifier_text(alias, "anonymous_id")}


@dataclass
class HullApi:
    """Turns records into signed entries and entries into firehose requests."""

    url: str
    organization: str
    signer: TokenSigner
    batch_size: int = 100
    send_nulls: bool = False
    max_body_bytes: int = HULL_MAX_BODY_BYTES

    _stamp_millis: int = field(default=-1, init=False, repr=False)
    _stamp: str = field(default="", init=False, repr=False)
    _token_sizes: dict[Subject, int] = field(default_factory=dict, init=False, repr=False)

    name = API_NAME
    credentials_hint = "check hull_connector_id, hull_connector_secret and hull_organization"

    @property
    def endpoint_hint(self) -> str:
        return f"check hull_firehose_url: requests go to {public_url(self.url)}"

    def build(self, kind: str, record: Mapping[str, Any]) -> HullItem:
        """One entry, encoded but for its token, checked against the size cap."""
        is_alias = kind in ("alias", "unalias")
        subject = subject_of(
            record, without=frozenset({"anonymous_id"}) if is_alias else frozenset()
        )
        if kind == "traits":
            body = traits_body(record, send_nulls=self.send_nulls)
        elif kind == "track":
            body = track_body(record)
        else:
            body = alias_body(record)
        if record.get("timestamp") not in (None, ""):
            stamp = iso_utc(to_utc(record["timestamp"], "timestamp"))
        elif kind == "track" and "created_at" in body:
            stamp = body["created_at"]
        else:
            stamp = self._now_stamp()
        item = hull_item(subject, kind, stamp, encode_json(body), self._token_size(subject))
        if item.size + ENVELOPE_BYTES >= self.max_body_bytes:
            raise InvalidRecordError(
                f"the entry is {item.size} bytes, over the request cap of "
                f"{self.max_body_bytes} bytes",
                fix="send fewer or smaller columns for this record",
            )
        return item

    def _token_size(self, subject: Subject) -> int:
        """The length of the subject's tokens: fixed by its claims (times are 10 digits)."""
        size = self._token_sizes.get(subject)
        if size is None:
            if len(self._token_sizes) >= TOKEN_CACHE_SIZE:
                self._token_sizes.clear()
            size = self._token_sizes[subject] = len(self.signer.token(subject))
        return size

    def _now_stamp(self) -> str:
        """Now, in ISO-8601: formatted once per millisecond, as most entries of a sync
        without a `timestamp` column are stamped within the same few."""
        millis = int(self.signer.clock() * 1000)
        if millis != self._stamp_millis:
            self._stamp_millis = millis
            self._stamp = iso_utc(datetime.fromtimestamp(millis / 1000, UTC))
        return self._stamp

    def headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Hull-App-Id": self.signer.connector_id,
            "Hull-Organization": self.organization,
            "Hull-Access-Token": self.signer.secret,
        }

    def split(self, kind: str, items: Sequence[HullItem]) -> Iterator[tuple[int, int]]:
        """Ranges of at most `batch_size` entries whose request stays under the size cap."""
        start, size = 0, ENVELOPE_BYTES
        for index, entry in enumerate(items):
            entry_size = len(entry) + 1
            count = index - start
            if count and (count >= self.batch_size or size + entry_size >= self.max_body_bytes):
                yield start, index
                start, size = index, ENVELOPE_BYTES
            size += entry_size
        if start < len(items):
            yield start, len(items)

    def can_join(self, parts: Sequence[Part], candidate: Part) -> bool:
        return False

    def request_for(self, parts: Sequence[Part]) -> Request:
        """The request as of now: every entry with its subject's current token.

        Called before every attempt, so an entry that waited (in a batch, the outbox or
        retries) past half of `hull_token_ttl` goes out with a re-signed token.
        """
        tokens: dict[Subject, bytes] = {}
        entries = []
        for part in parts:
            for item in part.items:
                token = tokens.get(item.subject)
                if token is None:
                    token = tokens[item.subject] = self.signer.token(item.subject).encode()
                entries.append(item.head + token + item.tail)
        now = iso_utc(datetime.fromtimestamp(self.signer.clock(), UTC))
        # The bytes of encode_json({"batch": entries, "timestamp": now, "sentAt": now}),
        # joined once instead of walked entry by entry.
        times = encode_json({"timestamp": now, "sentAt": now})
        body = b'{"batch":[' + b",".join(entries) + b"]," + times[1:]
        return Request(API_NAME, self.url, self.headers(), body)

    @property
    def destination(self) -> str:
        """Where entries go, for the ledger: another organization holds none of them."""
        return self.organization

    def ledger_row(self, kind: str, item: HullItem) -> LedgerRow:
        """The entry's ledger key and the digest of what is sent (see `ledger_row`)."""
        return ledger_row(item)

    def replay_columns(self, kind: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Columns that give a dead-lettered record, once fixed, the ids of its first try."""
        if kind != "track" or first_present(record, "event_id") is not None:
            return {}
        return {"event_id": content_digest(record, "track")}


_decode_body = msgspec.json.Decoder(dict[str, Any]).decode


def ledger_row(item: HullItem) -> LedgerRow:
    """An entry's ledger key and digest, as the spec's "Ledger" section says.

    Key: the event_id (`track`); the subject and the sorted attribute names (`traits`, so a
    new set of attributes for the same person is its own key); the subject and the
    anonymous_id (`alias` and `unalias`: one key for both). Digest: kind, subject and body,
    without the token and the timestamp, which change while the data does not; the kind
    tells an alias from an unalias of the same pair.
    """
    subject, text = _ledger_subject(item.subject)
    body = _decode_body(item.body)
    if item.kind == "track":
        key = key_hash(body["event_id"])
    elif item.kind == "traits":
        key = key_hash(b"traits", subject, *sorted(body))
    else:
        key = key_hash(b"alias", subject, body["anonymous_id"])
    digest = digest_of(b"%s\0%s\0%s" % (item.kind.encode(), subject, item.body))
    return LedgerRow(key, digest, text)


@functools.lru_cache(maxsize=TOKEN_CACHE_SIZE)
def _ledger_subject(subject: Subject) -> tuple[bytes, str]:
    """A subject as hashed into keys and digests, and as the `subject` column shows it;
    cached like tokens, as a sync sends many entries per person."""
    names = dict(subject.user)
    names.update((f"account_{claim}", value) for claim, value in subject.account)
    return encode_json([subject.user, subject.account]), subject_text(names)
