"""Every example workflow validates and runs offline with the status its README promises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pflow_trace.ir.loading import load_and_validate
from pflow_trace.runtime.workflow_run import RunResult, run_workflow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.json"))

#: Examples whose run ends with failed items on purpose.
EXPECTED_STATUS = {
    "continue-on-error.json": "degraded",
    "demo.json": "degraded",
    "llm-batch.json": "degraded",
}


def run_example(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunResult:
    # Run from a scratch directory so a relative default path never writes into the repo.
    monkeypatch.chdir(tmp_path)
    inputs: dict[str, Any] = {"out_dir": str(tmp_path / "out")} if name == "pipeline.json" else {}
    return run_workflow(load_and_validate(EXAMPLES / name), inputs)


def test_the_promised_examples_exist() -> None:
    names = {path.name for path in EXAMPLE_FILES}
    assert {
        "sequential-batch.json",
        "parallel-batch.json",
        "continue-on-error.json",
        "pipeline.json",
        "demo.json",
    } <= names


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda path: path.name)
def test_example_validates_runs_and_declares_itself(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow = json.loads(path.read_text())
    assert workflow.get("name") and workflow.get("description")
    assert all(node.get("purpose") for node in workflow["nodes"])
    result = run_example(path.name, tmp_path, monkeypatch)
    assert result.status == EXPECTED_STATUS.get(path.name, "success"), result.error
    assert result.outputs and all(value is not None for value in result.outputs.values())
    assert path.name in (EXAMPLES / "README.md").read_text()


def test_sequential_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_example("sequential-batch.json", tmp_path, monkeypatch)
    assert result.outputs["mode"] == "sequential"
    assert result.outputs["toc"].splitlines() == [
        "1. getting-started",
        "2. batch-processing-101",
        "3. templates-namespaces",
        "4. untitled",
        "5. faq",
    ]


def test_parallel_batch_keeps_input_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_example("parallel-batch.json", tmp_path, monkeypatch)
    urls = result.outputs["summary"]["urls"]
    assert urls[0] == "https://example.com/index.html"  # the slow first page stays first
    assert len(urls) == 8
    assert result.nodes["fetch"]["batch_metadata"]["max_concurrent"] == 3


def test_continue_on_error_records_the_bad_readings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_example("continue-on-error.json", tmp_path, monkeypatch)
    assert result.outputs["error_count"] == 2
    report = result.outputs["report"]
    assert [bad["index"] for bad in report["bad"]] == [2, 4]
    assert report["good"] == 5
    results = result.nodes["parse"]["results"]  # failed items are not among the results
    assert [entry["original_index"] for entry in results] == [0, 1, 3, 5, 6]
    assert results[3] == {  # "0" is fine
        "result": 0.0,
        "stdout": "",
        "stderr": "",
        "item": "0",
        "original_index": 5,
    }


def test_pipeline_writes_the_report_under_out_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_example("pipeline.json", tmp_path, monkeypatch)
    report = tmp_path / "out" / "sales-report.md"
    assert result.outputs["report_path"] == str(report)
    assert result.outputs["written"] == f"Successfully wrote to '{report}'"
    text = report.read_text()
    assert text.startswith("# Sales by region\n")
    assert "| eu | 165.50 EUR |" in text
    assert "Grand total: 505.5 EUR" in text
    assert result.outputs["totals"] == {"eu": 165.5, "us": 280.0, "apac": 60.0}


def test_demo_is_degraded_by_two_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_example("demo.json", tmp_path, monkeypatch)
    score = result.nodes["score"]
    assert (score["count"], score["success_count"], score["error_count"]) == (12, 10, 2)
    assert [error["item"]["name"] for error in score["errors"]] == ["fjord", "kestrel"]
    assert result.outputs["top"] == ["cinder", "iris", "ember"]
    assert score["batch_metadata"]["execution_mode"] == "parallel"
