"""The ``code`` node: a few lines of Python over named inputs, for glue a shell would make ugly.

This is not a sandbox: the code runs in-process with full builtins, exactly like the workflow's
author running it themselves. Batches run the same source thousands of times on several threads,
so compiled code is cached per source string and ``print`` is captured per call, never through
the process-wide ``sys.stdout``.
"""

from __future__ import annotations

import builtins
import copy
import io
import threading
from types import CodeType
from typing import Any, ClassVar

from pflow_trace.nodes.base import RUNTIME_KEYS, NodeFailure, WorkflowNode, is_signal_interrupt

FILENAME = "<code node>"
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


def _capturing_print(buffer: io.StringIO) -> Any:
    """A ``print`` that writes to ``buffer`` unless the caller names another ``file``."""

    def print_(
        *args: Any,
        sep: str | None = " ",
        end: str | None = "\n",
        file: Any = None,
        flush: bool = False,
    ) -> None:
        if file is None:
            builtins.print(*args, sep=sep, end=end, file=buffer)
        else:
            builtins.print(*args, sep=sep, end=end, file=file, flush=flush)

    return print_


def _user_line(exc: BaseException) -> int | None:
    """The line of the user's code where ``exc`` was raised (the innermost frame in it)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _exception_line(exc: BaseException) -> str:
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


class CodeNode(WorkflowNode):
    """Runs ``code`` with ``inputs`` as variables; outputs ``result`` and printed ``stdout``."""

    type_name: ClassVar[str] = "code"
    params_schema: ClassVar[dict[str, Any] | None] = {
        "type": "object",
        "properties": {
            "code": {"type": "string"},
            "inputs": {
                "type": "object",
                "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
            },
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

        buffer = io.StringIO()
        # One dict as globals and locals, so functions defined in the code see its variables.
        # Inputs are copied: they may be objects in the store that other threads read.
        namespace: dict[str, Any] = {
            "__builtins__": builtins,
            "__name__": "__pflow_code__",
            **copy.deepcopy(params.get("inputs") or {}),
            "print": _capturing_print(buffer),
        }
        try:
            exec(code, namespace)
        except (Exception, SystemExit, KeyboardInterrupt) as exc:
            # exit() must not end the runtime, and a KeyboardInterrupt the snippet raised itself
            # is this node failing; only the user's signal stops the run.
            if isinstance(exc, KeyboardInterrupt) and is_signal_interrupt(exc):
                raise
            outputs = {"stdout": buffer.getvalue(), "error_line": _user_line(exc)}
            raise NodeFailure(_exception_line(exc), outputs=outputs) from None
        return {"result": namespace.get("result"), "stdout": buffer.getvalue()}
