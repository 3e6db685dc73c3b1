"""The Hull connector secret appears in no byte the target writes.

Every fault-matrix run already loads the secret (both APIs are configured in each run) and
`Bench.finish` checks its stdout, stderr, dead-letter and dry-run files. The runs here aim
at the places a secret could slip through: an API that echoes it back in an error body, a
dry run, a crash traceback, config errors, and HTTP debug logging switched on by the user.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fakes import Fault, Received
from tests.faults.conftest import Bench
from tests.faults.harness import assert_no_secret, dead_letters, lines, track
from tests.harness import HULL_CONNECTOR, HULL_ORG, HULL_SECRET, Run, run_cli


def tracks(n: int) -> list:
    return lines("analytics.track", [track(i) for i in range(1, n + 1)])


def echo(status: int, *, only_seq: int | None = None):
    """A server that answers `status` with the request's own Hull-Access-Token in the body."""

    def answer(request: Received) -> Fault | None:
        if only_seq is not None and not any(
            e["body"]["properties"]["seq"] == only_seq for e in request.json["batch"]
        ):
            return None
        token = request.headers["hull-access-token"]
        return Fault.status(status, json.dumps({"error": f"bad token {token}"}).encode())

    return answer


def test_an_error_body_echoing_the_secret_is_redacted(bench: Bench) -> None:
    bench.start(tracks(10))
    bench.hull.fault_when = echo(401)
    run = bench.run(bench.config(), tracks(10))
    assert run.exit_code == 1
    assert "bad token ***" in run.stderr
    assert "Traceback" not in run.stderr  # user-facing errors print their message alone


def test_retries_exhausted_on_a_body_echoing_the_secret_are_redacted(bench: Bench) -> None:
    bench.start(tracks(10))
    bench.hull.fault_when = echo(503)
    run = bench.run(bench.config(max_retries=1), tracks(10))
    assert run.exit_code == 1
    assert "failed after 2 attempts: HTTP 503" in run.stderr
    assert "bad token ***" in run.stderr


@pytest.mark.parametrize("policy", ["dead_letter", "fail"])
def test_a_refusal_echoing_the_secret_is_redacted_in_the_reason(bench: Bench, policy: str) -> None:
    bench.start(tracks(20))
    bench.hull.fault_when = echo(400, only_seq=7)
    run = bench.run(bench.config(invalid_records=policy), tracks(20))
    if policy == "dead_letter":
        assert run.exit_code == 0, run.stderr
        dead = dead_letters(bench.dead_letter_path)[1]
        assert "bad token ***" in dead["reason"]
    else:
        assert run.exit_code == 1
        assert "record #7: Hull refused it alone: HTTP 400" in run.stderr
        assert "bad token ***" in run.stderr


def test_a_dry_run_file_holds_no_secret(bench: Bench) -> None:
    bench.start(tracks(10))
    run = bench.run(bench.config(dry_run=True), tracks(10))
    assert run.exit_code == 0, run.stderr
    assert run.states == []
    requests = [json.loads(x) for x in bench.dry_run_path.read_text().splitlines()]
    assert requests
    assert requests[0]["headers"]["Hull-Access-Token"] == "***"
    assert bench.hull.requests == []


def test_a_crash_traceback_holds_no_secret(bench: Bench) -> None:
    """The dead-letter path is a directory: the worker's IsADirectoryError ends the run."""
    bench.start(tracks(20))
    bench.hull.fault_when = echo(400, only_seq=7)
    (bench.workdir / "dead").mkdir()
    config = bench.config(
        invalid_records="dead_letter", dead_letter_path=str(bench.workdir / "dead")
    )
    run = bench.run(config, tracks(20))
    assert run.exit_code == 1
    assert "Traceback" in run.stderr
    assert "IsADirectoryError" in run.stderr


def test_config_errors_hold_no_secret(bench: Bench) -> None:
    bench.start([])
    config = bench.config(hull_firehose_url="http://firehose.example.com")
    run = bench.run(config, tracks(1))
    assert run.exit_code != 0
    assert "hull_firehose_url" in run.stderr


def test_a_secret_of_the_wrong_type_is_not_echoed_in_the_config_error(tmp_path: Path) -> None:
    """A digits-only secret written without quotes is a JSON number: the config error
    names the setting, never its value (singer-sdk's own message quotes the value, so the
    target redacts secret values, whatever their type, from config errors)."""
    numeric = 987650123456789012345
    config = {
        "hull_organization": HULL_ORG,
        "hull_connector_id": HULL_CONNECTOR,
        "hull_connector_secret": numeric,
    }
    run = run_cli(config, [], tmp_path)
    assert run.exit_code != 0
    assert "hull_connector_secret" in run.stderr
    assert str(numeric) not in run.stderr


def urllib3_debug_log_config(workdir: Path) -> dict[str, str]:
    """The SDK's own way to change logging: SINGER_SDK_LOG_CONFIG, urllib3 at DEBUG."""
    path = workdir / "logging.yml"
    path.write_text(
        "version: 1\ndisable_existing_loggers: false\nloggers:\n  urllib3:\n    level: DEBUG\n"
    )
    return {"SINGER_SDK_LOG_CONFIG": str(path)}


