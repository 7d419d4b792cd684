"""``run --dry-run``: what each node would work on, found without running what costs or acts.

The safe rule: a dry run runs only the nodes that some batch's ``batch.items`` depend on
(directly or through the templates of those nodes), and only when every one of them is of a
type that computes locally without acting on the world: :data:`DRY_RUN_SAFE_TYPES`. A batch
whose items need anything else (an ``llm`` or ``http`` call, a ``shell`` command, an MCP tool,
a file written or moved) is left unresolved, and the preview says which node it would have to
run and why it did not. Nothing else runs: no ``llm`` node, no batch item, no node after them.
The nodes that do run run untraced, in workflow order, as a workflow of their own.

Each node's preview then holds what a forecast needs: its items (when known), the lanes it
would use, and for an ``llm`` node the prompt and system text each call would send (resolved
against the inputs, what ran, and the item), or the literal text of the templates where a
value is not known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pflow_trace.errors import PflowTraceError
from pflow_trace.ir.templates import (
    Interpolation,
    Reference,
    UnresolvedTemplate,
    compile_value,
    iter_references,
    json_list_or_value,
    lookup,
    resolve,
    to_text,
)
from pflow_trace.nodes.registry import NodeRegistry
from pflow_trace.runtime.inputs import resolve_inputs
from pflow_trace.runtime.workflow_run import run_workflow

#: Node types a dry run may run to find a batch's items: they read and compute, nothing more.
#: ``code`` runs the workflow's own Python snippet, as the run would; a snippet with side
#: effects of its own is the workflow author's to keep out of a batch's item source.
DRY_RUN_SAFE_TYPES = frozenset({"echo", "code", "read-file"})


@dataclass(slots=True)
class LlmCall:
    """One call an ``llm`` node would make: its text, and how many template values are unknown."""

    prompt: str
    system: str
    unknown_values: int = 0


@dataclass(slots=True)
class NodePreview:
    """One node as a dry run sees it."""

    node_id: str
    node_type: str
    batch: bool
    #: The batch's items; None when they could not be found (``items_reason`` says why).
    items: list[Any] | None = None
    items_reason: str | None = None
    lanes: int = 1
    model: str | None = None
    max_tokens: int | None = None
    #: ``llm`` nodes: the calls (one per item, or one); empty when not an ``llm`` node.
    calls: list[LlmCall] = field(default_factory=list)
    #: Ran during the dry run to find some batch's items.
    ran: bool = False


@dataclass(slots=True)
class WorkflowPreview:
    workflow_name: str
    nodes: list[NodePreview]
    #: The nodes run to find items, in order.
    ran: list[str]
    #: Why a node that batch items depend on was not run (one line each).
    notes: list[str] = field(default_factory=list)


def _roots(compiled: Any) -> set[str]:
    return {reference.head for reference in iter_references(compiled)}


def item_sources(workflow: Mapping[str, Any]) -> set[str]:
    """The ids of the nodes some ``batch.items`` depends on, directly or transitively."""
    by_id = {node["id"]: node for node in workflow["nodes"]}
    wanted: set[str] = set()
    pending = [
        root
        for node in workflow["nodes"]
        if "batch" in node
        for root in _roots(compile_value(node["batch"]["items"]))
    ]
    while pending:
        node_id = pending.pop()
        if node_id in wanted or node_id not in by_id:
            continue
        wanted.add(node_id)
        node = by_id[node_id]
        pending.extend(_roots(compile_value(node.get("params") or {})))
        if "batch" in node:
            pending.extend(_roots(compile_value(node["batch"]["items"])))
    return wanted


def run_item_sources(
    workflow: dict[str, Any], values: dict[str, Any], registry: NodeRegistry | None
) -> tuple[dict[str, Any], list[str], list[str]]:
    """Run the safe item sources; (the store after them, the ids that ran, notes)."""
    needed = item_sources(workflow)
    by_id = {node["id"]: node for node in workflow["nodes"]}
    unsafe = sorted(
        node_id for node_id in needed if by_id[node_id]["type"] not in DRY_RUN_SAFE_TYPES
    )
    notes = [
        f"batch items depend on '{node_id}' ({by_id[node_id]['type']}), which a dry run does "
        "not run"
        for node_id in unsafe
    ]
    blocked = set(unsafe)
    changed = True
    while changed:  # a node reading a node that does not run cannot run either
        changed = False
        for node_id in needed - blocked:
            node = by_id[node_id]
            reads = _roots(compile_value(node.get("params") or {}))
            if "batch" in node:
                reads |= _roots(compile_value(node["batch"]["items"]))
            if reads & blocked:
                blocked.add(node_id)
                changed = True
    runnable = [node for node in workflow["nodes"] if node["id"] in needed - blocked]
    if not runnable:
        return dict(values), [], notes
    part = {key: value for key, value in workflow.items() if key not in ("edges", "outputs")}
    part["nodes"] = runnable
    result = run_workflow(part, resolved_inputs=values, registry=registry)
    if result.status not in ("success", "degraded"):
        notes.append(f"finding batch items failed: {result.error}")
    return result.shared, [node["id"] for node in runnable], notes


def preview_workflow(
    workflow: dict[str, Any], inputs: dict[str, Any], registry: NodeRegistry | None = None
) -> WorkflowPreview:
    """Every node of ``workflow`` as a dry run sees it (module docstring)."""
    values = resolve_inputs(workflow, inputs)
    shared, ran, notes = run_item_sources(workflow, values, registry)
    previews = [_preview(node, shared, node["id"] in ran) for node in workflow["nodes"]]
    return WorkflowPreview(str(workflow.get("name") or "workflow"), previews, ran, notes)


def _preview(node: dict[str, Any], shared: Mapping[str, Any], ran: bool) -> NodePreview:
    block = node.get("batch")
    params = node.get("params") or {}
    preview = NodePreview(node["id"], node["type"], block is not None, ran=ran)
    if block is not None:
        preview.lanes = int(block.get("max_concurrent", 10)) if block.get("parallel") else 1
        preview.items, preview.items_reason = _items(node, shared)
    if node["type"] == "llm":
        preview.model = _model(params.get("model"), shared)
        preview.max_tokens = params.get("max_tokens") if "max_tokens" in params else None
        alias = block.get("as", "item") if block is not None else None
        stores = (
            [{**shared, alias: item} for item in preview.items]
            if block is not None and preview.items is not None
            else [shared]
        )
        prompt, system = (
            compile_value(params.get("prompt", "")),
            compile_value(params.get("system")),
        )
        preview.calls = [_call(prompt, system, store) for store in stores]
    return preview


def _model(name: Any, shared: Mapping[str, Any]) -> str | None:
    """The model a node names, its template resolved when the inputs say it; None: the
    ``llm`` library's default (or a model only a run knows)."""
    try:
        resolved = resolve(compile_value(name), shared)
    except (UnresolvedTemplate, LookupError, TypeError, ValueError):
        return None
    return resolved if isinstance(resolved, str) and resolved else None


