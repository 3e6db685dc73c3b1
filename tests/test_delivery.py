"""`Delivery` without sockets: a scripted sender answers each attempt, outcomes are read
from the queue the reading thread would apply."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import pytest

from target_usage.errors import ApiError
from target_usage.outputs import Redactor
from target_usage.transport import (
    Answer,
    Delivered,
    Delivery,
    Failed,
    Origin,
    Outcome,
    Pacer,
    Part,
    Refused,
    Request,
    RetryPolicy,
)
from tests.test_transport import FakeClock

Script = Callable[[list[int]], Answer]


@dataclass
class NumbersApi:
    """Items are integers; a request's body is their JSON list; `part_size` items per part."""

    part_size: int = 10
    name = "Numbers"
    credentials_hint = "check numbers_key"
    endpoint_hint = "check numbers_url"

    def split(self, kind: str, items: Sequence[object]) -> Iterator[tuple[int, int]]:
        for start in range(0, len(items), self.part_size):
            yield start, min(start + self.part_size, len(items))

    def request_for(self, parts: Sequence[Part]) -> Request:
        items = [item for part in parts for item in part.items]
        return Request(self.name, "http://numbers.invalid/", {}, json.dumps(items).encode())

    def can_join(self, parts: Sequence[Part], candidate: Part) -> bool:
        return False


@dataclass
class ScriptedSender:
    """Answers each attempt with `script(items in the request)`; remembers every attempt."""

    script: Script
    sent: list[list[int]] = field(default_factory=list)
    closed: bool = False

    def attempt(self, request: Request) -> Answer:
        items = json.loads(request.body)
        self.sent.append(items)
        return self.script(items)

    def close(self) -> None:
        self.closed = True


def make_delivery(
    script: Script, *, max_retries: int = 3, pacer: Pacer | None = None
) -> tuple[Delivery, ScriptedSender]:
    sender = ScriptedSender(script)
    delivery = Delivery(
        api=NumbersApi(),
        sender=sender,
        policy=RetryPolicy(max_retries=max_retries, backoff_base_seconds=0.0),
        pacer=pacer or Pacer(None),
        redactor=Redactor(["s3cret"]),
        workers=1,
        max_pending_parts=100,
    )
    return delivery, sender


def origins(numbers: Sequence[int]) -> list[Origin]:
    return [Origin("rows", "features", n, {"n": n}) for n in numbers]


def submit(delivery: Delivery, numbers: Sequence[int]) -> None:
    delivery.submit("features", list(numbers), origins(numbers))


def drain(outcomes: queue.SimpleQueue[Outcome]) -> list[Outcome]:
    found = []
    while not outcomes.empty():
        found.append(outcomes.get_nowait())
    return found


def delivered_positions(outcomes: list[Outcome]) -> list[int]:
    return sorted(
        o.position for d in outcomes if isinstance(d, Delivered) for g in d.groups for o in g
    )


def refusing(*bad: int) -> Script:
    """A server refusing, for its content, any request holding one of `bad`."""
    return lambda items: Answer(400, "bad value s3cret") if set(items) & set(bad) else Answer(200)


def test_transient_failures_are_retried_and_counted() -> None:
    answers = iter([Answer(503), Answer(None, cause="network error"), Answer(200)])
    delivery, sender = make_delivery(lambda items: next(answers))
    submit(delivery, range(5))
    delivery.flush()
    [outcome] = drain(delivery.outcomes)
    assert isinstance(outcome, Delivered)
    assert outcome.retries == 2
    assert len(sender.sent) == 3


def test_a_429_with_retry_after_holds_the_pacer_before_the_retry() -> None:
    clock = FakeClock()
    answers = iter([Answer(429, retry_after="30"), Answer(200)])
    delivery, sender = make_delivery(
        lambda items: next(answers), pacer=Pacer(None, clock=clock, sleep=clock.sleep)
    )
    submit(delivery, range(3))
    delivery.flush()
    assert clock() >= 30.0
    assert delivery.pacer.waited_seconds == pytest.approx(30.0)
    assert len(sender.sent) == 2


