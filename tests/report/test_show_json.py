"""``show --json``: validated against its shipped schema, documented field by field, stable."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from pflow_samples import PFLOW_JSON_SAMPLE, PFLOW_JSONL_SAMPLE
from pflow_trace.cli.show import show
from trace_factory import (
    continue_with_failures_trace,
    failed_trace,
    interrupted_trace,
    parallel_trace,
    sequential_trace,
    write_trace,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "show-json.md"
SCENARIOS = {
    "sequential": sequential_trace,
    "parallel": parallel_trace,
    "continue": continue_with_failures_trace,
    "failed": failed_trace,
    "interrupted": interrupted_trace,
}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    text = resources.files("pflow_trace.report").joinpath("schemas/show.schema.json").read_text()
    document = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(document)
    return document


def show_json(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(show, ["--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def validate(document: dict[str, Any], schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(schema).validate(document)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_our_traces_validate(tmp_path: Path, schema: dict[str, Any], name: str) -> None:
    path = write_trace(tmp_path / f"{name}.json", SCENARIOS[name]())
    document = show_json(str(path))
    validate(document, schema)
    assert "aggregate" not in document
    (run,) = document["runs"]
    assert run["workflow_name"] == SCENARIOS[name]()["workflow_name"]
    assert run["format"] == "pflow-trace"


@pytest.mark.parametrize("sample", [PFLOW_JSON_SAMPLE, PFLOW_JSONL_SAMPLE])
def test_pflow_samples_validate(schema: dict[str, Any], sample: str) -> None:
    document = show_json(str(sample))
    validate(document, schema)
    batches = [node["batch"] for node in document["runs"][0]["nodes"] if node["batch"]]
    assert len(batches) == 2


def test_several_runs_validate_with_aggregate(tmp_path: Path, schema: dict[str, Any]) -> None:
    for name, factory in SCENARIOS.items():
        write_trace(tmp_path / "runs" / f"{name}.json", factory())
    document = show_json(str(tmp_path / "runs"), str(PFLOW_JSONL_SAMPLE))
    validate(document, schema)
    assert len(document["runs"]) == 6
    assert document["aggregate"]["runs"] == 6
    assert len(document["aggregate"]["workflows"]) == 6


def test_required_fields_from_the_issue(tmp_path: Path) -> None:
    document = show_json(str(write_trace(tmp_path / "p.json", parallel_trace())), "--top", "2")
    run = document["runs"][0]
    for key in ("workflow_name", "final_status", "duration_ms", "trace_id", "nodes"):
        assert key in run
    assert len(run["trace_id"]) == 32
    node = run["nodes"][1]
    for key in ("node_id", "node_type", "duration_ms", "success", "batch"):
        assert key in node
    batch = node["batch"]
    for key in (
        "count",
        "success_count",
        "error_count",
        "execution_mode",
        "max_concurrent",
        "wall_ms",
        "effective_parallelism",
        "timing",
        "slowest",
        "errors",
    ):
        assert key in batch
    assert set(batch["timing"]) == {
        "total_items_ms",
        "avg_item_ms",
        "min_item_ms",
        "max_item_ms",
        "p50_item_ms",
        "p95_item_ms",
    }
    assert len(batch["slowest"]) == 2
    assert run["nodes"][0]["batch"] is None


def test_output_is_deterministic(tmp_path: Path) -> None:
    path = str(write_trace(tmp_path / "c.json", continue_with_failures_trace()))
    first = CliRunner().invoke(show, ["--json", path]).stdout
    assert first == CliRunner().invoke(show, ["--json", path]).stdout


def _property_names(node: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.get("properties", {}).items():
            names.add(key)
            names |= _property_names(value)
        for key in ("$defs", "items"):
            inner = node.get(key)
            if isinstance(inner, dict):
                for value in inner.values() if key == "$defs" else [inner]:
                    names |= _property_names(value)
    return names


def test_every_schema_field_is_documented(schema: dict[str, Any]) -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = sorted(name for name in _property_names(schema) if f"`{name}`" not in text)
    assert missing == []


def test_docs_name_the_percentile_definition_and_stability() -> None:
    text = DOCS.read_text(encoding="utf-8").lower()
    assert "linear interpolation" in text
    assert "schema_version" in text and "stable" in text
