"""Span rows and ``batch_items`` are spooled to an unnamed file as a run goes, and the trace
file written from the spool is the same document the run would have held in memory."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from pflow_trace import api
from pflow_trace.api import TraceOptions
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.facts import ItemOutcome, RunObserver
from pflow_trace.tracefile import spantable
from pflow_trace.tracefile.spool import Spool, TextBlocks, encode_elements
from pflow_trace.tracefile.writer import iter_json_chunks

ITEMS = [{"n": n, "text": f"ünïcode ✓ {n}", "nested": [n, None, True]} for n in range(2500)]


def blocks_of(values: list[Any], spool: Spool | None, size: int = 1000) -> TextBlocks:
    blocks = TextBlocks(spool)
    for start in range(0, len(values), size):
        chunk = values[start : start + size]
        blocks.append_block(encode_elements(chunk), len(chunk))
    return blocks


def written(value: Any) -> Any:
    return json.loads("".join(iter_json_chunks(value)))


def test_blocks_are_written_as_one_array_and_read_back_whole(tmp_path: Path) -> None:
    blocks = blocks_of(ITEMS, Spool(tmp_path))
    assert len(blocks) == len(ITEMS)
    assert all(isinstance(block, tuple) for block in blocks.blocks)  # on disk, not in memory
    assert blocks.decoded() == ITEMS
    assert written({"nodes": [{"batch_items": blocks}]}) == {"nodes": [{"batch_items": ITEMS}]}


def test_an_empty_list_is_an_empty_array(tmp_path: Path) -> None:
    empty = TextBlocks(Spool(tmp_path))
    empty.append_block("", 0)
    assert written({"rows": empty}) == {"rows": []} and empty.decoded() == []


def test_the_spool_leaves_nothing_in_the_directory(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    blocks_of(ITEMS, spool)
    assert list(tmp_path.iterdir()) == []  # unnamed: nothing to clean up, even after a crash
    spool.close()


def test_a_full_disk_keeps_the_blocks_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path)
    first = blocks_of(ITEMS[:1000], spool)

    def disk_full(*args: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", disk_full)
    blocks = blocks_of(ITEMS, spool)
    assert spool.failure == "No space left on device"
    assert all(isinstance(block, str) for block in blocks.blocks)
    assert blocks.decoded() == ITEMS and first.decoded() == ITEMS[:1000]


def test_rewriting_changes_only_the_blocks_it_must(tmp_path: Path) -> None:
    blocks = blocks_of(ITEMS, Spool(tmp_path))

    def hide_one(item: dict[str, Any]) -> dict[str, Any]:
        return {**item, "text": "[REDACTED]"} if item["n"] == 1500 else item

    rewritten = blocks.rewritten(hide_one)
    assert rewritten.decoded() == [hide_one(item) for item in ITEMS]
    assert rewritten.blocks[0] == blocks.blocks[0] and rewritten.blocks[2] == blocks.blocks[2]
    assert rewritten.blocks[1] != blocks.blocks[1]
    assert blocks.decoded() == ITEMS  # the original is untouched


def batch(count: int) -> dict[str, Any]:
    return {
        "ir_version": "0.1.0",
        "name": "spooled",
        "nodes": [
            {
                "id": "work",
                "type": "code",
                "params": {"code": "result = x * 2", "inputs": {"x": "${item}"}},
                "batch": {"items": list(range(count))},
            }
        ],
    }


class RowsAsItemsFinish(RunObserver):
    """Reads how many span rows the recorder has spooled each time an item finishes."""

    def __init__(self) -> None:
        self.recorder: spantable.SpanRecorder | None = None
        self.spooled_rows: list[int] = []
        self.waiting_rows: list[int] = []

    def item_finished(self, node_id: str, outcome: ItemOutcome, total: int) -> None:
        assert self.recorder is not None
        self.spooled_rows.append(len(self.recorder.rows))
        self.waiting_rows.append(len(self.recorder._rows))


def test_a_run_spools_its_rows_as_items_finish_and_writes_the_same_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher = RowsAsItemsFinish()

    class WatchedRecorder(spantable.SpanRecorder):
        def __init__(self, spool: Spool | None = None) -> None:
            super().__init__(spool)
            watcher.recorder = self

    monkeypatch.setattr(api, "SpanRecorder", WatchedRecorder)
    count = 3 * spantable.ROWS_PER_BLOCK // 4 * 2  # six blocks of rows (four spans an item)
    target = tmp_path / "traces" / "run.json"
    outcome = api.run(batch(count), {}, TraceOptions(trace_file=str(target), observers=[watcher]))

    assert max(watcher.waiting_rows) < spantable.ROWS_PER_BLOCK  # never a run's worth held
    assert watcher.spooled_rows[-1] >= 4 * count - spantable.ROWS_PER_BLOCK
    assert watcher.spooled_rows[0] == 0 < watcher.spooled_rows[count // 2]
    # The trace and its resume checkpoint; no spool file is left behind.
    left = sorted(path.name for path in target.parent.iterdir())
    assert left == ["run.json", "run.json.checkpoint"]

    on_disk = json.loads(target.read_text(encoding="utf-8"))
    assert on_disk == outcome.document
    assert len(on_disk["otel"]["spans"]["rows"]) == 4 * count + 3  # + run, node, batch
    items = on_disk["nodes"][0]["batch_items"]
    assert [item["index"] for item in items] == list(range(count))
    assert [item["item"] for item in items[:3]] == ["0", "1", "2"]  # the span's own preview
    row_preview = {
        row[1]: (row[7] or {}).get(conv.ATTR_BATCH_ITEM_PREVIEW)
        for row in on_disk["otel"]["spans"]["rows"]
    }
    assert all(row_preview[item["span_id"]] == item["item"] for item in items)
