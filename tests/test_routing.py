"""Routing and settings: which sink a stream reaches, and config errors that say what to write."""

from __future__ import annotations

import pytest
from singer_sdk.exceptions import ConfigValidationError

from target_usage.target import TargetUsage, route
from tests.harness import record_message, schema_message
from tests.test_docs import settings_table


@pytest.mark.parametrize(
    ("stream", "sink"),
    [
        ("features", "features"),
        ("identities", "identities"),
        ("public-features", "features"),
        ("analytics.track", "track"),
        ("warehouse__traits", "traits"),
        ("db.public-alias", "alias"),
        ("unalias", "unalias"),
    ],
)
def test_stream_goes_to_the_sink_its_name_or_last_segment_names(stream: str, sink: str) -> None:
    assert route(stream, {}) == sink


def test_stream_sinks_wins_over_the_name() -> None:
    assert route("public-features", {"public-features": "identities"}) == "identities"
    assert route("usage_rows", {"usage_rows": "features"}) == "features"


@pytest.mark.parametrize("stream", ["orders", "featuresx", "my_features", "features-raw"])
def test_other_names_are_unmapped(stream: str) -> None:
    assert route(stream, {}) is None


def test_unmapped_stream_fails_with_how_to_map_it(skalin_config: dict) -> None:
    target = TargetUsage(config=skalin_config)
    with pytest.raises(ConfigValidationError) as caught:
        target._process_schema_message(schema_message("orders"))
    message = str(caught.value)
    assert "'orders'" in message
    assert '"stream_sinks": {"orders": "<sink>"}' in message
    assert "unmapped_streams" in message


def test_unmapped_stream_is_skipped_with_a_warning_when_asked(
    skalin, skalin_config: dict, run_target
) -> None:
    config = {**skalin_config, "unmapped_streams": "skip"}
    messages = [
        schema_message("orders"),
        record_message("orders", {"id": 1}),
        schema_message("features"),
        record_message("features", {"email": "a@x.io", "name": "x"}),
        {"type": "STATE", "value": {"done": True}},
    ]
    run = run_target(config, messages)
    assert "Stream 'orders' matches no sink and is skipped" in run.stderr
    assert "stream 'orders' -> (skipped: unmapped): 1 record in" in run.stderr
    assert len(skalin.features) == 1
    assert run.states == [{"done": True}]


def test_stream_maps_rename_before_routing(skalin, skalin_config: dict, run_target) -> None:
    config = {
        **skalin_config,
        "stream_maps": {
            "usage_rows": {"__alias__": "features", "feature_name": None, "name": "feature_name"}
        },
    }
    messages = [
        schema_message(
            "usage_rows",
            {
                "type": "object",
                "properties": {"email": {"type": "string"}, "feature_name": {"type": "string"}},
            },
        ),
        record_message("usage_rows", {"email": "a@x.io", "feature_name": "export"}),
    ]
    run_target(config, messages)
    assert [f["name"] for f in skalin.features] == ["export"]


def test_a_stream_routed_to_skalin_needs_the_client_id(tmp_path) -> None:
    target = TargetUsage(config={"dead_letter_path": str(tmp_path / "r.jsonl")})
    with pytest.raises(ConfigValidationError) as caught:
        target._process_schema_message(schema_message("public-features"))
    assert caught.value.errors == [
        "stream 'public-features' routes to 'features', which needs 'skalin_client_id': add it "
        "to the config (or TARGET_USAGE_SKALIN_CLIENT_ID)"
    ]


def test_stream_sinks_are_checked_at_start_up() -> None:
    with pytest.raises(ConfigValidationError) as caught:
        TargetUsage(config={"stream_sinks": {"rows": "identities"}})
    assert "needs 'skalin_client_id'" in caught.value.errors[0]


def test_an_unknown_sink_in_stream_sinks_is_refused() -> None:
    with pytest.raises(ConfigValidationError):
        TargetUsage(config={"stream_sinks": {"rows": "events"}, "skalin_client_id": "c"})


@pytest.mark.parametrize(
    "url", ["http://collect.skalin.io", "ftp://127.0.0.1", "collect.skalin.io", "http://10.0.0.5"]
)
def test_plain_http_is_refused_except_on_loopback(url: str) -> None:
    with pytest.raises(ConfigValidationError) as caught:
        TargetUsage(config={"skalin_url": url, "skalin_client_id": "c"})
    assert "use an https:// URL" in caught.value.errors[0]


@pytest.mark.parametrize(
    "url",
    ["https://collect.skalin.io", "http://127.0.0.1:8080", "http://localhost", "http://[::1]:9"],
)
def test_https_and_loopback_urls_are_accepted(url: str) -> None:
    TargetUsage(config={"skalin_url": url, "skalin_client_id": "c"})


@pytest.mark.parametrize(
    ("setting", "value"),
    [("invalid_records", "drop"), ("max_retries", -1), ("skalin_requests_per_second", 500)],
)
def test_out_of_range_settings_fail_fast(setting: str, value: object) -> None:
    with pytest.raises(ConfigValidationError):
        TargetUsage(config={"skalin_client_id": "c", setting: value})


def test_about_markdown_lists_every_setting_with_type_and_allowed_values() -> None:
    about = settings_table()
    for setting in TargetUsage.config_jsonschema["properties"]:
        assert f"| {setting} |" in about
    assert "one of `fail`, `skip`, `dead_letter`" in about


def test_a_header_setting_that_http_cannot_carry_is_refused_at_start_up() -> None:
    config = {
        "hull_organization": "acme.hullapp.io",
        "hull_connector_id": "c",
        "hull_connector_secret": "clé-secrète-→",
    }
    with pytest.raises(ConfigValidationError) as caught:
        TargetUsage(config=config)
    assert caught.value.errors == [
        "'hull_connector_secret' holds characters an HTTP header cannot carry (only Latin-1 "
        "text): check it was copied whole"
    ]
    assert "clé" not in str(caught.value)
