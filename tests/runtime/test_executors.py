"""Batch items on other processes: the local process pool and a Dask ``LocalCluster``.

Every case runs real worker processes. The span tree must have the same shape as on threads,
with item spans made in the workers as children of the batch span; ``batch_items`` must match
the item spans one to one; retries, ``continue``, ``fail_fast``, falsy items, a worker killed
mid-item and Ctrl-C must behave as on threads. One ``LocalCluster`` (two worker processes)
serves the whole module: starting one costs seconds on this machine.
"""

from __future__ import annotations

import _thread
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from executor_runs import batch_items, batch_workflow, item_spans, run_traced, shape, table_rows
from pflow_trace.observe import conventions as conv
from pflow_trace.report.stats import build_summary
from pflow_trace.report.timeline import build_timeline
from pflow_trace.tracefile.readers import read_trace

EXECUTORS = ("processes", "dask")

#: Falsy items travel as themselves; item 4 always fails; item 5 fails its first attempt only.
MIXED_CODE = """
import os, pathlib
if x == 4:
    raise ValueError("four is refused")
flag = pathlib.Path(marker) / "five-seen"
if x == 5 and not flag.exists():
    flag.write_text("1")
    raise RuntimeError("five fails once")
result = {"x": x, "pid": os.getpid()}
"""
MIXED_ITEMS: list[Any] = [0, "", None, False, 4, 5]


@pytest.fixture(scope="module")
def dask_scheduler() -> Iterator[str]:
    """A two-worker ``LocalCluster`` that reports a dead worker at once (no silent re-run)."""
    from pflow_trace.runtime.executors.dask_start import start_local_cluster

    cluster = start_local_cluster(2)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def item_span_keys(span: Any, leave_out: set[str]) -> tuple[Any, ...]:
    """What a second item-span builder would change: attribute keys, event shapes, status."""
    events = [(event.name, sorted(event.attributes)) for event in span.events]
    return (sorted(set(span.attributes) - leave_out), events, span.status.status_code.name)


