"""Hull column contract and tokens, as pure cases (clock injected, no sockets)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import jwt
import pytest

from target_usage.errors import InvalidRecordError
from target_usage.hull import HullApi, Subject, TokenSigner, subject_of
from target_usage.records import encode_json
from target_usage.transport import Part, Request

SECRET = "hull-test-secret-0123456789abcdef0123"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_api(clock: Clock | None = None, **options: object) -> HullApi:
    signer = TokenSigner("conn-1", SECRET, 3600, True, False, clock=clock or Clock())
    return HullApi("https://firehose.hullapp.io", "acme.hullapp.io", signer, **options)


def entry(kind: str, record: dict, api: HullApi | None = None) -> dict:
    """The entry as a request sends it, its token's claims beside it."""
    api = api or make_api()
    return entry_of(api.request_for([Part(kind, [api.build(kind, record)], [])]))


def entry_of(request: Request) -> dict:
    built = json.loads(request.body)["batch"][0]
    built["claims"] = jwt.decode(
        built["headers"]["Hull-Access-Token"],
        SECRET,
        algorithms=["HS256"],
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )
    return built


def test_user_subject_holds_only_the_identifiers_present() -> None:
    claims = entry(
        "traits", {"email": "a@x.io", "external_id": None, "anonymous_id": "", "plan": "pro"}
    )["claims"]
    assert claims["io.hull.subjectType"] == "user"
    assert claims["io.hull.asUser"] == {"email": "a@x.io"}
    assert "io.hull.asAccount" not in claims


def test_account_subject_from_account_identifiers_only() -> None:
    claims = entry("traits", {"account_domain": "acme.com", "account_external_id": 42})["claims"]
    assert claims["io.hull.subjectType"] == "account"
    assert claims["io.hull.asAccount"] == {"domain": "acme.com", "external_id": "42"}
    assert "io.hull.asUser" not in claims


def test_user_with_account_identifiers_is_linked_in_one_token() -> None:
    claims = entry("traits", {"external_id": "u1", "account_domain": "acme.com"})["claims"]
    assert claims["io.hull.subjectType"] == "user"
    assert claims["io.hull.asUser"] == {"external_id": "u1"}
    assert claims["io.hull.asAccount"] == {"domain": "acme.com"}


def test_claims_carry_issuer_times_and_flags() -> None:
    claims = entry("traits", {"email": "a@x.io"})["claims"]
    assert claims["iss"] == "conn-1"
    assert claims["iat"] == claims["nbf"] == int(NOW)
    assert claims["exp"] == int(NOW) + 3600
    assert (claims["io.hull.create"], claims["io.hull.active"]) == (True, False)


def test_record_without_any_identifier_is_invalid() -> None:
    with pytest.raises(InvalidRecordError, match="no user or account identifier"):
        subject_of({"plan": "pro", "email": ""})


def test_one_token_per_subject_is_reused_then_renewed_at_half_life() -> None:
    clock = Clock()
    api = make_api(clock)
    first = entry("track", {"email": "a@x.io", "event": "e1"}, api)
    second = entry("track", {"email": "a@x.io", "event": "e2"}, api)
    other = entry("track", {"email": "b@x.io", "event": "e1"}, api)
    assert first["headers"] == second["headers"] != other["headers"]
    assert api.signer.signed == 2
    clock.now += 1799
    assert entry("track", {"email": "a@x.io", "event": "e3"}, api)["headers"] == first["headers"]
    clock.now += 1
    renewed = entry("track", {"email": "a@x.io", "event": "e4"}, api)
    assert renewed["headers"] != first["headers"]
    assert renewed["claims"]["exp"] == int(NOW) + 1800 + 3600
    assert api.signer.signed == 3


def test_token_cache_is_bounded() -> None:
    signer = TokenSigner("c", SECRET, 3600, True, False, clock=Clock(), capacity=3)
    for n in range(10):
        signer.token(Subject((("email", f"u{n}@x.io"),), ()))
    assert len(signer._cache) == 3
    signer.token(Subject((("email", "u9@x.io"),), ()))
    assert signer.signed == 10


