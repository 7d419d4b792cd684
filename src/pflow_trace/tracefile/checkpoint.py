"""The private checkpoint beside a trace: full values of what succeeded, for ``resume``.

A trace file is redacted and truncated, so it cannot feed a later run; the checkpoint can. It
is written as the run goes (so an interrupted run can be resumed), as JSON lines, mode 0600,
next to the trace (``<trace file name>.checkpoint``; the suffix keeps ``show`` and ``export``
from ever reading it as a trace). Until the trace is written it is a hidden ``.<name>.<random>
.checkpoint`` beside it, so a run that replaces a trace leaves the old checkpoint alone unless
the new trace is written. Never pickle: a checkpoint is a file someone could hand you.

Lines (``docs/resume.md`` is the reference)::

    {"checkpoint": 1, "id": ..., "execution_id": ..., "workflow": W, "workflow_sha256": ...,
     "inputs": I, "inputs_sha256": ...}                      the header, always first
    {"start": node_id, "visit": n, "reads": sha256}          a node execution began
    {"done": node_id, "visit": n, "action": a, "value": V}   a node (not a batch) succeeded
    {"items": node_id, "visit": n, "index": [i, ...], "ms": [d, ...], "value": [V, ...]}
                                                             batch items that succeeded

Values that JSON cannot hold exactly are tagged (one-key objects): ``{"$bytes": base64}``,
``{"$tuple": [...]}``, ``{"$float": "nan" | "inf" | "-inf"}``, and ``{"$dict": [[k, v], ...]}``
for a dict with a key that is not a string, or a one-key dict whose key starts with ``$``.
Anything else (a set, an object) cannot be encoded: that value is not checkpointed, and the
run says so (a resume runs it again).

Item results are encoded a block (up to 1,000) at a time, in one C-level call; lines are
buffered and written when a node ends, when 1 MB waits, or a second after the last write. The
whole file is hashed as it is written and the trace records the id, the hash and the byte
count, so a resume can tell a checkpoint that is corrupt, changed or another run's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pflow_trace.errors import ResumeError
from pflow_trace.observe.facts import NodeExecution, RunObserver, RunRecord

CHECKPOINT_VERSION = 1
CHECKPOINT_SUFFIX = ".checkpoint"
#: The default cap on a checkpoint's size; past it, later values are not kept (and the run
#: says so). ``TraceOptions.checkpoint_max_bytes`` / ``--checkpoint-max-mb`` change it.
DEFAULT_MAX_BYTES = 1024**3
#: Buffered lines are written once this many bytes wait, or this long after the last write.
_FLUSH_BYTES = 1 << 20
_FLUSH_EVERY_S = 1.0
#: Item results encoded together in one block line.
_ITEMS_PER_BLOCK = 1000


class Unencodable(Exception):
    """A value the checkpoint encoding cannot hold exactly; ``type_name`` says what it was."""

    def __init__(self, type_name: str) -> None:
        super().__init__(type_name)
        self.type_name = type_name


def checkpoint_path(trace_path: Path) -> Path:
    """Where a trace's checkpoint lives: beside it, named after it."""
    return trace_path.with_name(trace_path.name + CHECKPOINT_SUFFIX)


def partial_checkpoint_path(trace_path: Path) -> Path:
    """Where a run writes its checkpoint until its trace is written: a trace file being
    replaced keeps its own checkpoint until the new trace is in place."""
    return trace_path.with_name(f".{trace_path.name}.{uuid.uuid4().hex[:8]}{CHECKPOINT_SUFFIX}")


# -- the value encoding ---------------------------------------------------------------------------

_PLAIN = (str, int, bool, type(None))


def encode_value(value: Any) -> Any:
    """``value`` as plain JSON data, non-JSON values tagged; raises :class:`Unencodable`."""
    kind = value.__class__
    if kind in _PLAIN:
        return value
    if kind is float:
        return value if math.isfinite(value) else {"$float": repr(value)}
    if kind is dict:
        if all(key.__class__ is str for key in value) and not _looks_tagged(value):
            return {key: encode_value(item) for key, item in value.items()}
        return {"$dict": [[encode_value(key), encode_value(item)] for key, item in value.items()]}
    if kind is list:
        return [encode_value(item) for item in value]
    if kind is tuple:
        return {"$tuple": [encode_value(item) for item in value]}
    if kind is bytes:
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    raise Unencodable(kind.__name__)


