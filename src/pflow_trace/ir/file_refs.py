"""The files a workflow's params were read from, recorded by path and hash (never their text).

A param that names a file (``- command: ./scripts/run.sh``, ``"prompt": "./prompts/x.prompt.md"``)
is replaced by the file's text when the workflow is loaded, so nothing later could say which file
a node ran. Loading therefore keeps, on the node, one record per such param under
:data:`FILE_REFS_KEY`: ``{"param", "path", "sha256", "bytes"}`` — the path as the workflow wrote
it, and the sha256 and size of the bytes read. The compiler hands the list to the node's
execution facts; the trace record, the node span and the reports are views of that one fact.
"""

from __future__ import annotations

import hashlib
from typing import Any

#: The node-level key the records live under (loading sets it; a workflow file's own value is
#: replaced, so a record always describes the bytes that were read).
FILE_REFS_KEY = "_files"


def file_ref(param: str, path: str, data: bytes) -> dict[str, Any]:
    """The record of one param read from ``path`` (as written): its bytes' sha256 and size."""
    return {
        "param": param,
        "path": path,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
    }


def file_refs_of(node: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """A node's file records, in param order (empty for a node that names no file)."""
    refs = node.get(FILE_REFS_KEY)
    return tuple(ref for ref in refs if isinstance(ref, dict)) if isinstance(refs, list) else ()


def span_values(refs: tuple[dict[str, Any], ...]) -> list[str]:
    """The records as the node span carries them: ``param=path@sha256`` each."""
    return [f"{ref['param']}={ref['path']}@{ref['sha256']}" for ref in refs]
