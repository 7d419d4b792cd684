"""Workflow loading and validation: every problem found, each named by its JSON path.

Validation runs before anything executes: first the JSON Schema shipped in this package, then
the checks a schema cannot express (ids, node types, edges, which node a template may read, alias
shadowing). All problems are collected and reported together.
"""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from pflow_trace.errors import UsageError, WorkflowValidationError
from pflow_trace.ir.executor_choice import executor_problems
from pflow_trace.ir.param_checks import closest_key_hint, param_problems, unknown_name_hint
from pflow_trace.ir.pflow_ir import adapt_pflow_ir
from pflow_trace.ir.templates import (
    TemplateSyntaxError,
    compile_value,
    is_root_key,
    iter_references,
)
from pflow_trace.nodes.registry import NodeRegistry, default_registry
from pflow_trace.text import MAX_NESTING_DEPTH, json_path, nesting_problem, terminal_safe

#: Where a batch's items may run (runtime/executors): this process, local processes, Dask.
EXECUTOR_NAMES = ("threads", "processes", "dask")


@lru_cache(maxsize=1)
def workflow_schema() -> dict[str, Any]:
    text = resources.files("pflow_trace.ir").joinpath("schemas/workflow.schema.json").read_text()
    return json.loads(text)


@lru_cache(maxsize=1)
def _schema_validator() -> Any:
    return jsonschema.Draft202012Validator(workflow_schema())


def _schema_message(error: jsonschema.ValidationError) -> str:
    path = list(error.absolute_path)
    if path[-2:-1] == ["batch"] and path[-1:] == ["items"] and error.validator == "oneOf":
        return "expected a single ${...} template or a JSON array"
    if error.validator == "pattern" and isinstance(error.instance, str):
        if path == ["inputs"]:  # propertyNames: the bad name is the instance
            return f"input name {error.instance!r} is not an identifier (letters, digits, _ and -)"
        if path and path[-1] == "id":
            return f"{error.instance!r} is not an identifier (letters, digits, _ and -)"
        if len(path) > 1 and path[-1] == "as":
            return f"{error.instance!r} is not an identifier (letters, digits and _)"
        if len(path) == 2 and path[0] == "outputs":
            return f"expected a ${{node.key}} template, got {error.instance!r}"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties") or {}
        unknown = [key for key in error.instance if key not in known]
        return "; ".join(
            f"unknown key '{key}'{closest_key_hint(str(key), known)}" for key in unknown
        )
    if error.validator == "const" and path == ["ir_version"]:
        return f'expected "0.1.0", got {json.dumps(error.instance)}'
    return error.message


def schema_problems(workflow: Any) -> list[str]:
    errors = sorted(
        _schema_validator().iter_errors(workflow), key=lambda e: list(map(str, e.absolute_path))
    )
    return [
        f"{json_path(error.absolute_path, root='')}: {_schema_message(error)}" for error in errors
    ]


def _predecessors(node_ids: list[str], edges: list[dict[str, Any]]) -> dict[str, set[str]]:
    """For each node, the nodes that can have run before it."""
    if not edges:
        return {node_id: set(node_ids[:index]) for index, node_id in enumerate(node_ids)}
    successors: dict[str, set[str]] = {node_id: set() for node_id in node_ids}
    for edge in edges:
        if edge.get("from") in successors and edge.get("to") in successors:
            successors[edge["from"]].add(edge["to"])
    result: dict[str, set[str]] = {node_id: set() for node_id in node_ids}
    for origin in node_ids:  # everything reachable from ``origin`` may run after it
        stack, seen = list(successors[origin]), set()
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            result[current].add(origin)
            stack.extend(successors[current])
    return result


def semantic_problems(workflow: dict[str, Any], registry: NodeRegistry) -> list[str]:
    """The problems a schema cannot express, in a stable order: nodes, edges, then templates."""
    nodes = [node for node in workflow.get("nodes", []) if isinstance(node, dict)]
    inputs = set((workflow.get("inputs") or {}).keys())
    edges = [edge for edge in workflow.get("edges") or [] if isinstance(edge, dict)]
    first_index, problems = _node_problems(nodes, inputs, registry)
    problems += _edge_problems(edges, first_index)
    may_run_before = _predecessors(list(first_index), edges)
    for index, node in enumerate(nodes):
        if isinstance(node.get("id"), str):
            problems += _node_template_problems(index, node, inputs, first_index, may_run_before)
    all_names = inputs | set(first_index)
    for name, template in (workflow.get("outputs") or {}).items():
        if isinstance(template, str):
            problems += _template_problems(
                f"outputs.{name}", template, all_names, first_index, None
            )
    return problems


