"""Run the installed CLI against loopback fakes and measure what reached the server.

Every fault row is one `Scenario`: an input (Singer lines), a config, faults on the
server, and a run of `python -m target_usage` in a subprocess, exactly as a pipeline
runs it. What the server stored is then reconciled with what was sent in, record by
record, through a per-record key (the `email` column, which both APIs carry through),
into an `Outcome`: delivered, dead-lettered, skipped, lost and duplicated.

A failing run is followed, as a user would, by a rerun from the last STATE it emitted
(the SCHEMA lines plus everything after that STATE in the input, or all input if it
emitted none) against a healthy server; "lost" then counts what neither run delivered.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jwt

from tests.fakes import FakeHull, FakeServer, FakeSkalin
from tests.harness import (
    HULL_SECRET,
    RUN_TIMEOUT_SECONDS,
    Message,
    Run,
    encode,
    hull_settings,
    record_message,
    schema_message,
    skalin_settings,
    start_cli,
    states_of,
)

# Singer input


def state(n: int) -> dict[str, Any]:
    return {"type": "STATE", "value": {"bookmarks": {"faults": {"records": n}}}}


def key(n: int) -> str:
    """The per-record key: the email of record #n (1-based) of a scenario."""
    return f"r{n:05d}@faults.test"


def feature(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "email": key(n),
        "customer_id": "acme",
        "name": "export-report",
        "ts": "2026-11-02T09:20:31Z",
        **extra,
    }


def track(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "email": key(n),
        "event": "Report Exported",
        "report": "weekly",
        "seq": n,
        "created_at": "2026-11-02T09:20:31Z",
        **extra,
    }


def traits(n: int, **extra: Any) -> dict[str, Any]:
    return {"email": key(n), "plan": "pro", "seats": n, **extra}


def lines(
    stream: str, rows: Sequence[dict[str, Any]], *, state_every: int | None = None
) -> list[Message]:
    """SCHEMA, the RECORDs, a STATE after every `state_every` records and at the end."""
    out: list[Message] = [schema_message(stream)]
    for n, row in enumerate(rows, 1):
        out.append(record_message(stream, row))
        if state_every and n % state_every == 0 and n != len(rows):
            out.append(state(n))
    out.append(state(len(rows)))
    return out


def records_of(messages: Iterable[Message]) -> list[dict[str, Any]]:
    return [m["record"] for m in messages if isinstance(m, dict) and m.get("type") == "RECORD"]


def input_key(row: dict[str, Any]) -> str:
    return str(row["email"])


def after_last_state(messages: Sequence[Message], states: Sequence[Any]) -> list[Message]:
    """What a tap restarted from the last emitted STATE sends: its SCHEMAs, then the rest."""
    schemas = [m for m in messages if isinstance(m, dict) and m.get("type") == "SCHEMA"]
    if not states:
        return list(messages)
    last = states[-1]
    positions = [
        i
        for i, m in enumerate(messages)
        if isinstance(m, dict) and m.get("type") == "STATE" and m["value"] == last
    ]
    assert positions, f"emitted STATE {last!r} is not one of the input's STATE messages"
    return [*schemas, *messages[positions[-1] + 1 :]]


# Servers


