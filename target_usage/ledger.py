"""The delivery ledger: which items each destination already holds, so reruns send only changes.

One row per item key: the destination (Skalin client id, Hull organization), the sink, a
16-byte hash of the key material, and an 8-byte digest of what was sent. Lookups take a whole
batch of keys per query; writes are one executemany per accepted request, committed before the
call returns so that no STATE can get ahead of them.

Storage is SQLAlchemy Core: an SQLite file by default (WAL, so a reader never blocks the
writer, and synchronous=NORMAL, so a commit costs no fsync), or PostgreSQL to share one ledger
between processes and machines. The schema carries a version and is migrated on open.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url

from target_usage.errors import LedgerError

KEY_HASH_BYTES = 16  # no two of a billion keys share a hash (birthday bound ~1e-20)
DIGEST_BYTES = 8  # compared only with the same key's previous digest
KNOWN_CHUNK_KEYS = 1000  # keys per lookup query, under every driver's parameter limit
DEFAULT_BUSY_TIMEOUT_SECONDS = 30.0
TOUCH_EVERY_SECONDS = 86_400  # `seen_at` is kept to the day: retention counts in days
POSTGRES_CONNECT_TIMEOUT_SECONDS = 10
# WAL pages between checkpoints (SQLite's default is 1,000, 4 MB). Random keys dirty a page
# each, so a checkpoint every 1,000 pages copied nearly every page it wrote back to the file
# at once; at 10,000 (40 MB of WAL) a page written by several commits is copied once.
SQLITE_WAL_AUTOCHECKPOINT_PAGES = 10_000
EVENT_SINKS = ("identities", "features", "track")  # keys that retention may prune
DELIVERED, REFUSED = "delivered", "refused"
POSTGRES_EXTRA_HINT = "pip install 'target-usage[postgres]'"
# Serialises migrations of one PostgreSQL ledger between processes opening it at once.
POSTGRES_MIGRATION_LOCK_ID = 0x7475_6C65  # "tule"

metadata = sa.MetaData()
items = sa.Table(
    "target_usage_ledger",
    metadata,
    sa.Column("destination", sa.Text, nullable=False),
    sa.Column("sink", sa.Text, nullable=False),
    sa.Column("key_hash", sa.LargeBinary(KEY_HASH_BYTES), nullable=False),
    sa.Column("digest", sa.LargeBinary(DIGEST_BYTES), nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("subject", sa.Text),
    sa.Column("reason", sa.Text),
    sa.Column("recorded_at", sa.BigInteger, nullable=False),
    sa.Column("seen_at", sa.BigInteger, nullable=False),
    # key_hash first: a lookup of a chunk of keys is an index search per key, whatever the
    # planner's statistics say (with destination first, PostgreSQL on a freshly filled table
    # scanned every key of the sink for each chunk).
    sa.PrimaryKeyConstraint("key_hash", "destination", "sink", name="target_usage_ledger_pkey"),
    sqlite_with_rowid=False,  # the primary key is the table: no second copy of the keys
)
ITEM_COLUMNS = tuple(column.name for column in items.columns)
versions = sa.Table(
    "target_usage_ledger_schema",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
)


def _create_tables(conn: Connection) -> None:
    items.create(conn, checkfirst=True)


# Step n brings a ledger from version n to n + 1; a new ledger runs them all. A later change
# of the tables appends a step (ALTER TABLE ...) and never edits an earlier one. No index on
# seen_at: it would cost 70 % more per write and 50 bytes per key, while prune scans the
# table once per run.
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_create_tables,)
SCHEMA_VERSION = len(MIGRATIONS)


class LedgerRow(NamedTuple):
    """One item as the ledger records it."""

    key: bytes  # key_hash(...) of the item's key material
    digest: bytes  # digest_of(...) of what was sent
    subject: str | None = None  # subject_text(...) of the person or account, for docs' queries


class Known(NamedTuple):
    """What `Ledger.lookup` found for a batch of keys."""

    digests: dict[bytes, bytes]  # key hash → digest, for the keys delivered before
    stale: set[bytes]  # those of them not seen for `TOUCH_EVERY_SECONDS`: `touch` rewrites them


def ledger_sink(sink: str) -> str:
    """The `sink` column of a sink's items: `unalias` shares `alias`'s keys (one key per pair)."""
    return "alias" if sink == "unalias" else sink


def subject_text(identifiers: Mapping[str, str]) -> str:
    """The `subject` column: the identifiers an item was sent with, `name=value`, sorted.

    One format for every sink, so `WHERE subject LIKE '%email=ada@example.com%'` finds a person.
    """
    return " ".join(f"{name}={value}" for name, value in sorted(identifiers.items()))


def key_hash(*parts: str | bytes) -> bytes:
    """The 16-byte hash of an item's key material (event id; identifiers and attribute names).

    Each part is length-prefixed, so ("ab", "c") and ("a", "bc") never share a hash.
    """
    hasher = hashlib.blake2b(digest_size=KEY_HASH_BYTES, person=b"tu-ledger-key")
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        hasher.update(len(data).to_bytes(8, "big"))
        hasher.update(data)
    return hasher.digest()


def digest_of(sent: bytes) -> bytes:
    """The 8-byte digest of what is sent for an item (canonical JSON, token and timestamp out)."""
    return hashlib.blake2b(sent, digest_size=DIGEST_BYTES, person=b"tu-ledger-dig").digest()


def ledger_url(location: str) -> URL:
    """The SQLAlchemy URL of a `ledger` setting: a path, `sqlite:///path` or `postgresql://`."""
    if "://" not in location:
        return URL.create("sqlite", database=location)
    try:
        url = make_url(location)
    except (sa.exc.ArgumentError, ValueError):
        raise LedgerError(
            f"Ledger {ledger_name(location)!r} is neither a file path nor a URL SQLAlchemy can "
            "read: use a path, sqlite:///path or postgresql://user:password@host/database"
        ) from None
    if url.drivername in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise LedgerError(
            f"Ledger {url.render_as_string(hide_password=True)!r}: unsupported kind of URL; "
            "use a file path, sqlite:///path or postgresql://user:password@host/database"
        )
    return url


def ledger_name(location: str) -> str:
    """The location as the user wrote it, any password replaced by ***, for messages."""
    if "://" not in location:
        return location
    try:
        return make_url(location).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return re.sub(r"(://[^/:@]*:)[^/]*@", r"\1***@", location)


def ledger_passwords(location: str) -> list[str]:
    """The password of a `ledger` URL as written and as decoded, for redaction."""
    if "://" not in location:
        return []
    with contextlib.suppress(ValueError):
        written = urlsplit(location).password
        return sorted({written, unquote(written)}) if written else []
    return []


class Ledger:
    """An open ledger. Not thread-safe: the one thread applying outcomes owns it."""

    def __init__(
        self,
        engine: Engine | None,
        name: str,
        *,
        password: str | None,
        read_only: bool,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
    ) -> None:
        self._engine = engine
        self._busy_timeout = busy_timeout
        self.name = name  # the location as given, password redacted: for messages
        self._password = password  # kept out of every message
        self.read_only = read_only
        # Statements compiled once for the driver: name → (SQL, parameter order or None).
        self._driver_sql: dict[str, tuple[str, tuple[str, ...] | None]] = {}

    @classmethod
    def open(
        cls,
        location: str,
        *,
        read_only: bool,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
    ) -> Ledger:
        """Opens (and creates and migrates, unless `read_only`) the ledger at `location`.

        `read_only` (dry runs) never creates or writes anything; a missing SQLite file reads
        as an empty ledger. Raises LedgerError naming the ledger and the cause.
        """
        url = ledger_url(location)
        name = ledger_name(location)
        if url.get_backend_name() == "sqlite":
            engine = _sqlite_engine(url, name, read_only=read_only, busy_timeout=busy_timeout)
        else:
            engine = _postgres_engine(url, name)
        ledger = cls(
            engine,
            name,
            password=url.password or None,
            read_only=read_only,
            busy_timeout=busy_timeout,
        )
        if engine is not None:
            try:
                ledger._prepare()
            except BaseException:
                ledger.close()
                raise
        return ledger

    def known(self, destination: str, sink: str, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        """Key hash → digest of every key in `keys` delivered before: one query per chunk."""
        return self.lookup(destination, sink, keys, now=None).digests

    def lookup(
        self, destination: str, sink: str, keys: Sequence[bytes], *, now: datetime | None
    ) -> Known:
        """`known`'s digests, and which of those keys `touch` would rewrite at `now`.

        Reading `seen_at` with the digest costs nothing more, and spares an unchanged rerun
        within a day one UPDATE lookup per key (`touch` of only the stale keys).
        """
        found = Known({}, set())
        if self._engine is None or not keys:
            return found
        fresh = int(now.timestamp()) - TOUCH_EVERY_SECONDS if now is not None else None
        with self._failing("read"), self._engine.connect() as conn:
            sqlite_dialect = conn.dialect.name == "sqlite"
            query = None if sqlite_dialect else _known_query(conn.dialect.name, destination, sink)
            for start in range(0, len(keys), KNOWN_CHUNK_KEYS):
                chunk = list(keys[start : start + KNOWN_CHUNK_KEYS])
                if query is None:  # straight to the driver: no per-chunk statement compiling
                    rows = conn.exec_driver_sql(
                        _sqlite_known_sql(len(chunk)), (destination, sink, DELIVERED, *chunk)
                    )
                else:
                    rows = conn.execute(query, {"keys": chunk})
                for key, digest, seen_at in rows:
                    found.digests[bytes(key)] = bytes(digest)
                    if fresh is not None and seen_at < fresh:
                        found.stale.add(bytes(key))
        return found

    def record(
        self, destination: str, sink: str, rows: Sequence[LedgerRow], *, now: datetime
    ) -> None:
        """Remembers items a 2xx accepted; committed (durable) when this returns."""
        self._upsert(destination, sink, rows, status=DELIVERED, reason=None, now=now)

    def record_refused(
        self,
        destination: str,
        sink: str,
        rows: Sequence[LedgerRow],
        *,
        reason: str,
        now: datetime,
    ) -> None:
        """Remembers items the API refused, for inspection; `known` never returns them."""
        self._upsert(destination, sink, rows, status=REFUSED, reason=reason, now=now)

    def touch(self, destination: str, sink: str, keys: Sequence[bytes], *, now: datetime) -> None:
        """Marks unchanged items as seen now, so retention keeps keys a sync still carries.

        A key seen within the last `TOUCH_EVERY_SECONDS` is left as it is: retention counts
        in days, and an hourly sync then rewrites no row of an unchanged table.
        """
        if not keys:
            return
        self._writable()
        seen = int(now.timestamp())
        statement = (
            items.update()
            .where(
                items.c.destination == sa.bindparam("d"),
                items.c.sink == sa.bindparam("s"),
                items.c.key_hash == sa.bindparam("k"),
                items.c.seen_at < sa.bindparam("fresh"),
            )
            .values(seen_at=sa.bindparam("seen"))
        )
        fresh = seen - TOUCH_EVERY_SECONDS
        values = [(destination, sink, key, seen, fresh) for key in sorted(set(keys))]
        with self._failing("write"), self._writing() as conn:
            self._executemany(conn, "touch", statement, ("d", "s", "k", "seen", "fresh"), values)

    def prune(self, older_than: datetime) -> int:
        """Deletes event keys (identities, features, track) not seen since `older_than`.

        Traits and alias keys stay whatever their age: they describe current state, and
        forgetting one would resend it. Returns how many keys were deleted.
        """
        self._writable()
        statement = items.delete().where(
            items.c.sink.in_(EVENT_SINKS), items.c.seen_at < int(older_than.timestamp())
        )
        with self._failing("prune"), self._writing() as conn:
            return conn.execute(statement).rowcount

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # Internals

    def _prepare(self) -> None:
        """Checks the schema version; migrates (read-write) or refuses a newer one."""
        assert self._engine is not None
        if self.read_only:
            with self._failing("read"), self._engine.connect() as conn:
                version = _stored_version(conn)
            # An older version is read as it is: a dry run migrates nothing. A step that
            # changes what `known` reads must keep this working.
            _check_known_version(self.name, version)
            if version == 0:  # nothing to read yet: an empty ledger
                self.close()
            return
        with self._failing("create or migrate"), self._writing() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(POSTGRES_MIGRATION_LOCK_ID)))
            version = _stored_version(conn)
            _check_known_version(self.name, version)
            for step in MIGRATIONS[version:SCHEMA_VERSION]:
                step(conn)
            if version == 0:
                versions.create(conn, checkfirst=True)
                conn.execute(versions.insert().values(version=SCHEMA_VERSION))
            elif version < SCHEMA_VERSION:
                conn.execute(versions.update().values(version=SCHEMA_VERSION))

    def _upsert(
        self,
        destination: str,
        sink: str,
        rows: Sequence[LedgerRow],
        *,
        status: str,
        reason: str | None,
        now: datetime,
    ) -> None:
        if not rows:
            return
        self._writable()
        stamp = int(now.timestamp())
        # The last row of a key wins (one statement cannot update a row twice), and keys go
        # in sorted order, so two writers of overlapping keys lock rows in the same order and
        # never deadlock.
        latest = {row.key: row for row in rows}
        # One tuple per row, in the table's column order (`ITEM_COLUMNS`): no dict per row.
        values = [
            (destination, sink, key, row.digest, status, row.subject, reason, stamp, stamp)
            for key, row in sorted(latest.items())
        ]
        with self._failing("write"), self._writing() as conn:
            statement = _upsert_statement(conn.dialect.name)
            self._executemany(conn, "upsert", statement, ITEM_COLUMNS, values)

    def _executemany(
        self,
        conn: Connection,
        name: str,
        statement: Any,
        names: tuple[str, ...],
        values: list[tuple[Any, ...]],
    ) -> None:
        """One statement for many rows, straight to the driver's executemany.

        SQLAlchemy's per-row parameter handling cost more than SQLite's own work per key, so
        the statement is compiled once (per name) and rows go to the driver as they are:
        tuples for SQLite (reordered only if the compiled order differs from `names`),
        dicts of `names` for psycopg.
        """
        if name not in self._driver_sql:
            # An INSERT names every column it sets; other statements name their parameters.
            columns = list(ITEM_COLUMNS) if name == "upsert" else None
            compiled = statement.compile(dialect=conn.dialect, column_keys=columns)
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            self._driver_sql[name] = (str(compiled), order)
        sql, order = self._driver_sql[name]
        params: list[Any]
        if order is None:
            params = [dict(zip(names, row, strict=True)) for row in values]
        elif order == names:
            params = values
        else:
            where = [names.index(key) for key in order]
            params = [tuple(row[i] for i in where) for row in values]
        conn.exec_driver_sql(sql, params)

    def _writable(self) -> None:
        if self.read_only or self._engine is None:
            raise LedgerError(f"Ledger {self.name!r} is open read-only (dry run): nothing written")

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A transaction that takes the write lock at once (SQLite: BEGIN IMMEDIATE)."""
        assert self._engine is not None
        with self._engine.connect() as conn:
            conn = conn.execution_options(ledger_write=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def _failing(self, action: str) -> Iterator[None]:
        try:
            yield
        except sa.exc.SQLAlchemyError as error:
            message = _explain(self.name, action, error, busy_timeout=self._busy_timeout)
            if self._password:
                message = message.replace(self._password, "***")
            raise LedgerError(message) from None


def _known_query(dialect: str, destination: str, sink: str) -> sa.Select:
    """Digests of the delivered keys among `:keys`.

    PostgreSQL takes the chunk as one array parameter (`= ANY`), one plan for any chunk size.
    """
    if dialect == "postgresql":
        among = items.c.key_hash == sa.any_(
            sa.bindparam("keys", type_=postgresql.ARRAY(sa.LargeBinary))
        )
    else:
        among = items.c.key_hash.in_(sa.bindparam("keys", expanding=True))
    return sa.select(items.c.key_hash, items.c.digest, items.c.seen_at).where(
        items.c.destination == destination,
        items.c.sink == sink,
        items.c.status == DELIVERED,
        among,
    )


@functools.cache
def _sqlite_known_sql(count: int) -> str:
    """`_known_query` for SQLite as the driver's SQL, for a chunk of `count` keys."""
    keys = ", ".join("?" * count)
    # Only placeholders and the table's own name go in: no value is ever formatted in.
    return (
        f"SELECT key_hash, digest, seen_at FROM {items.name} WHERE destination = ? AND sink = ? "  # noqa: S608
        f"AND status = ? AND key_hash IN ({keys})"
    )


@functools.cache
def _upsert_statement(dialect: str) -> Any:
    """Built once per dialect: building it cost 0.8 ms per accepted request."""
    insert = sqlite.insert(items) if dialect == "sqlite" else postgresql.insert(items)
    replaced = ("digest", "status", "subject", "reason", "recorded_at", "seen_at")
    return insert.on_conflict_do_update(
        index_elements=[items.c.destination, items.c.sink, items.c.key_hash],
        set_={name: insert.excluded[name] for name in replaced},
    )


def _stored_version(conn: Connection) -> int:
    inspector = sa.inspect(conn)
    if inspector.has_table(versions.name):
        return int(conn.execute(sa.select(sa.func.max(versions.c.version))).scalar_one() or 0)
    return 0


def _check_known_version(name: str, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise LedgerError(
            f"Ledger {name!r} has schema version {version}, newer than this target-usage knows "
            f"({SCHEMA_VERSION}): upgrade target-usage, or point `ledger` elsewhere"
        )


def _sqlite_engine(url: URL, name: str, *, read_only: bool, busy_timeout: float) -> Engine | None:
    path = Path(url.database or "")
    if not url.database or url.database == ":memory:":
        raise LedgerError(f"Ledger {name!r}: give a file path (an in-memory ledger forgets all)")
    if read_only:
        if not path.exists():
            return None  # a dry run before any real run: everything is new
        # Without a -wal file no process has the ledger open for writing, and `immutable`
        # reads it without creating the -wal and -shm files a `mode=ro` reader leaves behind.
        wal = path.with_name(path.name + "-wal")
        mode = "mode=ro" if wal.exists() else "immutable=1"
        url = url.set(database=f"file:{path.resolve()}?{mode}", query={"uri": "true"})
    else:
        try:  # created on first use, folder included, like the dead-letter file
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise LedgerError(
                f"Ledger {name!r}: could not create its folder ({error.strerror}); check that "
                "this user may create folders and files there."
            ) from None
    engine = sa.create_engine(url, connect_args={"timeout": busy_timeout})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own implicit BEGIN is off; _begin below says which BEGIN to use.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not read_only:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT_PAGES}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("ledger_write")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _postgres_engine(url: URL, name: str) -> Engine:
    try:
        import psycopg  # noqa: F401  (only to tell a missing extra from a bad URL)
    except ImportError:
        raise LedgerError(
            f"Ledger {name!r} is a PostgreSQL URL, but its driver (psycopg 3) is not installed: "
            f"run {POSTGRES_EXTRA_HINT}"
        ) from None
    return sa.create_engine(
        url,
        connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS},
        pool_pre_ping=True,
    )


def _explain(name: str, action: str, error: sa.exc.SQLAlchemyError, *, busy_timeout: float) -> str:
    """One sentence: which ledger, what failed, why, and what to do."""
    cause = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    lowered = cause.lower()
    if "database is locked" in lowered or "database is busy" in lowered:
        fix = (
            f"another process held it for more than {busy_timeout:g} s: wait for it to finish, "
            "or give each concurrent job its own ledger (or share a PostgreSQL one)"
        )
    elif "not a database" in lowered:
        fix = "this file is not an SQLite ledger: point `ledger` at another path"
    elif "unable to open" in lowered or "readonly" in lowered or "read-only" in lowered:
        fix = "check that its folder exists and that this user may create and write files there"
    elif "connection" in lowered or "connect" in lowered or "timeout" in lowered:
        fix = "check the host, port, credentials and that the server is running"
    else:
        fix = "check the `ledger` setting and the database server's log"
    return f"Ledger {name!r}: could not {action} it ({cause}); {fix}."
