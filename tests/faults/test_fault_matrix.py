"""The fault matrix: one test per row, each running the installed CLI against a faulty API.

Every test asserts what reached the server against what was sent in and records its row
of docs/reliability.md (see `Bench.outcome`). Backoff is not configurable (0.5 s base), so
storms are kept to three failures.
"""

from __future__ import annotations

import email.utils
import json
import math
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.fakes import FakeSkalin, Fault, Received
from tests.faults.conftest import Bench
from tests.faults.harness import (
    accepted_items,
    dead_letters,
    feature,
    key,
    lines,
    run_cli_interrupted,
    run_cli_paused,
    state,
    track,
    traits,
)
from tests.harness import CLIENT_ID, Run, record_message, schema_message

REFUSAL = b'{"error": "unknown contact"}'
# Record #50 of 100: the position whose isolation costs the most (7 tests + 1 final send).
POISON_POSITION = 50


def features(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [feature(i, **extra) for i in range(1, n + 1)]


def tracks(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [track(i, **extra) for i in range(1, n + 1)]


def retry_gap(requests: list[Received]) -> float:
    """Seconds between the first request and its resend (the same bytes)."""
    first = requests[0]
    return next(r.at for r in requests[1:] if r.body == first.body) - first.at


# Transient faults: retried until delivered


def test_503_storm_on_skalin_is_retried_until_delivered(bench: Bench) -> None:
    messages = lines("features", features(200))
    bench.start(messages)
    bench.skalin.faults += [Fault.status(503, b"overloaded")] * 3
    run = bench.run(bench.config(), messages)
    assert run.exit_code == 0, run.stderr
    assert len(bench.skalin.requests) == 2 + 3
    assert run.states == [state(200)["value"]]
    assert "(3 retries)" in run.stderr
    bench.outcome("skalin-503-storm", exit_code=run.exit_code)


def test_503_storm_on_hull_is_retried_until_delivered(bench: Bench) -> None:
    messages = lines("analytics.track", tracks(200))
    bench.start(messages)
    bench.hull.faults += [Fault.status(503, b"overloaded")] * 3
    run = bench.run(bench.config(), messages)
    assert run.exit_code == 0, run.stderr
    assert len(bench.hull.requests) == 2 + 3
    assert run.states == [state(200)["value"]]
    bench.outcome("hull-503-storm", exit_code=run.exit_code)


def test_429_retry_after_seconds_holds_back_every_request(bench: Bench) -> None:
    """Paced at 2 requests/s, three requests book slots 0.5 s apart before the first one's
    answer (a 429 asking for 1 s, 0.2 s later) arrives: none may start before that second
    is over, not even those already waiting for their slot."""
    messages = lines("features", features(300))
    bench.start(messages)
    bench.skalin.latency = 0.2
    bench.skalin.faults.append(Fault.status(429, b"slow down", retry_after="1"))
    run = bench.run(bench.config(skalin_requests_per_second=2), messages)
    assert run.exit_code == 0, run.stderr
    assert len(bench.skalin.requests) == 4
    answered = bench.skalin.requests[0].at + 0.2
    starts = [r.at - answered for r in bench.skalin.requests[1:]]
    assert min(starts) >= 0.95, f"requests started {starts} s after the 429"
    bench.outcome("skalin-429-seconds", exit_code=run.exit_code)


def test_429_retry_after_as_http_date_is_honoured(bench: Bench) -> None:
    due: list[float] = []

    def once(request: Received) -> Fault | None:
        if due:
            return None
        # An HTTP date has whole seconds: the next whole second plus one.
        wall, mono = time.time(), time.monotonic()
        when = math.ceil(wall) + 1
        due.append(mono + (when - wall))
        return Fault.status(
            429, b"slow down", retry_after=email.utils.formatdate(when, usegmt=True)
        )

    messages = lines("features", features(300))
    bench.start(messages)
    bench.skalin.fault_when = once
    run = bench.run(bench.config(skalin_requests_per_second=2), messages)
    assert run.exit_code == 0, run.stderr
    assert len(bench.skalin.requests) == 4
    first = bench.skalin.requests[0]
    retry = next(r for r in bench.skalin.requests[1:] if r.body == first.body)
    assert retry.at >= due[0] - 0.05, "retried before the date Retry-After named"
    bench.outcome("skalin-429-date", exit_code=run.exit_code)


def test_a_retry_after_longer_than_the_cap_waits_only_the_cap(bench: Bench) -> None:
    messages = lines("features", features(200))
    bench.start(messages)
    bench.skalin.faults.append(Fault.status(429, b"come back in an hour", retry_after="3600"))
    run = bench.run(bench.config(retry_after_cap=1), messages)
    assert run.exit_code == 0, run.stderr
    assert 0.95 <= retry_gap(bench.skalin.requests) < 5
    assert run.seconds < 15
    bench.outcome("skalin-retry-after-cap", exit_code=run.exit_code)


def test_an_answer_slower_than_request_timeout_is_resent_with_identical_ids(
    bench: Bench,
) -> None:
    messages = lines("features", features(200))
    bench.start(messages)
    bench.skalin.faults.append(Fault.delay(1.5))
    run = bench.run(bench.config(request_timeout=0.5), messages)
    assert run.exit_code == 0, run.stderr
    assert len(bench.skalin.requests) == 3
    # The slow request was stored after the client gave up on it: 100 items twice.
    assert len(bench.skalin.features) == 300
    measured = bench.outcome("skalin-slow-answer", exit_code=run.exit_code)
    assert measured.duplicates == 100


def test_retries_exhausted_stop_the_run_without_state(bench: Bench) -> None:
    messages = lines("features", features(200))
    bench.start(messages)
    bench.skalin.fault_when = lambda request: Fault.status(503, b"still down")
    run = bench.run(bench.config(max_retries=2), messages)
    assert run.exit_code == 1
    assert run.states == []
    assert "failed after 3 attempts: HTTP 503" in run.stderr
    assert "still down" in run.stderr
    rerun = bench.rerun(bench.config(), messages, run)
    bench.outcome("skalin-503-exhausted", exit_code=run.exit_code, rerun_exit_code=rerun.exit_code)


def test_a_connection_dropped_before_storing_is_resent(bench: Bench) -> None:
    messages = lines("features", features(200))
    bench.start(messages)
    bench.skalin.faults.append(Fault.drop_before())
    run = bench.run(bench.config(), messages)
    assert run.exit_code == 0, run.stderr
    assert len(bench.skalin.requests) == 3
    bench.outcome("skalin-drop-before", exit_code=run.exit_code)


@pytest.mark.parametrize(
    ("api", "stream", "rows"),
    [("skalin", "features", features), ("hull", "analytics.track", tracks)],
)
def test_a_connection_dropped_after_storing_is_resent_with_identical_ids(
    bench: Bench, api: str, stream: str, rows: Any
) -> None:
    messages = lines(stream, rows(200))
    bench.start(messages)
    server = getattr(bench, api)
    server.faults.append(Fault.drop_after())
    run = bench.run(bench.config(), messages)
    assert run.exit_code == 0, run.stderr
    # Items, not whole bodies: a Hull request is rebuilt for every attempt (its sentAt, and
    # tokens older than half their ttl, are renewed), with the same entries and ids.
    items = [json.dumps(r.json.get("batch", r.json), sort_keys=True) for r in server.accepted]
    assert len(items) == 3
    assert len(set(items)) == 2, "the resend must carry the stored items, unchanged"
    measured = bench.outcome(f"{api}-drop-after", exit_code=run.exit_code)
    assert measured.duplicates == 100


# Content refusals: the refused record is isolated, the others delivered


def skalin_poison(request: Received) -> Fault | None:
    if any(f.get("name") == "poison" for f in (request.json or {}).get("features", [])):
        return Fault.status(400, REFUSAL)
    return None


def hull_poison(request: Received) -> Fault | None:
    if any(e["body"].get("event") == "poison" for e in (request.json or {}).get("batch", [])):
        return Fault.status(400, REFUSAL)
    return None


POISON = {
    "skalin": ("features", features, {"name": "poison"}, skalin_poison, "Skalin"),
    "hull": ("analytics.track", tracks, {"event": "poison"}, hull_poison, "Hull"),
}


def poisoned(api: str) -> list[Any]:
    stream, rows, poison, _, _ = POISON[api]
    batch = rows(100)
    batch[POISON_POSITION - 1] = {**batch[POISON_POSITION - 1], **poison}
    return lines(stream, batch)


def first_try_id(bench: Bench, api: str) -> str:
    first = (bench.skalin if api == "skalin" else bench.hull).requests[0].json
    if api == "skalin":
        return next(f["eventId"] for f in first["features"] if f["name"] == "poison")
    return next(e["body"]["event_id"] for e in first["batch"] if e["body"]["event"] == "poison")


@pytest.mark.parametrize("api", ["skalin", "hull"])
def test_one_refused_record_in_100_is_isolated_and_dead_lettered(bench: Bench, api: str) -> None:
    _, _, _, refuse, api_name = POISON[api]
    server = bench.skalin if api == "skalin" else bench.hull
    messages = poisoned(api)
    bench.start(messages)
    server.fault_when = refuse
    config = bench.config(invalid_records="dead_letter")
    run = bench.run(config, messages)
    assert run.exit_code == 0, run.stderr
    extra = len(server.requests) - 1
    assert extra <= 8
    assert run.states == [state(100)["value"]]
    letters = dead_letters(bench.dead_letter_path)
    assert [line["type"] for line in letters] == ["SCHEMA", "RECORD"]
    dead = letters[1]
    assert dead["position"] == POISON_POSITION
    assert dead["record"]["email"] == key(POISON_POSITION)
    assert dead["reason"].startswith(f"{api_name} refused it alone: HTTP 400, body ")
    assert "unknown contact" in dead["reason"]
    assert dead["record"]["event_id"] == first_try_id(bench, api)
    measured = bench.outcome(
        f"{api}-poison-dead-letter", exit_code=run.exit_code, extra_requests=extra
    )
    assert (measured.delivered, measured.dead_lettered) == (99, 1)

    # The dead-letter file pipes straight back in; the record keeps its first id.
    bench.servers.heal()
    marks = bench.marks()
    replay = bench.run(
        {**config, "dead_letter_path": str(bench.workdir / "again.jsonl")},
        [json.dumps(line) for line in letters],
    )
    assert replay.exit_code == 0, replay.stderr
    again = server.accepted[marks[0] if api == "skalin" else marks[1] :]
    assert len(again) == 1
    if api == "skalin":
        assert again[0].json["features"][0]["eventId"] == dead["record"]["event_id"]
    else:
        assert again[0].json["batch"][0]["body"]["event_id"] == dead["record"]["event_id"]


@pytest.mark.parametrize("api", ["skalin", "hull"])
def test_one_refused_record_fails_the_run_by_default(bench: Bench, api: str) -> None:
    stream, _, _, refuse, api_name = POISON[api]
    server = bench.skalin if api == "skalin" else bench.hull
    messages = poisoned(api)
    bench.start(messages)
    server.fault_when = refuse
    run = bench.run(bench.config(), messages)
    assert run.exit_code == 1
    assert run.states == []
    assert (
        f"Stream '{stream}', record #{POISON_POSITION}: {api_name} refused it alone: "
        "HTTP 400, body " in run.stderr
    )
    extra = len(server.requests) - 1
    assert extra <= 8
    rerun = bench.rerun(bench.config(), messages, run)
    bench.outcome(
        f"{api}-poison-fail",
        exit_code=run.exit_code,
        rerun_exit_code=rerun.exit_code,
        extra_requests=extra,
    )


@pytest.mark.parametrize(
    ("api", "policy"),
    [("hull", "fail"), ("hull", "skip"), ("hull", "dead_letter"), ("skalin", "skip")],
)
def test_a_refusal_before_any_request_was_accepted_ends_the_run_whatever_invalid_records(
    bench: Bench, api: str, policy: str
) -> None:
    """A 400 to every request (a wrong client id or organization) blames the request, not
    the records: nothing is skipped or dead-lettered, the run ends naming the setting."""
    stream, rows, _, _, api_name = POISON[api]
    server = bench.skalin if api == "skalin" else bench.hull
    messages = lines(stream, rows(100))
    bench.start(messages)
    server.fault_when = lambda request: Fault.status(400, b'{"error": "unknown organization"}')
    config = bench.config(invalid_records=policy)
    run = bench.run(config, messages)
    assert run.exit_code == 1
    assert run.states == []
    assert f"{api_name} request failed" in run.stderr
    assert "HTTP 400" in run.stderr
    assert "unknown organization" in run.stderr
    setting = "skalin_client_id" if api == "skalin" else "hull_organization"
    assert setting in run.stderr
    assert "Traceback" not in run.stderr
    assert dead_letters(bench.dead_letter_path) == []
    extra = len(server.requests) - 1
    assert extra <= 8
    rerun = bench.rerun(bench.config(invalid_records=policy), messages, run)
    measured = bench.outcome(
        f"{api}-400-everything-{policy}",
        exit_code=run.exit_code,
        rerun_exit_code=rerun.exit_code,
        extra_requests=extra,
    )
    assert (measured.dead_lettered, measured.skipped, measured.lost) == (0, 0, 0)


def test_isolating_1000_refused_entries_of_one_request_is_iterative_and_bounded(
    bench: Bench,
) -> None:
    """hull_batch_size 1000: a request of one good entry and 999 the server refuses one by
    one (then one more request of a refused entry) is isolated without recursion, in
    about two requests per entry. (The strict fake refuses only by content here: no
    request it answers holds more than 100 entries of which none is refused.)"""
    rows = [track(1), *(track(n, event="poison") for n in range(2, 1002))]
    messages = lines("analytics.track", rows)
    bench.start(messages)
    bench.hull.fault_when = hull_poison
    config = bench.config(invalid_records="skip", hull_batch_size=1000, max_concurrent_requests=1)
    run = bench.run(config, messages)
    assert run.exit_code == 0, run.stderr[-2000:]
    assert "RecursionError" not in run.stderr
    assert run.states == [state(1001)["value"]]
    extra = len(bench.hull.requests) - 2
    assert extra <= 3 * 1000
    measured = bench.outcome("hull-isolate-1000", exit_code=run.exit_code, extra_requests=extra)
    assert (measured.delivered, measured.skipped) == (1, 1000)


# Final errors: the run stops, names the setting, writes no STATE


def test_401_stops_the_run_naming_the_client_id(bench: Bench) -> None:
    messages = lines("features", features(200))
    bench.start(messages)
    bench.skalin.fault_when = lambda request: Fault.status(401, b'{"error": "unknown client"}')
    run = bench.run(bench.config(), messages)
    assert run.exit_code == 1
    assert run.states == []
    assert "HTTP 401" in run.stderr
    assert "check skalin_client_id" in run.stderr
    # Stopped at once: one attempt per request, no retry.
    assert len(bench.skalin.requests) <= 2
    rerun = bench.rerun(bench.config(), messages, run)
    bench.outcome("skalin-401", exit_code=run.exit_code, rerun_exit_code=rerun.exit_code)


def test_a_2xx_with_an_unexpected_body_counts_as_delivered(bench: Bench) -> None:
    messages = lines("features", features(200))
    bench.start(messages)
    bench.skalin.fault_when = lambda request: Fault.ok_body(202, b"<html>maintenance</html>")
    run = bench.run(bench.config(), messages)
    assert run.exit_code == 0, run.stderr
    assert len(bench.skalin.requests) == 2
    assert run.states == [state(200)["value"]]
    bench.outcome("skalin-odd-2xx", exit_code=run.exit_code)


def test_a_redirect_to_another_host_is_never_followed(bench: Bench) -> None:
    with FakeSkalin(client_id=CLIENT_ID) as elsewhere:
        port = elsewhere.url.rsplit(":", 1)[1]
        target = f"http://localhost:{port}/hit/bulk?rec=1&client_id={CLIENT_ID}"
        messages = lines("features", features(200))
        bench.start(messages)
        bench.skalin.fault_when = lambda request: Fault.redirect(target, 307)
        run = bench.run(bench.config(), messages)
        assert run.exit_code == 1
        assert run.states == []
        assert "HTTP 307" in run.stderr
        assert "not followed" in run.stderr
        assert "check skalin_url" in run.stderr
        assert elsewhere.requests == []
        rerun = bench.rerun(bench.config(), messages, run)
        assert elsewhere.requests == []
    bench.outcome("skalin-redirect", exit_code=run.exit_code, rerun_exit_code=rerun.exit_code)


# Bad input


def test_a_malformed_json_line_stops_the_run_naming_its_line(bench: Bench) -> None:
    good = lines("features", features(100), state_every=50)
    # Line 53: SCHEMA, 50 records and a STATE come first; record #51 is cut short.
    assert good[52] == record_message("features", feature(51))
    broken = [*good[:52], json.dumps(good[52])[:40], *good[53:]]
    bench.start(good)
    run = bench.run(bench.config(), broken)
    assert run.exit_code == 1
    assert "Input line 53 is not a JSON Singer message" in run.stderr
    assert run.states == []
    # The user fixes the tap's output and reruns from the last STATE (there is none).
    rerun = bench.rerun(bench.config(), good, run)
    bench.outcome("input-malformed-json", exit_code=run.exit_code, rerun_exit_code=rerun.exit_code)


def test_a_record_before_its_schema_stops_the_run(bench: Bench) -> None:
    good = lines("features", features(100))
    broken = [good[1], good[0], *good[2:]]
    bench.start(good)
    run = bench.run(bench.config(), broken)
    assert run.exit_code == 1
    assert "encountered before a corresponding schema" in run.stderr
    assert run.states == []
    assert bench.skalin.requests == []
    rerun = bench.rerun(bench.config(), good, run)
    bench.outcome(
        "input-record-before-schema", exit_code=run.exit_code, rerun_exit_code=rerun.exit_code
    )


def test_a_record_failing_its_schema_is_dead_lettered_and_the_rest_delivered(
    bench: Bench,
) -> None:
    properties = {
        "email": {"type": "string"},
        "customer_id": {"type": "string"},
        "name": {"type": "string"},
        "ts": {"type": "string"},
        "seats": {"type": "integer"},
    }
    rows = [feature(n, seats=n) for n in range(1, 101)]
    rows[49]["seats"] = "fifty"
    messages = [
        schema_message("features", {"type": "object", "properties": properties}),
        *lines("features", rows)[1:],
    ]
    bench.start(messages)
    run = bench.run(bench.config(invalid_records="dead_letter"), messages)
    assert run.exit_code == 0, run.stderr
    letters = dead_letters(bench.dead_letter_path)
    assert letters[0]["schema"]["properties"]["seats"] == {"type": "integer"}
    assert letters[1]["position"] == 50
    assert "does not match the stream's SCHEMA" in letters[1]["reason"]
    assert run.states == [state(100)["value"]]
    bench.outcome("input-schema-mismatch", exit_code=run.exit_code)


def test_an_invalid_record_is_skipped_when_asked(bench: Bench) -> None:
    rows = features(100)
    del rows[49]["name"]
    messages = lines("features", rows)
    bench.start(messages)
    run = bench.run(bench.config(invalid_records="skip"), messages)
    assert run.exit_code == 0, run.stderr
    assert "record #50 skipped" in run.stderr
    assert not bench.dead_letter_path.exists()
    measured = bench.outcome("input-invalid-skip", exit_code=run.exit_code)
    assert measured.skipped == 1


TEN_MB = 10 * 1024 * 1024


def test_a_10_mb_unknown_column_is_ignored_on_skalin(bench: Bench) -> None:
    rows = features(3)
    rows[1]["blob"] = "x" * TEN_MB
    messages = lines("features", rows)
    bench.start(messages)
    run = bench.run(bench.config(), messages)
    assert run.exit_code == 0, run.stderr
    assert max(len(r.body) for r in bench.skalin.requests) < 10_000
    bench.outcome("skalin-10mb-column", exit_code=run.exit_code)


def test_a_10_mb_trait_value_is_dead_lettered_on_hull(bench: Bench) -> None:
    rows = [traits(n) for n in range(1, 4)]
    rows[1]["notes"] = "x" * TEN_MB
    messages = lines("traits", rows)
    bench.start(messages)
    run = bench.run(bench.config(invalid_records="dead_letter"), messages)
    assert run.exit_code == 0, run.stderr
    letters = dead_letters(bench.dead_letter_path)
    assert letters[1]["position"] == 2
    assert "trait 'notes' is" in letters[1]["reason"]
    assert len(letters[1]["record"]["notes"]) == TEN_MB, "the dead letter must keep the value"
    assert max(len(r.body) for r in bench.hull.requests) < 10_000
    bench.outcome("hull-10mb-trait", exit_code=run.exit_code)


# Values no rule can represent: invalid records naming the column, never a crash

OUT_OF_RANGE = "9999-12-31T23:59:59-01:00"  # year 10000 in UTC
BEFORE_YEAR_1 = "0001-01-01T00:30:00+01:00"  # year 0 in UTC


def no_ts(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "ts"}


def odd_timestamp_input() -> list[Any]:
    """Out-of-range timestamps in every timestamp column, among records that are fine
    (one with a year below 1000, which must keep its padding)."""
    return [
        schema_message("features"),
        record_message("features", feature(1, ts=BEFORE_YEAR_1)),
        record_message("features", feature(2, ts=OUT_OF_RANGE)),
        record_message("features", {**no_ts(feature(3)), "timestamp": 1e20}),
        record_message("features", feature(4, ts="0999-01-01T00:00:00")),
        schema_message("track"),
        record_message("track", track(5, created_at=OUT_OF_RANGE)),
        record_message("track", track(6)),
        schema_message("traits"),
        record_message("traits", traits(7, timestamp=BEFORE_YEAR_1)),
        record_message("traits", traits(8)),
        state(8),
    ]


ODD_TIMESTAMPS = [("features", 1, "ts"), ("features", 2, "ts"), ("features", 3, "timestamp")]
ODD_TIMESTAMPS += [("track", 1, "created_at"), ("traits", 1, "timestamp")]


@pytest.mark.parametrize("policy", ["dead_letter", "skip"])
def test_out_of_range_timestamps_are_invalid_records_naming_the_column_never_a_crash(
    bench: Bench, policy: str
) -> None:
    messages = odd_timestamp_input()
    bench.start(messages)
    run = bench.run(bench.config(invalid_records=policy), messages)
    assert run.exit_code == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert run.states == [state(8)["value"]]
    assert [f["ts"] for f in bench.skalin.features] == ["0999-01-01T00:00:00"]
    assert sorted(e["type"] for e in bench.hull.entries) == ["track", "traits"]
    warnings = [line for line in run.stderr.splitlines() if "outside the years 1-9999" in line]
    named = [(w.split("'")[1], int(w.split("#")[1].split()[0]), w.split("'")[3]) for w in warnings]
    assert sorted(named) == sorted(ODD_TIMESTAMPS)
    letters = [d for d in dead_letters(bench.dead_letter_path) if d["type"] == "RECORD"]
    if policy == "dead_letter":
        assert sorted((d["stream"], d["position"]) for d in letters) == sorted(
            (stream, position) for stream, position, _ in ODD_TIMESTAMPS
        )
    else:
        assert letters == []
    measured = bench.outcome(f"odd-timestamps-{policy}", exit_code=run.exit_code)
    assert (measured.delivered, measured.dead_lettered + measured.skipped) == (3, 5)


def odd_identifier_input() -> list[Any]:
    """Booleans, objects, arrays and blank strings where an identifier is expected, each
    record told apart by its (possibly odd) email; a blank `user_id` beside a good email
    is no identifier at all and the record is delivered."""
    return [
        schema_message("identities"),
        record_message("identities", {"email": key(1), "user_id": True}),
        record_message("identities", {"email": {"a": 1}}),
        record_message("identities", {"email": key(3), "customer_id": [1]}),
        record_message("identities", {"email": "  "}),
        record_message("identities", {"email": key(5), "user_id": ""}),
        schema_message("traits"),
        record_message("traits", {"email": False, "plan": "p"}),
        record_message("traits", {"email": key(7), "account_domain": ["a.com"], "plan": "p"}),
        record_message("traits", traits(8)),
        schema_message("unalias"),
        record_message("unalias", {"email": key(9), "anonymous_id": {"id": 1}}),
        state(9),
    ]


ODD_IDENTIFIERS = [
    ("identities", 1, "user_id"),
    ("identities", 2, "email"),
    ("identities", 3, "customer_id"),
    ("identities", 4, "email"),
    ("traits", 1, "email"),
    ("traits", 2, "account_domain"),
    ("unalias", 1, "anonymous_id"),
]


@pytest.mark.parametrize("policy", ["dead_letter", "skip"])
def test_booleans_objects_arrays_and_blank_strings_as_identifiers_are_invalid_records(
    bench: Bench, policy: str
) -> None:
    messages = odd_identifier_input()
    bench.start(messages)
    run = bench.run(bench.config(invalid_records=policy), messages)
    assert run.exit_code == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert run.states == [state(9)["value"]]
    assert [i["identity"] for i in bench.skalin.identities] == [{"email": key(5)}]
    assert [e["type"] for e in bench.hull.entries] == ["traits"]
    warnings = [line for line in run.stderr.splitlines() if "cannot identify anyone" in line]
    named = [(w.split("'")[1], int(w.split("#")[1].split()[0]), w.split("'")[3]) for w in warnings]
    assert sorted(named) == sorted(ODD_IDENTIFIERS)
    letters = [d for d in dead_letters(bench.dead_letter_path) if d["type"] == "RECORD"]
    if policy == "dead_letter":
        assert sorted((d["stream"], d["position"]) for d in letters) == sorted(
            (stream, position) for stream, position, _ in ODD_IDENTIFIERS
        )
    else:
        assert letters == []
    measured = bench.outcome(f"odd-identifiers-{policy}", exit_code=run.exit_code)
    assert (measured.delivered, measured.dead_lettered + measured.skipped) == (2, 7)


# Tokens are valid when sent

TOKEN_TTL_SECONDS = 60
INPUT_PAUSE_SECONDS = 35  # longer than half the ttl: a token signed when read would be stale


def test_an_entry_read_before_a_long_pause_in_the_input_is_sent_with_a_fresh_token(
    bench: Bench,
) -> None:
    """One track record, a pause longer than half of `hull_token_ttl` while the entry waits
    in its batch, then one more: the strict fake refuses any token older than half its
    lifetime, so the first entry must be signed again before it is sent."""
    before = [schema_message("track"), record_message("track", track(1))]
    after = [record_message("track", track(2)), state(2)]
    bench.start([*before, *after])
    started = time.time()
    run = bench.finish(
        run_cli_paused(
            bench.config(hull_token_ttl=TOKEN_TTL_SECONDS),
            before,
            after,
            bench.workdir,
            pause=INPUT_PAUSE_SECONDS,
        )
    )
    assert run.exit_code == 0, run.stderr
    assert run.states == [state(2)["value"]]
    claims = {e["claims"]["io.hull.asUser"]["email"]: e["claims"] for e in bench.hull.entries}
    assert set(claims) == {key(1), key(2)}
    first = claims[key(1)]
    assert first["iat"] >= started + INPUT_PAUSE_SECONDS - 1
    assert first["exp"] - first["iat"] == TOKEN_TTL_SECONDS
    bench.outcome("hull-token-expiry-pause", exit_code=run.exit_code)


# Interruptions: SIGTERM, SIGINT, kill -9, then a rerun from the last STATE


STREAMED_RECORDS = 1000
STATE_EVERY = 200


def streamed() -> list[Any]:
    return lines("features", features(STREAMED_RECORDS), state_every=STATE_EVERY)


def accepted_at_least(bench: Bench, n: int) -> Any:
    return lambda: len(bench.skalin.accepted) >= n


@pytest.mark.parametrize(("signame", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_mid_run_delivers_what_was_read_and_states_exactly_that(
    bench: Bench, signame: str, code: int
) -> None:
    messages = streamed()
    bench.start(messages)
    bench.skalin.latency = 0.3
    config = bench.config(batch_size_rows=100)
    run = bench.finish(
        run_cli_interrupted(
            config,
            messages,
            bench.workdir,
            signum=getattr(signal, signame),
            when=accepted_at_least(bench, 3),
        )
    )
    assert run.exit_code == code, run.stderr
    assert f"Received {signame}:" in run.stderr
    assert len(run.states) == 1, run.stdout
    assert run.states[0]["bookmarks"]["faults"]["records"] >= STATE_EVERY
    assert_state_covers_only_delivered(bench, run)
    rerun = bench.rerun(config, messages, run)
    bench.outcome(
        f"skalin-{signame.lower()}", exit_code=run.exit_code, rerun_exit_code=rerun.exit_code
    )


def reader_blocked_again(bench: Bench) -> Callable[[], bool]:
    """True 0.2 s after the first request was stored: its answer freed one slot of the
    outbox, the reader filled it within milliseconds and waits again (the next answer is
    0.5 s away), so a signal now lands while the reader waits in `Delivery.submit`."""
    first: list[float] = []

    def ready() -> bool:
        if not first and bench.skalin.accepted:
            first.append(time.monotonic())
        return bool(first) and time.monotonic() - first[0] >= 0.2

    return ready


def assert_state_covers_only_delivered(bench: Bench, run: Run, *, at_most: bool = False) -> None:
    """One STATE, covering only delivered records (`at_most`: or no STATE at all)."""
    if at_most and not run.states:
        return
    assert len(run.states) == 1, run.stdout
    covered = run.states[0]["bookmarks"]["faults"]["records"]
    delivered = {who for who, _ in accepted_items(bench.skalin)}
    behind = [n for n in range(1, covered + 1) if key(n) not in delivered]
    assert behind == [], (
        f"STATE covers records 1-{covered} but {len(behind)} of them were never sent "
        f"(#{behind[0]}-#{behind[-1]})"
    )


def test_sigterm_while_the_outbox_is_full_states_only_what_was_delivered(bench: Bench) -> None:
    """The API is the bottleneck (1 request in flight, 0.5 s each), the whole input is
    there at once, so the reader waits on backpressure in the middle of draining a full
    batch; the tap's STATE every 50 records puts a STATE inside each batch of 100. The
    signal must not abandon the interrupted batch while writing the STATE read before it.
    """
    messages = lines("features", features(STREAMED_RECORDS), state_every=50)
    bench.start(messages)
    bench.skalin.latency = 0.5
    config = bench.config(batch_size_rows=100, max_concurrent_requests=1)
    run = bench.finish(
        run_cli_interrupted(
            config,
            messages,
            bench.workdir,
            signum=signal.SIGTERM,
            when=reader_blocked_again(bench),
            chunk=len(messages),
            pause=0,
        )
    )
    assert run.exit_code == 143, run.stderr
    assert_state_covers_only_delivered(bench, run)
    rerun = bench.rerun(config, messages, run)
    bench.outcome(
        "skalin-sigterm-backpressure", exit_code=run.exit_code, rerun_exit_code=rerun.exit_code
    )


def test_a_second_sigterm_stops_at_once_sending_nothing_more(bench: Bench) -> None:
    """The tap pauses after record 560 (STATE at 550 inside the pending batch); the first
    SIGTERM starts the final drain, which waits on the full outbox; a second SIGTERM (an
    impatient operator) arrives during that wait and stops the run within 2 s."""
    messages = lines("features", features(STREAMED_RECORDS), state_every=50)
    last_fed = messages.index(record_message("features", feature(560))) + 1
    bench.start(messages)
    bench.skalin.latency = 0.5
    config = bench.config(batch_size_rows=100, max_concurrent_requests=1)
    run = bench.finish(
        run_cli_interrupted(
            config,
            messages,
            bench.workdir,
            signum=signal.SIGTERM,
            when=reader_blocked_again(bench),
            chunk=last_fed,
            pause=0,
            stall_after=last_fed,
            again_after=0.2,
        )
    )
    assert run.exit_code == 143, run.stderr
    assert "Received SIGTERM again: stopping now" in run.stderr
    assert run.signalled_at is not None
    assert run.ended_at - run.signalled_at < 2.0, "the second signal did not stop at once"
    started_after = [r for r in bench.skalin.requests if r.at > run.signalled_at + 0.05]
    assert started_after == [], "requests were sent after the second signal"
    assert_state_covers_only_delivered(bench, run, at_most=True)
    rerun = bench.rerun(config, messages, run)
    bench.outcome("skalin-sigterm-twice", exit_code=run.exit_code, rerun_exit_code=rerun.exit_code)


def test_kill_9_mid_run_then_a_rerun_delivers_everything_with_identical_ids(
    bench: Bench,
) -> None:
    messages = streamed()
    bench.start(messages)
    bench.skalin.latency = 0.3
    config = bench.config(batch_size_rows=100)
    run = bench.finish(
        run_cli_interrupted(
            config,
            messages,
            bench.workdir,
            signum=signal.SIGKILL,
            when=accepted_at_least(bench, 3),
        )
    )
    assert run.exit_code == -signal.SIGKILL
    assert run.states == []
    rerun = bench.rerun(config, messages, run)
    bench.outcome("skalin-kill-9", exit_code=run.exit_code, rerun_exit_code=rerun.exit_code)
