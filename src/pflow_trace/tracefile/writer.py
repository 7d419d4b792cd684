"""Where trace files go and how they are written: atomically, privately, always valid JSON.

Location: ``--trace-file PATH``; else ``--trace-dir DIR`` or ``PFLOW_TRACE_DIR``; else
``~/.pflow-trace/traces/`` (one rule, shared with ``show``: ``traces.locate.default_trace_dir``).
Name: ``workflow-trace-<name>-<YYYYmmdd-HHMMSS>-<short id>.json``.

A trace holds what a run saw, so it is written like a private file: directories we create are
``0700``, files ``0600``; the file is written beside its destination and renamed over it, so a
symlink planted at the destination is replaced, never followed. A destination that exists and
is not a regular file (a device, a FIFO, a socket, a directory) is refused before the run
starts (:func:`check_destination`), and checked again right before the rename. ``export -o``
writes its files the same way (:func:`write_private_file`).
"""

from __future__ import annotations

import itertools
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pflow_trace.errors import TraceWriteError, UsageError
from pflow_trace.tracefile.locate import default_trace_dir
from pflow_trace.tracefile.spool import TextBlocks, encode_elements, encode_json

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


#: The most characters of the workflow name a trace file name keeps. File systems allow 255
#: bytes per name; the rest of ours takes 45, and the full name is inside the file anyway.
MAX_NAME_CHARS_IN_FILE_NAME = 120


def _file_name_part(workflow_name: str) -> str:
    """The workflow name made safe for a file name, and short enough for any file system."""
    safe_name = _UNSAFE.sub("-", workflow_name).strip("-") or "workflow"
    return safe_name[:MAX_NAME_CHARS_IN_FILE_NAME].rstrip("-.") or "workflow"


def trace_file_name(workflow_name: str, start_ns: int, execution_id: str) -> str:
    stamp = datetime.fromtimestamp(start_ns / 1e9, tz=UTC).astimezone().strftime("%Y%m%d-%H%M%S")
    safe_name = _file_name_part(workflow_name)
    return f"workflow-trace-{safe_name}-{stamp}-{execution_id.replace('-', '')[:8]}.json"


def resolve_trace_path(
    trace_file: str | None,
    trace_dir: str | None,
    workflow_name: str,
    start_ns: int,
    execution_id: str,
) -> Path:
    if trace_file:
        return Path(trace_file).expanduser()
    directory = default_trace_dir(trace_dir)
    return directory / trace_file_name(workflow_name, start_ns, execution_id)


#: Modes of what we create: only the user may read a trace.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def check_destination(path: Path, option: str) -> None:
    """Refuse a destination that exists and is not a regular file (a symlink is replaced).

    ``/dev/null``, a FIFO or a socket would otherwise be replaced by a regular file (as root,
    the real device), and a directory would fail only after the run.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(f"{option} {path}: {exc.strerror or exc}") from None
    if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    raise UsageError(f"{option} {path} is {kind}; give the path of a regular file")


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and missing parents as ``0700`` (whatever the umask says)."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(folder, PRIVATE_DIR_MODE)  # mkdir's mode is masked by the umask


def ensure_writable_dir(path: Path) -> None:
    """Fail before the run starts when the trace cannot be written, not after."""
    try:
        make_private_dirs(path.parent)
    except OSError as exc:
        raise UsageError(f"cannot create trace directory {path.parent}: {exc.strerror}") from None
    if not path.parent.is_dir():
        raise UsageError(f"trace directory {path.parent} is not a directory")
    if not os.access(path.parent, os.W_OK):
        raise UsageError(f"trace directory {path.parent} is not writable")


def iter_json_chunks(value: Any, depth: int = 0) -> Iterator[str]:
    """JSON text in pieces: containers near the top are walked, everything below is encoded
    whole by the C encoder. Peak memory is then the largest node event or span row, not the
    whole file, while the encoding stays at C speed (``json.dump`` to a file would take the
    pure-Python encoder)."""
    if isinstance(value, TextBlocks):  # already JSON text (spooled): copied, not re-encoded
        yield "["
        for position, text in enumerate(value.texts()):
            if position:
                yield ", "
            yield text
        yield "]"
        return
    if depth >= _STREAM_DEPTH or not isinstance(value, (dict, list)) or not value:
        yield from _leaf_chunks(value)
        return
    if isinstance(value, dict):
        yield "{"
        for position, (key, item) in enumerate(value.items()):
            yield (", " if position else "") + encode_json(str(key)) + ": "
            yield from iter_json_chunks(item, depth + 1)
        yield "}"
        return
    yield "["
    if depth + 1 >= _STREAM_DEPTH:  # elements are leaves: encode them a block at a time
        for start in range(0, len(value), _BLOCK_ITEMS):
            yield (", " if start else "") + encode_elements(value[start : start + _BLOCK_ITEMS])
        yield "]"
        return
    for position, item in enumerate(value):
        if position:
            yield ", "
        yield from iter_json_chunks(item, depth + 1)
    yield "]"


def _leaf_chunks(value: Any) -> Iterator[str]:
    """A value below the streamed depth: whole, except that long lists (a batch's results,
    its ``batch_items``) go a block of elements at a time, and small dicts holding containers
    are walked to reach them, so no single string is the size of the file."""
    if isinstance(value, list) and len(value) > _BLOCK_ITEMS:
        yield "["
        for start in range(0, len(value), _BLOCK_ITEMS):
            yield (", " if start else "") + encode_elements(value[start : start + _BLOCK_ITEMS])
        yield "]"
    elif (
        isinstance(value, dict)
        and 0 < len(value) <= _WALKED_DICT_KEYS
        and any(isinstance(item, (dict, list)) for item in value.values())
    ):
        yield "{"
        for position, (key, item) in enumerate(value.items()):
            yield (", " if position else "") + encode_json(str(key)) + ": "
            yield from _leaf_chunks(item)
        yield "}"
    else:
        yield encode_json(value)


#: Dicts below the streamed depth with at most this many keys are walked for long lists.
_WALKED_DICT_KEYS = 64

#: Leaf elements (span rows) encoded by one C encoder call: one call per row cost more than
#: the encoding itself, and a block of this many rows is still a small string.
_BLOCK_ITEMS = 1000


#: Depth down to which containers are streamed: document → otel → spans → rows.
_STREAM_DEPTH = 3


def write_trace(path: Path, document: dict[str, Any]) -> Path:
    """Write the trace atomically; a refusal by the file system is one :class:`TraceWriteError`.

    Disk full, a name too long, a quota: the message names the path and the reason, and
    nothing half-written is left behind.
    """
    try:
        return _write_atomically(path, document)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise TraceWriteError(f"cannot write the trace file {path}: {reason}") from None


def _write_atomically(path: Path, document: dict[str, Any]) -> Path:
    """Write to a temporary file beside ``path``, then rename: readers never see half a file."""
    chunks = itertools.chain(iter_json_chunks(document), ["\n"])
    return write_private_file(path, chunks, "--trace-file")


def write_private_file(path: Path, chunks: Iterable[str], option: str) -> Path:
    """Write ``chunks`` to a ``0600`` temporary file beside ``path``, then rename it over.

    The rename replaces a symlink at ``path`` instead of writing through it; a destination
    that became a device, FIFO or directory since it was checked is refused, not replaced.
    """
    make_private_dirs(path.parent)
    descriptor, temporary = tempfile.mkstemp(prefix=".trace-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", buffering=1 << 20) as handle:
            for chunk in chunks:
                handle.write(chunk)
        check_destination(path, option)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    return path