def _looks_tagged(value: dict[str, Any]) -> bool:
    return len(value) == 1 and next(iter(value)).startswith("$")


def _untag(obj: dict[str, Any]) -> Any:
    """``json.loads`` object hook: a tagged one-key object back to its value."""
    if len(obj) != 1:
        return obj
    key, inner = next(iter(obj.items()))
    if key == "$bytes":
        return base64.b64decode(inner)
    if key == "$tuple":
        return tuple(inner)
    if key == "$float":
        return float(inner)
    if key == "$dict":
        return {_hashable(k): v for k, v in inner}
    return obj


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def decode_line(line: str) -> Any:
    return json.loads(line, object_hook=_untag)


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)


#: One encoder for every value: ``json.dumps`` with options builds a new one per call.
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_refuse
)


def _plain_json_text(value: Any) -> str | None:
    """``value``'s JSON text when it is plain JSON data already, checked in C (encode,
    decode, compare: no tuple, no non-string key, nothing that looks tagged); else None."""
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError):
        return None
    return text if '{"$' not in text and json.loads(text) == value else None


def encoded_data(value: Any) -> Any:
    """``value`` as plain JSON data, like :func:`encode_value`, but the value itself when it
    already is (checked in C: encode, decode, compare), so a workflow with a long inline
    ``batch.items`` list is not walked in Python for the checkpoint's header."""
    return value if _plain_json_text(value) is not None else encode_value(value)


def encoded_json(value: Any) -> str:
    """One value as the checkpoint writes it (raises :class:`Unencodable`).

    The fast path is C all the way: encode, decode, compare. A value that comes back equal
    (no tuple, no non-string key, nothing that looks tagged) is plain JSON already; anything
    else takes the exact, tagging walk of :func:`encode_value`."""
    text = _plain_json_text(value)
    if text is not None:
        return text
    try:
        return _ENCODER.encode(encode_value(value))
    except ValueError:  # an int of more digits than Python will print
        raise Unencodable("int of too many digits") from None


# -- writing --------------------------------------------------------------------------------------


@dataclass
class CheckpointNotes:
    """What the checkpoint could not keep, per node, said once at the end of the run."""

    unencodable: dict[str, tuple[int, set[str]]] = field(default_factory=dict)
    over_limit: int = 0
    #: Why the file could not be written (a full disk): the run cannot be resumed.
    write_error: str | None = None

    def lines(self, limit_bytes: int) -> list[str]:
        lines = [
            f"checkpoint: {count} value{'s' if count != 1 else ''} of '{node}' not kept "
            f"({', '.join(sorted(types))} cannot be encoded); a resume runs them again"
            for node, (count, types) in self.unencodable.items()
        ]
        if self.write_error is not None:
            lines.append(
                f"checkpoint: cannot be written ({self.write_error}); this run cannot be resumed"
            )
        if self.over_limit:
            lines.append(
                f"checkpoint: size limit of {limit_bytes:,} bytes reached; {self.over_limit:,} "
                "later values not kept (a resume runs them again)"
            )
        return lines


