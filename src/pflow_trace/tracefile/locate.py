"""Which trace files ``show`` reads: explicit files, directories, or the newest default trace.

The default directory is, first found: ``--trace-dir``, the ``PFLOW_TRACE_DIR`` environment
variable, ``~/.pflow-trace/traces/``. A trace file is any file ending ``.json`` or ``.jsonl``;
directories are not searched recursively, so a directory means "these runs", not "everything
below here".
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pflow_trace.errors import TraceReadError
from pflow_trace.text import terminal_safe

ENV_TRACE_DIR = "PFLOW_TRACE_DIR"
#: How much of a file :func:`workflow_name_hint` looks at: our traces name the workflow in
#: their first few hundred bytes.
NAME_HINT_BYTES = 4096
_NAME_FIELD = re.compile(rb'"workflow_name"\s*:\s*("(?:[^"\\]|\\.)*")')
DEFAULT_TRACE_DIR = Path("~/.pflow-trace/traces")
TRACE_SUFFIXES = (".json", ".jsonl")


def default_trace_dir(
    override: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """The directory traces are written to and read from when no path is given."""
    if override is not None:
        return Path(override).expanduser()
    environ = os.environ if environ is None else environ
    from_env = environ.get(ENV_TRACE_DIR)
    if from_env:
        return Path(from_env).expanduser()
    return DEFAULT_TRACE_DIR.expanduser()


def trace_files_in(directory: Path) -> list[Path]:
    """Trace files directly inside ``directory``, sorted by name (names start with a time)."""
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        raise TraceReadError(f"{directory}: no such directory") from None
    except NotADirectoryError:
        raise TraceReadError(f"{directory}: not a directory") from None
    except OSError as exc:
        raise TraceReadError(f"{directory}: cannot list ({exc.strerror or exc})") from None
    return sorted(
        (path for path in entries if path.suffix in TRACE_SUFFIXES and path.is_file()),
        key=lambda path: path.name,
    )


def newest_trace(directory: Path) -> Path:
    """The most recently modified trace file in ``directory``.

    A file deleted while the directory is being looked at (another run cleaning up) is
    skipped, not an error.
    """
    dated: list[tuple[int, str, Path]] = []
    for path in trace_files_in(directory):
        try:
            dated.append((path.stat().st_mtime_ns, path.name, path))
        except FileNotFoundError:
            continue
    if not dated:
        raise TraceReadError(f"{directory}: no trace files (*.json, *.jsonl) in directory")
    return max(dated)[2]


def resolve_trace_paths(
    paths: Sequence[str | os.PathLike[str]],
    trace_dir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Path]:
    """Expand the command's arguments into the list of trace files to read, in order.

    No argument means the newest trace in the default directory; a directory means every
    trace file in it; a file is taken as given (a missing one fails here, by name).
    """
    return [source.path for source in resolve_trace_sources(paths, trace_dir, environ)]


@dataclass(frozen=True, slots=True)
class TraceSource:
    """A trace file to read, and whether the user named it or it was found in a directory.

    A file found in a directory that turns out not to be a trace is skipped with a warning;
    a file the user named is read or fails.
    """

    path: Path
    named: bool


def resolve_trace_sources(
    paths: Sequence[str | os.PathLike[str]],
    trace_dir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[TraceSource]:
    """Like :func:`resolve_trace_paths`, saying for each file how it was found."""
    if not paths:
        return [TraceSource(newest_trace(default_trace_dir(trace_dir, environ)), named=False)]
    files: list[TraceSource] = []
    for given in paths:
        path = Path(given)
        if "\x00" in str(path):
            raise TraceReadError(f"{terminal_safe(path)}: not a file name (it holds a NUL)")
        if path.is_dir():
            found = trace_files_in(path)
            if not found:
                raise TraceReadError(f"{path}: no trace files (*.json, *.jsonl) in directory")
            files.extend(TraceSource(file, named=False) for file in found)
        elif path.exists():
            files.append(TraceSource(path, named=True))
        else:
            raise TraceReadError(f"{path}: no such file")
    return files


def workflow_name_hint(path: Path) -> str | None:
    """The workflow a trace file names near its start, read from its first few KB; None when
    the head does not say (pflow's formats, a file that is no trace): read it whole to know.

    Lets a command that wants one workflow's runs (``run --dry-run``) skip the others without
    parsing every trace in the directory."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(NAME_HINT_BYTES)
    except OSError:
        return None
    found = _NAME_FIELD.search(head)
    if found is None:
        return None
    try:
        name = json.loads(found.group(1))
    except (ValueError, UnicodeDecodeError):
        return None
    return name if isinstance(name, str) else None
