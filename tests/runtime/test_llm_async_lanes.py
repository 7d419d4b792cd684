"""Async lanes for the ``llm`` node: a parallel batch through the ``llm`` library's async models,
the same as on threads.

Each claim runs a real batch twice, on async lanes (the automatic choice for a model with an
async implementation) and on thread lanes (``async_lanes=False``): against the OpenAI-compatible
server on loopback (``tests/llm_server.py``, through the library's own OpenAI plugin) and on the
offline ``echo`` model (``llm-echo`` has an async model too). The span tree, the item spans' keys,
events and ``gen_ai.*`` values, the ``batch_items`` records, the results with their
``llm_usage``, ``fail_fast`` and Ctrl-C must agree. A model with no async implementation stays
on threads, and the batch span says so.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llm
import pytest
from llm.plugins import pm

from executor_runs import batch_items, item_spans, run_traced, shape, table_rows
from llm_server import chat_server, configure_model, silent_server
from pflow_trace.errors import WorkflowValidationError
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.nodes import llm_calls
from pflow_trace.observe import conventions as conv

LANES = ("async", "threads")
#: What differs from one call to the next whatever the lanes: the time taken and the server's
#: response number (it counts requests in the order they arrive).
_PER_CALL = frozenset({"duration_ms", "response_id", "time_unix_nano"})


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    user_dir = tmp_path / "llm-user"
    monkeypatch.setenv("LLM_USER_PATH", str(user_dir))
    with chat_server() as (api_base, log):
        configure_model(user_dir, api_base)
        yield log


def llm_batch(items: list[Any], model: str = "local-gpt", **batch: Any) -> dict[str, Any]:
    """An ``llm`` batch over ``items`` (the prompt) and an ``echo`` after it."""
    block = {"items": items, "parallel": True, "max_concurrent": 2, **batch}
    params = {"prompt": "${item}", "model": model, "retry_wait": 0, "max_retries": 2}
    return validate_workflow(
        {
            "ir_version": "0.1.0",
            "name": "llm-lanes",
            "nodes": [
                {"id": "work", "type": "llm", "params": params, "batch": block},
                {"id": "after", "type": "echo", "params": {"count": "${work.success_count}"}},
            ],
            "outputs": {"results": "${work.results}"},
        }
    )


def run_on(lanes: str, workflow: dict[str, Any], trace_file: Path) -> Any:
    return run_traced(workflow, trace_file, async_lanes=lanes == "async")


def steady(value: Any) -> Any:
    """``value`` without what differs from one call to the next (see :data:`_PER_CALL`)."""
    if isinstance(value, dict):
        return {k: steady(v) for k, v in value.items() if k not in _PER_CALL}
    if isinstance(value, list):
        return [steady(v) for v in value]
    return value


def item_view(span: Any) -> tuple[Any, ...]:
    """An item span's attribute keys, its ``gen_ai.*`` values, its events and status."""
    gen_ai = {
        k: v
        for k, v in span.attributes.items()
        if k.startswith("gen_ai.") and k != "gen_ai.response.id"
    }
    events = [(event.name, sorted(event.attributes)) for event in span.events]
    return (sorted(span.attributes), gen_ai, events, span.status.status_code.name)


def record_view(record: dict[str, Any]) -> tuple[Any, ...]:
    usage = steady(record.get("llm_usage"))
    return (record["index"], record["item"], record["status"], record["attempts"], usage)


def assert_same_runs(runs: dict[str, Any]) -> None:
    (a_run, a_spans, a_doc), (t_run, t_spans, t_doc) = runs["async"], runs["threads"]
    assert a_run.status == t_run.status
    assert shape(a_spans) == shape(t_spans)  # names, statuses, attempts, retries
    assert [item_view(s) for s in item_spans(a_spans)] == [
        item_view(s) for s in item_spans(t_spans)
    ]
    a_records, t_records = batch_items(a_doc), batch_items(t_doc)
    assert [record_view(r) for r in a_records] == [record_view(r) for r in t_records]
    assert steady(a_run.outputs["results"]) == steady(t_run.outputs["results"])
    for spans, doc, lanes in ((a_spans, a_doc, "async"), (t_spans, t_doc, "threads")):
        batch_span = next(s for s in spans if s.name == "work batch")
        assert batch_span.attributes[conv.ATTR_BATCH_LANES] == lanes
        row = next(r for r in table_rows(doc) if r["name"] == "work batch")
        assert row["attributes"][conv.ATTR_BATCH_LANES] == lanes


