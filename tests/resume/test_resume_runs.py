"""Resuming through the Python API: only what did not succeed runs again, on every executor,
and the outputs are those of a clean run."""

from __future__ import annotations

from pathlib import Path

import pytest
from resume_cases import (
    COUNT,
    FAILING,
    executions,
    options,
    run_failing_then_resume,
    trace_document,
    workflow,
)

import pflow_trace
from pflow_trace.errors import ResumeError
from pflow_trace.runtime.resume import ResumeRequest

CLEAN_TOTAL = sum(x * 10 for x in range(COUNT))


@pytest.mark.parametrize(
    ("executor", "parallel"),
    [("threads", False), ("threads", True), ("processes", True), ("dask", True)],
)
def test_only_the_failed_items_run_again_and_the_outputs_equal_a_clean_run(
    tmp_path: Path, executor: str, parallel: bool
) -> None:
    wf = workflow(tmp_path, executor, parallel)
    first, second, first_log, second_log = run_failing_then_resume(tmp_path, wf)

    assert first.status == "degraded"
    assert sorted(first_log) == sorted(["make", "total", *(f"work {x}" for x in range(COUNT))])
    # make is reused, the failed items run, total reads what changed and runs again.
    assert sorted(second_log) == sorted(["total", *(f"work {x}" for x in FAILING)])
    assert second.status == "success"
    clean = pflow_trace.run(wf, {}, options(tmp_path / "clean.trace.json"))
    assert second.outputs == clean.outputs
    assert second.outputs["total"] == CLEAN_TOTAL


def test_a_node_whose_inputs_did_not_change_is_reused(tmp_path: Path) -> None:
    wf = workflow(tmp_path)
    pflow_trace.run(wf, {}, options(tmp_path / "first.trace.json"))
    executions(tmp_path / "log")
    request = ResumeRequest(str(tmp_path / "first.trace.json"))
    again = pflow_trace.run(wf, {}, options(tmp_path / "second.trace.json", request))

    assert executions(tmp_path / "log") == []  # everything succeeded: nothing is paid again
    assert again.outputs["total"] == CLEAN_TOTAL
    document = trace_document(tmp_path / "second.trace.json")
    assert document["resume"] == {"items": COUNT, "reused": COUNT, "rerun": 0, "ok": 0, "failed": 0}


def test_the_new_trace_names_the_old_run_and_marks_reused_items_without_spans(
    tmp_path: Path,
) -> None:
    run_failing_then_resume(tmp_path, workflow(tmp_path))
    old = trace_document(tmp_path / "first.trace.json")
    new = trace_document(tmp_path / "second.trace.json")

    assert new["resumed_from"] == {
        "execution_id": old["execution_id"],
        "trace_id": old["otel"]["trace_id"],
        "span_id": old["otel"]["span_id"],
        "file": "first.trace.json",
    }
    assert new["resume"] == {"items": COUNT, "reused": 4, "rerun": 2, "ok": 2, "failed": 0}
    (work,) = [event for event in new["nodes"] if event["node_id"] == "work"]
    old_items = {item["index"]: item for item in old["nodes"][1]["batch_items"]}
    for record in work["batch_items"]:
        if record["index"] in FAILING:
            assert "reused" not in record and record["span_id"] is not None
        else:
            assert record["reused"] is True and record["span_id"] is None
            assert record["duration_ms"] == 0 and record["attempts"] == 0
            assert record["original_duration_ms"] == old_items[record["index"]]["duration_ms"]
    item_rows = [
        row for row in new["otel"]["spans"]["rows"] if "work batch.item" in str(row)
    ] or _item_span_indices(tmp_path / "second.trace.json")
    assert len(item_rows) == len(FAILING)
    (make,) = [event for event in new["nodes"] if event["node_id"] == "make"]
    assert make["success"] is True


def _item_span_indices(trace: Path) -> list[int]:
    from pflow_trace.replay.load import load_replay_trace

    return [
        span.attributes["pflow.batch.index"]
        for span in load_replay_trace(trace).spans
        if span.layer == "batch.item"
    ]


