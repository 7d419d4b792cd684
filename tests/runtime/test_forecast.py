"""Forecasts and pilots checked against the real runs they forecast, on the offline echo model.

Every test runs the workflow for real too (``api.run``) and compares: the dry run's item count
and cost range with the run's, a forecast from history with a later run, and a pilot's
projected interval with what the rest of the batch then cost. Prices come from a test price
file (the echo model has no price of its own).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pflow_trace import api
from pflow_trace.api import PilotPlan, PilotProjection, TraceOptions
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.observe.export_settings import resolve_export_settings
from pflow_trace.report.forecast import build_forecast, token_estimate
from pflow_trace.report.forecast_text import render_forecast
from pflow_trace.runtime.dry_run import preview_workflow

#: Reviews of very different lengths (and one empty, which the ``pick`` code node drops).
REVIEWS = [
    "good",
    "",
    "Terrible: it broke after a day and support never answered my three emails about it.",
    "ok I guess",
    "Works as described, arrived early, and the battery lasts about a week of daily use.",
    "meh",
    "Five stars. " * 12,
    "The lid cracked.",
    "Would buy again for my parents, who found the buttons large and the menus simple.",
    "no",
    "Cheap plastic, loud fan, and the manual is in a language I cannot read at all.",
    "fine",
    "Exactly what the picture shows.",
    "It stopped charging after two weeks; the replacement did the same in a month.",
    "great value",
    "Returned it.",
    "Setup took an hour because the app kept asking for the same permissions again.",
    "love it",
    "Too small for an adult hand, fine for a child.",
    "A solid, quiet machine that does one thing well and never complains about it.",
    "bad",
]
ECHO_PRICES = {"models": {"echo": {"input": 2.0, "output": 6.0}}}


def review_workflow(name: str = "fc-reviews", parallel: bool = True) -> dict[str, Any]:
    return validate_workflow(
        {
            "ir_version": "0.1.0",
            "name": name,
            "inputs": {"reviews": {"type": "array", "description": "Reviews", "required": True}},
            "nodes": [
                {
                    "id": "pick",
                    "type": "code",
                    "purpose": "Drop empty reviews",
                    "params": {
                        "code": "result = [r for r in reviews if r]",
                        "inputs": {"reviews": "${reviews}"},
                    },
                },
                {
                    "id": "rate",
                    "type": "llm",
                    "purpose": "Rate each review",
                    "params": {
                        "model": "echo",
                        "prompt": "Rate this review from 1 to 5: ${review}",
                        "system": "Answer with one digit.",
                    },
                    "batch": {
                        "items": "${pick.result}",
                        "as": "review",
                        "parallel": parallel,
                        "max_concurrent": 4,
                    },
                },
            ],
            "outputs": {"rated": "${rate.success_count}"},
        }
    )


@pytest.fixture(autouse=True)
def echo_prices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(ECHO_PRICES))
    monkeypatch.setenv("PFLOW_TRACE_PRICES", str(path))
    return path


def options(trace_dir: Path, **extra: Any) -> TraceOptions:
    return TraceOptions(
        export=resolve_export_settings("none", env={}),
        trace_dir=str(trace_dir),
        join_env_trace_context=False,
        **extra,
    )


def test_an_unseen_workflow_is_forecast_from_prompt_sizes_within_its_stated_range(
    tmp_path: Path,
) -> None:
    workflow = review_workflow()
    preview = preview_workflow(workflow, {"reviews": REVIEWS})
    assert preview.ran == ["pick"]  # the item source ran; the llm node did not
    forecast = build_forecast(preview, [])
    rate = next(node for node in forecast.nodes if node.node_id == "rate")
    assert rate.source == "prompt sizes" and rate.tokens_method == "characters / 4"
    assert forecast.cost_usd is not None and not forecast.cost_unknown

    outcome = api.run(workflow, {"reviews": REVIEWS}, options(tmp_path))
    real = outcome.llm_summary
    assert outcome.status == "success" and real is not None
    assert rate.items is not None and rate.items.estimate == real["calls"] == 20
    assert forecast.cost_usd.low is not None and forecast.cost_usd.high is not None
    assert forecast.cost_usd.low <= real["cost_usd"] <= forecast.cost_usd.high
    # The point estimate is within the documented factor of the truth, not only the range.
    assert real["cost_usd"] / 4 <= forecast.cost_usd.estimate <= real["cost_usd"] * 4
    assert "$" in render_forecast(forecast)


def test_a_forecast_from_history_uses_the_past_runs_and_covers_the_next(tmp_path: Path) -> None:
    workflow = review_workflow()
    past = [api.run(workflow, {"reviews": REVIEWS}, options(tmp_path)) for _ in range(2)]
    runs = [api.read_trace(outcome.trace_path) for outcome in past if outcome.trace_path]
    other = api.run(review_workflow("another"), {"reviews": REVIEWS[:3]}, options(tmp_path))
    assert other.trace_path is not None
    runs.append(api.read_trace(other.trace_path))  # another workflow's run is not history

    forecast = build_forecast(preview_workflow(workflow, {"reviews": REVIEWS}), runs)
    assert forecast.history_runs == 2
    rate = next(node for node in forecast.nodes if node.node_id == "rate")
    assert rate.source == "history (2 runs)"
    real = api.run(workflow, {"reviews": REVIEWS}, options(tmp_path)).llm_summary
    assert real is not None and rate.cost_usd is not None
    assert rate.cost_usd.low is not None and rate.cost_usd.high is not None
    assert rate.cost_usd.low <= real["cost_usd"] <= rate.cost_usd.high
    pick = next(node for node in forecast.nodes if node.node_id == "pick")
    assert pick.wall_ms is not None  # a node without LLM calls gets a time from history


def test_items_that_need_a_shell_command_are_not_resolved_and_nothing_runs(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    workflow = validate_workflow(
        {
            "ir_version": "0.1.0",
            "name": "needs-shell",
            "nodes": [
                {
                    "id": "list",
                    "type": "shell",
                    "purpose": "List the work",
                    "params": {"command": f"touch {marker} && echo '[1, 2, 3]'"},
                },
                {
                    "id": "ask",
                    "type": "llm",
                    "purpose": "Ask",
                    "params": {"model": "echo", "prompt": "n=${n}"},
                    "batch": {"items": "${list.stdout}", "as": "n"},
                },
            ],
        }
    )
    preview = preview_workflow(workflow, {})
    assert not marker.exists() and preview.ran == []
    assert any("'list' (shell)" in note for note in preview.notes)
    forecast = build_forecast(preview, [])
    ask = next(node for node in forecast.nodes if node.node_id == "ask")
    assert ask.items is None and ask.cost_usd is None
    assert forecast.cost_unknown and "ask" in forecast.cost_unknown[0]


def test_an_unknown_price_says_so_and_is_never_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PFLOW_TRACE_PRICES")
    forecast = build_forecast(preview_workflow(review_workflow(), {"reviews": REVIEWS}), [])
    assert forecast.cost_usd is not None and forecast.cost_usd.high == 0  # only the code node
    assert forecast.cost_unknown == ["rate: price unknown for echo"]
    assert "total LLM cost: price unknown (rate: price unknown for echo)" in render_forecast(
        forecast
    )


def test_token_estimate_brackets_the_text() -> None:
    estimate, method = token_estimate("x" * 400, "no-such-model")
    assert method == "characters / 4" and (estimate.low, estimate.estimate, estimate.high) == (
        50,
        100,
        200,
    )


def test_a_pilot_projects_an_interval_that_covers_what_the_rest_cost(tmp_path: Path) -> None:
    told: list[PilotProjection] = []

    def confirm(projection: PilotProjection) -> bool:
        told.append(projection)
        return True

    plan = PilotPlan(5, 1234, confirm)
    outcome = api.run(review_workflow(), {"reviews": REVIEWS}, options(tmp_path, pilot=plan))
    assert outcome.status == "success"
    (projection,) = told
    assert projection.item_count == 20 and projection.remaining == 15
    assert len(projection.indices) == 5
    summary = outcome.llm_summary
    assert summary is not None and summary["calls"] == 20  # the pilot items were not paid twice
    assert projection.pilot_cost_usd is not None and projection.rest_cost_usd is not None
    rest_cost = summary["cost_usd"] - projection.pilot_cost_usd
    low, high = projection.rest_cost_usd.low, projection.rest_cost_usd.high
    assert low is not None and high is not None and low <= rest_cost <= high
    node = next(n for n in outcome.document["nodes"] if n["node_id"] == "rate")
    assert node["pilot"]["seed"] == 1234 and node["pilot"]["indices"] == projection.indices
    # Same seed, same items.
    again = PilotPlan(5, 1234, confirm)
    assert again.choose("rate", 1, range(20)) == projection.indices


def test_a_declined_pilot_stops_and_a_resume_reuses_the_pilot_items(tmp_path: Path) -> None:
    plan = PilotPlan(3, 7, lambda projection: False)
    stopped = api.run(review_workflow(), {"reviews": REVIEWS}, options(tmp_path, pilot=plan))
    assert stopped.status == "interrupted"
    assert "pilot of batch 'rate'" in (stopped.result.error or "")
    assert stopped.llm_summary is not None and stopped.llm_summary["calls"] == 3
    assert stopped.trace_path is not None
    resumed = api.resume(stopped.trace_path, options(tmp_path))
    assert resumed.status == "success"
    assert resumed.llm_summary is not None and resumed.llm_summary["calls"] == 17


def test_the_llm_node_records_its_provider_latency(tmp_path: Path) -> None:
    outcome = api.run(review_workflow(), {"reviews": REVIEWS[:4]}, options(tmp_path))
    node = next(n for n in outcome.document["nodes"] if n["node_id"] == "rate")
    assert "provider" in node["batch_time_us"]
    for item in node["batch_items"]:
        usage = item["llm_usage"]
        assert usage["duration_ms"] >= 0
        assert abs(item["provider_us"] - usage["duration_ms"] * 1000) <= 1
        assert item["provider_us"] <= item["time_us"][1]  # part of the attempts


def test_a_trace_names_its_workflow_in_its_head(tmp_path: Path) -> None:
    from pflow_trace.tracefile.locate import workflow_name_hint

    workflow = review_workflow('named "so"')
    outcome = api.run(workflow, {"reviews": REVIEWS[:2]}, options(tmp_path))
    assert outcome.trace_path is not None
    assert workflow_name_hint(outcome.trace_path) == 'named "so"'
    other = tmp_path / "notes.json"
    other.write_text('{"hello": 1}')
    assert workflow_name_hint(other) is None


def test_the_projection_is_the_finite_population_t_interval() -> None:
    from pflow_trace.runtime.pilot import project_total, t95

    projected = project_total([1.0, 2.0, 3.0], 10)
    half = 4.303 * 1.0 * (10 * 7 / 3) ** 0.5
    assert projected.estimate == 14.0
    assert projected.low == 0.0 and projected.high == pytest.approx(14.0 + half)
    assert project_total([5.0], 4).low is None  # one sample: no interval
    assert project_total([2.0, 2.0], 2).estimate == 0.0  # nothing left to run
    assert t95(100) == 1.96
