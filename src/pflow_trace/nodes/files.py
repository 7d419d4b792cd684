"""The ``read-file`` and ``write-file`` nodes, with pflow's params and outputs (pflow-cli 0.16).

``file_path`` expands ``~`` and is reported back absolute, so a trace or a later node sees
exactly which file was touched regardless of the working directory. ``write-file`` creates
missing directories and says what it did in ``written``, as pflow does.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any, ClassVar

from pflow_trace.nodes.base import RUNTIME_KEYS, NodeFailure, WorkflowNode


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def _os_failure(action: str, path: str, exc: OSError) -> NodeFailure:
    """One clear line for the usual file-system mistakes instead of an errno dump."""
    reasons = {
        FileNotFoundError: "no such file or directory",
        IsADirectoryError: "it is a directory",
        NotADirectoryError: "a parent of it is not a directory",
        PermissionError: "permission denied",
        FileExistsError: "a file is in the way of a directory",
    }
    reason = reasons.get(type(exc)) or exc.strerror or str(exc)
    return NodeFailure(f"cannot {action} '{path}': {reason}")


def _check_encoding(encoding: str) -> None:
    try:
        "".encode(encoding)
    except LookupError:
        raise NodeFailure(f"unknown encoding '{encoding}'") from None


class ReadFileNode(WorkflowNode):
    """Reads a whole file: text as it is, bytes that are not text as base64."""

    type_name: ClassVar[str] = "read-file"
    output_keys: ClassVar[frozenset[str] | None] = frozenset(
        {"content", "content_is_binary", "file_path"}
    )
    params_schema: ClassVar[dict[str, Any] | None] = {
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "minLength": 1},
            "encoding": {"type": "string", "minLength": 1},
        },
        "required": ["file_path"],
        "patternProperties": RUNTIME_KEYS,
        "additionalProperties": False,
    }

    def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        path = _absolute(params["file_path"])
        encoding: str = params.get("encoding", "utf-8")
        _check_encoding(encoding)
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except OSError as exc:
            raise _os_failure("read", params["file_path"], exc) from None
        try:
            content, is_binary = raw.decode(encoding), False
        except UnicodeDecodeError:
            content, is_binary = base64.b64encode(raw).decode("ascii"), True
        return {"content": content, "content_is_binary": is_binary, "file_path": path}


class WriteFileNode(WorkflowNode):
    """Writes (or appends) text; a value that is not a string is written as JSON."""

    type_name: ClassVar[str] = "write-file"
    output_keys: ClassVar[frozenset[str] | None] = frozenset({"written"})
    params_schema: ClassVar[dict[str, Any] | None] = {
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "minLength": 1},
            "content": {},
            "content_is_binary": {"type": "boolean"},
            "encoding": {"type": "string", "minLength": 1},
            "append": {"type": "boolean"},
        },
        "required": ["file_path", "content"],
        "patternProperties": RUNTIME_KEYS,
        "additionalProperties": False,
    }

    def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        path = _absolute(params["file_path"])
        data = self._data(params)
        append = bool(params.get("append"))
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            # Binary mode: no newline translation sneaks in.
            with open(path, "ab" if append else "wb") as handle:
                handle.write(data)
        except OSError as exc:
            raise _os_failure("write", params["file_path"], exc) from None
        verb = "appended to" if append else "wrote to"
        return {"written": f"Successfully {verb} '{path}'"}

    @staticmethod
    def _data(params: dict[str, Any]) -> bytes:
        """The bytes to write: base64 decoded, or text encoded (JSON for other values)."""
        content = params["content"]
        if params.get("content_is_binary"):
            try:
                return base64.b64decode(str(content), validate=True)
            except ValueError:
                raise NodeFailure("content_is_binary is true but content is not base64") from None
        encoding: str = params.get("encoding", "utf-8")
        _check_encoding(encoding)
        if not isinstance(content, str):
            try:
                content = json.dumps(content, ensure_ascii=False)
            except (TypeError, ValueError) as exc:
                raise NodeFailure(f"cannot write content as JSON: {exc}") from None
        try:
            return content.encode(encoding)
        except UnicodeEncodeError as exc:
            raise NodeFailure(
                f"cannot encode content as {encoding}: {exc.object[exc.start : exc.end]!r}"
                " has no encoding"
            ) from None
