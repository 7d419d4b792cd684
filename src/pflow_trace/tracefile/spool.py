"""Where a run's long lists wait for the trace file: JSON text blocks in an unnamed temp file.

A 1,000,000-item batch has 4,000,000 span rows and 1,000,000 ``batch_items`` records. Held
until the run ends, they were most of a traced run's memory. Instead, as a run goes, they are
encoded a block at a time and appended to a :class:`Spool`: a temporary file with no name
(unlinked as it is created, so nothing is left behind if the process dies), private to the
user, beside the trace file. When the run ends the writer copies the blocks into the trace
file, which is still one JSON document of the same format, written atomically.

A :class:`TextBlocks` is one JSON array held that way: its elements as text, a block of many
elements at a time, each block in the spool or, when the spool could not take it (disk full),
in memory. It is what the trace document holds in place of a long list; the writer writes it
as the array it is and :meth:`TextBlocks.decoded` gives the plain list back.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pflow_trace.text import cap_depth, json_fallback

#: A block in the spool: (offset, byte length); a str is a block kept in memory.
Block = tuple[int, int] | str


class Spool:
    """An append-only, unnamed temporary file of text blocks; safe to share between threads.

    Writing never raises: a file system that refuses a block (disk full, quota) makes the
    spool keep that block and every later one in memory, and the trace writer reports the
    failure when it writes the trace file, as it would have anyway.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._size_bytes = 0
        #: Why the file refused a block, once it has; blocks then stay in memory.
        self.failure: str | None = None
        if not hasattr(os, "pwrite"):  # not a POSIX system: blocks stay in memory
            self._file = None
            return
        try:
            # Closed with the spool or when it is collected: the file lives as long as its blocks.
            self._file: Any = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115
        except OSError as exc:
            self._file = None
            self.failure = exc.strerror or str(exc)

    def put(self, text: str) -> Block:
        """Append ``text``; returns where it went."""
        with self._lock:
            if self._file is None or self.failure is not None:
                return text
            # surrogatepass: a lone surrogate is kept as it is until the trace writer escapes
            # it (and counts it); the common text encodes exactly as plain UTF-8.
            data = text.encode("utf-8", "surrogatepass")
            offset = self._size_bytes
            try:
                written = 0
                while written < len(data):
                    written += os.pwrite(self._file.fileno(), data[written:], offset + written)
            except OSError as exc:
                self.failure = exc.strerror or str(exc)
                return text
            self._size_bytes += len(data)
        return (offset, len(data))

    def get(self, block: Block) -> str:
        if isinstance(block, str):
            return block
        offset, length = block
        return os.pread(self._file.fileno(), length, offset).decode("utf-8", "surrogatepass")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class TextBlocks:
    """A JSON array kept as text blocks (each ``elem, elem, ...``), most of them in a spool.

    Appending is thread-safe. The trace document holds this where it would hold a long list;
    :func:`~pflow_trace.tracefile.writer.iter_json_chunks` writes it as that array.
    """

    def __init__(self, spool: Spool | None) -> None:
        self.spool = spool
        self.blocks: list[Block] = []
        self.count = 0
        self._lock = threading.Lock()

    def append_block(self, text: str, count: int) -> None:
        """Add ``count`` elements, already JSON text joined by ``", "``."""
        if not count:
            return
        block = self.spool.put(text) if self.spool is not None else text
        with self._lock:
            self.blocks.append(block)
            self.count += count

    def __len__(self) -> int:
        return self.count

    def texts(self) -> Iterator[str]:
        """Each block's text, in order (read back from the spool one at a time)."""
        for block in list(self.blocks):
            if isinstance(block, str):
                yield block
            else:
                assert self.spool is not None  # a block in the file came through its spool
                yield self.spool.get(block)

    def decoded(self) -> list[Any]:
        """The plain list, the same as reading the array back from the written file."""
        values: list[Any] = []
        for text in self.texts():
            values.extend(json.loads(f"[{text}]"))
        return values

    def rewritten(self, element: Callable[[Any], Any]) -> TextBlocks:
        """A copy with ``element`` applied to every element (a rare path: decodes each block).

        Blocks ``element`` leaves unchanged are shared, not copied.
        """
        copy = TextBlocks(self.spool)
        for block, text in zip(list(self.blocks), self.texts(), strict=True):
            values = json.loads(f"[{text}]")
            changed = [element(value) for value in values]
            if changed != values:
                text = encode_elements(changed)
                block = self.spool.put(text) if self.spool is not None else text
            copy.blocks.append(block)
            copy.count += len(values)
        return copy


def encode_json(value: Any) -> str:
    """``value`` as the trace file writes it: NaN, infinities, ints too long to print and keys
    JSON cannot hold are never bare in the file (see :func:`~pflow_trace.text.cap_depth`).

    Lone surrogates stay in the text: the trace writer escapes them as it writes, and counts
    them for the trace's ``warnings``."""
    try:
        return json.dumps(value, ensure_ascii=False, default=json_fallback, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return json.dumps(cap_depth(value), ensure_ascii=False, allow_nan=False)


def encode_elements(values: list[Any]) -> str:
    """``values`` as JSON text without the brackets (one block of a :class:`TextBlocks`),
    exactly as encoding them one by one would give; one C encoder call in the common case."""
    try:
        return json.dumps(values, ensure_ascii=False, default=json_fallback, allow_nan=False)[1:-1]
    except (TypeError, ValueError):  # one of them needs cap_depth: encode each on its own
        return ", ".join(encode_json(value) for value in values)
