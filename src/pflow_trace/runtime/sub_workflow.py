"""Runs a ``workflow`` step's child: load, check, run through this runtime, hand back outputs.

The child is compiled with the caller's :class:`~pflow_trace.runtime.context.RunContext`, so its
nodes are wrapper chains like any other: their spans start under the calling step's span (the
current span when the step's node runs, an item's span in a batch) and their records reach the
same observers, each naming its callers (:data:`~pflow_trace.runtime.context.current_caller`).
The file run is recorded, by path and sha256, on the caller's record and span.

As in pflow-cli 0.16, the child's store holds only its inputs; the step's outputs are the
child's declared outputs (every node namespace of the child when it declares none); a child that
fails fails the step with ``Sub-workflow failed at <file> (node '<id>'): <error>``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry import trace

from pflow_trace.engine import Flow
from pflow_trace.errors import NodeExecutionError, PflowTraceError, WorkflowValidationError
from pflow_trace.ir.loading import load_and_validate
from pflow_trace.ir.sub_workflows import cycle_text, file_sha256, find_child, input_problems
from pflow_trace.ir.templates import UnresolvedTemplate, parse_string, resolve
from pflow_trace.nodes.base import NodeFailure
from pflow_trace.nodes.registry import NodeRegistry
from pflow_trace.nodes.workflow_call import DEFAULT_MAX_DEPTH, WORKFLOW_DIR_PARAM
from pflow_trace.observe import conventions as conv
from pflow_trace.runtime.context import CallSite, RunContext, current_caller, current_execution
from pflow_trace.runtime.inputs import resolve_inputs

#: Compiles a validated child into a flow, with the caller's registry and run context.
Compile = Callable[[dict[str, Any], NodeRegistry | None, RunContext | None], Flow]


#: Loaded children: (file, mtime, size, the files calling it, registry) → (child, sha256).
_CHILDREN: dict[tuple[Any, ...], tuple[dict[str, Any], str]] = {}
#: (reference, directory) → its file, found once (a file gone since is caught by ``_load``).
_FOUND: dict[tuple[str, str], Path] = {}
_CHILDREN_LOCK = threading.Lock()
#: The cache is emptied when it holds this many children (a long-lived process stays small).
MAX_CACHED_CHILDREN = 256


class SubWorkflowRunner:
    """One ``workflow`` step's runner. Finding and loading a file is remembered across
    runners (module caches), so a batch or a nested child does it once, not once per call."""

    def __init__(self, run: RunContext, registry: NodeRegistry, compile_child: Compile) -> None:
        self.run = run
        self.registry = registry
        self.compile_child = compile_child

    def __deepcopy__(self, memo: dict[int, Any]) -> SubWorkflowRunner:
        """Shared, not copied: a parallel batch copies its node per lane, and every lane runs
        children through the same run context (the runner is safe from any thread)."""
        return self

    def __call__(self, node_id: str, params: dict[str, Any]) -> dict[str, Any]:
        reference = str(params["workflow"])
        path = self._find(reference, str(params.get(WORKFLOW_DIR_PARAM) or os.getcwd()))
        caller = current_caller.get()
        files: tuple[Path, ...] = caller.files if caller is not None else ()
        max_depth = params.get("max_depth", DEFAULT_MAX_DEPTH)
        if len(files) >= max_depth:
            raise _refused(f"sub-workflow nesting deeper than max_depth ({max_depth})")
        if path in files:
            raise _refused(f"circular sub-workflow reference: {cycle_text(files, path)}")
        child, sha256 = self._load(reference, path, files)
        _record_file(path, sha256)
        values = _child_inputs(reference, params.get("inputs"), child)
        execution = current_execution.get()
        site = CallSite(
            path=(*(caller.path if caller is not None else ()), node_id),
            span_id=execution.span_id if execution is not None else 0,
            files=(*files, path),
        )
        token = current_caller.set(site)
        shared: dict[str, Any] = dict(values)
        try:
            self.compile_child(child, self.registry, self.run)._run(shared)
        except NodeExecutionError as exc:
            raise NodeFailure(
                f"Sub-workflow failed at {reference} (node '{exc.node_id}'): {_detail(exc)}",
                retriable=False,
            ) from None
        finally:
            current_caller.reset(token)
        return _child_outputs(reference, child, shared)

    def _find(self, reference: str, workflow_dir: str) -> Path:
        """The file a reference names (remembered), or the step fails saying why not."""
        key = (reference, workflow_dir)
        with _CHILDREN_LOCK:
            path = _FOUND.get(key)
        if path is not None:
            return path
        found = find_child(reference, workflow_dir)
        if isinstance(found, str):
            raise _refused(found)
        with _CHILDREN_LOCK:
            if len(_FOUND) >= MAX_CACHED_CHILDREN:
                _FOUND.clear()
            _FOUND[key] = found
        return found

    def _load(
        self, reference: str, path: Path, files: tuple[Path, ...]
    ) -> tuple[dict[str, Any], str]:
        """The child, validated (with its own references), and its file's sha256.

        Kept across runners (a nested child is compiled anew for every call, with runners of
        its own) while the file's size and modification time stay the same.
        """
        try:
            stat = path.stat()
        except OSError as exc:
            raise _refused(f"sub-workflow {reference}: {type(exc).__name__}") from None
        key = (path, stat.st_mtime_ns, stat.st_size, files, id(self.registry))
        with _CHILDREN_LOCK:
            loaded = _CHILDREN.get(key)
        if loaded is not None:
            return loaded
        try:
            child = load_and_validate(path, self.registry, files)
        except WorkflowValidationError as exc:
            raise _refused(f"sub-workflow {reference}: {'; '.join(exc.problems)}") from None
        except PflowTraceError as exc:
            raise _refused(f"sub-workflow {reference}: {exc}") from None
        loaded = (child, file_sha256(path))
        with _CHILDREN_LOCK:
            if len(_CHILDREN) >= MAX_CACHED_CHILDREN:
                _CHILDREN.clear()
            _CHILDREN[key] = loaded
        return loaded


def _refused(message: str) -> NodeFailure:
    """A step that cannot run its child: not worth another attempt."""
    return NodeFailure(message, retriable=False)


def _detail(exc: NodeExecutionError) -> str:
    """The child node's own error, without the ``node 'x' failed:`` the id already says."""
    text = str(exc)
    prefix = f"node '{exc.node_id}' failed: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def _record_file(path: Path, sha256: str) -> None:
    """The file on the caller's record (once) and on the current span (the step's or item's)."""
    execution = current_execution.get()
    if execution is not None:
        entry = {"path": str(path), "sha256": sha256}
        if entry not in execution.sub_workflows:
            execution.sub_workflows.append(entry)
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(conv.ATTR_SUB_WORKFLOW_PATH, str(path))
        span.set_attribute(conv.ATTR_SUB_WORKFLOW_SHA256, sha256)


def _child_inputs(
    reference: str, given: dict[str, Any] | None, child: dict[str, Any]
) -> dict[str, Any]:
    """The child's store to start with: the inputs given, checked, with the child's defaults.

    ``given`` is a mapping or None: the node's params schema refuses any other shape first."""
    problems = input_problems("inputs", given or {}, child)
    if problems:
        raise _refused(f"sub-workflow {reference}: {'; '.join(problems)}")
    try:
        return resolve_inputs(child, dict(given or {}))
    except PflowTraceError as exc:
        raise _refused(f"sub-workflow {reference}: {exc}") from None


def _child_outputs(reference: str, child: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
    """The child's declared outputs; every node namespace when it declares none."""
    declared = child.get("outputs") or {}
    if not declared:
        node_ids = [node["id"] for node in child["nodes"]]
        return {node_id: shared[node_id] for node_id in node_ids if node_id in shared}
    outputs: dict[str, Any] = {}
    for name, template in declared.items():
        try:
            value = resolve(parse_string(template), shared)
        except UnresolvedTemplate:
            raise _refused(
                f"Sub-workflow failed at {reference}: output '{name}' cannot resolve {template}"
            ) from None
        if value is not None:
            outputs[name] = value
    return outputs
