"""The end of a dry run: the first item of each sink, field by field, with the columns each
field was made of, so a first run shows what would be sent and why.

Sources are found by rebuilding the item with one column left out (or, when the item cannot
be built without it, with that column's value changed) and seeing which fields change: the
builders' own rules read back, with no second copy of the column contract to fall out of
step. Clocks are frozen, so only columns can change a field.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import jwt

from target_usage.errors import InvalidRecordError
from target_usage.records import SDC_PREFIX, encode_json
from target_usage.transport import Part

VALUE_CHARS = 60
# Token claims that only say when the token was signed.
TIME_CLAIMS = frozenset({"iat", "nbf", "exp"})
_MISSING = object()


@dataclass(frozen=True)
class Field:
    path: str
    value: Any
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Sample:
    """The first record of a stream that made a valid item."""

    stream: str
    sink: str
    position: int
    record: dict[str, Any]


class Samples:
    """Keeps the first valid record of each stream; sinks offer theirs from reading threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_stream: dict[str, Sample] = {}

    def offer(self, stream: str, sink: str, position: int, record: Mapping[str, Any]) -> None:
        if stream in self.by_stream:
            return
        with self._lock:
            self.by_stream.setdefault(stream, Sample(stream, sink, position, dict(record)))


def provenance(build: Callable[[Mapping[str, Any]], Any], record: Mapping[str, Any]) -> list[Field]:
    """Each field of the item `build` makes of `record`, with the columns it depends on."""
    base = dict(_leaves(_plain(build(record))))
    sources: dict[str, list[str]] = {path: [] for path in base}
    for column in record:
        if column.startswith(SDC_PREFIX):
            continue
        variant = _rebuilt_without(build, record, column)
        if variant is None:
            continue
        for path, value in base.items():
            if variant.get(path, _MISSING) != value:
                sources[path].append(column)
    return [Field(path, value, tuple(sources[path])) for path, value in base.items()]


def lines(sample: Sample, fields: list[Field], record_columns: int) -> Iterator[str]:
    """The explanation of one sample, a line per field."""
    yield f"  {sample.sink} item from stream '{sample.stream}' record #{sample.position}:"
    for field in fields:
        shown = json.dumps(field.value, ensure_ascii=False, default=str)
        if len(shown) > VALUE_CHARS:
            shown = shown[: VALUE_CHARS - 3] + "..."
        yield f"    {field.path} = {shown}  <- {_source(field.columns, record_columns)}"


def _source(columns: tuple[str, ...], record_columns: int) -> str:
    if not columns:
        return "no column (set by the target: a setting or the clock)"
    if len(columns) == record_columns and record_columns > 2:
        return "every column"
    return " + ".join(columns)


def _rebuilt_without(
    build: Callable[[Mapping[str, Any]], Any], record: Mapping[str, Any], column: str
) -> dict[str, Any] | None:
    """The item's fields with `column` left out, or changed if it cannot be left out."""
    without = {k: v for k, v in record.items() if k != column}
    changed = {**record, column: _changed(record[column])}
    for variant in (without, changed):
        try:
            return dict(_leaves(_plain(build(variant))))
        except InvalidRecordError:
            continue
    return None


def _changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float | Decimal):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    return "x"


def _plain(item: Any) -> Any:
    """The item as JSON values (built as encoded bytes; tokens become their claims)."""
    return _claims_of_tokens(json.loads(item))


def _claims_of_tokens(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _claims_of_tokens(v) for k, v in value.items()}
    if isinstance(value, str) and value.count(".") == 2 and value.startswith("eyJ"):
        try:
            claims = jwt.decode(value, options={"verify_signature": False})
        except jwt.PyJWTError:
            return value
        return {k: v for k, v in claims.items() if k not in TIME_CLAIMS}
    return value


def _leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            yield from _leaves(inner, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix, value


def sent_item(api: Any, kind: str) -> Callable[[Mapping[str, Any]], bytes]:
    """A builder of the item as its request carries it (a Hull entry gets its token only
    when the request is built): the one list of a one-item request's body."""

    def build(record: Mapping[str, Any]) -> bytes:
        body = json.loads(api.request_for([Part(kind, [api.build(kind, record)], [])]).body)
        [items] = [value for value in body.values() if isinstance(value, list)]
        return encode_json(items[0])

    return build


def frozen(api: Any) -> Any:
    """`api` with its clocks (its own and its token signer's) stopped at this instant."""
    for owner in (api, getattr(api, "signer", None)):
        clock = getattr(owner, "clock", None)
        if clock is not None:
            instant = clock()
            owner.clock = lambda instant=instant: instant
    return api


def report(
    samples: Samples,
    build_for: Callable[[str], Callable[[Mapping[str, Any]], Any]],
    requests_path: Any,
) -> list[str]:
    """The explanation lines of a dry run, or none when no record made an item."""
    if not samples.by_stream:
        return []
    out = [
        f"What would be sent: one request per line of {requests_path}. The first item of "
        "each stream, field <- the columns (after stream_maps) it was made of:"
    ]
    for sample in samples.by_stream.values():
        columns = sum(1 for c in sample.record if not c.startswith(SDC_PREFIX))
        fields = provenance(build_for(sample.sink), sample.record)
        out.extend(lines(sample, fields, columns))
    return out
