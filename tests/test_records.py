"""Shared record helpers: UTC normalisation, stable ids, JSON encoding."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from target_usage.errors import InvalidRecordError
from target_usage.records import (
    as_text,
    clock_time,
    content_digest,
    encode_json,
    id16,
    iso_utc,
    to_utc,
    utc_seconds,
    utc_seconds_of,
)

NOON_UTC = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01T12:00:00Z",
        "2024-05-01T12:00:00+00:00",
        "2024-05-01T14:00:00+02:00",
        "2024-05-01T07:00:00-05:00",
        "2024-05-01 12:00:00",  # naive: UTC
        "2024-05-01T12:00:00",
        "2024-05-01 12:00:00+00",  # PostgreSQL text output
        1714564800,  # epoch seconds
        1714564800000,  # epoch milliseconds
        Decimal("1714564800"),
        1714564800.0,
        "1714564800",
        "1714564800000",
        datetime(2024, 5, 1, 12, 0, 0),  # naive datetime: UTC
        datetime(2024, 5, 1, 14, 0, 0, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_every_timestamp_form_normalises_to_the_same_utc_instant(value: object) -> None:
    assert to_utc(value, "ts") == NOON_UTC


def test_a_date_is_midnight_utc() -> None:
    assert to_utc(date(2024, 5, 1), "ts") == datetime(2024, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01", {"a": 1}, True])
def test_an_unreadable_timestamp_is_an_invalid_record_naming_the_column(value: object) -> None:
    with pytest.raises(InvalidRecordError, match="column 'ts'") as caught:
        to_utc(value, "ts")
    assert "ISO-8601" in caught.value.fix


def test_skalin_format_truncates_fractions() -> None:
    moment = to_utc("2024-05-01T12:00:59.999+00:00", "ts")
    assert utc_seconds(moment) == "2024-05-01T12:00:59"


def test_hull_format_has_a_z_zone() -> None:
    assert iso_utc(NOON_UTC) == "2024-05-01T12:00:00.000Z"


def test_id_of_sixteen_characters_is_kept() -> None:
    assert id16("abcdefghijklmnop") == "abcdefghijklmnop"


@pytest.mark.parametrize("value", ["short", "x" * 17, 12345, "a" * 40])
def test_id_of_another_length_becomes_a_stable_sixteen_char_digest(value: object) -> None:
    first = id16(value)
    assert len(first) == 16
    assert first == id16(value)
    assert first != id16(f"{value}-other")


def test_content_digest_ignores_key_order_and_sdc_columns() -> None:
    a = {"email": "a@x.io", "n": Decimal("1.5"), "_sdc_extracted_at": "2024-01-01"}
    b = {"n": Decimal("1.5"), "email": "a@x.io", "_sdc_batched_at": "2030-01-01"}
    assert content_digest(a, "features") == content_digest(b, "features")
    assert len(content_digest(a, "features")) == 16


def test_content_digest_differs_by_content_and_by_kind() -> None:
    record = {"email": "a@x.io"}
    assert content_digest(record, "features") != content_digest({"email": "b@x.io"}, "features")
    assert content_digest(record, "features") != content_digest(record, "identities")


def test_json_encoding_handles_decimal_datetime_and_nesting() -> None:
    body = encode_json({"n": Decimal("1.50"), "at": NOON_UTC, "d": date(2024, 5, 1), "x": [{}]})
    assert body == b'{"n":1.50,"at":"2024-05-01T12:00:00Z","d":"2024-05-01","x":[{}]}'


@pytest.mark.parametrize(
    ("value", "text"),
    [("u-1", "u-1"), (42, "42"), (Decimal("42"), "42"), (42.0, "42"), (True, "true")],
)
def test_scalar_ids_become_strings(value: object, text: str) -> None:
    assert as_text(value) == text


@pytest.mark.parametrize("value", ["08:00:05", "08:00:05.123", "2024-05-01T08:00:05+02:00"])
def test_localtime_is_hours_minutes_seconds(value: str) -> None:
    assert clock_time(value, "localtime") == "08:00:05"


def test_localtime_that_is_not_a_time_is_invalid() -> None:
    with pytest.raises(InvalidRecordError, match="localtime"):
        clock_time("soon", "localtime")


@pytest.mark.parametrize(
    ("values", "sent"),
    [
        (
            ["2024-05-01T09:30:00.1+02:00", "2024-05-01T09:30:00.999999+02:00"],
            "2024-05-01T07:30:00",
        ),
        (
            ["2024-05-01T09:30:00Z", "2024-05-01T09:30:00.5Z", "2024-05-01T09:30:00.Z"],
            "2024-05-01T09:30:00",
        ),
        (["2024-05-01 23:59:59.9-01:00", "2024-05-01 23:59:59-01:00"], "2024-05-02T00:59:59"),
    ],
)
def test_timestamps_of_one_second_and_zone_give_one_text_whatever_the_fraction(
    values: list[str], sent: str
) -> None:
    assert [utc_seconds_of(v, "ts") for v in values] == [sent] * len(values)
    assert [utc_seconds(to_utc(v, "ts")) for v in values] == [sent] * len(values)


@pytest.mark.parametrize("bad", ["2024-05-01T09:30:00.1x+02:00", "2024-05-01T09:30:00.1.2+02:00"])
def test_text_unlike_a_remembered_second_is_still_parsed_and_refused(bad: str) -> None:
    assert utc_seconds_of("2024-05-01T09:30:00.1+02:00", "ts") == "2024-05-01T07:30:00"
    with pytest.raises(InvalidRecordError, match="'ts'"):
        utc_seconds_of(bad, "ts")
