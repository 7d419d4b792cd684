"""The Chrome exporter terminates on spans whose parents form a cycle (a damaged trace)."""

from __future__ import annotations

from pflow_trace.replay.chrome import lane_tids, to_chrome_trace
from pflow_trace.tracefile.replay_model import ReplaySpan, ReplayTrace


def _span(span_id: str, parent: str | None, lane: int | None = None) -> ReplaySpan:
    return ReplaySpan(
        name=span_id,
        span_id=span_id,
        parent_span_id=parent,
        start_ns=1,
        end_ns=2,
        attributes={},
        lane=lane,
    )


def _trace(spans: list[ReplaySpan]) -> ReplayTrace:
    return ReplayTrace(
        source="t.json",
        source_format="pflow-trace",
        trace_id="0" * 31 + "1",
        spans=spans,
        resource={"service.name": "s"},
        scope_name="test",
        scope_version=None,
    )


def test_a_span_that_is_its_own_parent_or_a_parent_cycle_ends() -> None:
    spans = [
        _span("self", "self"),
        _span("a", "b"),
        _span("b", "c"),
        _span("c", "a"),
        _span("item", "a", lane=2),
        _span("child", "item"),
    ]
    tids = lane_tids(_trace(spans))
    assert tids == {"self": 0, "a": 0, "b": 0, "c": 0, "item": 3, "child": 3}
    document = to_chrome_trace(_trace(spans))
    assert sum(event["ph"] == "X" for event in document["traceEvents"]) == 6
