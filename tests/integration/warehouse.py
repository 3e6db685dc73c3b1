"""A small usage warehouse: tables shaped as README's column contract, and their rows.

Rows are made in Python, deterministically from their number, so the expected API items
can be computed from the very values that were inserted. They vary the way warehouse
data does: nulls and empty strings, timestamps in several zones with fractions of a
second, numerics, json and jsonb columns, 16-character and other event ids.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

# Each table's columns, in COPY order; `updated_at` is the replication key of all four.
DDL = {
    "identities": """
        CREATE TABLE identities (
            id bigint PRIMARY KEY, email text, user_id text, customer_id text,
            ts timestamptz, url text, updated_at timestamptz NOT NULL)""",
    "features": """
        CREATE TABLE features (
            id bigint PRIMARY KEY, event_id text, email text, user_id text, customer_id text,
            name text NOT NULL, ts timestamptz, "localtime" time, url text, ip text,
            duration_ms numeric(12, 3), context jsonb, updated_at timestamptz NOT NULL)""",
    "traits": """
        CREATE TABLE traits (
            email text, external_id text, account_domain text, plan text, seats integer,
            mrr numeric(10, 2), nps integer, logins json, last_seen_at timestamptz,
            updated_at timestamptz NOT NULL)""",
    "track": """
        CREATE TABLE track (
            id bigint PRIMARY KEY, event_id text, email text, external_id text,
            anonymous_id text, account_domain text, event text NOT NULL,
            properties jsonb NOT NULL, created_at timestamptz NOT NULL, ip text, url text,
            source text, updated_at timestamptz NOT NULL)""",
}

JSON_COLUMNS = {"context": "jsonb", "logins": "json", "properties": "jsonb"}
ZONES = (UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5)))
START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
UPDATED_BASE = datetime(2026, 11, 1, tzinfo=UTC)


def moment(n: int, step_seconds: float = 61.25) -> datetime:
    """A timestamp n steps after START, with a fraction, expressed in one of three zones."""
    at = START + timedelta(seconds=n * step_seconds, microseconds=(n % 7) * 123_000)
    return at.astimezone(ZONES[n % len(ZONES)])


def updated_at(n: int) -> datetime:
    """Strictly increasing with n: later batches are newer for the incremental sync."""
    return UPDATED_BASE + timedelta(seconds=n)


def identity_row(n: int) -> dict[str, Any]:
    no_user_id = n % 3 == 0 and n % 5 != 0
    email = None if n % 5 == 0 else f"user{n}@example.com"
    if n % 13 == 0 and not no_user_id:
        email = ""  # an empty string is no identifier: only the user id is sent
    return {
        "id": n,
        "email": email,
        "user_id": None if no_user_id else f"u-{n}",
        "customer_id": None if n % 7 == 0 else f"cust-{n % 40}",
        "ts": None if n % 11 == 0 else moment(n),
        "url": f"https://app.example.com/u/{n}" if n % 2 == 0 else None,
        "updated_at": updated_at(n),
    }


def feature_row(n: int) -> dict[str, Any]:
    person = n % 500  # several features per person
    if n % 10 == 0:
        event_id = f"{n:016d}"  # 16 characters: sent as given
    elif n % 10 == 1:
        event_id = None  # absent: a digest of the record
    else:
        event_id = f"feature-event-{n}"  # another length: a digest of it
    return {
        "id": n,
        "event_id": event_id,
        "email": None if person % 4 == 0 else f"user{person}@example.com",
        "user_id": f"u-{person}" if person % 4 != 1 else None,
        "customer_id": f"cust-{person % 40}",
        "name": ("export-report", "create-dashboard", "invite-user", "search")[n % 4],
        "ts": None if n % 17 == 0 else moment(n, 7.5),
        "localtime": time(8 + n % 10, n % 60, n % 60) if n % 3 == 0 else None,
        "url": f"https://app.example.com/f/{n}",
        "ip": f"203.0.113.{n % 250}" if n % 2 == 0 else None,
        "duration_ms": Decimal(n) / 8,
        "context": {"n": n, "tags": ["a", "b"], "nested": {"ok": True}},
        "updated_at": updated_at(n),
    }


def trait_row(n: int) -> dict[str, Any]:
    kind = n % 3  # 0: a user linked to an account, 1: a user alone, 2: an account alone
    return {
        "email": f"user{n}@example.com" if kind == 0 else None,
        "external_id": f"ext-{n}" if kind in (0, 1) else None,
        "account_domain": f"acct{n}.example.com" if kind in (0, 2) else None,
        "plan": ("free", "team", "enterprise")[n % 3],
        "seats": n % 50,
        "mrr": Decimal(n * 7) / 4 if n % 4 else None,
        "nps": None if n % 2 else n % 11,
        "logins": {"operation": "inc", "value": n % 5 + 1},
        "last_seen_at": moment(n),
        "updated_at": updated_at(n),
    }


def track_row(n: int) -> dict[str, Any]:
    who = n % 3
    return {
        "id": n,
        "event_id": None if n % 4 == 0 else f"track-{n}",
        "email": f"user{n % 300}@example.com" if who == 0 else None,
        "external_id": f"ext-{n % 300}" if who == 1 else None,
        "anonymous_id": f"anon-{n}" if who == 2 else None,
        "account_domain": f"acct{n % 60}.example.com" if n % 4 == 0 else None,
        "event": ("Report Exported", "Order Placed", "Page Viewed")[n % 3],
        "properties": {"n": n, "total": n * 1.5, "items": [n, n + 1], "ok": n % 2 == 0},
        "created_at": moment(n, 13),
        "ip": f"198.51.100.{n % 250}" if n % 5 else None,
        "url": f"https://example.com/p/{n}" if n % 2 else None,
        "source": "web" if n % 3 == 0 else None,
        "updated_at": updated_at(n),
    }


ROWS: dict[str, Callable[[int], dict[str, Any]]] = {
    "identities": identity_row,
    "features": feature_row,
    "traits": trait_row,
    "track": track_row,
}


def create_tables(connection: Any) -> None:
    for ddl in DDL.values():
        connection.execute(ddl)


def insert(connection: Any, table: str, numbers: range) -> list[dict[str, Any]]:
    """Insert rows `numbers` of `table`; returns them as inserted."""
    from psycopg.types.json import Json, Jsonb

    wrap = {"json": Json, "jsonb": Jsonb}
    rows = [ROWS[table](n) for n in numbers]
    columns = list(rows[0])
    names = ", ".join(f'"{c}"' for c in columns)
    with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(
                [wrap[JSON_COLUMNS[c]](row[c]) if c in JSON_COLUMNS else row[c] for c in columns]
            )
    return rows