def test_an_llm_batch_on_async_lanes_matches_threads(server: Any, tmp_path: Path) -> None:
    items = [
        "plain question one",
        "CACHED long shared prefix",
        "RATE-LIMIT-ONCE busy provider",
        "CUT-OFF a long answer",
        "DENY with a bad key",
        "EMPTY nothing to say",
    ]
    runs = {}
    for lanes in LANES:
        workflow = llm_batch(items, error_handling="continue")
        runs[lanes] = run_on(lanes, workflow, tmp_path / f"{lanes}.trace.json")
        server.seen.clear()  # the rate-limited item is refused once on each run
    assert_same_runs(runs)

    a_run, a_spans, a_doc = runs["async"]
    assert a_run.status == "degraded"
    records = batch_items(a_doc)
    assert [r["status"] for r in records] == ["success"] * 4 + ["failed", "success"]
    retried = records[2]["llm_usage"]
    assert retried["attempts"] == 2 and retried["retries"][0]["error_type"] == "429"
    assert records[1]["llm_usage"]["cache_read_input_tokens"] == 40
    assert records[3]["llm_usage"]["finish_reason"] == "length"
    assert records[4]["error"].startswith("llm: local-gpt failed: HTTP 401")
    assert a_run.outputs["results"][0]["response"] == "Summary: plain question one"
    events = [e.name for e in item_spans(a_spans)[2].events]
    assert conv.EVENT_LLM_RETRY in events
    # Two lanes, one kept client per lane's connection: the calls took at most two.
    assert len({request["peer"] for request in server.requests[len(items) + 1 :]}) <= 2


def test_an_echo_batch_on_async_lanes_matches_threads(tmp_path: Path) -> None:
    assert llm_calls.models.get_async("echo") is not None  # llm-echo has an async model
    items = ["alpha", "beta", "", "gamma delta", "0"]
    runs = {
        lanes: run_on(lanes, llm_batch(items, model="echo"), tmp_path / f"{lanes}.trace.json")
        for lanes in LANES
    }
    assert_same_runs(runs)
    outcome = runs["async"][0]
    assert outcome.status == "success"
    assert [r["llm_usage"]["model"] for r in outcome.outputs["results"]] == ["echo"] * 5


def test_a_key_the_server_echoes_is_redacted_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_dir, key = tmp_path / "llm-user", "sk-lanes-secret-4242"
    monkeypatch.setenv("LLM_USER_PATH", str(user_dir))
    monkeypatch.setenv("OPENAI_API_KEY", key)
    with chat_server() as (api_base, _):
        configure_model(user_dir, api_base, key_name="openai")
        runs = {
            lanes: run_on(
                lanes,
                llm_batch(["ECHO-KEY one", "SHOW-AUTH two"]),
                tmp_path / f"{lanes}.trace.json",
            )
            for lanes in LANES
        }
    assert_same_runs(runs)
    for outcome, spans, document in runs.values():
        assert outcome.status == "success"
        assert key not in repr(document) and key not in repr(outcome.outputs)
        for span in spans:
            assert key not in repr(dict(span.attributes)) + repr(span.events)


def test_a_server_that_never_answers_times_out_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_dir = tmp_path / "llm-user"
    monkeypatch.setenv("LLM_USER_PATH", str(user_dir))
    runs = {}
    with silent_server() as api_base:
        configure_model(user_dir, api_base)
        for lanes in LANES:
            workflow = llm_batch(["a", "b"], error_handling="continue")
            workflow["nodes"][0]["params"]["timeout"] = 0.2
            runs[lanes] = run_on(lanes, workflow, tmp_path / f"{lanes}.trace.json")
    assert_same_runs(runs)
    for _, _, document in runs.values():
        usages = [record["llm_usage"] for record in batch_items(document)]
        assert [usage["error_type"] for usage in usages] == ["APITimeoutError"] * 2
        assert [usage["attempts"] for usage in usages] == [2, 2]


