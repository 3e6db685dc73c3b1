"""Tokens are valid when sent: no attempt carries a Hull token older than half of
`hull_token_ttl`, however long its entry waited in a batch, the outbox or a retry.

The strict FakeHull refuses any token older than half its lifetime when it arrives. A
long pause in the input is the fault-matrix row "hull-token-expiry-pause"
(tests/faults/test_fault_matrix.py); here, a retry after a long wait, in process with a
shared clock."""

from __future__ import annotations

import time

from target_usage.hull import HullApi, TokenSigner
from target_usage.outputs import Redactor
from target_usage.transport import Delivered, Delivery, HttpSender, Origin, Pacer, RetryPolicy
from tests.fakes import FakeHull, Fault
from tests.harness import HULL_CONNECTOR, HULL_ORG, HULL_SECRET


class Clock:
    """Time for the signer, the server's token check and the retry sleeps at once."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_retry_after_a_long_wait_carries_a_re_signed_token(hull: FakeHull) -> None:
    clock = Clock()
    hull.now = clock
    signer = TokenSigner(HULL_CONNECTOR, HULL_SECRET, 3600, True, False, clock=clock)
    api = HullApi(hull.url, HULL_ORG, signer)
    delivery = Delivery(
        api=api,
        sender=HttpSender(timeout_seconds=5, pool_size=1),
        policy=RetryPolicy(max_retries=1, retry_after_cap_seconds=3600),
        pacer=Pacer(None, clock=clock, sleep=clock.sleep),
        redactor=Redactor([HULL_SECRET]),
        workers=1,
        max_pending_parts=1,
    )
    # Retry-After on a 429 holds the pacer, whose sleeps advance the shared clock.
    hull.faults.append(Fault.status(429, retry_after="1800"))  # half the ttl
    read_at = int(clock.now)
    record = {"email": "a@x.io", "event": "e"}
    item = api.build("track", record)
    try:
        delivery.submit("track", [item], [Origin("track", "track", 1, record)])
        delivery.flush()
    finally:
        delivery.close()

    [outcome] = [delivery.outcomes.get_nowait() for _ in range(delivery.outcomes.qsize())]
    assert isinstance(outcome, Delivered)
    assert (outcome.retries, sum(len(g) for g in outcome.groups)) == (1, 1)
    first_try, retry = (r.json["batch"][0]["headers"]["Hull-Access-Token"] for r in hull.requests)
    assert first_try != retry
    assert [entry["claims"]["iat"] for entry in hull.entries] == [read_at + 1800]
