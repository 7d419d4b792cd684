"""Unit tests for each wrapper layer alone, then the compiled chain they form together."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pflow_trace.engine import BaseNode
from pflow_trace.errors import NodeExecutionError, TemplateError
from pflow_trace.nodes.base import NodeFailure, WorkflowNode, current_attempt
from pflow_trace.nodes.registry import NodeRegistry
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.facts import ItemOutcome, NodeExecution
from pflow_trace.runtime.batch import BatchConfig, BatchNode
from pflow_trace.runtime.batch_output import timing_stats
from pflow_trace.runtime.compiler import build_chain
from pflow_trace.runtime.context import RunContext, current_execution
from pflow_trace.runtime.instrumented import InstrumentedNode
from pflow_trace.runtime.namespaced import NamespacedNode
from pflow_trace.runtime.store import NamespacedStore
from pflow_trace.runtime.template_aware import TemplateAwareNode


class Probe(BaseNode):
    """An inner node that records what it saw and runs an optional function on the store."""

    def __init__(self, action: str | None = None, body: Any = None) -> None:
        super().__init__()
        self.action = action
        self.body = body
        self.seen_params: list[dict[str, Any]] = []
        self.seen_stores: list[Any] = []

    def _run(self, shared: Any) -> str | None:
        self.seen_params.append(self.params)
        self.seen_stores.append(shared)
        if self.body is not None:
            self.body(self, shared)
        return self.action


class RecordingObserver:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def run_started(self, run: Any) -> None:
        self.events.append(("run_started", run))

    def run_finished(self, run: Any, shared: Mapping[str, Any]) -> None:
        self.events.append(("run_finished", run))

    def node_started(self, execution: NodeExecution, shared: Mapping[str, Any]) -> None:
        self.events.append(("node_started", execution))

    def node_finished(self, execution: NodeExecution, shared: Mapping[str, Any]) -> None:
        self.events.append(("node_finished", execution))

    def item_finished(self, node_id: str, outcome: ItemOutcome, total: int) -> None:
        self.events.append(("item_finished", (node_id, outcome.index, total)))


def traced_run() -> tuple[RunContext, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return RunContext(tracer=provider.get_tracer("test")), exporter


# --- Namespaced -------------------------------------------------------------------------------


def test_namespaced_writes_land_under_the_node_id_and_root_keys_at_the_root() -> None:
    def write(probe: Probe, store: Any) -> None:
        store["result"] = store["input"] * 2
        store["__flag__"] = True

    probe = Probe(action="next", body=write)
    shared: dict[str, Any] = {"input": 21}
    assert NamespacedNode(probe, "double", "t", RunContext())._run(shared) == "next"
    assert shared == {"input": 21, "double": {"result": 42}, "__flag__": True}
    assert isinstance(probe.seen_stores[0], NamespacedStore)


def test_namespaced_starts_a_fresh_namespace_on_every_run() -> None:
    def write_once(probe: Probe, store: Any) -> None:
        if len(probe.seen_stores) == 1:
            store["leftover"] = 1
        store["run"] = len(probe.seen_stores)

    node = NamespacedNode(Probe(body=write_once), "n", "t", RunContext())
    shared: dict[str, Any] = {}
    node._run(shared)
    node._run(shared)
    assert shared["n"] == {"run": 2}


def test_namespaced_reads_see_other_nodes_namespaces_through_the_root() -> None:
    def read(probe: Probe, store: Any) -> None:
        store["copy"] = store["earlier"]["value"]

    shared: dict[str, Any] = {"earlier": {"value": "v"}}
    NamespacedNode(Probe(body=read), "later", "t", RunContext())._run(shared)
    assert shared["later"] == {"copy": "v"}


# --- TemplateAware ----------------------------------------------------------------------------


def test_template_aware_resolves_params_before_the_inner_node_runs() -> None:
    probe = Probe(action="go")
    node = TemplateAwareNode(probe, "n", "t", RunContext())
    node.set_params({"count": "${n}", "text": "n=${n}", "nested": {"x": ["${flag}"]}, "fixed": 1})
    assert node._run({"n": 0, "flag": False}) == "go"
    assert probe.seen_params == [{"count": 0, "text": "n=0", "nested": {"x": [False]}, "fixed": 1}]


def test_template_aware_resolves_again_on_each_run() -> None:
    probe = Probe()
    node = TemplateAwareNode(probe, "n", "t", RunContext())
    node.set_params({"v": "${x}"})
    node._run({"x": 1})
    node._run({"x": 2})
    assert [params["v"] for params in probe.seen_params] == [1, 2]
    assert node.params == {"v": "${x}"}


def test_template_aware_without_templates_hands_params_through_untouched() -> None:
    probe = Probe()
    node = TemplateAwareNode(probe, "n", "t", RunContext())
    params = {"plain": "text", "n": 1}
    node.set_params(params)
    node._run({})
    assert probe.seen_params[0] is params


def test_template_aware_turns_an_escaped_template_into_a_literal() -> None:
    probe = Probe()
    node = TemplateAwareNode(probe, "n", "t", RunContext())
    node.set_params({"command": "echo $${HOME}", "whole": "$${x}"})
    node._run({})
    assert probe.seen_params == [{"command": "echo ${HOME}", "whole": "${x}"}]


def test_template_aware_miss_fails_before_the_inner_node_runs() -> None:
    probe = Probe()
    node = TemplateAwareNode(probe, "fetch", "t", RunContext())
    node.set_params({"url": "http://x/${usr}"})
    with pytest.raises(TemplateError) as info:
        node._run({"user": "ada"})
    assert info.value.message == (
        "node 'fetch' param 'url': cannot resolve ${usr}: 'usr' not found (closest: user)"
    )
    assert probe.seen_params == []


def test_template_aware_records_the_resolutions_on_the_current_execution() -> None:
    node = TemplateAwareNode(Probe(), "n", "t", RunContext())
    node.set_params({"v": "${x}", "fixed": 1})
    execution = NodeExecution("n", "t")
    token = current_execution.set(execution)
    try:
        node._run({"x": [1, 2]})
    finally:
        current_execution.reset(token)
    assert execution.template_resolutions == {"v": {"template": "${x}", "resolved": [1, 2]}}


def test_template_aware_opens_a_template_span_and_a_node_span() -> None:
    run, exporter = traced_run()
    node = TemplateAwareNode(Probe(), "n", "echo", run)
    node.set_params({})
    node._run({})
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"n template", "n node"}
    assert spans["n node"].parent.span_id == spans["n template"].context.span_id
    assert spans["n node"].attributes[conv.ATTR_LAYER] == conv.LAYER_NODE


# --- Batch ------------------------------------------------------------------------------------


def batch(config: dict[str, Any], body: Any, run: RunContext | None = None) -> BatchNode:
    return BatchNode(Probe(body=body), "b", "t", run or RunContext(), BatchConfig.from_ir(config))


def test_batch_config_defaults() -> None:
    config = BatchConfig.from_ir({"items": "${xs}"})
    assert (config.alias, config.parallel, config.max_concurrent) == ("item", False, 10)
    assert (config.max_retries, config.retry_wait, config.error_handling) == (1, 0.0, "fail_fast")
    assert config.execution_mode == "sequential"


def test_batch_runs_each_item_on_a_copy_of_the_store_with_the_alias_at_the_root() -> None:
    stores: list[dict[str, Any]] = []

    def body(probe: Probe, store: Any) -> None:
        stores.append(store)
        store["b"] = {"doubled": store["row"] * 2}

    shared: dict[str, Any] = {"xs": [1, 2, 3], "other": "kept"}
    node = batch({"items": "${xs}", "as": "row"}, body)
    assert node._run(shared) is None
    assert [store["row"] for store in stores] == [1, 2, 3]
    assert all(store is not shared and store["other"] == "kept" for store in stores)
    assert "row" not in shared
    output = shared["b"]
    assert output["results"] == [
        {"doubled": 2 * n, "item": n, "original_index": n - 1} for n in (1, 2, 3)
    ]
    assert (output["count"], output["success_count"], output["error_count"]) == (3, 3, 0)
    assert output["errors"] == []


def test_batch_items_that_are_not_a_list_fail_with_the_type() -> None:
    node = batch({"items": "${xs}"}, None)
    for value, name in [
        ("abc", "string"),
        ({"a": 1}, "object"),
        (3, "number"),
        (True, "boolean"),
        (None, "null"),
    ]:
        with pytest.raises(NodeFailure) as info:
            node._run({"xs": value})
        assert info.value.message == f"batch.items ${{xs}} must resolve to a list, got {name}"


def test_batch_items_template_with_blanks_around_it_still_keeps_the_list() -> None:
    node = batch({"items": " ${xs} "}, lambda probe, store: store.__setitem__("b", store["item"]))
    shared: dict[str, Any] = {"xs": [7]}
    node._run(shared)
    assert shared["b"]["results"] == [7]


def test_batch_retries_an_item_with_a_local_attempt_counter() -> None:
    attempts: list[tuple[int, int]] = []

    def body(probe: Probe, store: Any) -> None:
        attempts.append((store["item"], current_attempt.get()))
        if current_attempt.get() < 2:
            raise NodeFailure("not yet")
        store["b"] = "ok"

    shared: dict[str, Any] = {}
    batch({"items": [10, 20], "max_retries": 3}, body)._run(shared)
    assert attempts == [(10, 1), (10, 2), (20, 1), (20, 2)]
    assert shared["b"]["results"] == ["ok", "ok"]


def test_batch_fail_fast_stops_at_the_first_failed_item() -> None:
    ran: list[Any] = []

    def body(probe: Probe, store: Any) -> None:
        ran.append(store["item"])
        if store["item"] == "bad":
            raise NodeFailure("bad item")
        store["b"] = store["item"]

    shared: dict[str, Any] = {}
    with pytest.raises(NodeFailure, match=r"^item 1 failed: bad item$"):
        batch({"items": ["ok", "bad", "never"]}, body)._run(shared)
    assert ran == ["ok", "bad"]
    assert shared["b"]["results"] == ["ok"]  # failed and never-run items are not results
    assert shared["b"]["count"] == 2  # attempted
    assert shared["b"]["errors"] == [{"index": 1, "item": "bad", "error": "bad item"}]


def test_batch_continue_records_errors_and_goes_on() -> None:
    def body(probe: Probe, store: Any) -> None:
        if store["item"] == 0:
            raise ZeroDivisionError("division by zero")
        store["b"] = 1 / store["item"]

    shared: dict[str, Any] = {}
    assert batch({"items": [1, 0, 2], "error_handling": "continue"}, body)._run(shared) is None
    output = shared["b"]
    assert output["results"] == [1.0, 0.5]
    assert output["errors"] == [
        {"index": 1, "item": 0, "error": "ZeroDivisionError: division by zero"}
    ]
    assert (output["success_count"], output["error_count"]) == (2, 1)


def test_batch_parallel_gives_each_worker_thread_its_own_copy_of_the_chain() -> None:
    seen: dict[int, set[int]] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(3, timeout=5)

    def body(probe: Probe, store: Any) -> None:
        with lock:
            seen.setdefault(threading.get_ident(), set()).add(id(probe))
        if store["item"] < 3:
            barrier.wait()  # the first three items are in flight together: three threads
        store["b"] = store["item"]

    node = batch({"items": list(range(9)), "parallel": True, "max_concurrent": 3}, body)
    shared: dict[str, Any] = {}
    node._run(shared)
    assert shared["b"]["results"] == list(range(9))
    assert len(seen) == 3
    probes = [ids for ids in seen.values()]
    assert all(len(ids) == 1 for ids in probes)  # one chain per thread, reused for its items
    assert len(set().union(*probes)) == 3  # and no two threads share one
    assert id(node.inner) not in set().union(*probes)  # the original is never run in parallel


def test_batch_metadata_and_timing() -> None:
    shared: dict[str, Any] = {}
    batch(
        {
            "items": [1, 2],
            "parallel": True,
            "max_concurrent": 4,
            "max_retries": 2,
            "retry_wait": 0.5,
        },
        lambda probe, store: None,
    )._run(shared)
    metadata = shared["b"]["batch_metadata"]
    assert {key: value for key, value in metadata.items() if key != "timing"} == {
        "parallel": True,
        "max_concurrent": 4,
        "max_retries": 2,
        "retry_wait": 0.5,
        "execution_mode": "parallel",
    }
    timing = metadata["timing"]
    assert set(timing) == {"total_items_ms", "avg_item_ms", "min_item_ms", "max_item_ms"}
    assert timing["min_item_ms"] <= timing["avg_item_ms"] <= timing["max_item_ms"]


def test_timing_stats_of_nothing_is_empty() -> None:
    assert timing_stats([]) == {}


def test_batch_notifies_the_observer_of_every_item() -> None:
    observer = RecordingObserver()
    shared: dict[str, Any] = {}
    batch({"items": ["a", "b"]}, None, RunContext(observer=observer))._run(shared)
    assert observer.events == [("item_finished", ("b", 0, 2)), ("item_finished", ("b", 1, 2))]


# --- Instrumented -----------------------------------------------------------------------------


def test_instrumented_publishes_the_execution_before_and_after() -> None:
    observer = RecordingObserver()
    inside: list[NodeExecution | None] = []
    probe = Probe(action="next", body=lambda probe, store: inside.append(current_execution.get()))
    node = InstrumentedNode(probe, "n", "echo", RunContext(observer=observer))
    assert node._run({}) == "next"
    (started, execution), (finished, same) = observer.events
    assert (started, finished) == ("node_started", "node_finished")
    assert execution is same and inside == [execution]
    assert execution.success and execution.error is None
    assert execution.end_ns >= execution.start_ns > 0
    assert current_execution.get() is None


def test_instrumented_wraps_a_failure_in_an_error_naming_the_node() -> None:
    observer = RecordingObserver()

    def fail(probe: Probe, store: Any) -> None:
        raise NodeFailure("disk full")

    node = InstrumentedNode(Probe(body=fail), "save", "write-file", RunContext(observer=observer))
    with pytest.raises(NodeExecutionError) as info:
        node._run({})
    assert info.value.node_id == "save"
    assert info.value.message == "node 'save' failed: disk full"
    execution = observer.events[-1][1]
    assert not execution.success and execution.error == "disk full"


def test_instrumented_does_not_wrap_twice() -> None:
    def fail(probe: Probe, store: Any) -> None:
        raise NodeExecutionError("inner", "already wrapped")

    with pytest.raises(NodeExecutionError) as info:
        InstrumentedNode(Probe(body=fail), "outer", "t", RunContext())._run({})
    assert info.value.node_id == "inner"


def test_instrumented_lets_keyboard_interrupt_through_but_records_it() -> None:
    observer = RecordingObserver()

    def interrupt(probe: Probe, store: Any) -> None:
        raise KeyboardInterrupt

    node = InstrumentedNode(Probe(body=interrupt), "n", "t", RunContext(observer=observer))
    with pytest.raises(KeyboardInterrupt):
        node._run({})
    assert observer.events[-1][1].error == "interrupted"


def test_instrumented_span_carries_the_node_identity_and_error_status() -> None:
    run, exporter = traced_run()

    def fail(probe: Probe, store: Any) -> None:
        raise NodeFailure("boom")

    with pytest.raises(NodeExecutionError):
        InstrumentedNode(Probe(body=fail), "n", "echo", run)._run({})
    (span,) = exporter.get_finished_spans()
    assert span.name == "n instrumented"
    assert span.attributes[conv.ATTR_NODE_ID] == "n"
    assert span.attributes[conv.ATTR_NODE_TYPE] == "echo"
    assert span.status.description == "boom"


# --- the whole chain --------------------------------------------------------------------------


class ParamsProbe(WorkflowNode):
    """A node type that writes the params it was given."""

    type_name = "params-probe"

    def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"got": params}


@pytest.fixture
def registry() -> NodeRegistry:
    registry = NodeRegistry()
    registry.register("params-probe", ParamsProbe)
    return registry


def layers(chain: BaseNode) -> list[BaseNode]:
    found = [chain]
    while hasattr(found[-1], "inner"):
        found.append(found[-1].inner)
    return found


def test_compiler_builds_the_chain_outermost_first(registry: NodeRegistry) -> None:
    plain = build_chain({"id": "a", "type": "params-probe"}, registry, RunContext())
    assert [type(layer) for layer in layers(plain)] == [
        InstrumentedNode,
        NamespacedNode,
        TemplateAwareNode,
        ParamsProbe,
    ]
    batched = build_chain(
        {"id": "a", "type": "params-probe", "batch": {"items": [1]}}, registry, RunContext()
    )
    assert [type(layer) for layer in layers(batched)] == [
        InstrumentedNode,
        BatchNode,
        NamespacedNode,
        TemplateAwareNode,
        ParamsProbe,
    ]


def test_set_params_forwards_through_the_whole_chain(registry: NodeRegistry) -> None:
    node = {"id": "a", "type": "params-probe", "params": {"v": 1}, "batch": {"items": [1]}}
    chain = build_chain(node, registry, RunContext())
    assert all(layer.params == {"v": 1} for layer in layers(chain))
    chain.set_params({"v": "${item}-x", "k": "${n}"})
    assert all(layer.params == {"v": "${item}-x", "k": "${n}"} for layer in layers(chain)[:-1])
    shared: dict[str, Any] = {"n": 5}
    chain._run(shared)
    assert shared["a"]["results"] == [{"got": {"v": "1-x", "k": 5}, "item": 1, "original_index": 0}]


def test_deep_copy_copies_the_nodes_but_shares_the_run_context(registry: NodeRegistry) -> None:
    run = RunContext()
    node = {"id": "a", "type": "params-probe", "params": {"v": "${n}"}, "batch": {"items": [1]}}
    chain = build_chain(node, registry, run)
    clone = copy.deepcopy(chain)
    for original, copied in zip(layers(chain), layers(clone), strict=True):
        assert copied is not original
        assert copied.params == original.params
        if hasattr(original, "run_context"):
            assert copied.run_context is run
    shared: dict[str, Any] = {"n": 3}
    clone._run(shared)
    assert shared["a"]["results"] == [{"got": {"v": 3}, "item": 1, "original_index": 0}]


def test_a_parallel_batch_nests_every_layer_span_under_its_parent(registry: NodeRegistry) -> None:
    run, exporter = traced_run()
    node = {
        "id": "a",
        "type": "params-probe",
        "params": {"v": "${item}"},
        "batch": {"items": [1, 2, 3], "parallel": True, "max_concurrent": 2},
    }
    build_chain(node, registry, run)._run({})
    spans = exporter.get_finished_spans()
    by_id = {span.context.span_id: span for span in spans}
    expected_parent = {
        "a batch": "a instrumented",
        "a batch.item": "a batch",
        "a namespaced": "a batch.item",
        "a template": "a namespaced",
        "a node": "a template",
    }
    counts: dict[str, int] = {}
    for span in spans:
        counts[span.name] = counts.get(span.name, 0) + 1
        if span.name in expected_parent:
            assert by_id[span.parent.span_id].name == expected_parent[span.name]
    assert counts == {
        "a instrumented": 1,
        "a batch": 1,
        "a batch.item": 3,
        "a namespaced": 3,
        "a template": 3,
        "a node": 3,
    }
    assert len({span.context.trace_id for span in spans}) == 1