def scheduler_for(executor: str, request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("dask_scheduler") if executor == "dask" else None


def marker_dir(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.mkdir()
    return str(path)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_span_tree_and_items_match_threads(
    executor: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    scheduler = scheduler_for(executor, request)
    runs = {}
    for name in ("threads", executor):
        workflow = batch_workflow(
            MIXED_CODE,
            MIXED_ITEMS,
            inputs={"marker": marker_dir(tmp_path, name)},
            max_retries=2,
            error_handling="continue",
        )
        runs[name] = run_traced(workflow, tmp_path / f"{name}.trace.json", name, scheduler)
    (local, local_spans, _), (remote, remote_spans, document) = runs["threads"], runs[executor]

    assert remote.status == local.status == "degraded"
    assert shape(remote_spans) == shape(local_spans)  # names, statuses, attempts, retries
    # One builder for item spans wherever they are made: the same keys, events and statuses.
    place_keys = {conv.ATTR_BATCH_HOST, conv.ATTR_BATCH_PID, conv.ATTR_BATCH_WORKER_ADDRESS}
    assert [item_span_keys(s, place_keys) for s in item_spans(remote_spans)] == [
        item_span_keys(s, place_keys) for s in item_spans(local_spans)
    ]
    assert [r and {"x": r["result"]["x"]} for r in remote.outputs["results"]] == [
        r and {"x": r["result"]["x"]} for r in local.outputs["results"]
    ]
    assert remote.outputs["errors"][0]["error"] == "ValueError: four is refused"
    event = next(e for e in document["nodes"] if e["node_id"] == "work")
    assert event["template_resolutions"]["inputs"]["template"]["x"] == "${item}"

    # Parents across processes: every item span is a child of the batch span, made elsewhere.
    batch_span = next(s for s in remote_spans if s.name == "work batch")
    assert batch_span.attributes[conv.ATTR_BATCH_EXECUTOR] == executor
    items = item_spans(remote_spans)
    assert {s.parent.span_id for s in items} == {batch_span.context.span_id}
    assert {s.context.trace_id for s in remote_spans} == {batch_span.context.trace_id}
    pids = {s.attributes[conv.ATTR_BATCH_PID] for s in items}
    assert os.getpid() not in pids
    assert len(pids) == 2  # max_concurrent 2: both lanes (workers) took items
    results = [r for r in remote.outputs["results"] if r is not None]
    assert {r["result"]["pid"] for r in results} == pids
    if executor == "dask":
        assert all(s.attributes[conv.ATTR_BATCH_WORKER_ADDRESS] for s in items)

    # batch_items, the span table and the exported spans describe the same items.
    records = batch_items(document)
    assert [r["index"] for r in records] == list(range(len(MIXED_ITEMS)))
    assert [int(r["span_id"], 16) for r in records] == [s.context.span_id for s in items]
    assert [r["pid"] for r in records] == [s.attributes[conv.ATTR_BATCH_PID] for s in items]
    assert [r["attempts"] for r in records] == [1, 1, 1, 1, 2, 2]
    rows = table_rows(document)
    assert len(rows) == len(remote_spans)
    assert {row["span_id"] for row in rows} == {f"{s.context.span_id:016x}" for s in remote_spans}
    for record, span in zip(records, items, strict=True):  # one timing for every view
        assert record["duration_ms"] == round((span.end_time - span.start_time) / 1e6, 3)

    # max_concurrent keeps its meaning: never more than 2 items at once, lanes 0 and 1.
    assert {r["worker"] for r in records} == {0, 1}
    edges = sorted(
        [(r["start_offset_ms"], 1) for r in records]
        + [(r["start_offset_ms"] + r["duration_ms"], -1) for r in records]
    )
    in_flight = peak = 0
    for _, step in edges:
        in_flight += step
        peak = max(peak, in_flight)
    assert peak <= 2

    # show and the report group the items by worker process.
    run = read_trace(tmp_path / f"{executor}.trace.json")
    summary = build_summary([run])
    workers = summary.runs[0].nodes[0].batch.workers
    assert len(workers) == 2 and sum(w.items for w in workers) == len(MIXED_ITEMS)
    assert sum(w.failed for w in workers) == 1
    timeline = build_timeline(run, summary.runs[0])
    columns = timeline.nodes[0].items
    assert len(columns.lane_labels) >= 2
    assert {label.split(" · ")[0] for label in columns.lane_labels} == {w.worker for w in workers}


@pytest.mark.parametrize("executor", EXECUTORS)
def test_fail_fast_stops_handing_out_items(
    executor: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    code = "if x == 1:\n    raise ValueError('one fails')\nresult = x"
    workflow = batch_workflow(code, list(range(6)), max_concurrent=1)
    outcome, spans, document = run_traced(
        workflow, tmp_path / "t.trace.json", executor, scheduler_for(executor, request)
    )
    assert outcome.status == "failed"
    assert outcome.result.error == "node 'work' failed: item 1 failed: ValueError: one fails"
    assert [r["index"] for r in batch_items(document)] == [0, 1]
    assert len(item_spans(spans)) == 2


KILL_CODE = """
import os, pathlib, signal
flag = pathlib.Path(marker) / f"killed-{x}"
if x == 1 and not flag.exists():
    flag.write_text(str(os.getpid()))
    os.kill(os.getpid(), signal.SIGKILL) if how == "kill" else os._exit(3)
result = os.getpid()
"""


@pytest.mark.parametrize(("executor", "how"), [("processes", "kill"), ("dask", "exit")])
def test_a_worker_killed_mid_item_is_a_failed_then_retried_attempt(
    executor: str, how: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    marker = marker_dir(tmp_path, "marks")
    workflow = batch_workflow(
        KILL_CODE, [0, 1, 2], inputs={"marker": marker, "how": how}, max_retries=2
    )
    outcome, spans, document = run_traced(
        workflow, tmp_path / "t.trace.json", executor, scheduler_for(executor, request)
    )
    assert outcome.status == "success", outcome.result.error
    dead_pid = int((Path(marker) / "killed-1").read_text())
    records = batch_items(document)
    assert [r["attempts"] for r in records] == [1, 2, 1]
    assert outcome.outputs["results"][1]["result"] != dead_pid  # ran again, elsewhere
    span = item_spans(spans)[1]
    assert span.attributes[conv.ATTR_BATCH_ATTEMPTS] == 2
    (retry,) = [event for event in span.events if event.name == conv.EVENT_RETRY]
    assert retry.attributes[conv.ATTR_RETRY_ATTEMPT] == 1
    assert "died" in retry.attributes[conv.ATTR_RETRY_ERROR]
    if executor == "processes":
        assert (
            f"worker process {dead_pid} died (killed by SIGKILL)"
            == (retry.attributes[conv.ATTR_RETRY_ERROR])
        )
    assert [int(r["span_id"], 16) for r in records] == [
        s.context.span_id for s in item_spans(spans)
    ]


def test_a_worker_death_on_the_last_attempt_fails_the_item(tmp_path: Path) -> None:
    marker = marker_dir(tmp_path, "marks")
    workflow = batch_workflow(
        KILL_CODE, [0, 1, 2], inputs={"marker": marker, "how": "exit"}, error_handling="continue"
    )
    outcome, spans, document = run_traced(workflow, tmp_path / "t.trace.json", "processes")
    assert outcome.status == "degraded"
    dead_pid = int((Path(marker) / "killed-1").read_text())
    record = batch_items(document)[1]
    assert record["status"] == "failed" and record["attempts"] == 1
    assert record["error"] == f"worker process {dead_pid} died (exit code 3)"
    assert record["pid"] == dead_pid
    span = item_spans(spans)[1]  # made by the driver, since no worker was left to
    assert int(record["span_id"], 16) == span.context.span_id
    assert span.status.description == record["error"]
    assert span.parent.span_id == next(s for s in spans if s.name == "work batch").context.span_id


#: Item 3 kills its worker once the items after it are queued; every other item is innocent.
KILLER_CODE = """
import os, pathlib, time
if x == 3:
    with open(pathlib.Path(marker) / "killer-runs", "a") as runs:
        runs.write("ran\\n")
    time.sleep(0.5)
    os._exit(3)
time.sleep(0.3)
result = x
"""


def assert_only_the_killer_failed(
    document: dict[str, Any], spans: list[Any], count: int, marker: str
) -> None:
    # It said it started before it died, so its death was its one attempt (not resent).
    assert (Path(marker) / "killer-runs").read_text() == "ran\n"
    records = {record["index"]: record for record in batch_items(document)}
    assert sorted(records) == list(range(count))
    assert {i: r["status"] for i, r in records.items()} == {
        i: "failed" if i == 3 else "success" for i in range(count)
    }
    assert {r["attempts"] for r in records.values()} == {1}  # no innocent was sent twice
    assert records[3]["error"].startswith("the Dask worker running the item died")
    assert [int(records[i]["span_id"], 16) for i in range(count)] == [
        s.context.span_id for s in item_spans(spans)
    ]


def test_an_item_that_kills_its_dask_worker_fails_only_itself(
    tmp_path: Path, dask_scheduler: str
) -> None:
    """Four items in flight on two one-thread workers: Dask used to queue one behind each
    running item, and item 3's death failed the item queued on its worker with it."""
    marker = marker_dir(tmp_path, "marks")
    workflow = batch_workflow(
        KILLER_CODE,
        list(range(8)),
        inputs={"marker": marker},
        max_concurrent=4,
        error_handling="continue",
    )
    outcome, spans, document = run_traced(
        workflow, tmp_path / "t.trace.json", "dask", dask_scheduler
    )
    assert outcome.status == "degraded", outcome.result.error
    assert_only_the_killer_failed(document, spans, 8, marker)


@pytest.mark.slow
def test_the_job_outlives_the_death_of_the_only_worker_holding_it(tmp_path: Path) -> None:
    """On a one-worker cluster the batch's job dies with the worker; it is sent again to the
    worker's replacement instead of failing the other items for a lost dependency."""
    from pflow_trace.runtime.executors.dask_start import start_local_cluster

    marker = marker_dir(tmp_path, "marks")
    cluster = start_local_cluster(1)
    try:
        workflow = batch_workflow(
            KILLER_CODE,
            list(range(6)),
            inputs={"marker": marker},
            max_concurrent=3,
            error_handling="continue",
        )
        outcome, spans, document = run_traced(
            workflow, tmp_path / "t.trace.json", "dask", cluster.scheduler_address
        )
    finally:
        cluster.close()
    assert outcome.status == "degraded", outcome.result.error
    assert_only_the_killer_failed(document, spans, 6, marker)


BUSY_CODE = """
import os, pathlib, time
pathlib.Path(marker, f"started-{x}").write_text(str(os.getpid()))
deadline = time.time() + 60
while time.time() < deadline:
    pass
result = x
"""


def interrupt_when_started(marker: Path, count: int) -> threading.Thread:
    """Ctrl-C for the main thread once ``count`` items have started on their workers."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        while len(list(marker.glob("started-*"))) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        _thread.interrupt_main()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def assert_started_items_recorded_interrupted(
    marker: Path, spans: list[Any], document: dict[str, Any]
) -> None:
    """Each item that started on a worker has one ``interrupted`` record and one span,
    made by the driver (the worker was stopped), the same as on threads."""
    started = sorted(int(path.name.split("-")[1]) for path in marker.glob("started-*"))
    records = batch_items(document)
    assert [record["item"] for record in records] == [str(x) for x in started]
    assert {record["status"] for record in records} == {"interrupted"}
    assert {record["error"] for record in records} == {"interrupted"}
    by_id = {span.context.span_id: span for span in item_spans(spans)}
    assert sorted(by_id) == sorted(int(record["span_id"], 16) for record in records)
    batch_span = next(span for span in spans if span.name == "work batch")
    for span in by_id.values():
        assert span.status.description == "interrupted"
        assert span.parent.span_id == batch_span.context.span_id
    rows = {row["span_id"] for row in table_rows(document)}
    assert {record["span_id"] for record in records} <= rows


def test_ctrl_c_kills_the_worker_processes(tmp_path: Path) -> None:
    marker = Path(marker_dir(tmp_path, "marks"))
    workflow = batch_workflow(BUSY_CODE, [1, 2, 3, 4], inputs={"marker": str(marker)})
    watcher = interrupt_when_started(marker, 2)
    outcome, spans, document = run_traced(workflow, tmp_path / "t.trace.json", "processes")
    watcher.join()
    assert outcome.status == "interrupted"
    assert document["final_status"] == "interrupted"
    assert_started_items_recorded_interrupted(marker, spans, document)
    pids = [int(path.read_text()) for path in marker.glob("started-*")]
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_ctrl_c_leaves_no_task_running_on_the_cluster(tmp_path: Path, dask_scheduler: str) -> None:
    from distributed import Client

    from pflow_trace.runtime.executors.dask_cluster import running_items

    marker = Path(marker_dir(tmp_path, "marks"))
    workflow = batch_workflow(BUSY_CODE, [1, 2, 3, 4], inputs={"marker": str(marker)})
    watcher = interrupt_when_started(marker, 2)
    outcome, spans, document = run_traced(
        workflow, tmp_path / "t.trace.json", "dask", dask_scheduler
    )
    watcher.join()
    assert outcome.status == "interrupted"
    assert document["final_status"] == "interrupted"
    assert len(list(marker.glob("started-*"))) == 2  # the queued items never started
    assert_started_items_recorded_interrupted(marker, spans, document)
    with Client(dask_scheduler, set_as_default=False) as client:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            busy = sum(client.run(running_items).values())
            queued = sum(map(len, client.processing().values()))
            if busy == 0 and queued == 0:
                break
            time.sleep(0.1)
        assert (busy, queued) == (0, 0)


def test_the_default_lean_path_keeps_worker_spans_in_the_span_table(tmp_path: Path) -> None:
    """No exporter: spans go straight into the span table; shipped ones must land there too."""
    import pflow_trace
    from pflow_trace.observe.export_settings import resolve_export_settings

    workflow = {
        "ir_version": "0.1.0",
        "name": "lean",
        "nodes": [
            {
                "id": "sq",
                "type": "code",
                "params": {"code": "result = x * x", "inputs": {"x": "${item}"}},
                "batch": {"items": [1, 2, 3, 4], "parallel": True, "max_concurrent": 2},
            }
        ],
    }
    tables = {}
    for executor in ("threads", "processes"):
        options = pflow_trace.TraceOptions(
            trace_file=str(tmp_path / f"{executor}.trace.json"),
            export=resolve_export_settings("none"),
            executor=executor,
        )
        outcome = pflow_trace.run(workflow, None, options)
        assert outcome.status == "success"
        document = json.loads(outcome.trace_path.read_text(encoding="utf-8"))
        tables[executor] = document["otel"]["spans"]
    names = {
        executor: sorted(table["kinds"][row[0]]["name"] for row in table["rows"])
        for executor, table in tables.items()
    }
    assert names["processes"] == names["threads"]