def wire_debug_sitecustomize(workdir: Path) -> dict[str, str]:
    """Everything at DEBUG and http.client's wire dump, switched on before the target runs."""
    site = workdir / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import http.client\nimport logging\n\n"
        "logging.basicConfig(level=logging.DEBUG)\n"
        'logging.getLogger("urllib3").setLevel(logging.DEBUG)\n'
        "http.client.HTTPConnection.debuglevel = 1\n"
    )
    return {"PYTHONPATH": str(site)}


def debug_run(bench: Bench, env: dict[str, str]) -> Run:
    """A Hull run with a retry, a dropped connection and a refusal, under debug logging."""
    bench.hull.faults += [Fault.status(503), Fault.drop_before()]
    bench.hull.fault_when = echo(400, only_seq=7)
    run = run_cli(bench.config(invalid_records="dead_letter"), tracks(30), bench.workdir, env=env)
    bench.servers.settle()
    assert run.exit_code == 0, run.stderr
    assert "urllib3.connectionpool" in run.stderr, "urllib3 debug logging did not switch on"
    assert "bad token ***" in dead_letters(bench.dead_letter_path)[1]["reason"]
    return run


def test_urllib3_debug_logging_shows_no_secret(bench: Bench) -> None:
    run = debug_run(bench, urllib3_debug_log_config(bench.workdir))
    assert '"POST / HTTP/1.1" 503' in run.stderr
    assert_no_secret(run, bench.dead_letter_path)
    assert run.stray == []


def test_wire_debugging_keeps_the_secret_out_of_stderr(bench: Bench) -> None:
    run = debug_run(bench, wire_debug_sitecustomize(bench.workdir))
    assert HULL_SECRET not in run.stderr


def test_wire_debugging_keeps_the_secret_and_stray_lines_out_of_stdout(bench: Bench) -> None:
    """A user debugging connectivity sets `http.client.HTTPConnection.debuglevel = 1` (here
    via sitecustomize): http.client would print() request headers, the Hull secret among
    them, to stdout, corrupting the STATE stream. The target's connections ignore it."""
    run = debug_run(bench, wire_debug_sitecustomize(bench.workdir))
    assert HULL_SECRET not in run.stdout
    assert run.stray == []


def echo_body(status: int, *, only_seq: int | None = None):
    """A server that answers `status` quoting the request body back: its per-entry tokens."""

    def answer(request: Received) -> Fault | None:
        if only_seq is not None and not any(
            e["body"]["properties"]["seq"] == only_seq for e in request.json["batch"]
        ):
            return None
        return Fault.status(status, request.body[:2000])

    return answer


JWT_START = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."


def test_tokens_in_an_error_body_echoing_the_request_are_redacted(bench: Bench) -> None:
    bench.start(tracks(3))
    bench.hull.fault_when = echo_body(503)
    run = bench.run(bench.config(max_retries=0), tracks(3))
    assert run.exit_code == 1
    assert "HTTP 503; response body:" in run.stderr
    assert '"Hull-Access-Token":"***"' in run.stderr
    assert JWT_START not in run.stderr


def test_tokens_in_a_refusal_echoing_the_request_are_redacted_in_the_reason(
    bench: Bench,
) -> None:
    bench.start(tracks(4))
    bench.hull.fault_when = echo_body(400, only_seq=3)
    run = bench.run(bench.config(invalid_records="dead_letter"), tracks(4))
    assert run.exit_code == 0, run.stderr
    (reason,) = [d["reason"] for d in dead_letters(bench.dead_letter_path) if "reason" in d]
    assert "Hull refused it alone: HTTP 400" in reason
    assert '"Hull-Access-Token":"***"' in reason
    assert JWT_START not in reason


@pytest.mark.parametrize("setting", ["hull_firehose_url", "skalin_url"])
def test_user_info_of_a_url_is_never_printed(bench: Bench, setting: str) -> None:
    bench.start([])
    for url in ("http://user:pa55word@firehose.example.com", "https://user:pa55word@h.io"):
        run = bench.run(bench.config(**{setting: url}), tracks(1))
        assert run.exit_code == 1
        assert f"'{setting}' is '" in run.stderr
        assert "pa55word" not in run.stderr
        assert "Traceback" not in run.stderr
    assert bench.hull.requests == []
    assert bench.skalin.requests == []


@pytest.mark.parametrize(
    "setting", ["hull_connector_secret", "hull_connector_id", "hull_organization"]
)
@pytest.mark.parametrize("padding", ["\n", " ", "\t", "\x01"])
def test_a_header_setting_with_surrounding_whitespace_is_refused_at_start(
    bench: Bench, setting: str, padding: str
) -> None:
    """`$(cat secret.txt)` keeps the file's newline: refused before any request, naming
    the setting (not failing late as `network error (InvalidHeader)` after retries)."""
    bench.start([])
    value = bench.config()[setting] + padding
    run = bench.run(bench.config(**{setting: value}), tracks(1))
    assert run.exit_code == 1
    assert f"'{setting}' has surrounding whitespace or control characters" in run.stderr
    assert "InvalidHeader" not in run.stderr
    assert bench.hull.requests == []
