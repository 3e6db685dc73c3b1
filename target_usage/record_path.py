"""The SDK's per-record path without the steps that do nothing for this target.

singer-sdk 0.54 runs about fifteen steps per RECORD message (a copy of the record, the
stream map and flattening, sink lookup, metadata columns, validation and timestamp
parsing hooks, pre-processing, the key-property check, tallies, a debug log, the full
check, the record-age check): 3.6 us of the ~30 us a feature record costs here. When a
stream's only map passes records through unflattened and its sink is one of ours with no
key properties and no metadata columns to add, the copy, the map, validation and parsing
hooks (ours validate in `process_record` and parse nothing), pre-processing (not
overridden) and the key-property check are no-ops; `LeanRecordPath` skips them and keeps
every other step, in the SDK's order. Any other case goes through the SDK's own method.

A CLI run also tunes the garbage collector for a stream of short-lived records (see
`tune_gc_for_streaming`).
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any

from singer_sdk import Target
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.sinks import Sink

from target_usage.sinks import UsageSink

if TYPE_CHECKING:
    from singer_sdk.mapper import StreamMap

# What `Sink._remove_sdc_metadata_from_record` removes; checked first, as few records hold any.
SDC_METADATA_COLUMNS = frozenset(
    {
        "_sdc_extracted_at",
        "_sdc_received_at",
        "_sdc_batched_at",
        "_sdc_deleted_at",
        "_sdc_sequence",
        "_sdc_table_version",
        "_sdc_sync_started_at",
    }
)


# Allocations between young-generation collections (CPython's default: 700), and how many
# young and middle collections trigger the next older one (defaults 10, 10).
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc_for_streaming() -> None:
    """Freeze what start-up built, and collect young objects less often.

    Records and items are acyclic and short-lived, but the cyclic collector ran every 700
    allocations and its full collections walked every object singer-sdk's imports made:
    14 % of a run's CPU in perf (gc_collect_main, visit_decref, visit_reachable). Frozen
    start-up objects are never walked again; cycles are still collected, later.
    Measured on 50k features against the bench server, median of 3: 2.95 -> 2.44 s CPU,
    the same peak RSS.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class LeanRecordPath(Target):
    """Mixin for the target: a RECORD message in fewer steps where it may (the seam is
    `TargetSeams._process_record_message`, which calls `process_record_message`)."""

    @classmethod
    def invoke(cls, *args: Any, **kwargs: Any) -> None:
        """A command-line run: the garbage collector tuned, then the SDK's invoke."""
        tune_gc_for_streaming()
        super().invoke(*args, **kwargs)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Per stream: (its stream map, its sink, whether the lean path may take it).
        self._lean_decisions: dict[str, tuple[StreamMap, Sink | None, bool]] = {}
        super().__init__(*args, **kwargs)

    def process_record_message(self, message_dict: dict) -> None:
        sink = self._lean_sink(message_dict)
        if sink is None:
            super().process_record_message(message_dict)  # type: ignore[misc]
            return
        record = message_dict["record"]
        if not SDC_METADATA_COLUMNS.isdisjoint(record):
            sink._remove_sdc_metadata_from_record(record)
        context = sink._get_context(record)
        sink.tally_record_read()
        sink.process_record(record, context)
        sink.record_counter_metric.increment()
        sink._after_process_record(context)
        if sink.is_full:
            # The SDK's own line, at DEBUG: from this package it would pass the quiet filter.
            self.logger.debug(
                "Target sink for '%s' is full. Current size is '%s'. Draining...",
                sink.stream_name,
                sink.current_size,
            )
            self.drain_one(sink)
        self._handle_max_record_age()

    def _lean_sink(self, message_dict: dict) -> UsageSink | None:
        """The sink of a record the lean path may take; None sends it the SDK's way.

        Decided once per stream map and sink (a SCHEMA can replace either), not per record.
        """
        stream = message_dict.get("stream")
        maps = self.mapper.stream_maps.get(stream) if isinstance(stream, str) else None
        if not maps or len(maps) != 1 or not isinstance(message_dict.get("record"), dict):
            return None
        sink = self._sinks_active.get(maps[0].stream_alias)
        decided = self._lean_decisions.get(stream)
        if decided is None or decided[0] is not maps[0] or decided[1] is not sink:
            lean = isinstance(sink, UsageSink) and _passes_through(maps[0], sink)
            decided = self._lean_decisions[stream] = (maps[0], sink, lean)
        return sink if decided[2] else None


def _passes_through(stream_map: StreamMap, sink: UsageSink) -> bool:
    """Whether the SDK's steps the lean path skips would leave this sink's records as
    they are: checked, so an override added later sends records the SDK's way again."""
    sink_class = type(sink)
    return (
        type(stream_map) is SameRecordTransform
        and not stream_map.flattening_enabled
        and not sink.key_properties
        and not sink.include_sdc_metadata_properties
        and sink_class.get_validator is UsageSink.get_validator
        and sink_class._validate_and_parse is Sink._validate_and_parse
        and sink_class._parse_timestamps_in_record is UsageSink._parse_timestamps_in_record
        and sink_class.preprocess_record is Sink.preprocess_record
    )
