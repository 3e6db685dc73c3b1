"""The sink catalogue is the one declaration of the sinks and their APIs: the settings'
allowed values, the required settings, the sink classes and `api_for` all follow it."""

from __future__ import annotations

from pathlib import Path

from target_usage import settings
from target_usage.catalogue import API_REQUIRED, SINK_APIS, SINKS
from target_usage.sinks import SINK_CLASSES
from target_usage.target import TargetUsage
from tests.harness import hull_settings, skalin_settings


def test_stream_sinks_allows_exactly_the_catalogue_sinks() -> None:
    stream_sinks = settings.CONFIG_SCHEMA["properties"]["stream_sinks"]
    assert stream_sinks["additionalProperties"]["enum"] == list(SINKS)


def test_each_sink_requires_the_settings_of_its_api() -> None:
    assert {sink: API_REQUIRED[SINK_APIS[sink]] for sink in SINKS} == settings.REQUIRED_BY_SINK


def test_each_sink_has_its_class_and_delivers_to_its_api(tmp_path: Path) -> None:
    assert {sink: cls.kind for sink, cls in SINK_CLASSES.items()} == {s: s for s in SINKS}
    config = {
        **skalin_settings("http://127.0.0.1:9", tmp_path),
        **hull_settings("http://127.0.0.1:9", tmp_path),
        "dry_run": True,
    }
    target = TargetUsage(config=config)
    assert {sink: target.api_for(sink).name for sink in SINKS} == SINK_APIS