def test_spent_retries_fail_the_request_and_surface_on_flush() -> None:
    delivery, sender = make_delivery(lambda items: Answer(503, "busy"), max_retries=2)
    submit(delivery, range(4))
    with pytest.raises(ApiError, match=r"failed after 3 attempts: HTTP 503") as raised:
        delivery.flush()
    assert "stream 'rows' records #0-#3 (4 records)" in str(raised.value)
    assert len(sender.sent) == 3
    [outcome] = drain(delivery.outcomes)
    assert isinstance(outcome, Failed)
    assert [o.position for o in outcome.undelivered] == [0, 1, 2, 3]


def test_a_past_failure_surfaces_on_the_next_submit() -> None:
    delivery, _ = make_delivery(lambda items: Answer(500), max_retries=0)
    submit(delivery, range(2))
    with pytest.raises(ApiError):
        delivery.flush()
    with pytest.raises(ApiError):
        submit(delivery, range(2, 4))


def test_one_refused_item_is_isolated_and_the_rest_delivered() -> None:
    delivery, sender = make_delivery(refusing(7))
    submit(delivery, range(10))
    delivery.flush()
    outcomes = drain(delivery.outcomes)
    [refused] = [o for o in outcomes if isinstance(o, Refused)]
    assert refused.origin.position == 7
    assert "HTTP 400" in refused.reason
    assert "s3cret" not in refused.reason
    assert delivered_positions(outcomes) == [n for n in range(10) if n != 7]
    assert len(sender.sent) <= 1 + 4 + 1  # the request, a halving per level, the set-aside


def test_several_refused_items_are_each_isolated() -> None:
    delivery, _ = make_delivery(refusing(*range(10, 20), 20, 25, 29))
    submit(delivery, range(10))  # accepted: the API takes this run's requests
    submit(delivery, range(10, 30))
    delivery.flush()
    outcomes = drain(delivery.outcomes)
    refused = sorted(o.origin.position for o in outcomes if isinstance(o, Refused))
    assert refused == [*range(10, 20), 20, 25, 29]
    assert delivered_positions(outcomes) == [*range(10), 21, 22, 23, 24, 26, 27, 28]


def test_isolating_a_request_of_only_refused_items_costs_about_two_requests_each() -> None:
    delivery, sender = make_delivery(refusing(*range(10, 1010)))
    submit(delivery, range(10))
    delivery.api.part_size = 1000  # the next request carries all 1,000
    submit(delivery, range(10, 1010))
    delivery.flush()
    refused = [o for o in drain(delivery.outcomes) if isinstance(o, Refused)]
    assert len(refused) == 1000
    assert len(sender.sent) - 2 <= 3 * 1000


def test_a_refusal_before_any_request_was_accepted_is_the_requests() -> None:
    delivery, sender = make_delivery(refusing(*range(100)))
    submit(delivery, range(10))
    with pytest.raises(ApiError, match=r"HTTP 400 \(every request of this run was refused") as e:
        delivery.flush()
    assert "check numbers_key" in str(e.value)
    assert "bad value ***" in str(e.value)
    assert not [o for o in drain(delivery.outcomes) if isinstance(o, Refused)]
    assert len(sender.sent) <= 1 + 4


@pytest.mark.parametrize(("status", "hint"), [(401, "numbers_key"), (404, "numbers_url")])
def test_a_refusal_of_the_request_is_not_split_and_names_the_setting(
    status: int, hint: str
) -> None:
    delivery, sender = make_delivery(lambda items: Answer(status, "no"))
    submit(delivery, range(10))
    with pytest.raises(ApiError, match=f"HTTP {status}.*check {hint}"):
        delivery.flush()
    assert len(sender.sent) == 1
    assert not [o for o in drain(delivery.outcomes) if isinstance(o, Refused)]


def test_close_lets_the_started_request_finish_and_drops_unstarted_parts() -> None:
    started, release = threading.Event(), threading.Event()

    def slow(items: list[int]) -> Answer:
        started.set()
        release.wait(5)
        return Answer(200)

    delivery, sender = make_delivery(slow)
    submit(delivery, range(30))  # three parts, one worker
    assert started.wait(5)
    closing = threading.Thread(target=delivery.close)
    closing.start()
    deadline = time.monotonic() + 5
    while not delivery._closed and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    closing.join(5)
    assert sender.sent == [list(range(10))]
    assert sender.closed
    assert delivered_positions(drain(delivery.outcomes)) == list(range(10))