def test_traits_are_the_other_columns_without_identifiers_sdc_or_timestamp() -> None:
    built = entry(
        "traits",
        {
            "email": "a@x.io",
            "account_domain": "acme.com",
            "plan": "pro",
            "seats": Decimal("12"),
            "created_at": "2024-01-01",
            "_sdc_extracted_at": "x",
            "timestamp": "2024-05-01T10:00:00+02:00",
            "group/score": 3,
        },
    )
    assert built["body"] == {
        "plan": "pro",
        "seats": 12,
        "created_at": "2024-01-01",
        "group/score": 3,
    }
    assert built["timestamp"] == "2024-05-01T08:00:00.000Z"


def test_traits_object_column_wins_and_operations_pass_through() -> None:
    traits = {"visits": {"operation": "inc", "value": 1}, "plan": "pro"}
    assert entry("traits", {"email": "a@x.io", "traits": traits, "x": 1})["body"] == traits


def test_null_traits_are_left_out_unless_asked() -> None:
    record = {"email": "a@x.io", "plan": None, "seats": 3}
    assert entry("traits", record)["body"] == {"seats": 3}
    assert entry("traits", record, make_api(send_nulls=True))["body"] == {"plan": None, "seats": 3}


@pytest.mark.parametrize(
    ("traits", "problem"),
    [
        ({"bio": "x" * 2100}, "trait 'bio' is 2102 bytes"),
        ({f"a{n}": n for n in range(2001)}, "2001 traits"),
        ({"nested": {"a": 1}}, "is an object but not"),
        ({"n": {"operation": "multiply", "value": 2}}, "is an object but not"),
    ],
)
def test_trait_limits_make_the_record_invalid_never_truncated(traits: dict, problem: str) -> None:
    with pytest.raises(InvalidRecordError, match=problem):
        make_api().build("traits", {"email": "a@x.io", "traits": traits})


def test_track_body_from_columns() -> None:
    built = entry(
        "track",
        {
            "email": "a@x.io",
            "event": "Signed Up",
            "plan": "pro",
            "empty": None,
            "ip": "1.2.3.4",
            "url": "https://a",
            "referer": None,
            "source": "web",
            "type": "form",
            "created_at": "2024-05-01T10:00:00+02:00",
        },
    )
    body = built["body"]
    assert body["event"] == "Signed Up"
    assert body["properties"] == {"plan": "pro"}
    assert (body["ip"], body["url"], body["source"], body["type"]) == (
        "1.2.3.4",
        "https://a",
        "web",
        "form",
    )
    assert "referer" not in body
    assert body["created_at"] == "2024-05-01T08:00:00.000Z"
    assert built["timestamp"] == "2024-05-01T08:00:00.000Z"
    assert len(body["event_id"]) == 16


def test_track_properties_column_and_given_event_id() -> None:
    body = entry(
        "track",
        {
            "email": "a@x.io",
            "event": "e",
            "properties": {"a": 1},
            "event_id": "order-1",
            "other": 2,
        },
    )["body"]
    assert body["properties"] == {"a": 1}
    assert body["event_id"] == "order-1"


def test_track_event_id_is_stable_across_replays_and_clocks() -> None:
    record = {"email": "a@x.io", "event": "e", "n": 1, "_sdc_batched_at": "t1"}
    later = Clock(NOW + 86400)
    assert (
        entry("track", record)["body"]["event_id"]
        == entry("track", {**record, "_sdc_batched_at": "t2"}, make_api(later))["body"]["event_id"]
    )


def test_track_without_event_is_invalid() -> None:
    with pytest.raises(InvalidRecordError, match="no event name"):
        make_api().build("track", {"email": "a@x.io"})


def test_entry_without_timestamp_is_stamped_now_in_utc() -> None:
    assert entry("track", {"email": "a@x.io", "event": "e"})["timestamp"] == (
        "2024-05-01T12:00:00.000Z"
    )


@pytest.mark.parametrize("kind", ["alias", "unalias"])
def test_alias_resolves_the_profile_from_the_other_identifiers(kind: str) -> None:
    built = entry(kind, {"anonymous_id": "anon-1", "email": "a@x.io"})
    assert built["body"] == {"anonymous_id": "anon-1"}
    assert built["claims"]["io.hull.asUser"] == {"email": "a@x.io"}
    assert built["type"] == kind


def test_alias_needs_a_profile_besides_the_anonymous_id() -> None:
    with pytest.raises(InvalidRecordError, match="no user or account identifier"):
        make_api().build("alias", {"anonymous_id": "anon-1"})
    with pytest.raises(InvalidRecordError, match="anonymous_id"):
        make_api().build("alias", {"email": "a@x.io"})


