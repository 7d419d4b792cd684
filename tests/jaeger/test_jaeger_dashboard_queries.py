"""The Grafana dashboard's searches (``dashboards/grafana/dashboards/pflow-trace-runs.json``)
asked of a real Jaeger: each panel finds exactly the runs it is meant to show.

Grafana's Jaeger data source turns a panel's search into ``GET /api/traces`` with the service,
the ``tags`` (logfmt in the panel, a JSON object on the wire) and ``minDuration``; this test
sends the same request. Two runs share one service: one that succeeds with a failed batch item
(``error_handling: continue``), and one that fails at a plain node.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .jaeger_api import JaegerApi
from .jaeger_runs import Run, run_workflow, unique_service

DASHBOARD = (
    Path(__file__).resolve().parents[2] / "dashboards/grafana/dashboards/pflow-trace-runs.json"
)
FAILING = {
    "ir_version": "0.1.0",
    "name": "jaeger-fails",
    "nodes": [{"id": "boom", "type": "echo", "params": {"value": 1, "fail_if": 1}}],
}
#: The duration variables: one every span exceeds, one none does.
ANY, NONE = "1us", "1h"
#: Which of the two runs ("ok", "failed") each panel shows, with either duration.
EXPECTED = {
    ("Recent runs by workflow", ANY): {"ok", "failed"},
    ("Runs per workflow", ANY): {"ok", "failed"},
    ("Slowest nodes", ANY): {"ok", "failed"},
    ("Slowest nodes", NONE): set(),
    ("Batch item durations", ANY): {"ok"},
    ("Batch item durations", NONE): set(),
    ("Failed items", ANY): {"ok"},
    ("Failed runs", ANY): {"failed"},
}


@pytest.fixture(scope="module")
def runs(jaeger: JaegerApi, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    service = unique_service("dashboard")
    made = {
        "ok": run_workflow(tmp_path_factory.mktemp("ok"), jaeger, service=service),
        "failed": run_workflow(
            tmp_path_factory.mktemp("failed"),
            jaeger,
            workflow=FAILING,
            service=service,
            exit_code=1,
        ),
    }
    for run in made.values():
        jaeger.trace(run.trace_id, len(run.replay.spans))
    return made


def searches() -> dict[str, dict[str, Any]]:
    """Each panel's search target, by panel title (the trace-id panel is not a search)."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return {
        panel["title"]: target
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if target.get("queryType") == "search"
    }


def logfmt(tags: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in tags.split())


def test_every_search_panel_is_checked() -> None:
    assert {title for title, _ in EXPECTED} == set(searches())


#: Jaeger v1.75's in-memory store reads the ``error`` search tag with ``pcommon.Value.Bool()``,
#: but the HTTP API hands it the string "true", which reads as false: ``error=true`` then
#: matches only spans with status OK, and our failed items (ERROR) are never found. Strict, so
#: the mark must go when a Jaeger that finds them is pinned.
ERROR_TAG_UNSUPPORTED = pytest.mark.xfail(
    strict=True, reason="Jaeger v1.75 memory store: error=true search finds no ERROR span"
)


def cases() -> list[Any]:
    return [
        pytest.param(title, duration, marks=[ERROR_TAG_UNSUPPORTED])
        if "error=" in searches()[title]["tags"]
        else pytest.param(title, duration)
        for title, duration in sorted(EXPECTED)
    ]


@pytest.mark.parametrize(("title", "duration"), cases())
def test_each_panel_finds_the_runs_it_shows(
    jaeger: JaegerApi, runs: dict[str, Run], title: str, duration: str
) -> None:
    target = searches()[title]
    service = runs["ok"].service
    query = {
        "service": target["service"].replace("$service", service),
        "tags": json.dumps(logfmt(target["tags"])),
        "limit": str(target["limit"]),
    }
    if "minDuration" in target:
        query["minDuration"] = duration
    found = jaeger.fetch("/api/traces", **query).document["data"] or []
    by_trace = {run.trace_id: name for name, run in runs.items()}
    assert {by_trace[trace["traceID"]] for trace in found} == EXPECTED[(title, duration)]
