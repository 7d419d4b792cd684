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

Text that is not valid Unicode (a lone surrogate: a file name that was not UTF-8, a
``"\\ud800"`` from a program) is written escaped, ``\\udcff`` as the six characters
``\\udcff``, and the trace's ``warnings`` say how many values held some; see
``docs/trace-format.md``.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pflow_trace.errors import TraceWriteError, UsageError
from pflow_trace.text import escape_surrogates, escape_surrogates_in_json, not_unicode_warning
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
    nothing half-written is left behind. Text that is not valid Unicode is escaped as it is
    written, and the document's ``warnings`` (in the file, and in ``document`` afterwards) say
    how many values held some.
    """
    try:
        return _write_atomically(path, document)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise TraceWriteError(f"cannot write the trace file {path}: {reason}") from None


def _write_atomically(path: Path, document: dict[str, Any]) -> Path:
    """Write to a temporary file beside ``path``, then rename: readers never see half a file."""
    escaped = EscapeCount()
    chunks = itertools.chain(_document_chunks(document, escaped), ["\n"])
    write_private_file(path, chunks, "--trace-file", escaped)
    if escaped.values:
        document["warnings"] = _warnings_with_escapes(document, escaped.values)
    return path


def _document_chunks(document: dict[str, Any], escaped: EscapeCount) -> Iterator[str]:
    """The document's chunks, with its ``warnings`` written last: by then the writer knows
    whether any value had to be escaped."""
    body = {key: value for key, value in document.items() if key != "warnings"}
    pieces = iter_json_chunks(body)
    closing = next(pieces)
    for piece in pieces:
        yield closing
        closing = piece  # the last piece is the document's closing brace
    warnings = _warnings_with_escapes(document, escaped.values)
    if warnings:
        yield (", " if body else "") + '"warnings": ' + encode_json(warnings)
    yield closing


def _warnings_with_escapes(document: dict[str, Any], escaped_values: int) -> list[str]:
    """The document's warnings, and the escape note when this write escaped values."""
    warnings = list(document.get("warnings") or ())
    note = not_unicode_warning(escaped_values, "this trace")
    if escaped_values and note not in warnings:
        warnings.append(note)
    return warnings


class EscapeCount:
    """How many values a writer escaped (text that is not valid Unicode), as it writes."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values = 0


def write_private_file(
    path: Path,
    chunks: Iterable[str],
    option: str,
    escaped: EscapeCount | None = None,
    json_chunks: bool = True,
) -> Path:
    """Write ``chunks`` to a ``0600`` temporary file beside ``path``, then rename it over.

    The rename replaces a symlink at ``path`` instead of writing through it; a destination
    that became a device, FIFO or directory since it was checked is refused, not replaced.
    A chunk UTF-8 cannot encode (it holds a lone surrogate) is written escaped
    (:func:`~pflow_trace.text.escape_surrogates_in_json`; with ``json_chunks=False``, as plain
    text) and counted in ``escaped``; every other chunk is written as it is, at no extra cost.
    Stale temporary files of earlier writes that died are removed first
    (:func:`remove_stale_temporaries`).
    """
    make_private_dirs(path.parent)
    remove_stale_temporaries(path.parent)
    descriptor, temporary = tempfile.mkstemp(
        prefix=_temporary_prefix(), suffix=TEMPORARY_SUFFIX, dir=path.parent
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", buffering=1 << 20) as handle:
            for chunk in chunks:
                try:
                    handle.write(chunk)
                except UnicodeEncodeError:  # nothing of the chunk was written: escape, retry
                    if json_chunks:
                        chunk, count = escape_surrogates_in_json(chunk)
                    else:
                        chunk, count = escape_surrogates(chunk), 1
                    handle.write(chunk)
                    if escaped is not None:
                        escaped.values += count
        check_destination(path, option)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    return path


#: Temporary files are named ``.trace-<pid>@<host>-<random>.tmp``: who is writing one, and
#: where (a directory on a shared file system is written from several hosts).
TEMPORARY_PREFIX = ".trace-"
TEMPORARY_SUFFIX = ".tmp"
#: A temporary file this old is stale even when its pid is alive (the pid was reused), and one
#: from another host (whose processes we cannot see) is stale only at this age.
STALE_TEMPORARY_AGE_S = 3600
_TEMPORARY_NAME = re.compile(r"\.trace-(?:(\d+)@([A-Za-z0-9_.]+)-)?[A-Za-z0-9_]+\.tmp\Z")
_HOST_UNSAFE = re.compile(r"[^A-Za-z0-9_.]+")


def writer_host() -> str:
    """This host's name as temporary file names carry it."""
    return _HOST_UNSAFE.sub("_", socket.gethostname())[:64] or "host"


def _temporary_prefix() -> str:
    return f"{TEMPORARY_PREFIX}{os.getpid()}@{writer_host()}-"


def remove_stale_temporaries(directory: Path) -> int:
    """Remove temporary files a writer left behind when it was killed (``kill -9`` mid-write).

    A ``.trace-*.tmp`` file is stale when it was written on this host by a process that is
    gone, or when it is more than an hour old (a file from another host, whose processes we
    cannot see; one without a pid, from an older version; a reused pid). A live writer's file
    is young and, on this host, its pid alive, so it is never touched. Only regular files we
    own are removed, and any error leaves the file alone: this is tidying, never a failure.
    Returns how many were removed.
    """
    removed = 0
    now = time.time()
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        match = _TEMPORARY_NAME.match(name)
        if match is None:
            continue
        candidate = directory / name
        try:
            info = os.lstat(candidate)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
                continue
            here = match.group(2) == writer_host()
            pid = int(match.group(1)) if match.group(1) and here else None
            if pid == os.getpid():
                continue
            if now - info.st_mtime < STALE_TEMPORARY_AGE_S and (pid is None or _alive(pid)):
                continue
            os.unlink(candidate)
            removed += 1
        except (OSError, ValueError):
            continue
    return removed


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    except OSError:
        return True
    return True