@dataclass
class Servers:
    skalin: FakeSkalin
    hull: FakeHull

    def all(self) -> tuple[FakeServer, ...]:
        return (self.skalin, self.hull)

    def heal(self) -> None:
        """No more faults or latency; what was stored is kept."""
        for server in self.all():
            with server._lock:
                server.faults.clear()
                server.fault_when = None
                server.latency = 0.0

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until no handler is still working (a slow answer may store after the run)."""
        deadline = time.monotonic() + timeout
        while any(server._in_flight for server in self.all()):
            if time.monotonic() > deadline:
                raise TimeoutError("fake servers still handling requests")
            time.sleep(0.02)


def accepted_items(server: FakeServer, since: int = 0) -> list[tuple[str, str]]:
    """(record key, id) of every item the server stored, from its `since`-th request on."""
    with server._lock:
        accepted = list(server.accepted[since:])
    items = []
    for request in accepted:
        if isinstance(server, FakeSkalin):
            for kind in ("identities", "features"):
                for item in request.json.get(kind, []):
                    items.append((item["identity"]["email"], f"{kind}:{item['eventId']}"))
        else:
            for entry in request.json["batch"]:
                claims = jwt.decode(
                    entry["headers"]["Hull-Access-Token"], options={"verify_signature": False}
                )
                who = claims["io.hull.asUser"]["email"]
                body = entry["body"]
                # traits carry no id: a profile update is keyed by who it is about.
                ident = body["event_id"] if entry["type"] == "track" else who
                items.append((who, f"{entry['type']}:{ident}"))
    return items


# Running the CLI


def base_config(servers: Servers, workdir: Path) -> dict[str, Any]:
    """Both APIs configured (so the secret is loaded in every run), few retries."""
    return {
        **skalin_settings(servers.skalin.url, workdir),
        **hull_settings(servers.hull.url, workdir),
        "progress_interval": 0,
    }


def run_cli_interrupted(
    config: dict[str, Any],
    messages: Sequence[Message],
    workdir: Path,
    *,
    signum: int,
    when: Callable[[], bool],
    chunk: int = 50,
    pause: float = 0.1,
    stall_after: int | None = None,
    again_after: float | None = None,
) -> Run:
    """Feed the input from a thread, `chunk` messages every `pause` seconds; send `signum`
    as soon as `when()` holds, and once more `again_after` seconds later if given.

    With `stall_after`, only that many messages are written, then stdin stays open with
    nothing more to read (a tap busy elsewhere) until the target ends.
    """
    feed_upto = len(messages) if stall_after is None else stall_after
    out_path, err_path = workdir / "stdout.bin", workdir / "stderr.bin"
    started = time.monotonic()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = start_cli(config, workdir, stdout=out, stderr=err)
        stop = threading.Event()

        def feed() -> None:
            assert proc.stdin is not None
            try:
                for start in range(0, feed_upto, chunk):
                    if stop.is_set():
                        return
                    proc.stdin.write(encode(messages[start : min(start + chunk, feed_upto)]))
                    proc.stdin.flush()
                    stop.wait(pause)
                if feed_upto < len(messages):
                    stop.wait()
                    return
                proc.stdin.close()
            except (BrokenPipeError, OSError, ValueError):
                return  # the target went away mid-write: expected once signalled

        feeder = threading.Thread(target=feed, name="feeder", daemon=True)
        feeder.start()
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        try:
            while not when():
                if proc.poll() is not None:
                    raise AssertionError(f"the target ended before the signal: {proc.returncode}")
                if time.monotonic() > deadline:
                    raise TimeoutError("the condition to send the signal never held")
                time.sleep(0.01)
            proc.send_signal(signum)
            signalled_at = time.monotonic()
            if again_after is not None:
                time.sleep(again_after)
                assert proc.poll() is None, "the target ended before the second signal"
                proc.send_signal(signum)
                signalled_at = time.monotonic()
            proc.wait(timeout=RUN_TIMEOUT_SECONDS)
            ended_at = time.monotonic()
        finally:
            stop.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            feeder.join(timeout=5)
            if proc.stdin is not None and not proc.stdin.closed:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
    stdout = out_path.read_bytes().decode(errors="replace")
    return Run(
        proc.returncode,
        stdout,
        err_path.read_bytes().decode(errors="replace"),
        states_of(stdout),
        time.monotonic() - started,
        signalled_at,
        ended_at,
    )


def run_cli_paused(
    config: dict[str, Any],
    before: Sequence[Message],
    after: Sequence[Message],
    workdir: Path,
    *,
    pause: float,
) -> Run:
    """Write `before`, keep stdin open with nothing to read for `pause` seconds (a tap
    waiting on its source), then write `after` and close the input."""
    started = time.monotonic()
    proc = start_cli(config, workdir)
    assert proc.stdin is not None
    proc.stdin.write(encode(before))
    proc.stdin.flush()
    time.sleep(pause)
    out, err = proc.communicate(encode(after), timeout=RUN_TIMEOUT_SECONDS)
    stdout = out.decode(errors="replace")
    return Run(
        proc.returncode,
        stdout,
        err.decode(errors="replace"),
        states_of(stdout),
        time.monotonic() - started,
    )


# Reconciling what was sent with what arrived


@dataclass
class Outcome:
    """One row of the fault matrix, as measured."""

    row: str
    records_in: int
    delivered: int
    dead_lettered: int
    skipped: int
    lost: int
    duplicates: int
    extra_requests: int | None
    exit_code: int
    rerun_exit_code: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Ledger:
    """Everything a scenario's runs did, reconciled into an Outcome."""

    records: list[dict[str, Any]]
    items: list[tuple[str, str]] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0

    def add_items(self, items: Iterable[tuple[str, str]]) -> None:
        self.items += items

    def ids_by_key(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = defaultdict(set)
        for who, ident in self.items:
            found[who].add(ident)
        return found

    def check_ids(self) -> None:
        """Every stored item is a record sent in, and a record always carries one id."""
        sent = {input_key(r) for r in self.records}
        by_key = self.ids_by_key()
        unknown = set(by_key) - sent
        assert not unknown, f"the server stored items no record was sent for: {sorted(unknown)}"
        differing = {who: ids for who, ids in by_key.items() if len(ids) > 1}
        assert not differing, f"records delivered more than once with DIFFERENT ids: {differing}"
        owners: dict[str, set[str]] = defaultdict(set)
        for who, ident in self.items:
            owners[ident].add(who)
        shared = {ident: who for ident, who in owners.items() if len(who) > 1}
        assert not shared, f"distinct records delivered under one id: {shared}"

    def outcome(
        self,
        row: str,
        *,
        exit_code: int,
        rerun_exit_code: int | None = None,
        extra_requests: int | None = None,
    ) -> Outcome:
        self.check_ids()
        sent = {input_key(r) for r in self.records}
        delivered = set(self.ids_by_key())
        dead = {input_key(d) for d in self.dead}
        assert dead <= sent, f"dead letters of records never sent: {dead - sent}"
        assert not dead & delivered, f"both delivered and dead-lettered: {dead & delivered}"
        distinct_ids = {ident for _, ident in self.items}
        return Outcome(
            row=row,
            records_in=len(self.records),
            delivered=len(distinct_ids),
            dead_lettered=len(dead),
            skipped=self.skipped,
            lost=len(sent - delivered - dead) - self.skipped,
            duplicates=len(self.items) - len(distinct_ids),
            extra_requests=extra_requests,
            exit_code=exit_code,
            rerun_exit_code=rerun_exit_code,
        )


def dead_letters(path: Path) -> list[dict[str, Any]]:
    """The dead-letter file's lines; it must open with a SCHEMA per stream."""
    if not path.exists():
        return []
    found = [json.loads(line) for line in path.read_text().splitlines()]
    seen_schema: set[str] = set()
    for line in found:
        if line["type"] == "SCHEMA":
            seen_schema.add(line["stream"])
        else:
            assert line["type"] == "RECORD", line
            assert line["stream"] in seen_schema, "a dead letter before its stream's SCHEMA"
            assert {"reason", "position", "sink"} <= line.keys(), line.keys()
    return found


def dead_records(path: Path) -> list[dict[str, Any]]:
    return [line["record"] for line in dead_letters(path) if line["type"] == "RECORD"]


# Counts are written with thousands separators ("1,000 skipped").
SUMMARY_SKIPPED = re.compile(r"([\d,]+) skipped, [\d,]+ dead-lettered")


def skipped_count(run: Run) -> int:
    """Records skipped by the policy, from the run summary on stderr."""
    return sum(int(n.replace(",", "")) for n in SUMMARY_SKIPPED.findall(run.stderr))


def assert_no_secret(run: Run, *files: Path) -> None:
    """The connector secret is in no byte of stdout, stderr or any file the run wrote."""
    assert HULL_SECRET not in run.stdout, "the secret leaked to stdout"
    assert HULL_SECRET not in run.stderr, "the secret leaked to stderr"
    for path in files:
        if path.exists():
            assert HULL_SECRET.encode() not in path.read_bytes(), (
                f"the secret leaked to {path.name}"
            )


def kill_signal_name(code: int) -> str:
    return signal.Signals(-code).name if code < 0 else str(code)