def _items(node: dict[str, Any], shared: Mapping[str, Any]) -> tuple[list[Any] | None, str | None]:
    compiled = compile_value(node["batch"]["items"])
    try:
        items = json_list_or_value(resolve(compiled, shared))
    except UnresolvedTemplate as miss:
        return None, f"its items read {miss.reference.text}, which is only known by running"
    except (PflowTraceError, LookupError, TypeError, ValueError) as exc:
        return None, f"its items could not be resolved: {exc}"
    if not isinstance(items, list):
        return None, "its items do not resolve to a list"
    return items, None


def _call(prompt: Any, system: Any, store: Mapping[str, Any]) -> LlmCall:
    unknown = [0]
    text = _text(prompt, store, unknown)
    system_text = _text(system, store, unknown) if system is not None else ""
    return LlmCall(text, system_text, unknown[0])


def _text(compiled: Any, store: Mapping[str, Any], unknown: list[int]) -> str:
    """The text a template resolves to; a value not known reads as nothing (and is counted)."""
    parts = compiled.parts if isinstance(compiled, Interpolation) else (compiled,)
    pieces: list[str] = []
    for part in parts:
        if isinstance(part, Reference):
            try:
                pieces.append(to_text(lookup(part, store)))
            except (UnresolvedTemplate, LookupError, TypeError, ValueError):
                unknown[0] += 1
        else:
            pieces.append(to_text(part))
    return "".join(pieces)
