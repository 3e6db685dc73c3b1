"""Record helpers shared by every API: column lookup, UTC time, stable ids, JSON bytes.

Both APIs deduplicate on ids the client sends, so ids must come out the same on every
replay of the same record. Everything here is pure and deterministic; the clock is a
parameter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, TypeVar

import msgspec

from target_usage.errors import InvalidRecordError

ID_CHARS = 16
SDC_PREFIX = "_sdc_"
# Epoch values at or above this are milliseconds: 1e11 seconds is the year 5138.
EPOCH_MILLIS_THRESHOLD = 100_000_000_000
# A numeric identifier longer than this (1E+999999) is a data error, not a person.
MAX_IDENTIFIER_DIGITS = 100

# Distinct record shapes remembered; a tap emits one shape per SCHEMA, a few when some
# columns are left out of some rows.
SHAPE_CACHE_SIZE = 256
# Distinct (second, zone) timestamps remembered.
TIME_CACHE_SIZE = 65_536

PlanT = TypeVar("PlanT")

_encoder = msgspec.json.Encoder(decimal_format="number")
_canonical_encoder = msgspec.json.Encoder(decimal_format="number", order="sorted")


def encode_json(value: Any) -> bytes:
    """JSON bytes for a request body; Decimal, datetime, date and time are handled."""
    return _encoder.encode(value)


def canonical_json(value: Any) -> bytes:
    """JSON bytes with sorted keys, so equal content gives equal bytes whatever the key order."""
    return _canonical_encoder.encode(value)


def digest16(data: bytes) -> str:
    """A stable 16-character id (64 bits of BLAKE2b, hex)."""
    return hashlib.blake2b(data, digest_size=ID_CHARS // 2).hexdigest()


class ShapePlans(Generic[PlanT]):
    """Facts about a record's columns, worked out once per shape (its column names, in
    order) instead of once per record: which columns are `_sdc_`, identifiers, properties.

    Records of one stream nearly always share one shape, so the per-record cost is one
    tuple and one dictionary lookup. Bounded: forgets every shape when too many are seen.
    """

    def __init__(self, compile_plan: Callable[[tuple[str, ...]], PlanT]) -> None:
        self._compile = compile_plan
        self._plans: dict[tuple[str, ...], PlanT] = {}

    def __call__(self, record: Mapping[str, Any]) -> PlanT:
        shape = tuple(record)
        plan = self._plans.get(shape)
        if plan is None:
            if len(self._plans) >= SHAPE_CACHE_SIZE:
                self._plans.clear()
            plan = self._plans[shape] = self._compile(shape)
        return plan


def sdc_columns(shape: tuple[str, ...]) -> tuple[str, ...]:
    """The `_sdc_*` columns of a shape: Singer metadata, not content."""
    return tuple(column for column in shape if column.startswith(SDC_PREFIX))


_sdc_of = ShapePlans(sdc_columns)


def content_digest(record: Mapping[str, Any], salt: str) -> str:
    """A stable id for a record's content that ignores key order and `_sdc_*` columns.

    `salt` keeps ids of different kinds (an identity and a feature built from the same
    row) apart.
    """
    content = record
    if _sdc_of(record):
        content = {k: v for k, v in record.items() if not k.startswith(SDC_PREFIX)}
    return digest16(salt.encode() + b"\x00" + canonical_json(content))


def id16(value: Any) -> str:
    """An id as the APIs want it: 16 characters kept as given, anything else digested."""
    text = value if isinstance(value, str) else canonical_json(value).decode()
    return text if len(text) == ID_CHARS else digest16(text.encode())


def first_present(record: Mapping[str, Any], *columns: str) -> Any:
    """The first of `columns` holding a value other than null or an empty string."""
    return first_present_column(record, columns)[0]


def first_present_column(record: Mapping[str, Any], columns: tuple[str, ...]) -> tuple[Any, str]:
    """The first of `columns` holding a value (not null or ""), and that column's name, for
    messages that name it; (None, "") when none does."""
    for column in columns:
        value = record.get(column)
        if value is not None and value != "":
            return value, column
    return None, ""


def as_text(value: Any) -> str:
    """A scalar column as the string the APIs expect (ids may arrive as numbers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return canonical_json(value).decode().strip('"')


def identifier_text(value: Any, column: str) -> str:
    """An identifier column as the text the APIs match profiles on.

    The SDK decodes JSON numbers as Decimal, so `1`, `1.0` and `1E+2` must all become "1" /
    "100" or one person would become several profiles: integral numbers are written as
    integers, others as plain decimals without trailing zeros. Values that cannot name a
    person (booleans, objects, arrays, blank strings) make the record invalid.
    """
    if isinstance(value, str):
        if value.strip():
            return value
    elif isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    elif isinstance(value, (Decimal, float)):
        number = Decimal(str(value)) if isinstance(value, float) else value
        if number.is_finite() and abs(number.adjusted()) <= MAX_IDENTIFIER_DIGITS:
            text = format(number, "f")
            return text.rstrip("0").rstrip(".") if "." in text else text
    raise InvalidRecordError(
        f"column '{column}' holds {repr(value)[:60]}, which cannot identify anyone",
        fix=f"send '{column}' as a non-blank string or a number (or null when unknown)",
    )


def to_utc(value: Any, column: str) -> datetime:
    """Any timestamp a warehouse emits as an aware UTC datetime.

    Accepts ISO-8601 with an offset, `Z` or none (naive means UTC), epoch seconds or
    milliseconds (numbers or digit strings), `datetime` and `date` objects.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        moment = _from_epoch(value, column)
    elif isinstance(value, str):
        moment = _from_text(value, column)
    else:
        raise _bad_time(value, column)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise _out_of_range(value, column) from None


def _from_text(value: str, column: str) -> datetime:
    if value[4:5] == "-":  # the common shape, YYYY-MM-DD...: no epoch text has it
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    text = value.strip()
    if text.lstrip("-").replace(".", "", 1).isdigit():
        try:
            return _from_epoch(Decimal(text), column)
        except InvalidOperation as error:
            raise _bad_time(text, column) from error
    try:
        return datetime.fromisoformat(text)
    except ValueError as error:
        raise _bad_time(text, column) from error


def _from_epoch(value: float | Decimal, column: str) -> datetime:
    seconds = float(value)
    if abs(seconds) >= EPOCH_MILLIS_THRESHOLD:
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise _out_of_range(value, column) from None


def _bad_time(value: Any, column: str) -> InvalidRecordError:
    shown = repr(value)[:60]
    return InvalidRecordError(
        f"column '{column}' holds {shown}, which is not a timestamp",
        fix=f"send '{column}' as ISO-8601 (e.g. 2024-05-01T09:30:00Z) or epoch seconds",
    )


_utc_seconds_by_second: dict[str, str] = {}


def utc_seconds_of(value: Any, column: str) -> str:
    """`utc_seconds(to_utc(value, column))`, remembered per second and zone for ISO text.

    Fractions are truncated, so `...T09:30:00.123+01:00` and `...T09:30:00.456+01:00` give
    the same text: a sync's timestamps share seconds often enough to make parsing and
    formatting the exception.
    """
    key = _second_key(value) if isinstance(value, str) else None
    if key is None:
        return utc_seconds(to_utc(value, column))
    text = _utc_seconds_by_second.get(key)
    if text is None:
        text = utc_seconds(to_utc(value, column))  # raises for invalid text: nothing kept
        if len(_utc_seconds_by_second) >= TIME_CACHE_SIZE:
            _utc_seconds_by_second.clear()
        _utc_seconds_by_second[key] = text
    return text


def _second_key(text: str) -> str | None:
    """`YYYY-MM-DDTHH:MM:SS` plus the zone, for ISO text whose fraction is only digits
    (any digit run parses alike); None for other shapes, which are parsed every time."""
    if text[4:5] != "-":
        return None
    rest = text[19:]
    zone = rest[1:].lstrip("0123456789") if rest[:1] == "." else rest
    return None if "." in zone else text[:19] + zone


def _out_of_range(value: Any, column: str) -> InvalidRecordError:
    return InvalidRecordError(
        f"column '{column}' holds {repr(value)[:60]}, outside the years 1-9999 once in UTC",
        fix=f"correct '{column}' in the source (a placeholder date such as 0001-01-01 or "
        "9999-12-31 cannot be sent)",
    )


def utc_seconds(moment: datetime) -> str:
    """`YYYY-MM-DDTHH:mm:ss`, the Skalin format (fractions truncated).

    `isoformat` always writes four-digit years (`strftime("%Y")` drops the padding of
    years below 1000), and is the cheapest way to format.
    """
    return moment.isoformat(timespec="seconds")[:19]


def iso_utc(moment: datetime) -> str:
    """ISO-8601 with milliseconds and a `Z` zone, as Hull's own client sends."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def clock_time(value: Any, column: str) -> str:
    """`HH:mm:ss` from a time, a datetime, or a string holding either."""
    if isinstance(value, (time, datetime)):
        return value.strftime("%H:%M:%S")
    if isinstance(value, str):
        text = value.strip()
        for parse in (time.fromisoformat, datetime.fromisoformat):
            try:
                return parse(text).strftime("%H:%M:%S")
            except ValueError:
                continue
    raise InvalidRecordError(
        f"column '{column}' holds {repr(value)[:60]}, which is not a time of day",
        fix=f"send '{column}' as HH:mm:ss (e.g. 08:00:05)",
    )
