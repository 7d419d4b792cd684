"""Workflow validation: every problem found, each named by its JSON path.

Validation runs before anything executes: first the JSON Schema shipped in this package, then
the checks a schema cannot express (ids, node types, edges, which node a template may read, alias
shadowing). All problems are collected and reported together.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema

from pflow_trace.errors import WorkflowValidationError
from pflow_trace.ir.executor_choice import executor_problems, lane_limit_problems
from pflow_trace.ir.loop_checks import LOOP_TEMPLATE_FIELDS, loop_problems, single_reference
from pflow_trace.ir.node_outputs import unwritten_key_problem
from pflow_trace.ir.param_checks import closest_key_hint, param_problems, unknown_name_hint
from pflow_trace.ir.pflow_ir import adapt_pflow_ir
from pflow_trace.ir.prompt_cache import cache_problems, cache_vars
from pflow_trace.ir.run_order import RunOrder
from pflow_trace.ir.templates import (
    TemplateSyntaxError,
    compile_value,
    is_root_key,
    iter_references,
)
from pflow_trace.nodes.mcp_config import type_problem as mcp_type_problem
from pflow_trace.nodes.registry import MCP_TYPE_PREFIX, NodeRegistry, default_registry
from pflow_trace.text import json_path, nesting_problem, terminal_safe

#: Where a batch's items may run (runtime/executors): this process, local processes, Dask.
EXECUTOR_NAMES = ("threads", "processes", "dask")


@lru_cache(maxsize=1)
def workflow_schema() -> dict[str, Any]:
    text = resources.files("pflow_trace.ir").joinpath("schemas/workflow.schema.json").read_text()
    return json.loads(text)


@lru_cache(maxsize=1)
def _schema_validator() -> Any:
    """The schema's validator, with its ``#/$defs/...`` references written in place.

    Resolving a reference costs more than checking what it points to, once per node and edge;
    the schema's references are not recursive, so inlining them is exact and several times
    faster on a big workflow.
    """
    schema = workflow_schema()
    return jsonschema.Draft202012Validator(_inlined(schema, schema.get("$defs", {})))


def _inlined(schema: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(schema, list):
        return [_inlined(item, definitions) for item in schema]
    if not isinstance(schema, dict):
        return schema
    reference = schema.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/$defs/") and len(schema) == 1:
        return _inlined(definitions[reference.removeprefix("#/$defs/")], definitions)
    return {key: _inlined(value, definitions) for key, value in schema.items()}


def _schema_message(error: jsonschema.ValidationError) -> str:
    path = list(error.absolute_path)
    if path[-2:-1] == ["batch"] and path[-1:] == ["items"] and error.validator == "oneOf":
        return "expected a single ${...} template or a JSON array"
    if path[-2:-1] == ["batch"] and path[-1:] == ["key"]:
        return f"expected a template naming each item, such as ${{item.id}}, got {error.instance!r}"
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


#: Unknown names get a "closest" hint in this many problems; past that, each hint (a comparison
#: with every name) would make a big workflow full of typos quadratic to validate.
MAX_SPELLING_HINTS = 100


@dataclass
class _Scope:
    """What one workflow's templates may read: inputs, nodes and their order, written keys."""

    inputs: set[str]
    first_index: dict[str, int]
    nodes: list[dict[str, Any]]
    order: RunOrder
    registry: NodeRegistry
    hints_left: int = MAX_SPELLING_HINTS

    def closest(self, word: str, candidates: Iterable[str], count: int = 3) -> list[str]:
        """The closest spellings of ``word``, until the workflow's hint budget is spent."""
        if self.hints_left <= 0:
            return []
        self.hints_left -= 1
        return difflib.get_close_matches(word, sorted(candidates), n=count)


def _listed(value: Any) -> list[Any]:
    """A list field as a list; any other shape is the schema's problem, and checks skip it."""
    return value if isinstance(value, list) else []


