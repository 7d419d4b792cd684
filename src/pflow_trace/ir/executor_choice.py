"""Which executor a batch runs on, and what cannot be sent to another process.

A batch on the ``processes`` or ``dask`` executor rebuilds its node in a worker from the class,
imported by name, and the params, pickled. What cannot make that trip is refused when the
workflow is validated (and before ``run --executor`` starts), never discovered mid-run.
"""

from __future__ import annotations

import importlib
import importlib.util
import pickle
from collections.abc import Mapping
from typing import Any

from pflow_trace.nodes.registry import NodeRegistry


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
