"""The ``code`` node: a few lines of Python over named inputs, for glue a shell would make ugly.

This is not a sandbox: the code runs in-process with full builtins, exactly like the workflow's
author running it themselves. Batches run the same source thousands of times on several threads,
so compiled code is cached per source string, and what the code writes (``print``,
``sys.stdout``, ``sys.stderr``, ``logging``) is captured per call into the ``stdout`` and
``stderr`` outputs (:mod:`~pflow_trace.nodes.output_capture`), which the run redacts like any
output. An exception out of the code, ``BaseException`` included, is the node failing with a
one-line message; only the runtime's own stops pass through
(:func:`~pflow_trace.nodes.base.is_runtime_stop`).

As in pflow (pflow-cli 0.16), a top-level bare annotation (``items: list``) declares an input:
the value bound to it must have that outer type, and a JSON object or array arriving as text is
parsed first. ``Any``, ``Optional`` and ``typing`` need no import. A string left in ``next``
is the action the node returns, so a workflow can branch on it.
"""

from __future__ import annotations

import ast
import builtins
import copy
import json
import threading
import typing
from collections.abc import Mapping
from types import CodeType
from typing import Any, ClassVar

from pflow_trace.engine.core import Shared
from pflow_trace.nodes.base import (
    RUNTIME_KEYS,
    NodeFailure,
    WorkflowNode,
    exception_line,
    is_runtime_stop,
)
from pflow_trace.nodes.output_capture import captured_output

FILENAME = "<code node>"
#: Where ``exec`` hands the chosen ``next`` to ``post`` (never written to the store).
ACTION = "__action__"
# Sources can differ per batch item once templates are resolved into them; bound the cache.
_CACHE_MAX = 256
_compiled: dict[str, CodeType] = {}
_compiled_lock = threading.Lock()


def compile_cached(source: str) -> CodeType:
    """Compile ``source`` once; reads are lock-free (a dict lookup is atomic), writes locked."""
    code = _compiled.get(source)
    if code is not None:
        return code
    code = compile(source, FILENAME, "exec")
    with _compiled_lock:
        if len(_compiled) >= _CACHE_MAX:
            _compiled.clear()
        _compiled.setdefault(source, code)
    return code


_OUTER_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "bytes": (bytes,),
    "list": (list,),
    "dict": (dict,),
    "tuple": (tuple, list),
    "set": (set, list),
    "None": (type(None),),
}


def _accepted_types(annotation: ast.expr) -> tuple[type, ...] | None:
    """The outer types an annotation admits; None when anything goes (``Any``, unknown)."""
    if isinstance(annotation, ast.Subscript):
        base = annotation.value
        if isinstance(base, ast.Name) and base.id == "Optional":
            inner = _accepted_types(annotation.slice)
            return None if inner is None else (*inner, type(None))
        return _accepted_types(base)
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        left, right = _accepted_types(annotation.left), _accepted_types(annotation.right)
        return None if left is None or right is None else (*left, *right)
    if isinstance(annotation, ast.Constant) and annotation.value is None:
        return (type(None),)
    if isinstance(annotation, ast.Name):
        return _OUTER_TYPES.get(annotation.id)
    return None


_declared_cache: dict[str, dict[str, tuple[tuple[type, ...] | None, str]]] = {}


