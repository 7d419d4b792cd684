"""The trace shape in both span pipelines ``setup_tracing`` builds: the lean tracer's export
queue, and the SDK's batch processor (used when extra SDK processors are given)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otlp_receiver import HTTP, OtlpReceiver
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.export_settings import resolve_export_settings
from pflow_trace.observe.otel import setup_tracing

ITEMS = 150  # 100 slowest kept, 50 linked into one chunk


def make_spans(tracer: Any) -> None:
    """A workflow with one batch of ``ITEMS`` items, each with one layer span."""

    def span(name: str, layer: str, **attributes: Any) -> Any:
        return tracer.start_as_current_span(name, attributes={conv.ATTR_LAYER: layer, **attributes})

    with (
        span("workflow", "workflow"),
        span("fan", "instrumented"),
        span("fan batch", "batch"),
    ):
        for index in range(ITEMS):
            with (
                span("fan batch.item", "batch.item", **{conv.ATTR_BATCH_INDEX: index}),
                span("fan namespaced", "namespaced"),
            ):
                pass


@pytest.mark.parametrize("pipeline", ["lean", "sdk"])
@pytest.mark.parametrize("shape", ["linked", "inline"])
def test_both_pipelines_export_in_the_chosen_shape(pipeline: str, shape: str) -> None:
    extra = [SimpleSpanProcessor(InMemorySpanExporter())] if pipeline == "sdk" else []
    with OtlpReceiver(HTTP) as receiver:
        settings = resolve_export_settings(
            "otlp", receiver.endpoint, timeout_s=10, trace_shape=shape, env={}
        )
        tracing = setup_tracing(settings, extra_processors=extra)
        make_spans(tracing.tracer)
        assert tracing.shutdown() is None
        spans = receiver.wait_for_spans(3 + 2 * ITEMS)
    roots = [span for span in spans if span.layer == conv.LAYER_BATCH_CHUNK]
    traces = {span.trace_id for span in spans}
    if shape == "inline":
        assert (len(spans), len(roots), len(traces)) == (3 + 2 * ITEMS, 0, 1)
        return
    assert len(spans) == 3 + 2 * ITEMS + 1
    [root] = roots
    assert root.attributes[conv.ATTR_SHAPE_CHUNK_ITEMS] == 50
    chunk = [span for span in spans if span.trace_id == root.trace_id]
    assert len(chunk) == 1 + 2 * 50