def _node_problems(
    nodes: list[dict[str, Any]], inputs: set[str], registry: NodeRegistry
) -> tuple[dict[str, int], list[str]]:
    """Duplicate ids, ids that are also inputs, unknown types; and each id's first node index.

    The index map is what every later check looks node ids up in, so it is built here, once.
    """
    first_index: dict[str, int] = {}
    problems: list[str] = []
    for index, node in enumerate(nodes):
        node_id = node.get("id")
        if not isinstance(node_id, str):
            continue
        if node_id in first_index:
            first = first_index[node_id]
            problems.append(
                f"nodes[{index}].id: duplicate id '{node_id}' (first at nodes[{first}])"
            )
        else:
            first_index[node_id] = index
        if node_id in inputs:
            problems.append(f"nodes[{index}].id: '{node_id}' is also the name of an input")
        node_type = node.get("type")
        if isinstance(node_type, str) and registry.get(node_type) is None:
            problems.append(f"nodes[{index}].type: {_unknown_type(node_type, registry)}")
    return first_index, problems


def _unknown_type(node_type: str, registry: NodeRegistry) -> str:
    """Name the unknown type with the closest known ones, or all of them when none is close."""
    closest = registry.closest(node_type)
    hint = (
        f"did you mean {', '.join(closest)}?"
        if closest
        else f"known: {', '.join(registry.names())}"
    )
    return f"unknown node type '{node_type}' ({hint})"


def _edge_problems(edges: list[dict[str, Any]], first_index: dict[str, int]) -> list[str]:
    """Edges naming unknown nodes, and a second edge for the same node and action."""
    problems: list[str] = []
    node_ids = list(first_index)
    first_edge: dict[tuple[str, str], int] = {}
    for index, edge in enumerate(edges):
        for end in ("from", "to"):
            target = edge.get(end)
            if isinstance(target, str) and target not in first_index:
                closest = difflib.get_close_matches(target, node_ids, n=1)
                hint = f" (did you mean '{closest[0]}'?)" if closest else ""
                problems.append(f"edges[{index}].{end}: unknown node '{target}'{hint}")
        key = (str(edge.get("from")), str(edge.get("action", "default")))
        if key in first_edge:
            problems.append(
                f"edges[{index}]: a second edge from '{key[0]}' for action '{key[1]}' "
                f"(first at edges[{first_edge[key]}])"
            )
        else:
            first_edge[key] = index
    return problems


def _node_template_problems(
    index: int,
    node: dict[str, Any],
    inputs: set[str],
    first_index: dict[str, int],
    may_run_before: dict[str, set[str]],
) -> list[str]:
    """Alias shadowing, and templates in params and ``batch.items`` reading what they cannot.

    Params see the batch alias; ``batch.items`` does not (it is resolved before any item).
    """
    node_id: str = node["id"]
    problems: list[str] = []
    batch = node.get("batch") if isinstance(node.get("batch"), dict) else None
    alias = batch.get("as", "item") if batch else None
    if alias is not None and isinstance(alias, str):
        if alias in first_index:
            problems.append(f"nodes[{index}].batch.as: alias '{alias}' shadows node '{alias}'")
        if alias in inputs:
            problems.append(f"nodes[{index}].batch.as: alias '{alias}' shadows input '{alias}'")
    visible = inputs | may_run_before.get(node_id, set())
    sources: list[tuple[str, Any, set[str]]] = (
        [
            (f"nodes[{index}].params.{key}", value, visible | ({alias} if alias else set()))
            for key, value in (node.get("params") or {}).items()
        ]
        if isinstance(node.get("params"), dict)
        else []
    )
    if batch is not None and isinstance(batch.get("items"), str):
        sources.append((f"nodes[{index}].batch.items", batch["items"], visible))
    text_alias = alias if isinstance(alias, str) else None
    for path, value, names in sources:
        problems.extend(_template_problems(path, value, names, first_index, node_id, text_alias))
    return problems