def requests_of(api: HullApi, kind: str, items: list) -> list:
    return [api.request_for([Part(kind, items[a:b], [])]) for a, b in api.split(kind, items)]


def entries(request: Request) -> int:
    return len(json.loads(request.body)["batch"])


def test_requests_split_by_count_and_by_size() -> None:
    api = make_api(batch_size=3, max_body_bytes=2_000)
    small = [api.build("track", {"email": "a@x.io", "event": f"e{n}"}) for n in range(7)]
    assert [entries(r) for r in requests_of(api, "track", small)] == [3, 3, 1]
    big = [api.build("traits", {"email": "a@x.io", "bio": "x" * 600, "n": n}) for n in range(5)]
    requests = requests_of(api, "traits", big)
    assert all(len(r.body) < 2_000 for r in requests)
    assert sum(entries(r) for r in requests) == 5
    assert len(requests) > 2


def test_an_entry_too_large_for_any_request_is_invalid() -> None:
    api = make_api(max_body_bytes=1_000)
    with pytest.raises(InvalidRecordError, match="over the request cap"):
        api.build("traits", {"email": "a@x.io", "bio": "x" * 1_000})


def test_request_envelope_and_headers() -> None:
    api = make_api()
    request = requests_of(api, "track", [api.build("track", {"email": "a", "event": "e"})])[0]
    body = json.loads(request.body)
    assert set(body) == {"batch", "timestamp", "sentAt"}
    assert body["timestamp"] == body["sentAt"] == "2024-05-01T12:00:00.000Z"
    assert request.headers == {
        "Content-Type": "application/json",
        "Hull-App-Id": "conn-1",
        "Hull-Organization": "acme.hullapp.io",
        "Hull-Access-Token": SECRET,
    }


def test_an_entry_that_waited_past_half_the_ttl_is_sent_with_a_re_signed_token() -> None:
    clock = Clock()
    api = make_api(clock)
    item = api.build("track", {"email": "a@x.io", "event": "e", "created_at": "2024-05-01"})
    first = entry_of(api.request_for([Part("track", [item], [])]))
    clock.now += 1800  # half of the 3600 s ttl: the token read with the entry is now stale
    resent = entry_of(api.request_for([Part("track", [item], [])]))
    assert first["claims"]["iat"] == int(NOW)
    assert resent["claims"]["iat"] == int(NOW) + 1800
    assert {k: resent[k] for k in ("type", "timestamp", "body")} == {
        k: first[k] for k in ("type", "timestamp", "body")
    }


def test_an_item_is_sized_as_the_entry_sent_with_its_token() -> None:
    api = make_api()
    items = [
        api.build("traits", {"email": "a@x.io", "plan": "pro"}),
        api.build("alias", {"account_domain": "acme.com", "anonymous_id": "x"}),
    ]
    for item in items:
        request = api.request_for([Part(item.kind, [item], [])])
        envelope = {**json.loads(request.body), "batch": []}
        assert len(item) == len(request.body) - len(json.dumps(envelope, separators=(",", ":")))


def test_a_record_with_other_columns_than_the_last_gets_its_own_properties() -> None:
    api = make_api()
    first = entry("track", {"email": "a@x.io", "event": "e", "plan": "pro"}, api)
    second = entry("track", {"email": "a@x.io", "event": "e", "seats": 3, "plan": None}, api)
    third = entry("track", {"account_domain": "a.com", "event": "e", "plan": "team"}, api)
    assert first["body"]["properties"] == {"plan": "pro"}
    assert second["body"]["properties"] == {"seats": 3}
    assert third["body"]["properties"] == {"plan": "team"}
    assert third["claims"]["io.hull.asAccount"] == {"domain": "a.com"}


def test_a_request_body_is_its_entries_encoded_as_one_json_document() -> None:
    api = make_api()
    items = [
        api.build("track", {"email": "a@x.io", "event": "é", "n": 1}),
        api.build("traits", {"account_domain": "a.com", "plan": "pro"}),
    ]
    request = api.request_for([Part("track", items[:1], []), Part("traits", items[1:], [])])
    assert request.body == encode_json(json.loads(request.body))
    assert len(json.loads(request.body)["batch"]) == 2
