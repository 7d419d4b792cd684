"""Async lanes: a parallel ``http`` batch as tasks on one event loop, the same as on threads.

Every case runs a real batch against a loopback server, once on async lanes (the automatic
choice for ``http``) and, where the claim is "as on threads", once on thread lanes
(``async_lanes=False``): the span tree, the item spans' keys and events, the ``batch_items``
records, retries (with ``Retry-After``), ``fail_fast`` and Ctrl-C must agree.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from executor_runs import batch_items, item_spans, run_traced, shape, table_rows
from loopback import serving
from pflow_trace import api
from pflow_trace.api import TraceOptions
from pflow_trace.errors import WorkflowValidationError
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.nodes.base import WorkflowNode
from pflow_trace.nodes.registry import NodeRegistry
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.export_settings import resolve_export_settings

LANES = ("async", "threads")


class Server:
    """What the loopback server saw, and how it answers: by the ``x`` in the path."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: dict[str, int] = {}  # path -> requests
        self.open_now = 0
        self.peak_open = 0
        self.release = threading.Event()  # held requests (``/hold``) wait for it

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with server.lock:
                    count = server.seen[self.path] = server.seen.get(self.path, 0) + 1
                    server.open_now += 1
                    server.peak_open = max(server.peak_open, server.open_now)
                try:
                    status, headers, payload = server.answer(self.path, count)
                    if self.path.startswith("/cookie/"):  # what came with the request
                        payload = {"seen": self.headers.get("Cookie")}
                        headers = {"Set-Cookie": "session=s3cret; Path=/"}
                finally:
                    with server.lock:
                        server.open_now -= 1
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def answer(self, path: str, count: int) -> tuple[int, dict[str, str], Any]:
        if path.startswith("/fails/4"):
            return 500, {}, {"error": "four is refused"}
        if path.startswith("/fails/5") and count == 1:
            return 503, {}, {"error": "five fails once"}
        if path.startswith("/busy/") and count == 1:
            return 429, {"Retry-After": path.rsplit("/", 1)[1]}, {"error": "slow down"}
        if path.startswith("/hold/"):
            self.release.wait(30)
        if path.startswith("/wide/"):  # wait until many are open at once (or give up)
            deadline = time.monotonic() + 10
            while self.peak_open < 150 and time.monotonic() < deadline:
                time.sleep(0.01)
        return 200, {}, {"path": path}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Server]]:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    state = Server()
    with serving(state.handler()) as url:
        try:
            yield url, state
        finally:
            state.release.set()


def http_batch(url: str, items: list[Any], **batch: Any) -> dict[str, Any]:
    """An ``http`` batch over ``items`` (``${item}`` ends the URL) and an ``echo`` after it."""
    block: dict[str, Any] = {"items": items, "parallel": True, "max_concurrent": 2, **batch}
    return validate_workflow(
        {
            "ir_version": "0.1.0",
            "name": "async-lanes",
            "nodes": [
                {
                    "id": "work",
                    "type": "http",
                    "params": {"url": url + "${item}", "timeout": 30},
                    "batch": block,
                },
                {"id": "after", "type": "echo", "params": {"count": "${work.success_count}"}},
            ],
            "outputs": {"results": "${work.results}", "errors": "${work.errors}"},
        }
    )


def run_on(lanes: str, workflow: dict[str, Any], trace_file: Path) -> Any:
    return run_traced(workflow, trace_file, async_lanes=lanes == "async")


def item_span_keys(span: Any) -> tuple[Any, ...]:
    events = [(event.name, sorted(event.attributes)) for event in span.events]
    return (sorted(span.attributes), events, span.status.status_code.name)


def answer(result: dict[str, Any] | None) -> Any:
    """An item's result without what differs from one request to the next (time, date)."""
    if result is None:
        return None
    headers = {k: v for k, v in result["response_headers"].items() if k != "Date"}
    kept = {k: v for k, v in result.items() if k != "response_time"}
    return {**kept, "response_headers": headers}


def comparable(record: dict[str, Any]) -> tuple[Any, ...]:
    return (record["index"], record["item"], record["status"], record["attempts"], record["error"])


