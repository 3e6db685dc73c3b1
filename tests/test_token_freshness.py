"""Tokens are valid when sent: no attempt carries a Hull token older than half of
`hull_token_ttl`, however long its entry waited in a batch, the outbox or a retry.

The strict FakeHull refuses any token older than half its lifetime when it arrives."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from target_usage.hull import HullApi, TokenSigner
from target_usage.outputs import Redactor
from target_usage.transport import Delivered, Delivery, HttpSender, Origin, Pacer, RetryPolicy
from tests.fakes import FakeHull, Fault
from tests.harness import (
    HULL_CONNECTOR,
    HULL_ORG,
    HULL_SECRET,
    encode,
    record_message,
    schema_message,
    state_message,
)

TTL_SECONDS = 60
PAUSE_SECONDS = 35  # longer than half the ttl
BOOKMARK = {"bookmarks": {"track": 2}}


def test_an_entry_read_before_a_long_pause_in_the_input_is_sent_with_a_fresh_token(
    hull: FakeHull, hull_config: dict, tmp_path: Path
) -> None:
    config_path = tmp_path / "config.json"
    config_path.write_text(
        json.dumps({**hull_config, "hull_token_ttl": TTL_SECONDS, "progress_interval": 0})
    )
    before = [
        schema_message("track"),
        record_message("track", {"email": "early@x.io", "event": "Signed up"}),
    ]
    after = [
        record_message("track", {"email": "late@x.io", "event": "Paid"}),
        state_message(BOOKMARK),
    ]
    started = time.time()
    target = subprocess.Popen(
        [sys.executable, "-m", "target_usage", "--config", str(config_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert target.stdin is not None
    target.stdin.write(encode(before).decode())
    target.stdin.flush()
    time.sleep(PAUSE_SECONDS)  # the first entry waits in its batch, its first token ages
    stdout, stderr = target.communicate(encode(after).decode(), timeout=60)

    assert target.returncode == 0, stderr
    assert json.loads(stdout) == BOOKMARK
    sent = {entry["body"]["event"]: entry["claims"] for entry in hull.entries}
    assert set(sent) == {"Signed up", "Paid"}
    assert sent["Signed up"]["iat"] >= started + PAUSE_SECONDS - 1
    assert sent["Signed up"]["exp"] - sent["Signed up"]["iat"] == TTL_SECONDS


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