def semantic_problems(workflow: dict[str, Any], registry: NodeRegistry) -> list[str]:
    """The problems a schema cannot express, in a stable order: nodes, edges, then templates."""
    nodes = [node for node in _listed(workflow.get("nodes")) if isinstance(node, dict)]
    declared_inputs = workflow.get("inputs")
    inputs = set(declared_inputs) if isinstance(declared_inputs, dict) else set()
    edges = [edge for edge in _listed(workflow.get("edges")) if isinstance(edge, dict)]
    first_index, problems = _node_problems(nodes, inputs, registry)
    problems += _stdin_problems(declared_inputs)
    scope = _Scope(inputs, first_index, nodes, RunOrder(first_index, edges), registry)
    problems += _edge_problems(edges, scope)
    for index, node in enumerate(nodes):
        if isinstance(node.get("id"), str):
            problems += _node_template_problems(index, node, scope)
            problems += loop_problems(index, node) + _loop_template_problems(index, node, scope)
    outputs = workflow.get("outputs")
    for name, template in outputs.items() if isinstance(outputs, dict) else ():
        if isinstance(template, str):
            problems += _template_problems(f"outputs.{name}", template, scope, None)
    for number, template in enumerate(cache_vars(workflow)):
        problems += _template_problems(f"cache.items[{number}].var", template, scope, None)
    problems += cache_problems(workflow)
    return problems + _unused_input_problems(workflow, inputs)


def _unused_input_problems(workflow: dict[str, Any], inputs: set[str]) -> list[str]:
    """Inputs no template reads (in params, batches or outputs): pflow rejects them, since a
    declared input nobody reads is a wrong declaration or a forgotten use."""
    if not inputs:
        return []
    read: set[str] = set()
    for node in _listed(workflow.get("nodes")):
        if isinstance(node, dict):
            read |= _template_heads([node.get("params"), node.get("batch"), node.get("loop")])
    read |= _template_heads([workflow.get("outputs"), cache_vars(workflow)])
    return [
        f"inputs.{name}: input '{name}' is declared but no template reads it"
        for name in sorted(inputs - read)
    ]


def _template_heads(value: Any) -> set[str]:
    """The first name of every template path in ``value`` (unparsable ones are left out: their
    own problem is reported where they are)."""
    heads: set[str] = set()
    for text in _strings(value):
        try:
            heads.update(reference.head for reference in iter_references(compile_value(text)))
        except TemplateSyntaxError:
            continue
    return heads


def _strings(value: Any) -> list[str]:
    """Every string in ``value``, keys left out (an iterative walk: nesting is bounded)."""
    found, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


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
        if "retry" in node and "batch" in node:
            problems.append(
                f"nodes[{index}].retry: retry on a batch node is not supported "
                "(use batch max_retries and retry_wait)"
            )
        node_type = node.get("type")
        if isinstance(node_type, str) and registry.get(node_type) is None:
            problems.append(f"nodes[{index}].type: {_unknown_type(node_type, registry)}")
    return first_index, problems


def _stdin_problems(declared_inputs: Any) -> list[str]:
    """Piped stdin fills one input: more than one ``stdin: true`` is ambiguous (as in pflow)."""
    if not isinstance(declared_inputs, dict):
        return []
    marked = [
        str(name)
        for name, spec in declared_inputs.items()
        if isinstance(spec, dict) and spec.get("stdin") is True
    ]
    if len(marked) < 2:
        return []
    return [f"inputs: more than one input has stdin: true ({', '.join(marked)}); only one can"]


#: pflow node types pflow-trace knows of but does not run yet, with what to do instead.
_PFLOW_TYPES_NOT_RUN: dict[str, str] = {}


def _unknown_type(node_type: str, registry: NodeRegistry) -> str:
    """Name the unknown type with the closest known ones, or all of them when none is close.

    An ``mcp-…`` type is unknown because no configured MCP server matches it: that is said.
    """
    if node_type.startswith(MCP_TYPE_PREFIX):
        problem = mcp_type_problem(node_type)
        if problem is not None:
            return f"unknown node type '{node_type}': {problem}"
    if node_type in _PFLOW_TYPES_NOT_RUN:
        return f"node type '{node_type}': {_PFLOW_TYPES_NOT_RUN[node_type]}"
    closest = registry.closest(node_type)
    hint = (
        f"did you mean {', '.join(closest)}?"
        if closest
        else f"known: {', '.join(registry.names())}"
    )
    return f"unknown node type '{node_type}' ({hint})"


def _edge_problems(edges: list[dict[str, Any]], scope: _Scope) -> list[str]:
    """Edges naming unknown nodes, and a second edge for the same node and action."""
    problems: list[str] = []
    first_edge: dict[tuple[str, str], int] = {}
    for index, edge in enumerate(edges):
        for end in ("from", "to"):
            target = edge.get(end)
            if isinstance(target, str) and target not in scope.first_index:
                closest = scope.closest(target, scope.first_index, count=1)
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


