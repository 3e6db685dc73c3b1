"""The fake Skalin and Hull servers themselves: contract checks, faults, keep-alive.

The delivery tests trust these servers to reject what the vendors would reject and to
misbehave on cue; these tests make sure they do, using plain `requests`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
import requests

from tests.fakes import FakeHull, FakeSkalin, Fault, Received

CLIENT_ID = "cid-0001"
ORG = "acme.hullapp.io"
CONNECTOR = "5f0c0ffee0000000000000aa"
SECRET = "s3cret-that-is-at-least-32-bytes-long!"
NOW = 1_700_000_000.0


@pytest.fixture
def skalin() -> Iterator[FakeSkalin]:
    with FakeSkalin(client_id=CLIENT_ID) as api:
        yield api


@pytest.fixture
def hull() -> Iterator[FakeHull]:
    with FakeHull(ORG, CONNECTOR, SECRET) as api:
        api.now = lambda: NOW
        yield api


def feature(**overrides: Any) -> dict[str, Any]:
    item = {
        "eventId": "0123456789abcdef",
        "identity": {"email": "ada@example.com"},
        "visitId": "fedcba9876543210",
        "ts": "2024-05-01T12:30:00",
        "localtime": "14:30:00",
        "name": "export",
    }
    return {**item, **overrides}


def post_skalin(
    api: FakeSkalin, body: Any, session: Any = requests, **kwargs: Any
) -> requests.Response:
    url = f"{api.url}/hit/bulk"
    return session.post(url, params={"rec": 1, "client_id": CLIENT_ID}, json=body, **kwargs)


# Skalin contract


def test_valid_skalin_request_is_stored(skalin: FakeSkalin) -> None:
    identity = {"identity": {"id": "u1"}, "customerId": "c1", "cip": "10.0.0.1"}
    response = post_skalin(skalin, {"identities": [identity], "features": [feature()]})

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert skalin.violations == []
    assert skalin.identities == [identity]
    assert skalin.features == [feature()]
    received = skalin.accepted[0]
    assert isinstance(received, Received)
    assert received.query == {"rec": "1", "client_id": CLIENT_ID}
    assert received.headers["content-type"].startswith("application/json")


def test_101_features_is_a_violation(skalin: FakeSkalin) -> None:
    response = post_skalin(skalin, {"features": [feature()] * 101})

    assert response.status_code == 400
    assert "101" in response.json()["error"]
    assert skalin.accepted == []
    assert len(skalin.requests) == 1
    assert any("features: 101 items" in v for v in skalin.violations)


def test_100_identities_and_100_features_together_are_fine(skalin: FakeSkalin) -> None:
    identity = {"identity": {"email": "a@b.c"}}
    body = {"identities": [identity] * 100, "features": [feature()] * 100}

    assert post_skalin(skalin, body).status_code == 200
    assert skalin.violations == []


@pytest.mark.parametrize(
    ("item", "field"),
    [
        (feature(ts="2024-05-01 12:30:00"), "ts"),
        (feature(ts="2024-02-30T12:30:00"), "ts"),
        (feature(eventId="0123456789abcde"), "eventId"),
        (feature(name=""), "name"),
        ({k: v for k, v in feature().items() if k != "name"}, "name"),
        (feature(identity={"email": None}), "identity.email"),
        (feature(identity={}), "identity"),
        (feature(localtime="2:30:00"), "localtime"),
        (feature(colour="red"), "colour"),
    ],
)
def test_bad_skalin_items_are_violations(skalin: FakeSkalin, item: dict, field: str) -> None:
    response = post_skalin(skalin, {"features": [item]})

    assert response.status_code == 400
    assert skalin.accepted == []
    assert any(v.startswith(f"features[0].{field}") for v in skalin.violations), skalin.violations


def test_wrong_client_id_and_path_are_violations(skalin: FakeSkalin) -> None:
    response = requests.post(f"{skalin.url}/hit", params={"rec": 1, "client_id": "x"}, json={})

    assert response.status_code == 400
    assert any(v.startswith("path") for v in skalin.violations)
    assert any(v.startswith("query client_id") for v in skalin.violations)


# Faults


def test_status_fault_answers_once_then_normal(skalin: FakeSkalin) -> None:
    skalin.faults.append(Fault.status(503))

    first = post_skalin(skalin, {"features": [feature()]})
    second = post_skalin(skalin, {"features": [feature()]})

    assert (first.status_code, second.status_code) == (503, 200)
    assert len(skalin.requests) == 2
    assert len(skalin.accepted) == 1


def test_429_fault_carries_retry_after(skalin: FakeSkalin) -> None:
    skalin.faults.append(Fault.status(429, retry_after="2", headers={"X-Why": "busy"}))

    response = post_skalin(skalin, {"features": [feature()]})

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.headers["X-Why"] == "busy"
    assert skalin.accepted == []


def test_drop_before_stores_nothing(skalin: FakeSkalin) -> None:
    skalin.faults.append(Fault.drop_before())

    with pytest.raises(requests.ConnectionError):
        post_skalin(skalin, {"features": [feature()]})

    assert len(skalin.requests) == 1
    assert skalin.accepted == []


def test_a_client_gone_mid_body_is_no_request_and_no_violation(skalin: FakeSkalin) -> None:
    """A client killed while sending (kill -9 mid-run) sent no request: half a body is not
    a contract violation of the target."""
    parts = urlsplit(skalin.url)
    with socket.create_connection((parts.hostname, parts.port)) as client:
        client.sendall(
            f"POST /hit/bulk?rec=1&client_id={CLIENT_ID} HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            '{"features": [{'.encode()
        )
    time.sleep(0.2)

    assert skalin.requests == []
    assert skalin.violations == []


def test_drop_after_stores_then_drops(skalin: FakeSkalin) -> None:
    skalin.faults.append(Fault.drop_after())

    with pytest.raises(requests.ConnectionError):
        post_skalin(skalin, {"features": [feature()]})

    assert len(skalin.accepted) == 1
    assert post_skalin(skalin, {"features": [feature()]}).status_code == 200
    assert len(skalin.features) == 2  # the resend is a duplicate


def test_delay_trips_a_client_timeout(skalin: FakeSkalin) -> None:
    skalin.faults.append(Fault.delay(0.5))

    with pytest.raises(requests.Timeout):
        post_skalin(skalin, {"features": [feature()]}, timeout=0.1)


def test_redirect_and_ok_body_faults(skalin: FakeSkalin) -> None:
    skalin.faults += [Fault.redirect("http://elsewhere.invalid/"), Fault.ok_body(200, b"<html>")]

    redirected = post_skalin(skalin, {"features": [feature()]}, allow_redirects=False)
    odd = post_skalin(skalin, {"features": [feature()]})

    assert redirected.status_code == 307
    assert redirected.headers["Location"] == "http://elsewhere.invalid/"
    assert (odd.status_code, odd.content) == (200, b"<html>")
    assert len(skalin.accepted) == 1


def test_fault_when_rejects_by_content(skalin: FakeSkalin) -> None:
    def poison(request: Received) -> Fault | None:
        return Fault.status(400) if b"poison" in request.body else None

    skalin.fault_when = poison

    bad = post_skalin(skalin, {"features": [feature(name="poison")]})
    good = post_skalin(skalin, {"features": [feature()]})

    assert (bad.status_code, good.status_code) == (400, 200)
    assert skalin.features == [feature()]
    assert skalin.violations == []


def test_rate_limit_answers_429_past_the_burst(skalin: FakeSkalin) -> None:
    skalin.rate_limit(rps=1, burst=3)

    codes = [post_skalin(skalin, {"features": [feature()]}) for _ in range(5)]

    assert [r.status_code for r in codes] == [200, 200, 200, 429, 429]
    assert int(codes[-1].headers["Retry-After"]) >= 1
    assert skalin.rate_limited == 2
    assert len(skalin.accepted) == 3


def test_latency_slows_every_answer(skalin: FakeSkalin) -> None:
    skalin.latency = 0.05
    started = time.monotonic()

    post_skalin(skalin, {"features": [feature()]})

    assert time.monotonic() - started >= 0.05


def test_keep_alive_reuses_one_connection(skalin: FakeSkalin) -> None:
    with requests.Session() as session:
        for _ in range(3):
            assert post_skalin(skalin, {"features": [feature()]}, session).status_code == 200
        skalin.faults.append(Fault.status(503))
        assert post_skalin(skalin, {"features": [feature()]}, session).status_code == 503

    assert skalin.connections == 1
    assert len(skalin.accepted) == 3


def test_reset_and_wait_for(skalin: FakeSkalin) -> None:
    skalin.faults.append(Fault.status(500))
    post_skalin(skalin, {"features": [feature()]})
    post_skalin(skalin, {"features": [feature()]})
    assert len(skalin.wait_for(1, timeout=0.5)) == 1

    skalin.reset()

    assert (skalin.requests, skalin.accepted, skalin.faults, skalin.connections) == ([], [], [], 0)
    with pytest.raises(TimeoutError, match="0 of 1"):
        skalin.wait_for(1, timeout=0.05)


# Hull


def token(**claims: Any) -> str:
    payload = {
        "iss": CONNECTOR,
        "iat": int(NOW),
        "exp": int(NOW) + 300,
        "io.hull.subjectType": "user",
        "io.hull.asUser": {"email": "ada@example.com", "external_id": "u1"},
        **claims,
    }
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, SECRET, "HS256")


def entry(jwt_token: str | None = None, **overrides: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "timestamp": "2024-05-01T12:30:00Z",
        "headers": {"Hull-Access-Token": jwt_token or token()},
        "body": {"event": "export", "properties": {"rows": 3}, "event_id": "e1"},
        **overrides,
    }


def post_hull(api: FakeHull, batch: list[dict], **headers: str) -> requests.Response:
    sent = {
        "Hull-App-Id": CONNECTOR,
        "Hull-Organization": ORG,
        "Hull-Access-Token": SECRET,
        **headers,
    }
    body = {"batch": batch, "timestamp": "2024-05-01T12:30:01Z", "sentAt": "2024-05-01T12:30:01Z"}
    return requests.post(f"{api.url}/", json=body, headers={k: v for k, v in sent.items() if v})


def test_signed_hull_entry_is_stored_and_decoded(hull: FakeHull) -> None:
    traits = entry(type="traits", body={"plan": "pro", "seats": {"operation": "inc", "value": 1}})
    response = post_hull(hull, [entry(), traits])

    assert response.status_code == 204
    assert response.content == b""
    assert hull.violations == []
    first, second = hull.entries
    assert first["type"] == "track"
    assert first["body"]["event"] == "export"
    assert first["claims"]["io.hull.asUser"] == {"email": "ada@example.com", "external_id": "u1"}
    assert second["body"]["seats"] == {"operation": "inc", "value": 1}
    assert hull.tokens_seen == {token()}


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        ([entry(jwt.encode({"iss": CONNECTOR, "iat": 1}, "x" * 32, "HS256"))], "Signature"),
        ([entry(token(**{"io.hull.asUser": {"email": None}}))], "io.hull.asUser.email"),
        ([entry(token(**{"io.hull.asUser": {"external_id": ""}}))], "io.hull.asUser.external_id"),
        ([entry(token(exp=int(NOW) - 120))], "claim exp"),
        ([entry(token(iss="someone-else"))], "claim iss"),
        ([entry(token(**{"io.hull.subjectType": "account"}))], "io.hull.asAccount"),
        ([entry()] * 101, "batch: 101 entries"),
        ([entry(body={"properties": {}})], "body.event"),
        ([entry(type="alias", body={"anonymous_id": ""})], "is not {'anonymous_id'"),
        ([entry(type="traits", body={"x": {"value": 1}})], "body.x"),
        ([entry(type="traits", body={"x": "y" * 3000})], "body.x"),
        ([entry(timestamp="2024-05-01T12:30:00")], "timestamp"),
    ],
)
def test_bad_hull_requests_are_violations(hull: FakeHull, batch: list, expected: str) -> None:
    response = post_hull(hull, batch)

    assert response.status_code == 400
    assert hull.accepted == []
    assert any(expected in v for v in hull.violations), hull.violations


def test_expiry_follows_the_servers_clock(hull: FakeHull) -> None:
    fresh = token(exp=int(NOW) + 30)
    assert post_hull(hull, [entry(fresh)]).status_code == 204

    hull.now = lambda: NOW + 120  # past exp + 60 s leeway

    assert post_hull(hull, [entry(fresh)]).status_code == 400
    assert any("expired" in v for v in hull.violations)


def test_a_token_older_than_half_its_lifetime_is_a_violation(hull: FakeHull) -> None:
    """A 60 s token: at most 30 s old when read, plus a second for the request's transit."""
    fresh = token(iat=int(NOW) - 31, exp=int(NOW) + 29)
    assert post_hull(hull, [entry(fresh)]).status_code == 204

    stale = token(iat=int(NOW) - 32, exp=int(NOW) + 28)
    assert post_hull(hull, [entry(stale)]).status_code == 400
    assert any("32s old, over half its lifetime (30s)" in v for v in hull.violations)


def test_missing_access_token_header_is_a_violation(hull: FakeHull) -> None:
    response = post_hull(hull, [entry()], **{"Hull-Access-Token": ""})

    assert response.status_code == 400
    assert "header Hull-Access-Token: missing" in hull.violations