def test_an_http_batch_on_async_lanes_matches_threads(
    server: tuple[str, Server], tmp_path: Path
) -> None:
    url, _ = server
    items = [f"/fails/{x}" for x in range(6)]
    runs = {}
    for lanes in LANES:
        workflow = http_batch(url, items, max_retries=2, error_handling="continue")
        runs[lanes] = run_on(lanes, workflow, tmp_path / f"{lanes}.trace.json")
        server[1].seen.clear()  # item 5 fails its first attempt on each run
    (a_run, a_spans, a_doc), (t_run, t_spans, t_doc) = runs["async"], runs["threads"]

    assert a_run.status == t_run.status == "degraded"
    assert shape(a_spans) == shape(t_spans)  # names, statuses, attempts, retries
    assert [item_span_keys(s) for s in item_spans(a_spans)] == [
        item_span_keys(s) for s in item_spans(t_spans)
    ]
    a_records, t_records = batch_items(a_doc), batch_items(t_doc)
    assert [comparable(r) for r in a_records] == [comparable(r) for r in t_records]
    assert [r["attempts"] for r in a_records] == [1, 1, 1, 1, 2, 2]  # a batch retries any failure
    assert a_records[4]["error"].startswith(f"HTTP 500 from {url}/fails/4")
    assert [answer(r) for r in a_run.outputs["results"]] == [
        answer(r) for r in t_run.outputs["results"]
    ]
    assert a_run.outputs["results"][0]["response"] == {"path": "/fails/0"}

    # The batch span (and so the trace file's span table) says which lanes ran the items.
    for spans, doc, lanes in ((a_spans, a_doc, "async"), (t_spans, t_doc, "threads")):
        batch_span = next(s for s in spans if s.name == "work batch")
        assert batch_span.attributes[conv.ATTR_BATCH_LANES] == lanes
        row = next(r for r in table_rows(doc) if r["name"] == "work batch")
        assert row["attributes"][conv.ATTR_BATCH_LANES] == lanes

    # One record per item span, one timing for every view, lanes 0 and 1, never > 2 at once.
    spans = item_spans(a_spans)
    assert [int(r["span_id"], 16) for r in a_records] == [s.context.span_id for s in spans]
    for record, span in zip(a_records, spans, strict=True):
        assert record["duration_ms"] == round((span.end_time - span.start_time) / 1e6, 3)
        assert (
            span.parent.span_id
            == next(s for s in a_spans if s.name == "work batch").context.span_id
        )
    assert {r["worker"] for r in a_records} == {0, 1}
    assert peak_in_flight(a_records) <= 2


def peak_in_flight(records: list[dict[str, Any]]) -> int:
    edges = sorted(
        [(r["start_offset_ms"], 1) for r in records]
        + [(r["start_offset_ms"] + r["duration_ms"], -1) for r in records]
    )
    in_flight = peak = 0
    for _, step in edges:
        in_flight += step
        peak = max(peak, in_flight)
    return peak


@pytest.mark.parametrize("lanes", LANES)
def test_retry_after_sets_the_wait_before_the_next_attempt(
    lanes: str, server: tuple[str, Server], tmp_path: Path
) -> None:
    url, _ = server
    workflow = http_batch(url, ["/busy/1", "/busy/61"], max_retries=2, error_handling="continue")
    outcome, spans, document = run_on(lanes, workflow, tmp_path / "t.trace.json")

    asked, too_long = batch_items(document)
    assert asked["status"] == "success" and asked["attempts"] == 2
    assert asked["duration_ms"] >= 1000  # retry_wait is 0: the wait is the server's
    span = item_spans(spans)[0]
    assert span.attributes[conv.ATTR_BATCH_TIME_RETRY_WAIT_US] >= 1_000_000
    (retry,) = [e for e in span.events if e.name == conv.EVENT_RETRY]
    assert retry.attributes[conv.ATTR_RETRY_ERROR].startswith("HTTP 429")
    # Asking for more than a minute gets no further attempt: the item fails with the answer.
    assert too_long["status"] == "failed" and too_long["attempts"] == 1
    assert too_long["error"].startswith(f"HTTP 429 from {url}/busy/61")
    assert outcome.status == "degraded"


def test_a_kept_connection_carries_no_cookies_between_items(
    server: tuple[str, Server], tmp_path: Path
) -> None:
    url, _ = server
    workflow = http_batch(url, [f"/cookie/{x}" for x in range(4)], max_concurrent=1)
    outcome, _, document = run_on("async", workflow, tmp_path / "t.trace.json")
    assert outcome.status == "success"
    assert [r["response"]["seen"] for r in outcome.outputs["results"]] == [None] * 4
    assert {r["worker"] for r in batch_items(document)} == {0}  # one lane: one connection


@pytest.mark.parametrize("lanes", LANES)
def test_fail_fast_stops_handing_out_items(
    lanes: str, server: tuple[str, Server], tmp_path: Path
) -> None:
    url, state = server
    workflow = http_batch(url, [f"/fails/{x}" for x in (0, 4, 1, 2, 3)], max_concurrent=1)
    outcome, spans, document = run_on(lanes, workflow, tmp_path / "t.trace.json")
    assert outcome.status == "failed"
    assert outcome.result.error.startswith("node 'work' failed: item 1 failed: HTTP 500 from")
    assert [r["index"] for r in batch_items(document)] == [0, 1]
    assert len(item_spans(spans)) == 2
    assert sorted(state.seen) == ["/fails/0", "/fails/4"]


