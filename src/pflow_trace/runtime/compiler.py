"""Compiles a validated workflow into a :class:`~pflow_trace.engine.Flow` of wrapper chains.

Each node becomes, outermost first: Instrumented → Batch (only with a ``batch`` block) or
NodeRetry (only with a ``retry`` block; no span of its own) → Namespaced → TemplateAware → the
node. A ``loop`` block adds the Loop layer (one span per pass) just inside Instrumented.
Edges (or list order when there are none) become the flow's successors.
"""

from __future__ import annotations

import itertools
from typing import Any

from pflow_trace.engine import BaseNode, Flow
from pflow_trace.engine.core import DEFAULT_ACTION
from pflow_trace.errors import UsageError
from pflow_trace.ir.executor_choice import batch_executor
from pflow_trace.ir.file_refs import file_refs_of
from pflow_trace.ir.prompt_cache import CACHE_PARAM, cache_param
from pflow_trace.ir.templates import compile_value, iter_references
from pflow_trace.nodes.registry import NodeRegistry, default_registry
from pflow_trace.nodes.workflow_call import WorkflowCallNode
from pflow_trace.runtime.batch import BatchConfig, BatchNode
from pflow_trace.runtime.context import RunContext
from pflow_trace.runtime.instrumented import InstrumentedNode
from pflow_trace.runtime.loop import LoopConfig, LoopNode
from pflow_trace.runtime.namespaced import NamespacedNode
from pflow_trace.runtime.node_retry import NodeRetry, retry_policy
from pflow_trace.runtime.sub_workflow import SubWorkflowRunner
from pflow_trace.runtime.template_aware import TemplateAwareNode


def referenced_names(node: dict[str, Any]) -> frozenset[str]:
    """The root names a node's templates read: its params', ``batch.items``' and carry's heads."""
    sources = [node.get("params") or {}]
    if "batch" in node:
        sources.append(node["batch"].get("items"))
    if "loop" in node:
        sources.append(node["loop"].get("carry"))
    return frozenset(
        reference.head for source in sources for reference in iter_references(compile_value(source))
    )


def build_chain(
    node: dict[str, Any], registry: NodeRegistry, run: RunContext, routes_by_action: bool = False
) -> BaseNode:
    """One node's wrapper chain, with its params set (and forwarded) through every layer."""
    node_id, node_type = node["id"], node["type"]
    node_class = registry.get(node_type)
    if node_class is None:
        raise UsageError(f"unknown node type '{node_type}' for node '{node_id}'")
    node_object = node_class(node_id)
    if isinstance(node_object, WorkflowCallNode):  # a sub-workflow runs through this runtime
        node_object.runner = SubWorkflowRunner(run, registry, compile_workflow)
    chain: BaseNode = TemplateAwareNode(node_object, node_id, node_type, run)
    chain = NamespacedNode(chain, node_id, node_type, run)
    if "retry" in node:
        chain = NodeRetry(chain, node_id, node_type, run, policy=retry_policy(node["retry"]))
    if "batch" in node:
        default = run.executors.default if run.executors is not None else "threads"
        executor = batch_executor(node["batch"], default)
        config = BatchConfig.from_ir(node["batch"], executor)
        chain = BatchNode(chain, node_id, node_type, run, config)
    if "loop" in node:
        chain = LoopNode(chain, node_id, node_type, run, config=LoopConfig.from_ir(node["loop"]))
    chain = InstrumentedNode(
        chain,
        node_id,
        node_type,
        run,
        reads=referenced_names(node),
        routes_by_action=routes_by_action,
        files=file_refs_of(node),
    )
    chain.set_params(dict(node.get("params") or {}))
    return chain


def with_cache(workflow: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """A node with ``prompt_cache`` gets the chunks it sends as a param of its own."""
    cache = cache_param(workflow, node)
    if cache is None:
        return node
    return {**node, "params": {**(node.get("params") or {}), CACHE_PARAM: cache}}


def compile_workflow(
    workflow: dict[str, Any], registry: NodeRegistry | None = None, run: RunContext | None = None
) -> Flow:
    registry = registry or default_registry()
    run = run or RunContext()
    edges = workflow.get("edges") or []
    chains = {
        node["id"]: build_chain(with_cache(workflow, node), registry, run, bool(edges))
        for node in workflow["nodes"]
    }
    ordered = list(chains.values())
    if edges:
        for edge in edges:
            chains[edge["from"]].next(chains[edge["to"]], edge.get("action", DEFAULT_ACTION))
    else:
        for current, following in itertools.pairwise(ordered):
            current.next(following)
    return Flow(start=ordered[0], follow_actions=bool(edges))