@pytest.mark.parametrize("lanes", LANES)
def test_fail_fast_stops_handing_out_items(lanes: str, server: Any, tmp_path: Path) -> None:
    items = ["first fine", "DENY second", "third fine", "fourth fine"]
    workflow = llm_batch(items, max_concurrent=1)
    outcome, spans, document = run_on(lanes, workflow, tmp_path / "t.trace.json")
    assert outcome.status == "failed"
    assert outcome.result.error.startswith("node 'work' failed: item 1 failed: llm: local-gpt")
    assert [r["index"] for r in batch_items(document)] == [0, 1]
    assert len(item_spans(spans)) == 2
    assert [request["text"] for request in server.requests] == items[:2]


@pytest.mark.slow
@pytest.mark.parametrize("lanes", LANES)
def test_ctrl_c_records_every_started_item_interrupted_once(
    lanes: str, server: Any, tmp_path: Path
) -> None:
    workflow = llm_batch([f"HOLD {x}" for x in range(6)], max_concurrent=3)

    def interrupt_when_held() -> None:
        deadline = time.monotonic() + 30
        while len(server.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)  # a real signal: it wakes a blocked wait

    watcher = threading.Thread(target=interrupt_when_held, daemon=True)
    watcher.start()
    began = time.monotonic()
    try:
        outcome, spans, document = run_on(lanes, workflow, tmp_path / "t.trace.json")
    finally:
        server.release.set()
    watcher.join()
    assert time.monotonic() - began < 15  # the held calls did not have to answer

    assert outcome.status == "interrupted"
    records = batch_items(document)
    assert sorted(r["item"] for r in records) == sorted(r["text"] for r in server.requests)
    assert len(records) == 3
    assert {(r["status"], r["error"]) for r in records} == {("interrupted", "interrupted")}
    batch_span = next(span for span in spans if span.name == "work batch")
    assert batch_span.attributes[conv.ATTR_BATCH_LANES] == lanes
    for span in item_spans(spans):
        assert span.status.description == "interrupted"


class _SyncOnly(llm.Model):
    """A model whose plugin has no async implementation."""

    model_id = "sync-only-test"
    can_stream = False

    def execute(self, prompt: Any, stream: bool, response: Any, conversation: Any = None) -> Any:
        yield f"sync: {prompt.prompt}"


class _SyncOnlyPlugin:
    @llm.hookimpl
    def register_models(self, register: Any) -> None:
        register(_SyncOnly())


@pytest.fixture
def sync_only_model() -> Iterator[str]:
    plugin = _SyncOnlyPlugin()
    pm.register(plugin, name="pflow-trace-test-sync-only")
    try:
        yield _SyncOnly.model_id
    finally:
        pm.unregister(plugin)
        llm_calls.models.clear()


def test_a_model_without_an_async_implementation_stays_on_threads(
    sync_only_model: str, tmp_path: Path
) -> None:
    assert llm_calls.models.get_async(sync_only_model) is None
    workflow = llm_batch(["one", "two", "three"], model=sync_only_model)
    outcome, spans, _ = run_on("async", workflow, tmp_path / "t.trace.json")
    assert outcome.status == "success"
    assert [r["response"] for r in outcome.outputs["results"]] == [
        "sync: one",
        "sync: two",
        "sync: three",
    ]
    batch_span = next(s for s in spans if s.name == "work batch")
    assert batch_span.attributes[conv.ATTR_BATCH_LANES] == "threads"


@pytest.mark.parametrize(
    ("model", "refused"),
    [("echo", False), ("${model}", True), ("sync-only-test", True)],
)
def test_more_than_a_hundred_in_flight_only_for_a_model_with_an_async_path(
    model: str, refused: bool, sync_only_model: str
) -> None:
    document: dict[str, Any] = {
        "ir_version": "0.1.0",
        "name": "wide",
        "nodes": [
            {
                "id": "work",
                "type": "llm",
                "params": {"prompt": "${item}", "model": model},
                "batch": {"items": ["a"], "parallel": True, "max_concurrent": 101},
            }
        ],
    }
    if "${" in model:
        document["inputs"] = {"model": {"type": "string", "required": False, "default": "echo"}}
    if not refused:
        validate_workflow(document)
        return
    with pytest.raises(WorkflowValidationError, match="101 is over 100"):
        validate_workflow(document)
