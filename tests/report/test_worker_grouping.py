"""Items run on other processes: read with their place, grouped by worker in show and report."""

from __future__ import annotations

import json
from typing import Any

from pflow_trace.report.stats import build_summary
from pflow_trace.report.timeline import build_timeline
from pflow_trace.tracefile.readers import read_trace_text
from trace_factory import parallel_trace

A, B = "tcp://10.0.0.5:40211", "tcp://10.0.0.6:40999"


def placed_trace(records_edit: Any = None) -> dict[str, Any]:
    """The factory's 20-item parallel batch, its items spread over two Dask workers.

    Worker A ran items 0-9 one after another (its own clock: each starts as the last ends),
    worker B ran items 10-19 two at a time.
    """
    trace = parallel_trace()
    work = next(event for event in trace["nodes"] if event["node_id"] == "work")
    for record in work["batch_items"]:
        index = record["index"]
        if index < 10:
            record.update(host="a", pid=11, worker_address=A)
            record["start_offset_ms"] = index * 200.0
            record["duration_ms"] = 150.0
        else:
            record.update(host="b", pid=22, worker_address=B)
            record["start_offset_ms"] = (index - 10) // 2 * 200.0
            record["duration_ms"] = 150.0
    if records_edit is not None:
        records_edit(work["batch_items"])
    return trace


def read(trace: dict[str, Any]) -> Any:
    return read_trace_text("placed.json", json.dumps(trace))


def test_places_are_read_and_summarised_per_worker() -> None:
    run = read(placed_trace())
    items = run.nodes[1].batch.items
    assert (items[0].host, items[0].pid, items[0].worker_address) == ("a", 11, A)
    assert items[0].place == A
    workers = build_summary([run]).runs[0].nodes[1].batch.workers
    assert [(w.worker, w.items, w.busy_ms) for w in workers] == [(A, 10, 1500.0), (B, 10, 1500.0)]


def test_the_waterfall_packs_each_workers_items_on_rows_of_its_own() -> None:
    run = read(placed_trace())
    summary = build_summary([run])
    columns = build_timeline(run, summary.runs[0]).nodes[1].items
    assert columns.lane_labels == [f"{A} · 0", f"{B} · 0", f"{B} · 1"]
    assert columns.lanes == 3
    assert set(columns.lane[:10]) == {0}  # one after another: one row
    assert set(columns.lane[10:]) == {1, 2}  # two at a time: two rows


def test_a_process_pool_item_is_named_by_host_and_pid_and_bad_values_are_dropped() -> None:
    def edit(records: list[dict[str, Any]]) -> None:
        for record in records:
            record["worker_address"] = None
        records[5]["pid"] = "not a pid"  # the careful reader keeps the rest of the record

    run = read(placed_trace(edit))
    items = run.nodes[1].batch.items
    assert items[0].place == "a pid 11"
    assert items[5].pid is None and items[5].host == "a" and items[5].place == "a pid ?"
    workers = build_summary([run]).runs[0].nodes[1].batch.workers
    assert [w.worker for w in workers] == ["a pid 11", "a pid ?", "b pid 22"]


def test_items_run_on_threads_have_no_place_and_keep_their_lanes() -> None:
    run = read(parallel_trace())
    summary = build_summary([run])
    assert summary.runs[0].nodes[1].batch.workers == []
    columns = build_timeline(run, summary.runs[0]).nodes[1].items
    assert columns.lane_labels == []
    assert columns.lane == [item.worker for item in run.nodes[1].batch.items]