def _node_template_problems(index: int, node: dict[str, Any], scope: _Scope) -> list[str]:
    """Alias shadowing, and templates in params, ``batch.items`` and ``batch.key`` reading
    what they cannot.

    Params and ``batch.key`` see the batch alias; ``batch.items`` does not (it is resolved
    before any item).
    """
    node_id: str = node["id"]
    problems: list[str] = []
    batch = node.get("batch") if isinstance(node.get("batch"), dict) else None
    alias = batch.get("as", "item") if batch else None
    alias = alias if isinstance(alias, str) else None
    if alias is not None:
        if alias in scope.first_index:
            problems.append(f"nodes[{index}].batch.as: alias '{alias}' shadows node '{alias}'")
        if alias in scope.inputs:
            problems.append(f"nodes[{index}].batch.as: alias '{alias}' shadows input '{alias}'")
    params = node.get("params")
    own_inputs = params.get("inputs") if isinstance(params, dict) else None
    local = frozenset(own_inputs) if isinstance(own_inputs, dict) else frozenset()
    for key, value in params.items() if isinstance(params, dict) else ():
        path = f"nodes[{index}].params.{key}"
        # The node's own ``inputs`` keys are names its other params read (not ``inputs`` itself).
        names = local if key != "inputs" else frozenset()
        problems += _template_problems(path, value, scope, node_id, alias, True, names)
    if batch is not None and isinstance(batch.get("items"), str):
        path = f"nodes[{index}].batch.items"
        problems += _template_problems(path, batch["items"], scope, node_id, alias)
    if batch is not None and isinstance(batch.get("key"), str):  # evaluated per item: sees it
        path = f"nodes[{index}].batch.key"
        problems += _template_problems(path, batch["key"], scope, node_id, alias, True)
    return problems


def _loop_template_problems(index: int, node: dict[str, Any], scope: _Scope) -> list[str]:
    """A loop's condition and templated cap read what params may, and the node itself."""
    loop = node.get("loop")
    problems: list[str] = []
    for field in LOOP_TEMPLATE_FIELDS if isinstance(loop, dict) else ():
        reference = single_reference(loop.get(field))
        if reference is not None and reference.head != node["id"]:
            problems += _template_problems(
                f"nodes[{index}].loop.{field}", loop[field], scope, node["id"]
            )
    return problems


def _template_problems(
    path: str,
    value: Any,
    scope: _Scope,
    node_id: str | None,
    alias: str | None = None,
    alias_visible: bool = False,
    local: frozenset[str] = frozenset(),
) -> list[str]:
    """What the templates in ``value`` read that they cannot, as seen from node ``node_id``.

    ``node_id`` None is the workflow's ``outputs``, which may read every node and input;
    ``local`` are the keys of the node's own ``inputs``, which shadow every other name.
    """
    try:
        compiled = compile_value(value)
    except TemplateSyntaxError as exc:
        return [f"{path}: {exc}"]
    own_alias = alias if alias_visible else None

    def readable(name: str) -> bool:
        if name in scope.inputs or name == own_alias:
            return True
        if name not in scope.first_index:
            return False
        return node_id is None or scope.order.may_run_before(name, node_id)

    problems = []
    for reference in iter_references(compiled):
        head = reference.head
        if head in local or is_root_key(head) or head in scope.inputs or head == own_alias:
            continue
        if readable(head):
            node = scope.nodes[scope.first_index[head]]
            unwritten = unwritten_key_problem(path, reference, node, scope.registry)
            problems += [unwritten] if unwritten else []
            continue
        if head in scope.first_index:
            if reference.fallbacks:  # ``??``: the node may not have run, and that is the point
                continue
            when = "itself" if head == node_id else "a node that cannot have run before it"
            problems.append(f"{path}: {reference.text} reads '{head}', {when}")
            continue
        hint = unknown_name_hint(head, reference.text, alias)
        if not hint and scope.hints_left > 0:  # else listing every name costs for nothing
            names = [*scope.inputs, *scope.first_index, *([own_alias] if own_alias else [])]
            closest = [name for name in scope.closest(head, names, count=10) if readable(name)]
            hint = f" (closest: {', '.join(closest[:3])})" if closest else ""
        problems.append(f"{path}: {reference.text} names unknown '{head}'{hint}")
    return problems


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
        problems += lane_limit_problems(workflow, registry)
        if not problems:
            problems += executor_problems(workflow, registry)
    if problems:
        raise WorkflowValidationError(source, [terminal_safe(problem) for problem in problems])
    return workflow


def workflow_warnings(workflow: dict[str, Any]) -> list[str]:
    """What a valid workflow does that is allowed but risky; never fails validation."""
    from pflow_trace.ir.shell_safety import shell_injection_warnings

    return shell_injection_warnings(workflow)
