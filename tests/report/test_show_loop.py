"""``show`` lists a loop node's passes: one line in the text, the passes in ``show --json``."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import pflow_trace
from pflow_trace.observe.export_settings import resolve_export_settings
from pflow_trace.report.stats import build_summary
from pflow_trace.report.terminal import render_text
from pflow_trace.tracefile.readers import read_trace

COUNT = "total: int\nresult: dict = {'total': total + 1, 'done': total + 1 >= 3}"


def loop_workflow(loop: dict[str, Any], code: str = COUNT) -> dict[str, Any]:
    return {
        "ir_version": "0.1.0",
        "name": "loops",
        "nodes": [
            {
                "id": "count",
                "type": "code",
                "params": {"inputs": {"total": 0}, "code": code},
                "loop": {"carry": {"total": "${count.result.total}"}, **loop},
            }
        ],
    }


def shown(tmp_path: Path, workflow: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    options = pflow_trace.TraceOptions(trace_dir=tmp_path, export=resolve_export_settings("none"))
    outcome = pflow_trace.run(workflow, None, options)
    assert outcome.trace_path is not None
    summary = build_summary([read_trace(outcome.trace_path)])
    return render_text(summary), json.loads(summary.to_json())


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    text = resources.files("pflow_trace.report").joinpath("schemas/show.schema.json").read_text()
    return json.loads(text)


@pytest.mark.parametrize(
    ("loop", "passes", "line"),
    [
        ({"until": "${count.result.done}"}, 3, "count loop: 3 passes, stopped by until"),
        ({"while": "${count.result.done}"}, 1, "count loop: 1 pass, stopped by while"),
        (
            {"until": "${count.result.done}", "max_iterations": 2},
            2,
            "count loop: 2 passes, stopped by the cap (max_iterations)",
        ),
    ],
)
def test_one_line_per_loop_node_and_its_passes_in_json(
    tmp_path: Path, schema: dict[str, Any], loop: dict[str, Any], passes: int, line: str
) -> None:
    text, document = shown(tmp_path, loop_workflow(loop))
    assert line in [row.strip() for row in text.splitlines()]
    jsonschema.Draft202012Validator(schema).validate(document)
    summary = document["runs"][0]["nodes"][0]["loop"]
    assert summary["iterations"] == passes
    assert [one["iteration"] for one in summary["passes"]] == list(range(1, passes + 1))
    assert all(one["status"] == "success" and one["duration_ms"] >= 0 for one in summary["passes"])


def test_a_failed_pass_ends_the_loop_and_is_listed(tmp_path: Path, schema: dict[str, Any]) -> None:
    failing = (
        "total: int\nif total >= 1:\n    raise ValueError('boom')\n"
        "result: dict = {'total': total + 1, 'done': False}"
    )
    text, document = shown(tmp_path, loop_workflow({"until": "${count.result.done}"}, failing))
    assert "count loop: 2 passes, stopped by a failed pass" in text
    jsonschema.Draft202012Validator(schema).validate(document)
    passes = document["runs"][0]["nodes"][0]["loop"]["passes"]
    assert [one["status"] for one in passes] == ["success", "failed"]
    assert "boom" in passes[1]["error"]


def test_a_node_without_a_loop_has_none(tmp_path: Path) -> None:
    workflow = {
        "ir_version": "0.1.0",
        "name": "plain",
        "nodes": [{"id": "one", "type": "echo", "params": {"message": "hi"}}],
    }
    text, document = shown(tmp_path, workflow)
    assert document["runs"][0]["nodes"][0]["loop"] is None
    assert " loop: " not in text
