"""Reading a workflow file within limits: its text and, for JSON, its value.

Kept apart from validation (which checks a value, whatever file it came from) and from the
markdown parser (which turns text into a value): both read through here, so a file that is
missing, binary, endless or nested too deep is one line the same way in every format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pflow_trace.errors import UsageError, WorkflowValidationError
from pflow_trace.text import MAX_NESTING_DEPTH, terminal_safe

#: The largest workflow file read; a bigger one (or an endless one, /dev/zero) is refused
#: after reading this much, not after filling memory.
MAX_WORKFLOW_BYTES = 16 * 1024 * 1024


def read_at_most(path: str | Path, limit: int) -> bytes:
    """A file's first ``limit`` bytes, read in chunks: ``read(limit)`` alone would set aside
    ``limit`` bytes up front, 16 MB for the smallest workflow."""
    chunks: list[bytes] = []
    size = 0
    with open(path, "rb") as stream:
        while size < limit:
            chunk = stream.read(min(_READ_CHUNK_BYTES, limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks)


_READ_CHUNK_BYTES = 256 * 1024


def read_workflow_text(path: str | Path) -> str:
    """A workflow file's text; unreadable, binary or oversized files are one-line errors."""
    source = Path(path)
    try:
        data = read_at_most(source, MAX_WORKFLOW_BYTES + 1)
        text = data.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark is no text
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


def _reject_constant(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")
