"""Unit: an LLM call's attributes and retry events go on its span through the run's redaction."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pflow_trace.observe import conventions as conv
from pflow_trace.observe.redaction import REDACTED, Redactor
from pflow_trace.observe.sanitize import Sanitizer
from pflow_trace.runtime.llm_spans import record_llm_call

KEY = "k-9z"


def test_every_text_the_provider_sent_is_redacted_on_the_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    redactor = Redactor()
    redactor.learn_given([KEY])
    usage = {
        "model": "local-gpt",
        "provider": "openai",
        "response_id": f"chatcmpl-{KEY}",
        "response_model": f"gpt-{KEY}",
        "finish_reason": f"stop:{KEY}",
        "input_tokens": 5,
        "retries": [{"attempt": 1, "error": f"HTTP 500: {KEY}", "error_type": KEY}],
    }
    outputs = {"response": "hi", "prompt": "p", "llm_usage": usage}
    with provider.get_tracer("test").start_as_current_span("call") as span:
        record_llm_call(span, usage, outputs, Sanitizer(redactor), capture_content=True)
    (finished,) = exporter.get_finished_spans()
    attributes = dict(finished.attributes)
    assert attributes[conv.GEN_AI_RESPONSE_ID] == f"chatcmpl-{REDACTED}"
    assert attributes[conv.GEN_AI_RESPONSE_MODEL] == f"gpt-{REDACTED}"
    assert attributes[conv.GEN_AI_RESPONSE_FINISH_REASONS] == (f"stop:{REDACTED}",)
    assert attributes[conv.GEN_AI_USAGE_INPUT_TOKENS] == 5
    (event,) = finished.events
    assert event.attributes[conv.ATTR_ERROR_TYPE] == REDACTED
    assert KEY not in repr(attributes) + repr(event.attributes)