@pytest.mark.slow
@pytest.mark.parametrize("lanes", LANES)
def test_ctrl_c_records_every_started_item_interrupted_once(
    lanes: str, server: tuple[str, Server], tmp_path: Path
) -> None:
    url, state = server
    workflow = http_batch(url, [f"/hold/{x}" for x in range(6)], max_concurrent=3)

    def interrupt_when_held() -> None:
        deadline = time.monotonic() + 30
        while len(state.seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)  # a real signal: it wakes a blocked wait

    watcher = threading.Thread(target=interrupt_when_held, daemon=True)
    watcher.start()
    began = time.monotonic()
    outcome, spans, document = run_on(lanes, workflow, tmp_path / "t.trace.json")
    watcher.join()
    assert time.monotonic() - began < 15  # the held requests did not have to answer

    assert outcome.status == "interrupted"
    assert document["final_status"] == "interrupted"
    records = batch_items(document)
    assert sorted(r["item"] for r in records) == sorted(state.seen)  # each started item, once
    assert len(records) == 3
    assert {(r["status"], r["error"]) for r in records} == {("interrupted", "interrupted")}
    by_id = {span.context.span_id: span for span in item_spans(spans)}
    assert sorted(by_id) == sorted(int(r["span_id"], 16) for r in records)
    batch_span = next(span for span in spans if span.name == "work batch")
    for span in by_id.values():
        assert span.status.description == "interrupted"
        assert span.parent.span_id == batch_span.context.span_id


@pytest.mark.slow
def test_more_than_a_hundred_items_are_in_flight_at_once(
    server: tuple[str, Server], tmp_path: Path
) -> None:
    url, state = server
    workflow = http_batch(url, [f"/wide/{x}" for x in range(300)], max_concurrent=300)
    outcome, _, document = run_on("async", workflow, tmp_path / "t.trace.json")
    assert outcome.status == "success"
    assert state.peak_open >= 150  # the server held them until it saw 150 open at once
    records = batch_items(document)
    assert len({r["worker"] for r in records}) >= 150
    assert peak_in_flight(records) <= 300


@pytest.mark.parametrize(
    ("node", "max_concurrent", "parallel", "problem"),
    [
        ("http", 1000, True, None),
        ("http", 1001, True, "1001 is greater than the maximum of 1000"),
        ("echo", 101, True, "101 is over 100, the most for items on threads; only parallel"),
        ("http", 500, False, "500 is over 100, the most for sequential items"),
        ("echo", 100, True, None),
    ],
)
def test_only_async_lanes_take_more_than_a_hundred_in_flight(
    node: str, max_concurrent: int, parallel: bool, problem: str | None
) -> None:
    params = {"url": "http://127.0.0.1:9/${item}"} if node == "http" else {"count": "${item}"}
    workflow = {
        "ir_version": "0.1.0",
        "nodes": [
            {
                "id": "work",
                "type": node,
                "params": params,
                "batch": {"items": [1], "parallel": parallel, "max_concurrent": max_concurrent},
            }
        ],
    }
    if problem is None:
        validate_workflow(workflow)
        return
    with pytest.raises(WorkflowValidationError) as caught:
        validate_workflow(workflow)
    (message,) = caught.value.problems
    assert message.startswith(f"nodes[0].batch.max_concurrent: {problem}")


class NapNode(WorkflowNode):
    """A node type of a user's own with an async path: it waits, then answers its item."""

    type_name = "nap"

    def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("a parallel batch of a type with exec_async runs exec_async")

    async def exec_async(self, params: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.2)
        if params["value"] == "own-cancel":
            raise asyncio.CancelledError()  # the node's own, not the runtime stopping it
        return {"value": params["value"]}


def test_any_node_type_with_exec_async_runs_on_async_lanes(tmp_path: Path) -> None:
    registry = NodeRegistry()
    registry.register("nap", NapNode)
    items: list[Any] = [*range(59), "own-cancel"]
    workflow = validate_workflow(
        {
            "ir_version": "0.1.0",
            "nodes": [
                {
                    "id": "work",
                    "type": "nap",
                    "params": {"value": "${item}"},
                    "batch": {
                        "items": items,
                        "parallel": True,
                        "max_concurrent": 150,
                        "error_handling": "continue",
                    },
                }
            ],
        },
        registry=registry,
    )
    exporter = InMemorySpanExporter()
    options = TraceOptions(
        export=resolve_export_settings("none", env={}),
        trace_file=str(tmp_path / "t.trace.json"),
        join_env_trace_context=False,
        extra_processors=[SimpleSpanProcessor(exporter)],
    )
    outcome = api.run(workflow, {}, options, registry)
    document = json.loads((tmp_path / "t.trace.json").read_text(encoding="utf-8"))
    spans = exporter.get_finished_spans()

    assert outcome.status == "degraded"  # one item failed, the run was not interrupted
    batch_span = next(s for s in spans if s.name == "work batch")
    assert batch_span.attributes[conv.ATTR_BATCH_LANES] == "async"
    records = batch_items(document)
    assert len(records) == 60
    assert records[59]["status"] == "failed" and records[59]["error"] == "CancelledError"
    assert peak_in_flight(records) >= 50  # about all at once, on one thread (60 lanes)
    assert {r["status"] for r in records[:59]} == {"success"}