def _template_problems(
    path: str,
    value: Any,
    visible: set[str],
    node_ids: dict[str, int],
    node_id: str | None,
    alias: str | None = None,
) -> list[str]:
    try:
        compiled = compile_value(value)
    except TemplateSyntaxError as exc:
        return [f"{path}: {exc}"]
    problems = []
    for reference in iter_references(compiled):
        head = reference.head
        if head in visible or is_root_key(head):
            continue
        if head in node_ids:
            if reference.fallbacks:  # ``??``: the node may not have run, and that is the point
                continue
            when = "itself" if head == node_id else "a node that cannot have run before it"
            problems.append(f"{path}: {reference.text} reads '{head}', {when}")
            continue
        hint = unknown_name_hint(head, reference.text, alias)
        closest = difflib.get_close_matches(head, sorted(visible), n=3)
        if not hint and closest:
            hint = f" (closest: {', '.join(closest)})"
        problems.append(f"{path}: {reference.text} names unknown '{head}'{hint}")
    return problems


#: The largest workflow file read; a bigger one (or an endless one, /dev/zero) is refused
#: after reading this much, not after filling memory.
MAX_WORKFLOW_BYTES = 16 * 1024 * 1024


def read_workflow_text(path: str | Path) -> str:
    """A workflow file's text; unreadable, binary or oversized files are one-line errors."""
    source = Path(path)
    try:
        with open(source, "rb") as stream:
            data = stream.read(MAX_WORKFLOW_BYTES + 1)
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"{source}: no such workflow file") from None
    except IsADirectoryError:
        raise UsageError(f"{source}: is a directory, not a workflow file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: a NUL in the name
        raise UsageError(f"{terminal_safe(source)}: cannot read workflow: {exc}") from None
    if len(data) > MAX_WORKFLOW_BYTES:
        limit_mb = MAX_WORKFLOW_BYTES // (1024 * 1024)
        raise UsageError(f"{source}: larger than {limit_mb} MB, not a workflow file")
    return text


def parse_workflow_json(text: str, source: str) -> Any:
    """A JSON workflow's value; bad JSON, NaN/Infinity and runaway nesting are one problem."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise WorkflowValidationError(
            source, [f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"]
        ) from None
    except ValueError as exc:  # NaN, Infinity: Python's parser takes them, JSON does not
        raise WorkflowValidationError(source, [f"not valid JSON: {exc}"]) from None
    except RecursionError:
        raise WorkflowValidationError(
            source, [f"nested more than {MAX_NESTING_DEPTH} levels deep"]
        ) from None


def load_workflow_file(path: str | Path) -> dict[str, Any]:
    """Read and parse a workflow file: JSON (ours or pflow's IR) or ``.pflow.md``."""
    from pflow_trace.ir.markdown import is_markdown, parse_markdown

    source = Path(path)
    text = read_workflow_text(source)
    if is_markdown(source, text):
        return parse_markdown(text, source).workflow
    workflow: dict[str, Any] = parse_workflow_json(text, str(source))
    return workflow


def _reject_constant(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def validate_workflow(
    workflow: Any, source: str = "workflow", registry: NodeRegistry | None = None
) -> dict[str, Any]:
    """Return the workflow (pflow IR adapted to ours) when valid; else raise with all problems."""
    registry = registry or default_registry()
    # Checked first and alone: every later check walks the value recursively.
    too_deep = nesting_problem(workflow)
    if too_deep is not None:
        raise WorkflowValidationError(source, [too_deep])
    workflow, problems = adapt_pflow_ir(workflow)
    problems += schema_problems(workflow)
    if isinstance(workflow, dict):
        problems += semantic_problems(workflow, registry)
        problems += param_problems(workflow, registry)
        if not problems:
            problems += executor_problems(workflow, registry)
    if problems:
        raise WorkflowValidationError(source, [terminal_safe(problem) for problem in problems])
    return workflow


def load_and_validate(path: str | Path, registry: NodeRegistry | None = None) -> dict[str, Any]:
    from pflow_trace.ir.loading import load_and_validate_any

    return load_and_validate_any(path, registry)


def workflow_warnings(workflow: dict[str, Any]) -> list[str]:
    """What a valid workflow does that is allowed but risky; never fails validation."""
    from pflow_trace.ir.shell_safety import shell_injection_warnings

    return shell_injection_warnings(workflow)
