"""The retry policy and the pacer, read without sockets (clock and sleep injected)."""

from __future__ import annotations

import email.utils
import threading

import pytest

from target_usage.transport import (
    Answer,
    Pacer,
    RetryPolicy,
    Verdict,
    parse_retry_after,
)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599, None])
def test_transient_statuses_and_network_errors_are_retried(status: int | None) -> None:
    assert RetryPolicy().decide(Answer(status), retries=0).verdict is Verdict.RETRY


@pytest.mark.parametrize("status", [408, 429, 503, None])
def test_retries_are_exhausted_after_max_retries(status: int | None) -> None:
    policy = RetryPolicy(max_retries=2)
    assert policy.decide(Answer(status), retries=1).verdict is Verdict.RETRY
    assert policy.decide(Answer(status), retries=2).verdict is Verdict.GAVE_UP


def test_a_429_with_retry_after_holds_every_worker_for_the_time_asked() -> None:
    decision = RetryPolicy().decide(Answer(429, retry_after="7"), retries=0)
    assert (decision.verdict, decision.delay) == (Verdict.HOLD, 7.0)
    assert RetryPolicy().decide(Answer(503, retry_after="7"), retries=0).verdict is Verdict.RETRY


@pytest.mark.parametrize("status", [400, 413, 422])
def test_final_client_statuses_refuse_the_content(status: int) -> None:
    assert RetryPolicy().decide(Answer(status), retries=0).verdict is Verdict.REFUSED_CONTENT


@pytest.mark.parametrize(
    ("status", "fault"),
    [
        (401, "credentials"),
        (403, "credentials"),
        (404, "endpoint"),
        (405, "endpoint"),
        (302, "endpoint"),
        (501, None),
        (505, None),
    ],
)
def test_final_statuses_about_the_request_are_not_retried_nor_split(
    status: int, fault: str | None
) -> None:
    policy = RetryPolicy()
    assert policy.decide(Answer(status), retries=0).verdict is Verdict.REFUSED_REQUEST
    assert policy.request_fault(status) == fault


def test_backoff_doubles_from_half_a_second_with_jitter_and_a_cap() -> None:
    policy = RetryPolicy()
    highest = [policy.delay(n, rng=lambda: 1.0) for n in range(1, 10)]
    lowest = [policy.delay(n, rng=lambda: 0.0) for n in range(1, 10)]
    assert highest[:4] == [0.5, 1.0, 2.0, 4.0]
    assert highest[-1] == 60.0
    assert lowest[:2] == [0.25, 0.5]


def test_retry_after_in_seconds_wins_over_backoff() -> None:
    assert RetryPolicy().delay(1, "7") == 7.0


def test_retry_after_as_http_date() -> None:
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 12, usegmt=True)
    assert RetryPolicy().delay(1, header, now=now) == pytest.approx(12.0)


def test_retry_after_in_the_past_means_now() -> None:
    header = email.utils.formatdate(1_000.0, usegmt=True)
    assert parse_retry_after(header, now=2_000.0) == 0.0


def test_retry_after_is_capped() -> None:
    assert RetryPolicy(retry_after_cap_seconds=300).delay(1, "86400") == 300.0


@pytest.mark.parametrize("header", [None, "", "soon", "-5"])
def test_unreadable_retry_after_falls_back_to_backoff(header: str | None) -> None:
    assert RetryPolicy().delay(1, header, rng=lambda: 1.0) == 0.5


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_pacer_spaces_request_starts_evenly() -> None:
    clock = FakeClock()
    pacer = Pacer(4, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(9):
        pacer.wait()
        starts.append(clock.now)
    assert starts == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]


def test_pacer_hold_pushes_every_caller_back() -> None:
    clock = FakeClock()
    pacer = Pacer(10, clock=clock, sleep=clock.sleep)
    pacer.wait()
    pacer.hold(5.0)
    pacer.wait()
    assert clock.now == pytest.approx(5.0)


def test_pacer_without_rate_never_waits() -> None:
    clock = FakeClock()
    pacer = Pacer(None, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        pacer.wait()
    assert clock.sleeps == []


def test_pacer_hands_out_distinct_slots_to_concurrent_threads() -> None:
    clock = FakeClock()
    slots: list[float] = []
    lock = threading.Lock()
    pacer = Pacer(100, clock=clock, sleep=lambda s: None)
    real_wait = pacer.wait

    def record() -> None:
        real_wait()
        with lock:
            slots.append(pacer._next)

    threads = [threading.Thread(target=record) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(slots)) == 50


def test_a_hold_during_a_booked_wait_delays_that_caller_too() -> None:
    """A 429 arriving while a request sleeps towards its slot holds that request back."""
    clock = FakeClock()
    pacer = Pacer(2, clock=clock, sleep=lambda s: None)

    def sleep_then_429(seconds: float) -> None:
        clock.now += 0.2
        if not held:
            held.append(True)
            pacer.hold(1.0)  # the server's 429 arrives 0.2 s into this sleep
        clock.now += seconds - 0.2 if seconds > 0.2 else 0

    held: list[bool] = []
    pacer._sleep = sleep_then_429
    pacer.wait()  # first slot, immediate
    pacer.wait()  # booked for 0.5 s, held during its sleep
    assert clock.now >= 1.2