def declared_inputs(source: str) -> dict[str, tuple[tuple[type, ...] | None, str]]:
    """Top-level bare annotations: name → (accepted outer types, the annotation as written)."""
    declared = _declared_cache.get(source)
    if declared is not None:
        return declared
    declared = {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return declared
    for statement in tree.body:
        if (
            isinstance(statement, ast.AnnAssign)
            and statement.value is None
            and isinstance(statement.target, ast.Name)
        ):
            annotation = statement.annotation
            declared[statement.target.id] = (_accepted_types(annotation), ast.unparse(annotation))
    if len(_declared_cache) < _CACHE_MAX:
        _declared_cache[source] = declared
    return declared


def _typed_input(name: str, value: Any, accepted: tuple[type, ...] | None, written: str) -> Any:
    """Parse JSON text for a non-string annotation, then check the outer type."""
    if isinstance(value, str) and (accepted is None or str not in accepted):
        stripped = value.strip()
        if stripped[:1] in ("{", "["):
            try:
                value = json.loads(stripped)
            except ValueError:
                pass
    if accepted is None or isinstance(value, accepted):
        return value
    got = type(value).__name__
    raise NodeFailure(f"input '{name}' expects {written} but received {got}")


def _user_line(exc: BaseException) -> int | None:
    """The line of the user's code where ``exc`` was raised (the innermost frame in it)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


class CodeNode(WorkflowNode):
    """Runs ``code`` with ``inputs`` as variables; outputs ``result`` and printed ``stdout``."""

    type_name: ClassVar[str] = "code"
    output_keys: ClassVar[frozenset[str] | None] = frozenset({"result", "stdout", "stderr"})
    captures_output: ClassVar[bool] = True
    params_schema: ClassVar[dict[str, Any] | None] = {
        "type": "object",
        "properties": {
            "code": {"type": "string"},
            "inputs": {
                "type": "object",
                "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
            },
            "timeout": {"type": ["number", "null"], "exclusiveMinimum": 0},
            "requires": {"type": "array"},
        },
        "required": ["code"],
        "patternProperties": RUNTIME_KEYS,
        "additionalProperties": False,
    }

    def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            code = compile_cached(params["code"])
        except SyntaxError as exc:
            where = f"line {exc.lineno}" if exc.lineno else "unknown line"
            text = f": {exc.text.strip()}" if exc.text and exc.text.strip() else ""
            raise NodeFailure(f"SyntaxError on {where}: {exc.msg}{text}") from None

        inputs = dict(params.get("inputs") or {})
        for name, (accepted, written) in declared_inputs(params["code"]).items():
            if name in inputs:
                inputs[name] = _typed_input(name, inputs[name], accepted, written)
        # One dict as globals and locals, so functions defined in the code see its variables.
        # Inputs are copied: they may be objects in the store that other threads read.
        namespace: dict[str, Any] = {
            "__builtins__": builtins,
            "__name__": "__pflow_code__",
            "Any": Any,
            "Optional": typing.Optional,
            "typing": typing,
            **_private_copy(inputs),
        }
        with captured_output() as output:
            try:
                exec(code, namespace)
            except BaseException as exc:
                if is_runtime_stop(exc):
                    raise
                failed = {
                    "stdout": output.stdout.getvalue(),
                    "stderr": output.stderr.getvalue(),
                    "error_line": _user_line(exc),
                }
                raise NodeFailure(exception_line(exc), outputs=failed) from None
        outputs = {
            "result": namespace.get("result"),
            "stdout": output.stdout.getvalue(),
            "stderr": output.stderr.getvalue(),
        }
        route = namespace.get("next")
        return {**outputs, ACTION: route} if isinstance(route, str) else outputs

    def post(self, shared: Shared, prep_result: Any, exec_result: Any) -> str | None:
        """Write the outputs; the ``next`` the code chose is the action, not an output."""
        outputs: Mapping[str, Any] = exec_result or {}
        for key, value in outputs.items():
            if key != ACTION:
                shared[key] = value
        action = outputs.get(ACTION)
        return action if isinstance(action, str) else None


#: Values a snippet cannot change in place: they need no copy.
_IMMUTABLE_TYPES = frozenset({str, int, float, bool, type(None), bytes})


def _private_copy(inputs: dict[str, Any]) -> dict[str, Any]:
    """``inputs`` (already a fresh dict) with every mutable value deep-copied.

    The common batch item is a number or a string: copying those is a no-op that still cost
    ``deepcopy``'s memo bookkeeping on every item.
    """
    if _IMMUTABLE_TYPES.issuperset(map(type, inputs.values())):
        return inputs
    return copy.deepcopy(inputs)
