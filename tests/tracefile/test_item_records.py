"""``batch_items`` records: the text written straight for common records is exactly what the
generic encoder gives for the same record as a dict, and the batch's time split sums right."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from pflow_trace.observe.facts import ItemOutcome, WorkerPlace
from pflow_trace.tracefile.item_records import (
    _add_late_fields,
    _plain_text,
    _record,
    batch_items,
)
from pflow_trace.tracefile.spool import encode_json

#: Any text, lone surrogates and control characters included.
_ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=12)
_NS = st.integers(min_value=0, max_value=2**62)


def _preview(item: object) -> str:
    return f"made:{item}"


@st.composite
def outcomes(draw: st.DrawFn) -> ItemOutcome:
    start = draw(_NS)
    end = start + draw(st.integers(min_value=0, max_value=10**13))
    split = draw(st.none() | st.tuples(_NS, _NS))
    return ItemOutcome(
        index=draw(st.integers(min_value=0, max_value=10**9)),
        item=draw(st.integers()),
        status=draw(st.sampled_from(["success", "failed", "interrupted"])),
        attempts=draw(st.integers(min_value=1, max_value=50)),
        start_ns=start,
        end_ns=end,
        worker=draw(st.integers(min_value=0, max_value=1000)),
        error=draw(st.none() | _ANY_TEXT),
        span_id=draw(st.just(0) | st.integers(min_value=1, max_value=2**64 - 1)),
        preview=draw(st.none() | _ANY_TEXT),
        split_ns=split,
    )


@settings(max_examples=400)
@given(outcomes(), _NS, st.none() | st.lists(st.integers(0, 10**9), min_size=4, max_size=4))
def test_a_common_record_is_written_as_the_encoder_writes_its_dict(
    outcome: ItemOutcome, batch_start: int, time_us: list[int] | None
) -> None:
    record = _record(outcome, batch_start, False, _preview, lambda value: value)
    _add_late_fields(record, outcome, None, time_us)
    assert _plain_text(outcome, batch_start, time_us, _preview) == encode_json(record)


def test_records_come_in_index_order_with_every_field_and_the_batch_sums() -> None:
    outcomes_ = [
        ItemOutcome(1, "b", "failed", 2, 3_000_000, 9_000_000, 0, "boom", 7,
                    split_ns=(5_000_000, 1_000_000)),
        ItemOutcome(0, "a", "success", 1, 1_000_000, 3_000_000, 0, None, 6,
                    split_ns=(1_500_000, 0)),
        ItemOutcome(2, "c", "interrupted", 1, 2_000_000, 4_000_000, 1, "interrupted", 0),
    ]  # fmt: skip
    blocks, time_us = batch_items(outcomes_, None, _preview, lambda value: value, None)
    records = blocks.decoded()
    assert [record["index"] for record in records] == [0, 1, 2]
    assert records[0] == {
        "index": 0, "item": "made:a", "status": "success", "attempts": 1, "duration_ms": 2.0,
        "start_offset_ms": 0.0, "worker": 0, "error": None, "span_id": "0000000000000006",
        "time_us": [0, 1500, 0, 500],
    }  # fmt: skip
    assert records[1]["time_us"] == [0, 5000, 1000, 0]
    assert "time_us" not in records[2] and records[2]["span_id"] is None
    # Only the items that reported a split are summed.
    assert time_us == {
        "lane_wait": 0, "attempts": 6500, "retry_wait": 1000, "overhead": 500, "items": 2,
    }  # fmt: skip


def test_records_with_more_than_the_common_fields_keep_them_in_order() -> None:
    place = WorkerPlace("host-a", 41, "tcp://127.0.0.1:1")
    outcomes_ = [
        ItemOutcome(0, "a", "success", 1, 0, 1_000_000, 0, None, 5, place=place,
                    split_ns=(900_000, 0), provider_ns=700_000),
        ItemOutcome(1, "b", "success", 1, 0, 2_000_000, 1, None, 6, reused_ms=12.5,
                    llm_usage={"input_tokens": 3}),
    ]  # fmt: skip
    blocks, time_us = batch_items(outcomes_, ["k0", "k1"], _preview, lambda v: v, None)
    first, second = blocks.decoded()
    assert list(first) == [
        "index", "item", "status", "attempts", "duration_ms", "start_offset_ms", "worker",
        "error", "span_id", "host", "pid", "worker_address", "key", "time_us", "provider_us",
    ]  # fmt: skip
    assert (first["host"], first["pid"], first["key"], first["provider_us"]) == (
        "host-a", 41, "k0", 700,
    )  # fmt: skip
    assert second["reused"] is True and second["original_duration_ms"] == 12.5
    assert second["llm_usage"] == {"input_tokens": 3} and second["key"] == "k1"
    assert time_us == {
        "lane_wait": 0, "attempts": 900, "retry_wait": 0, "overhead": 100, "items": 1,
        "provider": 700,
    }  # fmt: skip


def test_an_empty_batch_has_no_records_and_no_split() -> None:
    blocks, time_us = batch_items([], None, _preview, lambda value: value, None)
    assert blocks.decoded() == [] and time_us is None


def test_a_large_batch_is_spooled_in_blocks_that_read_back_whole() -> None:
    outcomes_ = [
        ItemOutcome(index, index, "success", 1, index * 10, index * 10 + 5, 0, None, index + 1)
        for index in range(2500)
    ]
    blocks, _ = batch_items(outcomes_, None, _preview, lambda value: value, None)
    assert len(blocks.blocks) == 3 and len(blocks) == 2500
    decoded = json.loads("[" + ", ".join(blocks.texts()) + "]")
    assert [record["item"] for record in decoded[:3]] == ["made:0", "made:1", "made:2"]