def test_the_root_span_links_to_the_old_root(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    wf = workflow(tmp_path)
    pflow_trace.run(wf, {}, options(tmp_path / "first.trace.json"))
    old = trace_document(tmp_path / "first.trace.json")
    exporter = InMemorySpanExporter()
    request = ResumeRequest(str(tmp_path / "first.trace.json"))
    extra = {"extra_processors": [SimpleSpanProcessor(exporter)]}
    pflow_trace.run(wf, {}, options(tmp_path / "second.trace.json", request, **extra))

    (root,) = [span for span in exporter.get_finished_spans() if span.parent is None]
    (link,) = root.links
    assert format(link.context.trace_id, "032x") == old["otel"]["trace_id"]
    assert format(link.context.span_id, "016x") == old["otel"]["span_id"]


def test_items_and_failed_only_narrow_what_runs_again(tmp_path: Path) -> None:
    wf = workflow(tmp_path)
    _, second, _, second_log = run_failing_then_resume(tmp_path, wf, {"items": (4,)})

    assert sorted(second_log) == ["total", "work 4"]
    assert second.status == "degraded"
    assert any("1 of 6 items left out of the resume" in line for line in second.result.warnings)
    rows = second.outputs["rows"]
    assert sorted(row["original_index"] for row in rows) == [0, 2, 3, 4, 5]


def test_failed_only_leaves_out_the_items_a_stop_never_reached(tmp_path: Path) -> None:
    wf = workflow(tmp_path)
    wf["nodes"][1]["batch"]["error_handling"] = "fail_fast"  # stops at item 1
    (tmp_path / "flag").touch()
    first = pflow_trace.run(wf, {}, options(tmp_path / "first.trace.json"))
    assert first.status == "failed"
    assert executions(tmp_path / "log") == ["make", "work 0", "work 1"]
    (tmp_path / "flag").unlink()
    trace = str(tmp_path / "first.trace.json")

    narrowed = ResumeRequest(trace, failed_only=True)
    pflow_trace.run(wf, {}, options(tmp_path / "second.trace.json", narrowed))
    assert executions(tmp_path / "log") == ["work 1", "total"]  # total never ran before
    full = pflow_trace.run(wf, {}, options(tmp_path / "third.trace.json", ResumeRequest(trace)))
    assert executions(tmp_path / "log") == [*(f"work {x}" for x in range(1, COUNT)), "total"]
    assert full.outputs["total"] == CLEAN_TOTAL


def test_rerun_forces_a_node_and_whatever_reads_what_it_made(tmp_path: Path) -> None:
    wf = workflow(tmp_path)
    pflow_trace.run(wf, {}, options(tmp_path / "first.trace.json"))
    executions(tmp_path / "log")
    request = ResumeRequest(str(tmp_path / "first.trace.json"), rerun=("make",))
    pflow_trace.run(wf, {}, options(tmp_path / "second.trace.json", request))
    # make runs again but makes the same list: work's items and total are reused.
    assert executions(tmp_path / "log") == ["make"]

    request = ResumeRequest(str(tmp_path / "first.trace.json"), rerun=("work",))
    pflow_trace.run(wf, {}, options(tmp_path / "third.trace.json", request))
    assert sorted(executions(tmp_path / "log")) == sorted(f"work {x}" for x in range(COUNT))


def test_a_changed_workflow_or_input_is_refused_unless_forced(tmp_path: Path) -> None:
    wf = workflow(tmp_path)
    pflow_trace.run(wf, {}, options(tmp_path / "first.trace.json"))
    executions(tmp_path / "log")
    request = ResumeRequest(str(tmp_path / "first.trace.json"))
    changed = workflow(tmp_path)
    changed["nodes"][2]["params"]["code"] += " + 1"

    with pytest.raises(ResumeError, match="the workflow changed since that run"):
        pflow_trace.run(changed, {}, options(tmp_path / "second.trace.json", request))
    with pytest.raises(ResumeError, match="the inputs differ"):
        pflow_trace.run(wf, {"scale": 2}, options(tmp_path / "second.trace.json", request))
    assert executions(tmp_path / "log") == []

    forced = ResumeRequest(str(tmp_path / "first.trace.json"), force=True)
    outcome = pflow_trace.run(changed, {}, options(tmp_path / "third.trace.json", forced))
    assert executions(tmp_path / "log") == ["total"]  # only the node that changed
    assert outcome.outputs["total"] == CLEAN_TOTAL + 1
    outcome = pflow_trace.run(wf, {"scale": 2}, options(tmp_path / "fourth.trace.json", forced))
    assert executions(tmp_path / "log") == ["total"]  # only the node that reads the input
    assert outcome.outputs["total"] == CLEAN_TOTAL * 2


def test_resume_takes_the_workflow_and_inputs_from_the_checkpoint(tmp_path: Path) -> None:
    wf = workflow(tmp_path)
    (tmp_path / "flag").touch()
    pflow_trace.run(wf, {"scale": 3}, options(tmp_path / "first.trace.json"))
    executions(tmp_path / "log")
    (tmp_path / "flag").unlink()

    outcome = pflow_trace.resume(
        tmp_path / "first.trace.json", options(tmp_path / "second.trace.json")
    )
    assert sorted(executions(tmp_path / "log")) == ["total", "work 1", "work 4"]
    assert outcome.outputs["total"] == CLEAN_TOTAL * 3


def test_a_resumed_run_can_itself_be_resumed(tmp_path: Path) -> None:
    wf = workflow(tmp_path)
    (tmp_path / "flag").touch()
    pflow_trace.run(wf, {}, options(tmp_path / "first.trace.json"))
    pflow_trace.run(
        wf,
        {},
        options(tmp_path / "second.trace.json", ResumeRequest(str(tmp_path / "first.trace.json"))),
    )
    executions(tmp_path / "log")
    (tmp_path / "flag").unlink()
    request = ResumeRequest(str(tmp_path / "second.trace.json"))
    outcome = pflow_trace.run(wf, {}, options(tmp_path / "third.trace.json", request))

    assert sorted(executions(tmp_path / "log")) == ["total", "work 1", "work 4"]
    assert outcome.outputs["total"] == CLEAN_TOTAL
