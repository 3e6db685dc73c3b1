"""docs/reliability.md: the delivery guarantee, the retry policy and the measured fault matrix.

The matrix is not written by hand: each fault scenario records its measured outcome here,
and the last test of the fault suite compares the committed file's matrix with them (or
rewrites the file when TARGET_USAGE_WRITE_RELIABILITY=1). To regenerate:

    python -m tests.faults.render_reliability

which runs the fault suite with that variable set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.faults.harness import Outcome, kill_signal_name

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
WRITE_ENV = "TARGET_USAGE_WRITE_RELIABILITY"
MATRIX_START, MATRIX_END = "<!-- fault-matrix:start -->", "<!-- fault-matrix:end -->"


@dataclass(frozen=True)
class Row:
    id: str
    api: str
    scenario: str
    # False: the row asserts no record was stored twice. True: duplicates may occur (a
    # resend of what the server had stored, or a rerun) and are asserted to carry
    # identical ids; the matrix says so rather than print a count that depends on timing.
    may_duplicate: bool = False


ROWS: tuple[Row, ...] = (
    Row("skalin-503-storm", "Skalin features", "three 503s, then the server recovers"),
    Row("hull-503-storm", "Hull track", "three 503s, then the server recovers"),
    Row(
        "skalin-429-seconds",
        "Skalin features",
        "429 with `Retry-After: 1` while other requests wait for their pacing slot",
    ),
    Row(
        "skalin-429-date",
        "Skalin features",
        "429 with `Retry-After` as an HTTP date 1 to 2 s ahead",
    ),
    Row(
        "skalin-retry-after-cap",
        "Skalin features",
        "429 with `Retry-After: 3600`, `retry_after_cap` 1",
    ),
    Row(
        "skalin-slow-answer",
        "Skalin features",
        "answer after 1.5 s, `request_timeout` 0.5 (the server stores it late)",
        may_duplicate=True,
    ),
    Row(
        "skalin-503-exhausted",
        "Skalin features",
        "503 on every request until `max_retries` (2) is spent",
    ),
    Row("skalin-drop-before", "Skalin features", "connection dropped before the server stores"),
    Row(
        "skalin-drop-after",
        "Skalin features",
        "connection dropped after the server stored the request",
        may_duplicate=True,
    ),
    Row(
        "hull-drop-after",
        "Hull track",
        "connection dropped after the server stored the request",
        may_duplicate=True,
    ),
    Row(
        "skalin-poison-dead-letter",
        "Skalin features",
        "1 record of a 100-item request refused (400); `invalid_records: dead_letter`",
    ),
    Row(
        "hull-poison-dead-letter",
        "Hull track",
        "1 entry of a 100-entry request refused (400); `invalid_records: dead_letter`",
    ),
    Row(
        "skalin-poison-fail",
        "Skalin features",
        "1 record of a 100-item request refused (400); `invalid_records: fail` (default)",
        may_duplicate=True,
    ),
    Row(
        "hull-poison-fail",
        "Hull track",
        "1 entry of a 100-entry request refused (400); `invalid_records: fail` (default)",
        may_duplicate=True,
    ),
    Row(
        "hull-400-everything-fail",
        "Hull track",
        "400 on every request (wrong organization), none accepted yet; `invalid_records: fail`",
    ),
    Row(
        "hull-400-everything-skip",
        "Hull track",
        "400 on every request (wrong organization), none accepted yet; `invalid_records: skip`",
    ),
    Row(
        "hull-400-everything-dead_letter",
        "Hull track",
        "400 on every request (wrong organization), none accepted yet; "
        "`invalid_records: dead_letter`",
    ),
    Row(
        "skalin-400-everything-skip",
        "Skalin features",
        "400 on every request (wrong client id), none accepted yet; `invalid_records: skip`",
    ),
    Row(
        "hull-isolate-1000",
        "Hull track",
        "999 of a 1,000-entry request, and 1 more, refused one by one; "
        "`hull_batch_size` 1000, `invalid_records: skip`",
    ),
    Row("skalin-401", "Skalin features", "401 on every request"),
    Row("skalin-odd-2xx", "Skalin features", "202 with a non-JSON body on every request"),
    Row("skalin-redirect", "Skalin features", "307 to another host on every request"),
    Row("input-malformed-json", "Skalin features", "malformed JSON line in the input"),
    Row("input-record-before-schema", "Skalin features", "a RECORD before its SCHEMA"),
    Row(
        "input-schema-mismatch",
        "Skalin features",
        "a record failing its SCHEMA; `invalid_records: dead_letter`",
    ),
    Row(
        "input-invalid-skip",
        "Skalin features",
        "a record without a feature name; `invalid_records: skip`",
    ),
    Row("skalin-10mb-column", "Skalin features", "a record with a 10 MB unknown column"),
    Row(
        "hull-10mb-trait",
        "Hull traits",
        "a record with a 10 MB trait value; `invalid_records: dead_letter`",
    ),
    Row(
        "odd-timestamps-dead_letter",
        "Skalin features, Hull track and traits",
        "timestamps outside the years 1-9999 (`ts`, `timestamp`, `created_at`); "
        "`invalid_records: dead_letter`",
    ),
    Row(
        "odd-timestamps-skip",
        "Skalin features, Hull track and traits",
        "timestamps outside the years 1-9999 (`ts`, `timestamp`, `created_at`); "
        "`invalid_records: skip`",
    ),
    Row(
        "odd-identifiers-dead_letter",
        "Skalin identities, Hull traits and unalias",
        "booleans, objects, arrays and blank strings as identifiers; "
        "`invalid_records: dead_letter`",
    ),
    Row(
        "odd-identifiers-skip",
        "Skalin identities, Hull traits and unalias",
        "booleans, objects, arrays and blank strings as identifiers; `invalid_records: skip`",
    ),
    Row(
        "hull-token-expiry-pause",
        "Hull track",
        "a 35 s pause in the input while an entry waits in its batch; `hull_token_ttl` 60 "
        "(tokens older than 30 s are refused)",
    ),
    Row(
        "skalin-sigterm",
        "Skalin features",
        "SIGTERM mid-run, requests in flight; STATE every 200 records, batches of 100",
        may_duplicate=True,
    ),
    Row(
        "skalin-sigint",
        "Skalin features",
        "SIGINT mid-run, requests in flight; STATE every 200 records, batches of 100",
        may_duplicate=True,
    ),
    Row(
        "skalin-sigterm-backpressure",
        "Skalin features",
        "SIGTERM while the reader waits on a full outbox; STATE every 50 records, batches of 100",
        may_duplicate=True,
    ),
    Row(
        "skalin-sigterm-twice",
        "Skalin features",
        "a second SIGTERM while the final drain waits on a full outbox (stops within 2 s); "
        "STATE every 50 records",
        may_duplicate=True,
    ),
    Row(
        "skalin-kill-9",
        "Skalin features",
        "`kill -9` mid-run, requests in flight",
        may_duplicate=True,
    ),
)
ROWS_BY_ID = {row.id: row for row in ROWS}

# Filled by the scenarios of this session.
MEASURED: dict[str, Outcome] = {}


def record(outcome: Outcome) -> None:
    row = ROWS_BY_ID[outcome.row]  # a scenario must be listed to be rendered
    if not row.may_duplicate:
        assert outcome.duplicates == 0, f"{row.id}: {outcome.duplicates} records stored twice"
    MEASURED[outcome.row] = outcome


def missing() -> list[str]:
    return [row.id for row in ROWS if row.id not in MEASURED]


def _exit(outcome: Outcome) -> str:
    first = (
        f"killed ({kill_signal_name(outcome.exit_code)})"
        if outcome.exit_code < 0
        else str(outcome.exit_code)
    )
    if outcome.rerun_exit_code is None:
        return first
    return f"{first} → rerun {outcome.rerun_exit_code}"


def matrix_lines() -> list[str]:
    head = [
        "| Scenario | API | Records in | Delivered | Dead-lettered | Skipped | Lost "
        "| Duplicates | Extra requests | Exit code |",
        "|:--|:--|--:|--:|--:|--:|--:|:--|--:|:--|",
    ]
    body = []
    for row in ROWS:
        o = MEASURED[row.id]
        duplicates = "identical ids only" if row.may_duplicate else "0"
        extra = "—" if o.extra_requests is None else str(o.extra_requests)
        body.append(
            f"| {row.scenario} | {row.api} | {o.records_in} | {o.delivered} "
            f"| {o.dead_lettered} | {o.skipped} | {o.lost} | {duplicates} | {extra} "
            f"| {_exit(o)} |"
        )
    return head + body


def committed_matrix(text: str) -> list[str]:
    inner = text.split(MATRIX_START, 1)[1].split(MATRIX_END, 1)[0]
    return [line for line in inner.strip().splitlines() if line.startswith("|")]


RETRY_RULES: tuple[tuple[str, str], ...] = (
    ("2xx (any body)", "delivered"),
    (
        "408, 429, 500, 502, 503, 504 and every other 5xx except 501 and 505",
        "retried, up to `max_retries` (default 8) retries per request",
    ),
    (
        "network error (refused, reset, dropped) or no answer within `request_timeout` "
        "(default 30 s)",
        "retried like a 5xx; ids are stable, so a request the server had stored arrives "
        "again with identical ids",
    ),
    (
        "`Retry-After` on a retried answer (delta-seconds or an HTTP date)",
        "waits that long instead of the backoff, at most `retry_after_cap` (default 300 s)",
    ),
    (
        "429 with `Retry-After`",
        "holds back every request to that API, not only the one refused, including "
        "those already waiting for their pacing slot",
    ),
    (
        "3xx",
        "never followed (the request and its headers are not replayed elsewhere); final "
        "error naming the URL setting",
    ),
    (
        "401, 403",
        "final error: the run stops naming `skalin_client_id`, or `hull_connector_id`, "
        "`hull_connector_secret` and `hull_organization`",
    ),
    ("404, 405", "final error: the run stops naming `skalin_url` or `hull_firehose_url`"),
    ("501, 505", "final error: exit 1, no STATE past the undelivered records"),
    (
        "any other 4xx (400, 409, 413, 422...)",
        "content refusal: the request is split by group testing, in a bounded loop, until "
        "the refused record is alone (at most 8 extra requests for one bad record in 100, "
        "about 2 per record when all are refused); the others are delivered and the "
        "refused record follows `invalid_records`. Until the API has accepted a request of "
        "the run, the refusal is the request's: final error naming the setting to check, "
        "whatever `invalid_records` says",
    ),
    ("retries exhausted", "final error: exit 1, no STATE past the undelivered records"),
)
RETRY_TABLE = "\n".join(
    [
        "| Answer or condition | Action |",
        "|:--|:--|",
        *(f"| {condition} | {action} |" for condition, action in RETRY_RULES),
    ]
)
BACKOFF = """\
Backoff between retries without `Retry-After`: 0.5 s doubling per retry (0.5, 1, 2, 4 ... s),
capped at 60 s, each wait randomised to between 50 and 100 % of that value (jitter) so clients
that failed together do not retry together. Requests are paced client-side
(`skalin_requests_per_second`, default 100) and limited to `max_concurrent_requests`
(default 16) in flight per API."""

GUARANTEE = """\
**At least once, idempotent by id.** Every record read is delivered (a 2xx from the API),
dead-lettered or skipped as `invalid_records` says, or the run fails. A request whose answer
is lost is sent again; this can store a record twice, but always under the same id
(Skalin `eventId`, Hull track `event_id`: the value given, else a stable digest of the record),
so the APIs keep one copy ("the last transmitted is kept", "events with the same event_id
overwrite the previous one"). Hull traits carry no id; resending them sets the same values again.

**STATE only after delivery.** The target writes a Singer STATE message only when every record
before it in the input has been delivered, dead-lettered or skipped. STATE is written when the
SDK drains all sinks: at the end of the input, every 5 minutes, and on SIGTERM or SIGINT, where
the target finishes delivering what it read (in-flight requests complete or are retried),
writes the STATE that covers it and exits 143 or 130. A second signal stops at once (within
2 s): nothing more is sent and no STATE is written past records not delivered. A dry run
writes no STATE.

**After a failure, rerun.** A run that fails exits 1 with a message naming the API, the status,
the response body and every stream and range of records not delivered, and writes no STATE
past them. Fix the cause
(the message names the setting to check) and run again: Meltano restarts the tap from the last
STATE the target emitted, so every record not confirmed is sent again, with the same ids. A run
killed outright (`kill -9`, out of memory) is recovered the same way. Records set aside with
`invalid_records: dead_letter` are in `dead_letter_path` as Singer messages (a SCHEMA line per
stream, repeated when it changes, then each record with its `reason`, `position` within the
stream, `sink` and the `event_id` its first try used); fix them and pipe the file back into the
target."""

KNOWN_GAPS = """\
None open. Faults the suite found and that are now fixed, each a row or a test of it: a signal
while the reader waited on a full outbox abandoned the interrupted batch yet wrote the STATE
read before it (records lost on rerun); a 429's `Retry-After` did not hold back requests
already waiting for their pacing slot; a digits-only `hull_connector_secret` written as a JSON
number was echoed by singer-sdk's config error; and Python's HTTP wire dump
(`http.client.HTTPConnection.debuglevel`) printed request headers, the secret among them, to
stdout. urllib3's DEBUG logging (for example through `SINGER_SDK_LOG_CONFIG`) goes to stderr
without headers. A server refusing every request with a 400 (a wrong client id or
organization) made every record look bad: each was isolated and skipped or dead-lettered, and
the run ended 0 with STATE moved on; isolation recursed until `RecursionError` on large
requests; a second signal was ignored until the drain ended; a timestamp outside the years
1-9999 crashed the run with an `OverflowError` traceback whatever `invalid_records` said;
booleans, objects, arrays and blank strings were taken as identifiers; an entry that waited
in its batch through a pause in the input was sent with the token signed when it was read,
expired or about to be. Each is now a row above."""

MATRIX_INTRO = """\
Each row is a test of `tests/faults/` that runs the installed CLI
(`python -m target_usage`) against loopback fakes of the APIs that inject the fault, then
reconciles what the server stored with what was sent in, record by record. *Delivered* counts
distinct ids the server accepted; *lost* is records in minus delivered, dead-lettered and
skipped, and must be 0. Rows whose first run fails are followed by a rerun from the last
STATE that run emitted (all input if it emitted none, the corrected input for malformed
input), against a healthy server, and their counts cover both runs. *Duplicates* says what was
checked: `0` means no record was stored twice; `identical ids only` means a record may be stored
more than once (a resend after a lost answer, or the rerun) and every copy carries the same id.
*Extra requests* is what isolating the refused record cost, beyond the refused request.
Every run's stdout, stderr, dead-letter and dry-run files are also checked to hold no byte of
the connector secret."""


def render() -> str:
    matrix = "\n".join(matrix_lines())
    return f"""\
# Reliability

What target-usage guarantees when the network, the APIs or the input misbehave, the retry
policy it follows, and the outcome of each fault as measured by the test suite.

## Delivery guarantee

{GUARANTEE}

## Retry policy

{RETRY_TABLE}

{BACKOFF}

## Fault matrix (measured)

{MATRIX_INTRO}

{MATRIX_START}
{matrix}
{MATRIX_END}

Regenerate this file with `python -m tests.faults.render_reliability`, which runs the fault
suite with `{WRITE_ENV}=1`; a normal test run fails when the matrix
differs from what it measures.

## Known gaps

{KNOWN_GAPS}
"""


def main() -> int:
    env = {**os.environ, WRITE_ENV: "1"}
    return subprocess.call(
        [sys.executable, "-m", "pytest", "-q", str(Path(__file__).parent)], cwd=ROOT, env=env
    )


if __name__ == "__main__":
    raise SystemExit(main())
