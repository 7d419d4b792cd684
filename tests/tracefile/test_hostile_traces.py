"""Damaged and hostile trace files read as one error or best effort, never as a crash."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from pflow_trace.cli.main import cli
from pflow_trace.errors import TraceReadError
from pflow_trace.tracefile.read_head import HEAD_BYTES
from pflow_trace.tracefile.readers import read_trace, read_trace_text
from trace_factory import batch, make_trace, plain, write_trace


def _strict(text: str) -> object:
    def reject(constant: str) -> object:
        raise AssertionError(f"bare {constant} in JSON output")

    return json.loads(text, parse_constant=reject)


@pytest.mark.no_trace_validation  # NaN is not JSON: off our schema on purpose
def test_nan_and_infinity_read_as_missing_and_show_stays_valid_json(tmp_path: Path) -> None:
    text = json.dumps(make_trace([plain("a", 5.0), batch("b", [1.0, 2.0, 3.0])]))
    text = text.replace('"duration_ms": 5.0', '"duration_ms": NaN', 1)
    text = text.replace('"duration_ms": 2.0', '"duration_ms": Infinity', 1)
    text = text.replace('"duration_ms": 3.0', '"duration_ms": 1e999', 1)
    path = tmp_path / "nan.json"
    path.write_text(text, encoding="utf-8")
    run = read_trace(path)
    assert run.nodes[0].duration_ms is None
    assert [item.duration_ms for item in run.nodes[1].batch.items] == [1.0, None, None]
    for args in (["show", str(path)], ["show", "--json", str(path)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
    _strict(CliRunner().invoke(cli, ["show", "--json", str(path)]).stdout)


def test_huge_and_strangely_typed_item_fields_read_as_missing() -> None:
    trace = make_trace([batch("b", [1.0, 2.0])])
    items = trace["nodes"][0]["batch_items"]
    items[0].update(index=[1], status={"x": 1}, attempts=10**30, worker=-(10**40))
    run = read_trace_text("t.json", json.dumps(trace))
    item = run.nodes[0].batch.items[0]
    assert (item.index, item.attempts, item.worker) == (None, None, None)
    assert item.status in ("success", "failed")


def test_deep_nesting_is_one_error_for_both_formats() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    for text in (deep, '{"format_version": "1.2.0", "nodes": ' + deep + "}"):
        with pytest.raises(TraceReadError, match="nested too deeply"):
            read_trace_text("t.json", text)
    meta = '{"pflow_trace": "jsonl/1", "kind": "meta", "format_version": "2.0.0"}'
    with pytest.raises(TraceReadError, match="line 2 is nested too deeply"):
        read_trace_text("t.jsonl", meta + "\n" + deep + "\n")


def test_json_lines_must_open_with_an_object() -> None:
    for first in ("0", "NaN", "[1]"):
        with pytest.raises(TraceReadError, match="unknown trace format"):
            read_trace_text("t.jsonl", first + '\n{"kind": "meta"}\n')


def test_a_large_file_is_judged_by_its_head(tmp_path: Path) -> None:
    """Past the head, a file whose start is already wrong is refused with the usual words."""
    cases = {
        "noise.json": ("{" + "x" * HEAD_BYTES, "not JSON (Expecting property name"),
        "array.json": ("[" + "1," * HEAD_BYTES + "1]", "a JSON array, not a trace object"),
        "binary.json": (b"\xff\xfe" * HEAD_BYTES, "not UTF-8"),
    }
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        with pytest.raises(TraceReadError, match=re.escape(expected)):
            read_trace(path)


def test_a_large_valid_trace_passes_the_head_check(tmp_path: Path) -> None:
    """A long string crossing the head's end is not mistaken for damage."""
    trace = make_trace([plain("a", 1.0, output="y" * (2 * HEAD_BYTES))])
    path = write_trace(tmp_path / "big.trace.json", trace, indent=1)
    assert path.stat().st_size > HEAD_BYTES
    assert read_trace(path).nodes[0].node_id == "a"
