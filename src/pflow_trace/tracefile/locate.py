"""Which trace files ``show`` reads: explicit files, directories, or the newest default trace.

The default directory is, first found: ``--trace-dir``, the ``PFLOW_TRACE_DIR`` environment
variable, ``~/.pflow-trace/traces/``. A trace file is any file ending ``.json`` or ``.jsonl``;
directories are not searched recursively, so a directory means "these runs", not "everything
below here".
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from pflow_trace.errors import TraceReadError

ENV_TRACE_DIR = "PFLOW_TRACE_DIR"
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
    """The most recently modified trace file in ``directory``."""
    files = trace_files_in(directory)
    if not files:
        raise TraceReadError(f"{directory}: no trace files (*.json, *.jsonl) in directory")
    return max(files, key=lambda path: (path.stat().st_mtime_ns, path.name))


def resolve_trace_paths(
    paths: Sequence[str | os.PathLike[str]],
    trace_dir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Path]:
    """Expand the command's arguments into the list of trace files to read, in order.

    No argument means the newest trace in the default directory; a directory means every
    trace file in it; a file is taken as given (a missing one fails here, by name).
    """
    if not paths:
        return [newest_trace(default_trace_dir(trace_dir, environ))]
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = trace_files_in(path)
            if not found:
                raise TraceReadError(f"{path}: no trace files (*.json, *.jsonl) in directory")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise TraceReadError(f"{path}: no such file")
    return files
