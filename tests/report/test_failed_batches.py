"""A batch with failed items is never shown as a success, in any view of a finished trace.

The traces are written as a ``continue`` batch was before a batch with no successful item
failed its node: the node's ``success`` is true and the run ``degraded``. ``show`` (text and
``--json``) and the HTML report must still call such a node failed, and a batch with some
failed items degraded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import trace_factory as tf
from pflow_trace.cli.show import show
from pflow_trace.report.html import DATA_ELEMENT_ID, render_report
from pflow_trace.report.stats import build_summary
from pflow_trace.report.summary import node_status
from pflow_trace.report.terminal import render_text
from pflow_trace.tracefile.readers import read_trace


def _all_failed_trace() -> dict[str, Any]:
    """``fetch``: 2 items, both failed, the node went on; then a plain node."""
    return tf.make_trace(
        [
            tf.batch("fetch", [3.0, 4.0], failures={0: "HTTP 404", 1: "HTTP 500"}),
            tf.plain("after", 1.0),
        ],
        seed=41,
    )


def _some_failed_trace() -> dict[str, Any]:
    return tf.make_trace([tf.batch("fetch", [3.0, 4.0, 5.0], failures={1: "HTTP 500"})], seed=42)


def _written(tmp_path: Path, trace: dict[str, Any], name: str = "t.json") -> Path:
    return tf.write_trace(tmp_path / name, trace)


def test_the_rule_every_view_follows() -> None:
    assert node_status(True, True, None, None) == "success"
    assert node_status(True, True, 3, 0) == "success"
    assert node_status(True, True, 2, 1) == "degraded"
    assert node_status(True, True, 0, 2) == "failed"
    assert node_status(True, True, None, 2) == "degraded"  # successes unknown: no guess
    assert node_status(True, False, 5, 0) == "failed"
    assert node_status(False, True, 0, 2) == "unfinished"


def test_the_trace_says_success_but_the_summary_says_failed(tmp_path: Path) -> None:
    trace = _all_failed_trace()
    assert trace["nodes"][0]["success"] is True and trace["nodes_failed"] == 0
    run = build_summary([read_trace(_written(tmp_path, trace))]).runs[0]
    fetch = run.nodes[0]
    assert fetch.status == "failed"
    assert fetch.success is True  # the trace's own flag, kept as written
    assert run.nodes_failed == 1  # not the trace's 0: never fewer than the nodes shown failed
    assert run.nodes[1].status == "success"


def test_some_failed_items_make_the_node_degraded(tmp_path: Path) -> None:
    run = build_summary([read_trace(_written(tmp_path, _some_failed_trace()))]).runs[0]
    assert run.nodes[0].status == "degraded" and run.nodes_failed == 0


@pytest.mark.no_trace_validation  # ours always hold success_count; other writers may not
def test_a_batch_without_success_count_whose_items_all_failed_is_failed(tmp_path: Path) -> None:
    trace = _all_failed_trace()
    del trace["nodes"][0]["shared_after"]["fetch"]["success_count"]
    run = build_summary([read_trace(_written(tmp_path, trace))]).runs[0]
    assert run.nodes[0].status == "failed"


def test_show_text_marks_the_node_and_its_items_failed(tmp_path: Path) -> None:
    summary = build_summary([read_trace(_written(tmp_path, _all_failed_trace()))])
    plain = render_text(summary)
    fetch_row = next(line for line in plain.splitlines() if line.strip().startswith("1  fetch"))
    assert "failed" in fetch_row.split() and "success" not in fetch_row
    assert re.search(r"nodes +2 run, 1 failed", plain), plain
    drawn = render_text(summary, terminal=True, color=True, width=160)
    # The items field is drawn bold red (rich: ESC[1;31m), not yellow or green.
    assert re.search(r"\x1b\[1;31m2 \(0 ok, 2 failed\)", drawn), drawn


def test_show_json_status_is_failed(tmp_path: Path) -> None:
    path = _written(tmp_path, _all_failed_trace())
    result = CliRunner().invoke(show, [str(path), "--json"])
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)["runs"][0]
    assert [node["status"] for node in run["nodes"]] == ["failed", "success"]
    assert run["nodes_failed"] == 1


def test_the_aggregate_counts_an_all_failed_batch_as_a_failure(tmp_path: Path) -> None:
    runs = [
        read_trace(_written(tmp_path, _all_failed_trace(), "a.json")),
        read_trace(_written(tmp_path, _some_failed_trace(), "b.json")),
    ]
    fetch = build_summary(runs).aggregate.workflows[0].nodes[0]  # type: ignore[union-attr]
    assert (fetch.node_id, fetch.runs, fetch.failures) == ("fetch", 2, 1)


def test_the_report_draws_the_node_failed(tmp_path: Path) -> None:
    html = render_report([read_trace(_written(tmp_path, _all_failed_trace()))])
    match = re.search(
        rf'<script type="application/json" id="{DATA_ELEMENT_ID}">(.*?)</script>', html, re.S
    )
    assert match
    data = json.loads(match.group(1))
    assert data["summary"]["runs"][0]["nodes"][0]["status"] == "failed"
    assert data["timelines"][0]["nodes"][0]["status"] == "failed"  # the waterfall's node bar
