"""Skalin column contract: each row of the spec's table, as pure builder cases."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from target_usage.errors import InvalidRecordError
from target_usage.skalin import SkalinApi, build_feature, build_identity
from target_usage.transport import Part

NOW = datetime(2024, 5, 1, 23, 59, tzinfo=UTC)


def feature(**columns: object) -> dict:
    return build_feature({"email": "a@x.io", "name": "export", **columns}, now=NOW)


def test_identity_takes_email_and_user_id() -> None:
    item = build_identity({"email": "a@x.io", "user_id": 7}, now=NOW)
    assert item["identity"] == {"email": "a@x.io", "id": "7"}


@pytest.mark.parametrize("record", [{}, {"email": None, "user_id": ""}, {"customer_id": "c"}])
def test_record_without_email_or_user_id_is_invalid(record: dict) -> None:
    with pytest.raises(InvalidRecordError, match=r"email.*user_id") as caught:
        build_identity(record, now=NOW)
    assert "add an 'email' or 'user_id' column" in caught.value.fix


@pytest.mark.parametrize("column", ["customer_id", "customerId"])
def test_customer_id_in_snake_or_camel_case(column: str) -> None:
    assert feature(**{column: "acme"})["customerId"] == "acme"


@pytest.mark.parametrize("column", ["event_id", "eventId"])
def test_sixteen_char_event_id_is_sent_as_given(column: str) -> None:
    assert feature(**{column: "0123456789abcdef"})["eventId"] == "0123456789abcdef"


def test_event_id_of_other_length_becomes_a_stable_digest() -> None:
    first = feature(event_id="order-42")["eventId"]
    assert len(first) == 16
    assert first == feature(event_id="order-42")["eventId"]
    assert first != feature(event_id="order-43")["eventId"]


def test_absent_event_id_is_a_digest_of_content_stable_across_key_order_and_sdc() -> None:
    a = build_feature({"email": "a@x.io", "name": "x", "_sdc_extracted_at": "t1"}, now=NOW)
    b = build_feature({"_sdc_extracted_at": "t2", "name": "x", "email": "a@x.io"}, now=NOW)
    c = build_feature({"email": "a@x.io", "name": "y"}, now=NOW)
    assert a["eventId"] == b["eventId"] != c["eventId"]
    assert len(a["eventId"]) == 16


def test_event_ids_do_not_depend_on_the_clock() -> None:
    record = {"email": "a@x.io", "name": "x", "ts": "2024-01-01T00:00:00Z"}
    later = datetime(2030, 1, 1, tzinfo=UTC)
    assert build_feature(record, now=NOW) == build_feature(record, now=later)


@pytest.mark.parametrize("column", ["visit_id", "visitId"])
def test_sixteen_char_visit_id_is_kept(column: str) -> None:
    assert feature(**{column: "visit-0123456789"})["visitId"] == "visit-0123456789"


def test_visit_id_of_other_length_is_digested() -> None:
    assert len(feature(visit_id="v1")["visitId"]) == 16


def test_generated_visit_is_per_person_customer_and_utc_day() -> None:
    morning = feature(customer_id="c", ts="2024-05-01T08:00:00Z")["visitId"]
    evening = feature(customer_id="c", ts="2024-05-01T23:00:00Z")["visitId"]
    next_day = feature(customer_id="c", ts="2024-05-02T00:00:01Z")["visitId"]
    other_customer = feature(customer_id="d", ts="2024-05-01T08:00:00Z")["visitId"]
    other_person = build_feature(
        {"email": "b@x.io", "name": "export", "customer_id": "c", "ts": "2024-05-01T08:00:00Z"},
        now=NOW,
    )["visitId"]
    assert morning == evening
    assert len({morning, next_day, other_customer, other_person}) == 4


def test_identities_and_features_of_one_visit_share_its_id() -> None:
    record = {"email": "a@x.io", "name": "x", "customer_id": "c", "ts": "2024-05-01T08:00:00Z"}
    assert build_identity(record, now=NOW)["visitId"] == build_feature(record, now=NOW)["visitId"]


def test_visit_without_ts_uses_todays_utc_day() -> None:
    today = feature()["visitId"]
    assert today == feature(ts="2024-05-01T01:00:00Z")["visitId"]


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        ("2024-05-01T14:30:15.987+02:00", "2024-05-01T12:30:15"),
        ("2024-05-01T12:30:15Z", "2024-05-01T12:30:15"),
        ("2024-05-01 12:30:15", "2024-05-01T12:30:15"),
        (1714566615, "2024-05-01T12:30:15"),
        (1714566615123, "2024-05-01T12:30:15"),
        (datetime(2024, 5, 1, 12, 30, 15, 999999, tzinfo=UTC), "2024-05-01T12:30:15"),
    ],
)
def test_ts_is_utc_without_fractions(value: object, sent: str) -> None:
    assert feature(ts=value)["ts"] == sent


def test_timestamp_column_is_an_alias_of_ts() -> None:
    assert feature(timestamp="2024-05-01T12:30:15Z")["ts"] == "2024-05-01T12:30:15"


def test_absent_ts_is_left_out_for_server_time() -> None:
    assert "ts" not in feature()


def test_bad_ts_is_invalid_and_names_the_column() -> None:
    with pytest.raises(InvalidRecordError, match="'ts'"):
        feature(ts="next tuesday")


def test_localtime_url_and_ip() -> None:
    item = feature(localtime="08:00:05", url="https://app/x", ip="10.0.0.1")
    assert (item["localtime"], item["url"], item["cip"]) == (
        "08:00:05",
        "https://app/x",
        "10.0.0.1",
    )
    assert feature(cip="10.0.0.2")["cip"] == "10.0.0.2"


@pytest.mark.parametrize("column", ["name", "feature"])
def test_feature_name_from_name_or_feature(column: str) -> None:
    item = build_feature({"user_id": "u", column: "export"}, now=NOW)
    assert item["name"] == "export"


def test_feature_without_name_is_invalid() -> None:
    with pytest.raises(InvalidRecordError, match="no feature name"):
        build_feature({"email": "a@x.io"}, now=NOW)


def test_identities_carry_no_name() -> None:
    assert "name" not in build_identity({"email": "a@x.io", "name": "x"}, now=NOW)


def test_unknown_nested_and_decimal_columns_are_ignored_and_still_digest() -> None:
    item = feature(plan={"tier": "pro", "seats": Decimal("12")}, score=Decimal("0.5"))
    assert set(item) == {"eventId", "identity", "visitId", "name"}


def test_requests_hold_at_most_one_hundred_items_each() -> None:
    api = SkalinApi("https://collect.skalin.io", "cid 1")
    items = [feature(event_id=f"{i:016d}") for i in range(250)]
    requests = [
        api.request_for([Part("features", items[a:b], [])]) for a, b in api.split("features", items)
    ]
    assert requests[0].url == "https://collect.skalin.io/hit/bulk?rec=1&client_id=cid+1"
    assert requests[0].headers["Content-Type"] == "application/json"
    bodies = [json.loads(r.body) for r in requests]
    assert [len(b["features"]) for b in bodies] == [100, 100, 50]
    assert bodies[2]["features"][-1]["eventId"] == f"{249:016d}"


def test_identities_and_features_share_a_request() -> None:
    api = SkalinApi("https://collect.skalin.io", "cid")
    features = Part("features", [feature()], [])
    identities = Part("identities", [build_identity({"user_id": "u"}, now=NOW)], [])
    assert api.can_join([features], identities)
    assert not api.can_join([features], Part("features", [], []))
    request = api.request_for([features, identities])
    body = json.loads(request.body)
    assert {kind: len(items) for kind, items in body.items()} == {"features": 1, "identities": 1}
