"""singer-sdk standard target tests, delivering for real to a loopback Skalin.

Every standard stream is routed to `identities`, and a stream map gives its records a
`user_id`, so the SDK's cases run our whole path (validation, build, request, retry
policy) rather than a no-op. One custom case checks what the server received.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from singer_sdk.testing import get_target_test_class, target_test_streams
from singer_sdk.testing.suites import SingerTestSuite
from singer_sdk.testing.templates import TargetFileTestTemplate

from target_usage.target import TargetUsage
from tests.fakes import FakeSkalin

SERVER = FakeSkalin(client_id="sdk-client").__enter__()
STANDARD_STREAMS = sorted(
    {
        line.split('"stream": "', 1)[1].split('"', 1)[0]
        for path in importlib.resources.files(target_test_streams).iterdir()
        if path.name.endswith(".singer")
        for line in path.read_text().splitlines()
        if '"stream": "' in line
    }
)
SAMPLE = Path(__file__).parent / "data" / "usage_sample.singer"


class DeliversTheSample(TargetFileTestTemplate):
    """The shipped sample reaches the server whole and in the documented shape."""

    name = "delivers_the_sample"

    @property
    def singer_filepath(self) -> Path:
        return SAMPLE

    def validate(self) -> None:
        emails = sorted(i["identity"]["email"] for i in SERVER.features)
        assert emails == ["ada@example.com", "grace@example.com"]
        assert SERVER.violations == []


TestTargetUsage = get_target_test_class(
    TargetUsage,
    config={
        "skalin_url": SERVER.url,
        "skalin_client_id": "sdk-client",
        "stream_sinks": dict.fromkeys(STANDARD_STREAMS, "identities"),
        "stream_maps": {s: {"user_id": "'sdk-user'"} for s in STANDARD_STREAMS},
        "max_retries": 0,
        "ledger": "",  # the SDK's cases share records: each must be sent, not found unchanged
    },
    custom_suites=[SingerTestSuite(kind="target", tests=[DeliversTheSample])],
)


def test_standard_cases_delivered_their_records_within_the_contract() -> None:
    """Runs after the class above (file order): the standard streams reached the server."""
    standard = [i for i in SERVER.identities if "email" not in i["identity"]]
    assert len(standard) > 20
    assert {i["identity"]["id"] for i in standard} == {"sdk-user"}
    assert SERVER.violations == []
