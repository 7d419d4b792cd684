"""Read trace files of every supported format into the one model (``model.py``).

Three formats are read:

* ours (``generator`` "pflow-trace ...", format 1.2.0 plus ``otel``, ``start_offset_ms`` and
  per-item ``batch_items``): one JSON object;
* pflow's JSON trace, format 1.2.0: the same object without per-item records, so a batch node
  is known only through ``batch_metadata`` in ``shared_after[node_id]``;
* pflow's JSON-lines trace (``"pflow_trace": "jsonl/1"``, format 2.x): a ``meta`` record,
  ``node.start`` and ``event`` records per node (a batch node's event carries ``node_output``
  with ``batch_metadata`` and ``batch_items``), and a closing ``run.complete`` record.

Every problem a user can cause (missing file, not JSON, truncated, unknown format) becomes a
:class:`~pflow_trace.errors.TraceReadError` whose one-line message names the file, so the CLI
can print it and exit 2. A version newer than the reader knows is read best effort and leaves
exactly one warning on the run.

The file is read and parsed once, like ``json.load`` does. Turning ``batch_items`` into
objects is the hot path for a 100,000-item batch, because ``show`` must cost no more than
about twice ``json.load``: see :func:`_batch_items` for how it stays cheap.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

from pflow_trace.errors import TraceReadError
from pflow_trace.text import escape_surrogates_in_place, not_unicode_warning
from pflow_trace.tracefile.model import (
    LoopInfo,
    LoopPass,
    TraceNode,
    TraceRun,
)
from pflow_trace.tracefile.read_batch import (
    attach_keys,
    attach_llm_usage,
    attach_time_split,
    batch_info,
    llm_call_of,
)
from pflow_trace.tracefile.read_common import (
    FORMAT_OURS,
    FORMAT_PFLOW,
    KNOWN_JSON_VERSION,
    TRACE_DECODER,
    as_int,
    as_number,
    as_str,
    cut_off,
    error_text,
    json_kind,
    parse_version,
)
from pflow_trace.tracefile.read_head import sniff_head
from pflow_trace.tracefile.read_jsonl import is_jsonl_meta, parse_lines, read_jsonl_records


def read_trace(path: str | os.PathLike[str]) -> TraceRun:
    """Read one trace file of any supported format.

    The format is decided by content, not by extension: one JSON value filling the file is a
    JSON trace (ours or pflow's 1.2.0); a ``meta`` record followed by more lines is pflow's
    JSON lines. The text is read and parsed once, as ``json.load`` would.
    """
    name = os.fspath(path)
    try:
        sniff_head(name)
        with open(name, encoding="utf-8") as stream:
            text = stream.read()
    except FileNotFoundError:
        raise TraceReadError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise TraceReadError(f"{name}: is a directory, not a trace file") from None
    except UnicodeDecodeError:
        return _read_text(name, _read_not_utf8(name), escape_surrogates=True)
    except OSError as exc:
        raise TraceReadError(f"{name}: cannot read ({exc.strerror or exc})") from None
    except ValueError:  # a NUL in the name
        raise TraceReadError(f"{name!r}: not a file name") from None
    return _read_text(name, text, escape_surrogates=_lone_surrogate_escapes(text))


def _read_not_utf8(name: str) -> str:
    """A file that is not all UTF-8: its bytes that are not become lone surrogates
    (``surrogateescape``), which the reader then escapes like any other (``\\udcff``)."""
    try:
        with open(name, encoding="utf-8", errors="surrogateescape") as stream:
            return stream.read()
    except OSError as exc:
        raise TraceReadError(f"{name}: cannot read ({exc.strerror or exc})") from None


def read_trace_text(name: str, text: str) -> TraceRun:
    """Read a trace from its text; ``name`` is what error messages call it.

    Text that is not valid Unicode (bytes that are not UTF-8, a ``\\ud800`` escape without
    its pair) is escaped as the writers escape it (:func:`~pflow_trace.text.escape_surrogates`)
    and the run carries a warning saying how many values held some; every view downstream
    then sees only text it can print.
    """
    raw = not text.isascii() and _SURROGATE_CHAR.search(text) is not None
    return _read_text(name, text, escape_surrogates=raw or _lone_surrogate_escapes(text))


_SURROGATE_CHAR = re.compile("[\ud800-\udfff]")

#: A ``\\uD800``-style escape that is not half of a pair (a pair such as
#: ``\\ud83d\\ude00`` is one emoji): after parsing, a lone surrogate. A match only makes the
#: reader walk the parsed document; the walk decides.
_LONE_SURROGATE_ESCAPE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    r"|(?<![0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


#: Any surrogate escape, paired or not: one pass of the C regex engine over the text (about
#: 5% of parsing it); the common trace has none, and the finer pattern never runs.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _lone_surrogate_escapes(text: str) -> bool:
    """Whether the JSON text may hold a lone surrogate escape."""
    if _SURROGATE_ESCAPE.search(text) is None:
        return False
    return _LONE_SURROGATE_ESCAPE.search(text) is not None


def _read_text(name: str, text: str, escape_surrogates: bool = False) -> TraceRun:
    start = _skip_space(text, 0)
    if start == len(text):
        raise TraceReadError(f"{name}: empty file, not a trace")
    try:
        first, end = TRACE_DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise _decode_error(name, text, exc) from None
    except RecursionError:
        raise TraceReadError(f"{name}: nested too deeply to read, not a trace") from None
    except ValueError as exc:  # an integer of thousands of digits
        raise TraceReadError(f"{name}: not JSON ({exc})") from None
    if _skip_space(text, end) == len(text):
        del text  # the parsed document is all that is needed from here on
        escaped = escape_surrogates_in_place(first) if escape_surrogates else 0
        return _with_escape_warning(_run_from_object(name, first), escaped)
    # More JSON follows the first value: JSON lines, which must open with pflow's meta record.
    if not isinstance(first, dict):
        kind = json_kind(first)
        raise TraceReadError(f"{name}: unknown trace format (a JSON {kind}, not a trace object)")
    line = text.count("\n", 0, end) + 1
    records = parse_lines(name, text[end:].splitlines(), first_number=line)
    if not escape_surrogates:
        return read_jsonl_records(name, _prepend((1, first), records))
    counter = [escape_surrogates_in_place(first)]
    escaped_records = _escaping(records, counter)
    run = read_jsonl_records(name, _prepend((1, first), escaped_records))
    return _with_escape_warning(run, counter[0])


def _escaping(records: Iterator[Any], counter: list[int]) -> Iterator[Any]:
    """JSON-lines records with their text escaped, counted into ``counter[0]``."""
    for number, record in records:
        counter[0] += escape_surrogates_in_place(record)
        yield number, record


def _with_escape_warning(run: TraceRun, escaped: int) -> TraceRun:
    if escaped:
        note = f"{run.source}: {not_unicode_warning(escaped, 'this trace')}"
        if note not in run.warnings:
            run.warnings.append(note)
    return run


_WHITESPACE = re.compile(r"[ \t\n\r]*")


# -- one JSON document (ours and pflow 1.2.0) ----------------------------------------------------


def _run_from_object(name: str, doc: Any) -> TraceRun:
    if isinstance(doc, dict) and is_jsonl_meta(doc):
        return read_jsonl_records(name, iter([(1, doc)]))
    if not isinstance(doc, dict):
        kind = json_kind(doc)
        raise TraceReadError(f"{name}: unknown trace format (a JSON {kind}, not a trace object)")
    if not isinstance(doc.get("nodes"), list) or "format_version" not in doc:
        raise TraceReadError(
            f"{name}: unknown trace format (no 'format_version' and 'nodes' at the top level)"
        )
    return _run_from_document(name, doc)


def _run_from_document(name: str, doc: dict[str, Any]) -> TraceRun:
    version = doc.get("format_version")
    warnings: list[str] = []
    parsed = parse_version(version)
    if parsed is None:
        raise TraceReadError(f"{name}: unknown trace format (format_version {version!r})")
    if parsed > KNOWN_JSON_VERSION:
        known = ".".join(map(str, KNOWN_JSON_VERSION))
        warnings.append(
            f"{name}: format_version {version} is newer than this reader knows ({known}); "
            "read best effort"
        )
    # What the run and its writer recorded (values it escaped), for the person reading the trace.
    recorded = [f"{name}: {text}" for text in _list(doc.get("warnings")) if isinstance(text, str)]
    warnings += recorded
    generator = as_str(doc.get("generator"))
    otel = doc.get("otel")
    ours = (generator or "").startswith("pflow-trace") or isinstance(otel, dict)
    nodes = []
    for position, raw in enumerate(doc["nodes"]):
        if not isinstance(raw, dict):
            raise TraceReadError(
                f"{name}: unknown trace format (nodes[{position}] is not an object)"
            )
        nodes.append(_node_from_document(raw))
    return TraceRun(
        source=name,
        format=FORMAT_OURS if ours else FORMAT_PFLOW,
        format_version=as_str(version),
        workflow_name=as_str(doc.get("workflow_name")),
        final_status=as_str(doc.get("final_status")),
        start_time=as_str(doc.get("start_time")),
        end_time=as_str(doc.get("end_time")),
        duration_ms=as_number(doc.get("duration_ms")),
        execution_id=as_str(doc.get("execution_id")),
        generator=generator,
        nodes_executed=as_int(doc.get("nodes_executed")),
        nodes_failed=as_int(doc.get("nodes_failed")),
        error=error_text(doc.get("error")),
        failed_node=as_str(doc.get("failed_node")),
        trace_id=as_str(otel.get("trace_id")) if isinstance(otel, dict) else None,
        otel=otel if isinstance(otel, dict) else None,
        nodes=nodes,
        resume=_resume_counts(doc.get("resume")),
        warnings=warnings,
        recorded_warnings=recorded,
    )


def _resume_counts(raw: Any) -> dict[str, int] | None:
    """A resumed run's item counts, when they are all whole numbers."""
    keys = ("items", "reused", "rerun", "ok", "failed")
    if not isinstance(raw, dict) or not all(type(raw.get(key)) is int for key in keys):
        return None
    return {key: raw[key] for key in keys}


def _node_from_document(raw: dict[str, Any]) -> TraceNode:
    node_id = str(raw.get("node_id", "?"))
    shared_after = raw.get("shared_after")
    output = shared_after.get(node_id) if isinstance(shared_after, dict) else None
    raw_items = raw.get("batch_items")
    batch = None
    llm_usage = None
    if isinstance(raw_items, list) or (isinstance(output, dict) and "batch_metadata" in output):
        batch = batch_info(output, raw_items)
        # Ours marks an LLM batch with node-level totals (pflow's 1.2.0 has no item records).
        if batch.items and isinstance(raw_items, list) and "llm_usage" in raw:
            attach_llm_usage(batch.items, raw_items)
        if batch.items and isinstance(raw_items, list) and "batch_time_us" in raw:
            attach_time_split(batch.items, raw_items)
        if batch.items and isinstance(raw_items, list):
            attach_keys(batch.items, raw_items)
    else:  # ours writes the call on the event; pflow's 1.2.0 only in the node's output
        llm_usage = llm_call_of(raw) or (llm_call_of(output) if isinstance(output, dict) else None)
    return TraceNode(
        node_id=node_id,
        node_type=str(raw.get("node_type", "?")),
        success=raw.get("success") is not False,
        duration_ms=as_number(raw.get("duration_ms")),
        timestamp=as_str(raw.get("timestamp")),
        start_offset_ms=as_number(raw.get("start_offset_ms")),
        error=error_text(raw.get("error")),
        span_id=as_str(raw.get("span_id")),
        loop_calls=_loop_calls(raw.get("loop")),
        loop=_loop_info(raw.get("loop")),
        batch=batch,
        llm_usage=llm_usage,
        call_path=tuple(str(part) for part in _list(raw.get("call_path"))),
        caller_span_id=as_str(raw.get("caller_span_id")),
        files=[_file_ref(ref) for ref in _list(raw.get("files")) if isinstance(ref, dict)],
    )


def _file_ref(raw: dict[str, Any]) -> dict[str, Any]:
    """One ``files`` record, with only its known fields (a hand-edited trace may hold others)."""
    size = raw.get("bytes")
    return {
        "param": str(raw.get("param", "?")),
        "path": str(raw.get("path", "?")),
        "sha256": str(raw.get("sha256", "")),
        "bytes": size if isinstance(size, int) and not isinstance(size, bool) else None,
    }


# -- small helpers -----------------------------------------------------------------------------


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _skip_space(text: str, position: int) -> int:
    """The position of the first non-whitespace character at or after ``position``."""
    match = _WHITESPACE.match(text, position)
    return match.end() if match else position


def _prepend(head: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield head
    yield from rest


def _decode_error(name: str, text: str, exc: json.JSONDecodeError) -> TraceReadError:
    if cut_off(text, exc):
        return TraceReadError(
            f"{name}: truncated JSON (the document stops at line {exc.lineno} before it is "
            "complete)"
        )
    return TraceReadError(f"{name}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})")


def _loop_calls(loop: Any) -> list[dict[str, Any]]:
    """The LLM calls of a loop node's passes, as our trace writes them under ``loop.passes``."""
    passes = loop.get("passes") if isinstance(loop, dict) else None
    return [call for one in _list(passes) if isinstance(one, dict) and (call := llm_call_of(one))]


def _loop_info(loop: Any) -> LoopInfo | None:
    """A loop node's record (``iterations``, ``stopped``, ``keyword``, ``passes``), as read."""
    if not isinstance(loop, dict):
        return None
    passes = [
        LoopPass(
            iteration=as_int(one.get("iteration")) or number,
            status=as_str(one.get("status")) or "?",
            duration_ms=as_number(one.get("duration_ms")),
            error=error_text(one.get("error")),
        )
        for number, one in enumerate(_list(loop.get("passes")), start=1)
        if isinstance(one, dict)
    ]
    iterations = as_int(loop.get("iterations"))
    return LoopInfo(
        iterations=iterations if iterations is not None else len(passes),
        stopped=as_str(loop.get("stopped")),
        keyword=as_str(loop.get("keyword")),
        passes=passes,
    )
