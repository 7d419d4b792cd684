"""Readers: every supported format lands in the one model, with nothing format-specific left."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pflow_samples import PFLOW_JSON_SAMPLE, PFLOW_JSONL_SAMPLE
from pflow_trace.errors import TraceReadError
from pflow_trace.tracefile.model import BatchItem, TraceRun
from pflow_trace.tracefile.readers import read_trace
from trace_factory import (
    batch,
    continue_with_failures_trace,
    failed_trace,
    interrupted_trace,
    make_trace,
    parallel_trace,
    plain,
    sequential_trace,
    write_trace,
)


def test_pflow_json_sample_reads_batch_metadata_only() -> None:
    run = read_trace(PFLOW_JSON_SAMPLE)
    assert run.format == "pflow"
    assert run.format_version == "1.2.0"
    assert (run.workflow_name, run.final_status) == ("batch", "success")
    assert run.duration_ms == pytest.approx(270.49)
    assert run.trace_id is None
    assert run.warnings == []
    assert [node.node_id for node in run.nodes] == ["make_items", "work", "fail_some"]
    assert run.nodes[0].batch is None
    work = run.nodes[1].batch
    assert work is not None and work.items is None
    assert (work.count, work.success_count, work.error_count) == (8, 8, 0)
    assert (work.parallel, work.execution_mode, work.max_concurrent) == (True, "parallel", 4)
    assert work.reported_timing_ms["total_items_ms"] == pytest.approx(827.01)
    fail_some = run.nodes[2].batch
    assert fail_some is not None and fail_some.execution_mode == "sequential"
    assert fail_some.max_concurrent is None
    assert [e.index for e in fail_some.reported_errors] == [0, 2, 4, 6]
    assert fail_some.reported_errors[0].message.startswith("Command failed with exit code 3")


def test_pflow_jsonl_sample_reads_items_and_run_complete() -> None:
    run = read_trace(PFLOW_JSONL_SAMPLE)
    assert run.format == "pflow-jsonl"
    assert run.format_version == "2.8.0"
    assert (run.workflow_name, run.final_status) == ("batch", "degraded")
    assert run.duration_ms == pytest.approx(234.06)
    assert run.end_time == "2026-11-21T20:50:52.328633"
    assert (run.nodes_executed, run.nodes_failed) == (3, 0)
    assert run.warnings == []
    assert [node.node_id for node in run.nodes] == ["make_items", "work", "fail_some"]
    work = run.nodes[1].batch
    assert work is not None and work.items is not None
    assert len(work.items) == 8
    # Parallel items are recorded in completion order; the index is kept as written.
    assert sorted(item.index for item in work.items) == list(range(8))
    assert all(item.attempts is None and item.worker is None for item in work.items)
    fail_some = run.nodes[2].batch
    assert fail_some is not None and fail_some.items is not None
    failed = [item for item in fail_some.items if item.status == "failed"]
    assert [item.index for item in failed] == [0, 2, 4, 6]
    assert failed[0].error == "Command failed with exit code 3: bad\n"
    assert failed[0].item == 1  # pflow keeps the item itself, not a preview


def test_our_format_sequential(tmp_path: Path) -> None:
    run = read_trace(write_trace(tmp_path / "seq.json", sequential_trace()))
    assert run.format == "pflow-trace"
    assert run.generator == "pflow-trace 0.1.0"
    assert run.final_status == "success"
    assert run.trace_id is not None and len(run.trace_id) == 32
    assert run.start_time is not None and run.start_time.endswith("+00:00")
    summarise = run.nodes[1]
    assert summarise.start_offset_ms is not None and summarise.span_id is not None
    assert summarise.batch is not None and summarise.batch.items is not None
    items = summarise.batch.items
    assert [item.duration_ms for item in items] == [10.0, 30.0, 20.0, 40.0]
    assert [item.start_offset_ms for item in items] == [0.0, 10.0, 40.0, 60.0]
    assert {item.worker for item in items} == {0}
    assert all(isinstance(item, BatchItem) for item in items)


def test_our_format_parallel_keeps_lanes_and_attempts(tmp_path: Path) -> None:
    run = read_trace(write_trace(tmp_path / "par.json", parallel_trace()))
    work = run.nodes[1].batch
    assert work is not None and work.items is not None
    assert work.parallel is True and work.max_concurrent == 4
    assert {item.worker for item in work.items} == {0, 1, 2, 3}
    assert work.items[3].attempts == 2 and work.items[7].attempts == 3


def test_our_format_continue_with_failures(tmp_path: Path) -> None:
    run = read_trace(write_trace(tmp_path / "cont.json", continue_with_failures_trace()))
    assert run.final_status == "degraded"
    fetch = run.nodes[0].batch
    assert fetch is not None and fetch.items is not None
    assert fetch.error_count == 11
    assert sum(1 for item in fetch.items if item.status == "failed") == 11


def test_our_format_failed_run(tmp_path: Path) -> None:
    run = read_trace(write_trace(tmp_path / "failed.json", failed_trace()))
    assert run.final_status == "failed"
    assert run.failed_node == "convert"
    assert run.error is not None and "cannot convert" in run.error
    convert = run.nodes[1]
    assert convert.success is False
    assert convert.batch is not None and convert.batch.count == 4
    # fail_fast: the items after the failure never ran and have no record.
    assert [item.status for item in convert.batch.items or []] == ["success", "failed"]


def test_our_format_interrupted_run_has_partial_items(tmp_path: Path) -> None:
    run = read_trace(write_trace(tmp_path / "int.json", interrupted_trace()))
    assert run.final_status == "interrupted"
    slow = run.nodes[-1]
    assert slow.success is False
    assert slow.batch is not None and slow.batch.items is not None
    assert len(slow.batch.items) == 3 and slow.batch.count == 10


def test_interrupted_batch_without_output_has_unknown_total(tmp_path: Path) -> None:
    trace = interrupted_trace()
    del trace["nodes"][-1]["shared_after"]["slow"]
    run = read_trace(write_trace(tmp_path / "int.json", trace))
    slow = run.nodes[-1].batch
    assert slow is not None and slow.count is None and slow.parallel is None
    assert slow.items is not None and len(slow.items) == 3


def test_pretty_printed_and_compact_read_the_same(tmp_path: Path) -> None:
    trace = parallel_trace()
    compact = read_trace(write_trace(tmp_path / "compact.json", trace))
    pretty = read_trace(write_trace(tmp_path / "pretty.json", trace, indent=2))
    compact.source = pretty.source = "x"
    assert compact == pretty


def test_compact_document_with_trailing_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(sequential_trace()) + "\n\n\n", encoding="utf-8")
    assert read_trace(path).workflow_name == "sequential"


def test_format_is_decided_by_content_not_extension(tmp_path: Path) -> None:
    renamed = tmp_path / "trace.json"
    renamed.write_bytes(PFLOW_JSONL_SAMPLE.read_bytes())
    assert read_trace(renamed).format == "pflow-jsonl"


def test_jsonl_without_run_complete_is_interrupted_with_one_warning(tmp_path: Path) -> None:
    lines = PFLOW_JSONL_SAMPLE.read_text(encoding="utf-8").splitlines()
    path = tmp_path / "cut.jsonl"
    # Keep meta, make_items, work; and the start of fail_some, which never ends.
    path.write_text("\n".join(lines[:6]) + "\n", encoding="utf-8")
    run = read_trace(path)
    assert run.final_status == "interrupted"
    assert len(run.warnings) == 1 and "run.complete" in run.warnings[0]
    assert [node.node_id for node in run.nodes] == ["make_items", "work", "fail_some"]
    assert run.nodes[-1].finished is False and run.nodes[-1].duration_ms is None


def test_jsonl_failed_node_ids_mark_nodes_failed(tmp_path: Path) -> None:
    lines = PFLOW_JSONL_SAMPLE.read_text(encoding="utf-8").splitlines()
    complete = json.loads(lines[-1])
    complete.update(final_status="failed", failed_node_ids=["fail_some"], nodes_failed=1)
    path = tmp_path / "failed.jsonl"
    path.write_text("\n".join([*lines[:-1], json.dumps(complete)]) + "\n", encoding="utf-8")
    run = read_trace(path)
    assert run.final_status == "failed" and run.failed_node == "fail_some"
    assert [node.success for node in run.nodes] == [True, True, False]


@pytest.mark.no_trace_validation  # deliberately off-format item records
def test_falsy_items_and_missing_fields_are_kept(tmp_path: Path) -> None:
    trace = make_trace([batch("b", [1.0, 2.0, 3.0], items=[0, "", None])])
    items = trace["nodes"][0]["batch_items"]
    items[0]["item"] = 0
    del items[1]["attempts"]  # one record without attempts: the careful path
    items[2]["duration_ms"] = "fast"  # the wrong type: dropped, not trusted
    run = read_trace(write_trace(tmp_path / "t.json", trace))
    got = run.nodes[0].batch
    assert got is not None and got.items is not None
    assert [item.item for item in got.items] == [0, "", "None"]
    assert [item.attempts for item in got.items] == [1, None, 1]
    assert [item.duration_ms for item in got.items] == [1.0, 2.0, None]


def test_pflow_without_otel_is_pflow_format(tmp_path: Path) -> None:
    trace = make_trace([plain("a", 1.0)], otel=False)
    del trace["generator"]
    run = read_trace(write_trace(tmp_path / "t.json", trace))
    assert run.format == "pflow" and run.trace_id is None


def test_model_objects_have_no_instance_dict() -> None:
    item = BatchItem(0, "x", "success", 1.0)
    assert not hasattr(item, "__dict__")
    run = TraceRun("f", "pflow-trace", "1.2.0", "w", "success")
    assert not hasattr(run, "__dict__")


def test_read_error_is_a_trace_read_error_with_exit_code_2(tmp_path: Path) -> None:
    with pytest.raises(TraceReadError) as caught:
        read_trace(tmp_path / "missing.json")
    assert caught.value.exit_code == 2
