"""The fake APIs must be able to fail: each contract rule they enforce catches a bad request."""

from __future__ import annotations

import json

import jwt
import pytest
import requests

from tests.loopback import FakeHull, FakeSkalin, Fault

SECRET = "loopback-test-secret-0123456789abcdef"
GOOD_ITEM = {"eventId": "0123456789abcdef", "identity": {"email": "a@x.io"}, "name": "f"}


def post_skalin(api: FakeSkalin, body: dict, client_id: str = "cid") -> requests.Response:
    return requests.post(f"{api.url}/hit/bulk?rec=1&client_id={client_id}", json=body, timeout=5)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"features": [GOOD_ITEM] * 101}, "101 features"),
        ({"features": [{**GOOD_ITEM, "eventId": "short"}]}, "eventId"),
        ({"features": [{**GOOD_ITEM, "visitId": "x" * 17}]}, "visitId"),
        ({"features": [{**GOOD_ITEM, "ts": "2024-01-01T00:00:00Z"}]}, "ts"),
        ({"features": [{**GOOD_ITEM, "identity": {}}]}, "identity"),
        ({"features": [{k: v for k, v in GOOD_ITEM.items() if k != "name"}]}, "without name"),
        ({"identities": [{**GOOD_ITEM, "name": "x"}]}, "unknown key 'name'"),
        ({"events": []}, "body is not"),
    ],
)
def test_skalin_refuses_what_the_doc_forbids(body: dict, problem: str) -> None:
    with FakeSkalin("cid") as api:
        assert post_skalin(api, body).status_code == 400
        assert problem in " ".join(api.violations)
        assert api.accepted == []


def test_skalin_checks_the_client_id_and_stores_good_requests() -> None:
    with FakeSkalin("cid") as api:
        assert post_skalin(api, {"features": [GOOD_ITEM]}, client_id="other").status_code == 400
        api.violations.clear()
        assert post_skalin(api, {"features": [GOOD_ITEM]}).status_code == 200
        assert api.features == [GOOD_ITEM]


def test_faults_are_served_in_order_then_normal_service_resumes() -> None:
    with FakeSkalin("cid") as api:
        api.faults += [Fault.status(429, retry_after="3"), Fault.drop_before(), Fault.drop_after()]
        first = post_skalin(api, {"features": [GOOD_ITEM]})
        assert (first.status_code, first.headers["Retry-After"]) == (429, "3")
        with pytest.raises(requests.ConnectionError):
            post_skalin(api, {"features": [GOOD_ITEM]})
        with pytest.raises(requests.ConnectionError):
            post_skalin(api, {"features": [GOOD_ITEM]})
        assert len(api.accepted) == 1
        assert post_skalin(api, {"features": [GOOD_ITEM]}).status_code == 200


def test_rate_limit_answers_429_past_the_burst() -> None:
    with FakeSkalin("cid") as api:
        api.rate_limit(1, burst=2)
        codes = [post_skalin(api, {"features": [GOOD_ITEM]}).status_code for _ in range(4)]
        assert codes == [200, 200, 429, 429]
        assert api.rate_limited == 2


def test_keep_alive_reuses_one_connection() -> None:
    with FakeSkalin("cid") as api, requests.Session() as session:
        for _ in range(5):
            session.post(f"{api.url}/hit/bulk?rec=1&client_id=cid", json={"features": []})
        assert api.connections == 1


def hull_request(api: FakeHull, claims: dict, secret: str = SECRET, **headers: str):
    token = jwt.encode(claims, secret, algorithm="HS256")
    entry = {
        "type": "track",
        "timestamp": "2024-01-01T00:00:00Z",
        "headers": {"Hull-Access-Token": token},
        "body": {"event": "x"},
    }
    body = {"batch": [entry], "timestamp": "2024-01-01T00:00:00Z", "sentAt": "2024-01-01T00:00:00Z"}
    sent = {
        "Content-Type": "application/json",
        "Hull-App-Id": "app",
        "Hull-Organization": "acme.hullapp.io",
        "Hull-Access-Token": SECRET,
        **headers,
    }
    return requests.post(f"{api.url}/", data=json.dumps(body), headers=sent, timeout=5)


USER = {
    "iss": "app",
    "iat": 1_700_000_000,
    "io.hull.subjectType": "user",
    "io.hull.asUser": {"email": "a@x.io"},
}


def test_hull_accepts_a_signed_entry_and_decodes_its_claims() -> None:
    with FakeHull("acme.hullapp.io", "app", SECRET) as api:
        assert hull_request(api, USER).status_code == 204
        assert api.entries[0]["claims"]["io.hull.asUser"] == {"email": "a@x.io"}


@pytest.mark.parametrize(
    ("claims", "secret", "problem"),
    [
        (USER, "wrong", "does not verify"),
        ({**USER, "io.hull.asUser": {"email": None}}, SECRET, "asUser.email"),
        ({**USER, "io.hull.subjectType": "account"}, SECRET, "without asAccount"),
        ({**USER, "exp": 1_700_000_100}, SECRET, "expired"),
        ({**USER, "iss": "other"}, SECRET, "iss"),
    ],
)
def test_hull_refuses_bad_tokens(claims: dict, secret: str, problem: str) -> None:
    with FakeHull("acme.hullapp.io", "app", SECRET) as api:
        assert hull_request(api, claims, secret).status_code == 400
        assert problem in " ".join(api.violations)


def test_hull_checks_the_request_headers() -> None:
    with FakeHull("acme.hullapp.io", "app", SECRET) as api:
        assert hull_request(api, USER, **{"Hull-Access-Token": "nope"}).status_code == 400
        assert "hull-access-token" in api.violations[0]
