"""``batch.key`` end to end: a run records each item's key, and ``diff`` matches items by it
across a reordered input list whose values changed (where matching by value finds nothing)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import pflow_trace
from pflow_trace.observe.export_settings import resolve_export_settings
from pflow_trace.report.diff_build import build_diff
from pflow_trace.report.stats import build_summary
from pflow_trace.report.timeline import build_timeline
from pflow_trace.tracefile.model import BatchInfo, BatchItem, TraceNode, TraceRun
from pflow_trace.tracefile.readers import read_trace
from pflow_trace.tracefile.schema import validate_trace_document
from subprocess_env import clean_env

IDS = [f"doc-{index}" for index in range(12)]


def workflow(items: list[dict[str, Any]], fail_id: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"value": "${item.id}", "delay_ms": "${item.ms}"}
    if fail_id is not None:
        params["fail_if"] = fail_id
    return {
        "ir_version": "0.1.0",
        "name": "keyed",
        "nodes": [
            {
                "id": "work",
                "type": "echo",
                "params": params,
                "batch": {"items": items, "key": "${item.id}", "error_handling": "continue"},
            }
        ],
        "edges": [],
    }


def run_to(path: Path, document: dict[str, Any], previews: bool = True) -> Path:
    options = pflow_trace.TraceOptions(
        trace_file=str(path),
        export=resolve_export_settings("none"),
        checkpoint=False,
        previews=previews,
    )
    outcome = pflow_trace.run(document, None, options)
    assert outcome.trace_path is not None
    return Path(outcome.trace_path)


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    """Base: items in order, doc-5 slow. New: reversed, each item's payload changed (so no
    value matches), doc-5 fast again and doc-3 failing."""
    base_items = [{"id": id_, "round": 1, "ms": 40 if id_ == "doc-5" else 1} for id_ in IDS]
    new_items = [{"id": id_, "round": 2, "ms": 1} for id_ in reversed(IDS)]
    base = run_to(tmp_path / "base.json", workflow(base_items))
    new = run_to(tmp_path / "new.json", workflow(new_items, fail_id="doc-3"))
    return base, new


def test_each_item_records_its_key_and_the_trace_stays_valid(two_runs: tuple[Path, Path]) -> None:
    _base, new = two_runs
    document = json.loads(new.read_text("utf-8"))
    validate_trace_document(document)
    records = document["nodes"][0]["batch_items"]
    assert [record["key"] for record in records] == list(reversed(IDS))
    items = read_trace(new).nodes[0].batch.items
    assert [item.key for item in items] == list(reversed(IDS))


def test_diff_matches_reordered_items_by_key(two_runs: tuple[Path, Path]) -> None:
    base, new = two_runs
    result = build_diff([read_trace(base)], [read_trace(new)])
    work = result.nodes[0]
    assert work.item_match == "key"
    assert [item.key for item in work.newly_failing] == ["doc-3"]
    assert work.moved_most[0].key == "doc-5"
    assert work.moved_most[0].change_ms is not None and work.moved_most[0].change_ms < -30
    assert not any("batch.key" in warning for warning in result.warnings)


def test_keys_match_items_when_previews_are_off(tmp_path: Path) -> None:
    """``--no-previews`` hides every value (all alike): without a key, only the index is left."""
    items = [{"id": id_, "ms": 1} for id_ in IDS]
    base = run_to(tmp_path / "base.json", workflow(items), previews=False)
    new = run_to(tmp_path / "new.json", workflow(items[::-1], fail_id="doc-3"), previews=False)
    work = build_diff([read_trace(base)], [read_trace(new)]).nodes[0]
    assert {item.item for item in read_trace(new).nodes[0].batch.items} == {"<preview off>"}
    assert work.item_match == "key"
    assert [item.key for item in work.newly_failing] == ["doc-3"]


def test_the_cli_says_items_were_matched_by_key(two_runs: tuple[Path, Path]) -> None:
    base, new = two_runs
    done = subprocess.run(
        [sys.executable, "-m", "pflow_trace", "diff", str(base), str(new), "--format", "json"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    schema = resources.files("pflow_trace.report").joinpath("schemas/diff.schema.json")
    jsonschema.validate(document, json.loads(schema.read_text("utf-8")))
    (work,) = document["nodes"]
    assert work["item_match"] == "key"
    assert work["newly_failing"][0]["key"] == "doc-3"


def _run(keys: list[str | None], values: list[str]) -> TraceRun:
    items = [
        BatchItem(index, value, "success", 1.0 + index, key=key)
        for index, (key, value) in enumerate(zip(keys, values, strict=True))
    ]
    node = TraceNode("work", "echo", True, 10.0, batch=BatchInfo(count=len(items), items=items))
    return TraceRun("mem", "pflow-trace", "1.2.0", "demo", "success", nodes=[node])


@pytest.mark.parametrize(
    ("base_keys", "new_keys", "values", "expected", "why"),
    [
        (["a", "b", "c"], ["a", "b", "c"], ["x", "y", "z"], "key", None),
        (["a", "a", "c"], ["a", "b", "c"], ["x", "y", "z"], "value", "batch.key repeats"),
        (["a", "b", None], ["a", "b", "c"], ["x", "y", "z"], "value", "1 items have no"),
        ([None, None, None], ["a", "b", "c"], ["x", "y", "z"], "value", "only in the new"),
        (["a", "a", "c"], ["a", "b", "c"], ["x", "x", "z"], "index", "batch.key repeats"),
        ([None, None, None], [None, None, None], ["x", "y", "z"], "value", None),
    ],
)
def test_unusable_keys_fall_back_and_say_why(
    base_keys: list[str | None],
    new_keys: list[str | None],
    values: list[str],
    expected: str,
    why: str | None,
) -> None:
    result = build_diff([_run(base_keys, values)], [_run(new_keys, values)])
    assert result.nodes[0].item_match == expected
    notes = [warning for warning in result.warnings if "batch.key" in warning]
    if why is None:
        assert notes == []
    else:
        (note,) = notes
        assert why in note and f"items matched by {expected} instead" in note


def test_the_report_carries_each_items_key(two_runs: tuple[Path, Path]) -> None:
    base, _new = two_runs
    for run, expected in [
        (read_trace(base), IDS),
        (_run([None, None, None], ["x", "y", "z"]), []),
    ]:
        (node,) = build_timeline(run, build_summary([run]).runs[0]).nodes
        assert node.items is not None and node.items.key == expected