class CheckpointWriter(RunObserver):
    """Appends a run's checkpoint lines; safe from any lane (one lock around the buffer).

    An observer too: what waits is written when each node ends, and the file is closed when
    the run ends."""

    def __init__(
        self,
        path: Path,
        header: Mapping[str, Any],
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.path = path
        self.id = str(uuid.uuid4())
        self.max_bytes = max_bytes
        self.notes = CheckpointNotes()
        self._hash = hashlib.sha256()
        self._buffer: list[str] = []
        self._buffered = 0
        self._written = 0
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()
        #: Finished items waiting to be encoded: (node id, visit, index, ms, result). A deque:
        #: lanes append and the flush pops without a lock (both are atomic).
        self._pending: deque[tuple[str, int, int, float, Any]] = deque()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an existing file keeps its mode on O_CREAT
        self._fd = fd
        self.closed = False
        self._append(json.dumps({"checkpoint": CHECKPOINT_VERSION, "id": self.id, **header}))
        self.flush()

    def started(self, node_id: str, visit: int, reads_sha256: str) -> None:
        self._append(f'{{"start":{json.dumps(node_id)},"visit":{visit},"reads":"{reads_sha256}"}}')

    def node_done(self, node_id: str, visit: int, action: str | None, value: Any) -> None:
        encoded = self._encode(node_id, value)
        if encoded is not None:
            head = {"done": node_id, "visit": visit, "action": action}
            self._append(f'{json.dumps(head)[:-1]},"value":{encoded}}}')
        self.flush()

    def item_done(self, node_id: str, visit: int, index: int, ms: float, value: Any) -> None:
        """Keep a finished item's result; items are encoded a block at a time (one C-level
        encode for many), when a node ends, a block is full or a second has passed."""
        pending = self._pending
        pending.append((node_id, visit, index, ms, value))
        if len(pending) >= _ITEMS_PER_BLOCK or (
            time.monotonic() - self._last_flush >= _FLUSH_EVERY_S
        ):
            self.flush()

    def _encode_pending(self) -> None:
        """Turn the waiting item results into block lines, one per (node, visit)."""
        queue = self._pending
        with self._lock:  # one flush drains at a time; lanes go on appending meanwhile
            pending = [queue.popleft() for _ in range(len(queue))]
        groups: dict[tuple[str, int], list[tuple[str, int, int, float, Any]]] = {}
        for entry in pending:
            groups.setdefault((entry[0], entry[1]), []).append(entry)
        for (node_id, visit), entries in groups.items():
            line = self._block_line(node_id, visit, entries)
            if line is not None:
                self._append(line, flush_when_due=False)

    def _block_line(
        self, node_id: str, visit: int, entries: list[tuple[str, int, int, float, Any]]
    ) -> str | None:
        if self._written + self._buffered > self.max_bytes:
            self.notes.over_limit += len(entries)
            return None
        values = [entry[4] for entry in entries]
        try:
            text = _ENCODER.encode(values)
        except (TypeError, ValueError):
            text = None
        if text is None or '{"$' in text or json.loads(text) != values:
            kept = [(entry, self._encode(node_id, entry[4])) for entry in entries]
            entries = [entry for entry, encoded in kept if encoded is not None]
            if not entries:
                return None
            text = "[" + ",".join(encoded for _, encoded in kept if encoded is not None) + "]"
        indices = ",".join(str(entry[2]) for entry in entries)
        durations = ",".join(f"{entry[3]:.3f}" for entry in entries)
        return (
            f'{{"items":{json.dumps(node_id)},"visit":{visit},"index":[{indices}],'
            f'"ms":[{durations}],"value":{text}}}'
        )

    def _encode(self, node_id: str, value: Any) -> str | None:
        if self._written + self._buffered > self.max_bytes:
            self.notes.over_limit += 1
            return None
        try:
            return encoded_json(value)
        except Unencodable as exc:
            count, types = self.notes.unencodable.get(node_id, (0, set()))
            types.add(exc.type_name)
            self.notes.unencodable[node_id] = (count + 1, types)
            return None

    def _append(self, line: str, flush_when_due: bool = True) -> None:
        data = line + "\n"
        with self._lock:
            if self.closed:
                return
            self._buffer.append(data)
            self._buffered += len(data)
            due = self._buffered >= _FLUSH_BYTES or (
                time.monotonic() - self._last_flush >= _FLUSH_EVERY_S
            )
        if due and flush_when_due:
            self.flush()

    def flush(self) -> None:
        """Write what waits and hand it to the OS (a killed run keeps every line written)."""
        if self._pending:
            self._encode_pending()
        with self._lock:
            if self.closed or not self._buffer:
                return
            chunk = "".join(self._buffer).encode("utf-8", "surrogatepass")
            self._buffer.clear()
            self._buffered = 0
            try:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError as exc:  # a full disk: the run goes on, without a checkpoint
                self.notes.write_error = exc.strerror or str(exc)
                self.closed = True
                os.close(self._fd)
                return
            self._hash.update(chunk)
            self._written += len(chunk)
            self._last_flush = time.monotonic()

    def settle(self, final_path: Path, keep: bool) -> None:
        """After the trace is written (``keep``), move the checkpoint to its place beside it;
        otherwise (no trace, or the file failed) remove it: nothing could resume from it."""
        self.close()
        try:
            if keep and self.notes.write_error is None:
                os.replace(self.path, final_path)
            else:
                self.path.unlink(missing_ok=True)
        except OSError as exc:
            self.notes.write_error = exc.strerror or str(exc)

    def node_finished(self, execution: NodeExecution, shared: Mapping[str, Any]) -> None:
        self.flush()

    def run_finished(self, run: RunRecord, shared: Mapping[str, Any]) -> None:
        self.close()

    def close(self) -> dict[str, Any] | None:
        """Write the rest and close; returns what the trace records (never the path), or
        None when the file could not be written."""
        self.flush()
        with self._lock:
            if not self.closed:
                self.closed = True
                os.close(self._fd)
        if self.notes.write_error is not None:
            return None
        return {"id": self.id, "sha256": self._hash.hexdigest(), "bytes": self._written}


# -- reading --------------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """A checkpoint read back: its header and what succeeded, by (node id, visit)."""

    header: dict[str, Any]
    reads: dict[tuple[str, int], str] = field(default_factory=dict)
    nodes: dict[tuple[str, int], tuple[str | None, Any]] = field(default_factory=dict)
    items: dict[tuple[str, int], dict[int, tuple[float, Any]]] = field(default_factory=dict)


def read_checkpoint(path: Path, recorded: Mapping[str, Any]) -> Checkpoint:
    """Read the checkpoint ``recorded`` (the trace's ``checkpoint`` block) names.

    Missing, changed, corrupt or another run's: one line (:class:`ResumeError`)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ResumeError(f"{path.name}: the trace's checkpoint is missing") from None
    except OSError as exc:
        raise ResumeError(f"{path.name}: cannot read the checkpoint ({exc.strerror})") from None
    if hashlib.sha256(data).hexdigest() != recorded.get("sha256"):
        first = data.split(b"\n", 1)[0]
        if _header_id(first) not in (None, recorded.get("id")):
            raise ResumeError(f"{path.name}: the checkpoint is from another run")
        raise ResumeError(f"{path.name}: the checkpoint is corrupt or was changed since the run")
    try:
        lines = data.decode("utf-8", "surrogatepass").splitlines()
        checkpoint = Checkpoint(header=decode_line(lines[0]))
        for line in lines[1:]:
            _read_line(checkpoint, decode_line(line))
    except (ValueError, KeyError, TypeError, IndexError):
        raise ResumeError(f"{path.name}: the checkpoint is corrupt") from None
    if checkpoint.header.get("id") != recorded.get("id"):
        raise ResumeError(f"{path.name}: the checkpoint is from another run")
    return checkpoint


def _header_id(line: bytes) -> Any:
    try:
        header = json.loads(line)
    except ValueError:
        return None
    return header.get("id") if isinstance(header, dict) else None


def _read_line(checkpoint: Checkpoint, line: dict[str, Any]) -> None:
    if "items" in line:
        kept = checkpoint.items.setdefault((line["items"], line["visit"]), {})
        for index, ms, value in zip(line["index"], line["ms"], line["value"], strict=True):
            kept[index] = (ms, value)
    elif "start" in line:
        checkpoint.reads[(line["start"], line["visit"])] = line["reads"]
    elif "done" in line:
        checkpoint.nodes[(line["done"], line["visit"])] = (line["action"], line["value"])
    else:
        raise ValueError("unknown line")
