"""The ``read-file`` and ``write-file`` nodes: text files in, text files out.

Paths expand ``~`` and are reported back as absolute paths, so a trace or a later node sees
exactly which file was touched regardless of the working directory.
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

from pflow_trace.nodes.base import RUNTIME_KEYS, NodeFailure, WorkflowNode
from pflow_trace.nodes.failures import parse_json_or_fail


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
    """Reads a whole text file; with ``parse_json`` also parses it."""

    type_name: ClassVar[str] = "read-file"
    params_schema: ClassVar[dict[str, Any] | None] = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "minLength": 1},
            "encoding": {"type": "string", "minLength": 1},
            "parse_json": {"type": "boolean"},
        },
        "required": ["path"],
        "patternProperties": RUNTIME_KEYS,
        "additionalProperties": False,
    }

    def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        path = _absolute(params["path"])
        encoding: str = params.get("encoding", "utf-8")
        _check_encoding(encoding)
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except OSError as exc:
            raise _os_failure("read", params["path"], exc) from None
        try:
            content = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise NodeFailure(
                f"cannot read '{params['path']}' as {encoding}: invalid byte at offset {exc.start}"
            ) from None
        outputs: dict[str, Any] = {"content": content, "path": path, "size_bytes": len(raw)}
        if params.get("parse_json"):
            complaint = f"'{params['path']}' is not valid JSON"
            outputs["json"] = parse_json_or_fail(content, complaint, outputs)
        return outputs


class WriteFileNode(WorkflowNode):
    """Writes (or appends) text; a non-string ``content`` is written as indented JSON."""

    type_name: ClassVar[str] = "write-file"
    params_schema: ClassVar[dict[str, Any] | None] = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "minLength": 1},
            "content": {},
            "encoding": {"type": "string", "minLength": 1},
            "append": {"type": "boolean"},
            "make_dirs": {"type": "boolean"},
        },
        "required": ["path", "content"],
        "patternProperties": RUNTIME_KEYS,
        "additionalProperties": False,
    }

    def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        path = _absolute(params["path"])
        encoding: str = params.get("encoding", "utf-8")
        _check_encoding(encoding)
        content = params["content"]
        if not isinstance(content, str):
            try:
                content = json.dumps(content, indent=2, ensure_ascii=False) + "\n"
            except (TypeError, ValueError) as exc:
                raise NodeFailure(f"cannot write content as JSON: {exc}") from None
        try:
            data = content.encode(encoding)
        except UnicodeEncodeError as exc:
            raise NodeFailure(
                f"cannot encode content as {encoding}: {exc.object[exc.start : exc.end]!r}"
                " has no encoding"
            ) from None

        try:
            if params.get("make_dirs", True):
                os.makedirs(os.path.dirname(path), exist_ok=True)
            # Binary mode: bytes_written is exact and no newline translation sneaks in.
            with open(path, "ab" if params.get("append") else "wb") as handle:
                handle.write(data)
        except OSError as exc:
            raise _os_failure("write", params["path"], exc) from None
        return {"path": path, "bytes_written": len(data)}
