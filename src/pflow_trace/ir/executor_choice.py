"""Which executor a batch runs on, what cannot be sent to another process, and how many
items may be in flight.

A batch on the ``processes`` or ``dask`` executor rebuilds its node in a worker from the class,
imported by name, and the params, pickled. What cannot make that trip is refused when the
workflow is validated (and before ``run --executor`` starts), never discovered mid-run.

``max_concurrent`` is at most :data:`MAX_LANES` (pflow's cap) for items on threads or worker
processes; a parallel batch in the run's process whose node type has an async path runs on
async lanes, where up to :data:`MAX_ASYNC_IN_FLIGHT` items may wait at once. Whether params
have an async path is the node type's to say (``async_available``): an ``llm`` batch has one
only when its model, named as plain text, has an async implementation; a model named by a
template cannot be known before the run, so such a batch is held to :data:`MAX_LANES`.
"""

from __future__ import annotations

import importlib
import importlib.util
import pickle
from collections.abc import Mapping
from typing import Any

from pflow_trace.nodes.base import async_path_for, has_async_path
from pflow_trace.nodes.registry import NodeRegistry

#: The most items in flight on threads or worker processes (pflow-cli's cap).
MAX_LANES = 100
#: The most items in flight on async lanes (docs/pflow-compat.md says why we differ).
MAX_ASYNC_IN_FLIGHT = 1000


def batch_executor(batch: Mapping[str, Any], run_default: str = "threads") -> str:
    """The executor a batch's items run on: its own ``executor``; else the run's default for a
    parallel batch; else threads (a sequential batch stays in the run's process)."""
    named = batch.get("executor")
    if isinstance(named, str):
        return named
    return run_default if batch.get("parallel") else "threads"


def executor_problems(
    workflow: dict[str, Any], registry: NodeRegistry, run_default: str = "threads"
) -> list[str]:
    """Batch nodes whose items would run in another process but cannot be sent there.

    A worker rebuilds the node from its class, imported by name, and its params, pickled; a
    class defined in ``__main__`` or inside a function, params that do not pickle, a type that
    declares ``ships_to_workers = False``, or Dask not installed are refused here, not mid-run.
    """
    problems: list[str] = []
    for index, node in enumerate(workflow.get("nodes") or []):
        batch = node.get("batch") if isinstance(node, dict) else None
        if not isinstance(batch, dict):
            continue
        executor = batch_executor(batch, run_default)
        if executor == "threads":
            continue
        where = (
            f"nodes[{index}].batch.executor: {executor}"
            if "executor" in batch
            else f"nodes[{index}].batch: {executor} (the run's executor)"
        )
        if executor == "dask" and importlib.util.find_spec("distributed") is None:
            problems.append(f"{where}: needs dask.distributed: pip install 'pflow-trace[dask]'")
        node_class = registry.get(str(node.get("type")))
        reason = _unshippable_class(node_class) if node_class is not None else None
        if reason is None:
            try:
                pickle.dumps(node.get("params") or {})
            except Exception as exc:
                reason = f"has params that cannot be sent to another process ({exc})"
        if reason is not None:
            problems.append(f"{where}: node type '{node.get('type')}' {reason}")
    return problems


def lane_limit_problems(
    workflow: dict[str, Any], registry: NodeRegistry, run_default: str = "threads"
) -> list[str]:
    """Batches whose ``max_concurrent`` is over :data:`MAX_LANES` but will not run on async
    lanes; checked with every other problem, whatever else is wrong."""
    problems: list[str] = []
    nodes = workflow.get("nodes")
    for index, node in enumerate(nodes if isinstance(nodes, list) else []):
        batch = node.get("batch") if isinstance(node, dict) else None
        if isinstance(batch, dict):
            executor = batch_executor(batch, run_default)
            over = _lane_limit_problem(index, node, batch, executor, registry)
            if over is not None:
                problems.append(over)
    return problems


def _lane_limit_problem(
    index: int, node: dict[str, Any], batch: Mapping[str, Any], executor: str, registry: Any
) -> str | None:
    """A ``max_concurrent`` over :data:`MAX_LANES` for a batch that will not run on async
    lanes (a parallel batch on threads of a node type with an async path)."""
    wanted = batch.get("max_concurrent")
    if not isinstance(wanted, int) or not MAX_LANES < wanted <= MAX_ASYNC_IN_FLIGHT:
        return None  # within every limit, or over the schema's (which says so itself)
    node_class = registry.get(str(node.get("type")))
    on_async_lanes = executor == "threads" and bool(batch.get("parallel"))
    params = node.get("params")
    if (
        on_async_lanes
        and node_class is not None
        and async_path_for(node_class, params if isinstance(params, dict) else {})
    ):
        return None
    async_types = sorted(name for name in registry.names() if _async_type(registry, name))
    where = "sequential items" if not batch.get("parallel") else f"items on {executor}"
    return (
        f"nodes[{index}].batch.max_concurrent: {wanted} is over {MAX_LANES}, the most for "
        f"{where}; only parallel batches of node types with an async path "
        f"({', '.join(async_types) or 'none installed'}) run up to {MAX_ASYNC_IN_FLIGHT} in "
        "flight, on async lanes"
    )


def _async_type(registry: Any, name: str) -> bool:
    node_class = registry.get(name)
    return node_class is not None and has_async_path(node_class)


def _unshippable_class(node_class: type) -> str | None:
    """Why a worker process could not get ``node_class`` by name, or None when it can."""
    if not getattr(node_class, "ships_to_workers", True):
        return "must run in the run's own process (ships_to_workers = False)"
    module, qualname = node_class.__module__, node_class.__qualname__
    if module == "__main__":
        return f"is defined in __main__ ({qualname}), which a worker process cannot import"
    if "<locals>" in qualname:
        return f"is defined inside a function ({module}.{qualname}): a worker cannot import it"
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception:
        found = None
    if found is not node_class:
        return f"is not importable as {module}.{qualname}, so a worker process cannot load it"
    return None
