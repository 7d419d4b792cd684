"""An LLM call on its span: OpenTelemetry's ``gen_ai.*`` attributes and its retry events.

Any node that returns an ``llm_usage`` output (the ``llm`` node does; a plug-in node may) is
taken for an LLM call. The layer that owns the call's span — the batch layer for an item, the
instrumented layer for a node that is not a batch — hands that usage here, so the node itself
never touches spans and the same record feeds the facts, the trace file and the span.

Every text attribute goes through the run's redaction: the response id, the served model and
the finish reason are the provider's words and could echo the key. Prompt and completion text
go on the span only when the run opts in (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=
true`` or ``--capture-llm-content``), and then through the run's sanitizer like every value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import Span

from pflow_trace.observe import conventions as conv
from pflow_trace.observe.otlp_wire import ATTR_INVALID_TIME, invalid_time_note, is_unix_nano
from pflow_trace.observe.sanitize import Sanitizer

_NUMBER = (int, float)


def usage_of(outputs: Any) -> dict[str, Any] | None:
    """The ``llm_usage`` in a node's outputs, or None when the node made no LLM call."""
    if outputs.__class__ is not dict:
        return None
    usage = outputs.get("llm_usage")
    return usage if usage.__class__ is dict and usage else None


def usage_of_failure(exc: BaseException) -> dict[str, Any] | None:
    """The ``llm_usage`` a failed call left on its failure (``NodeFailure.outputs``)."""
    return usage_of(getattr(exc, "outputs", None))


def gen_ai_attributes(usage: Mapping[str, Any]) -> dict[str, Any]:
    """The ``gen_ai.*`` (and ``pflow.llm.*``) attributes of one call; absent values are left out."""
    attributes: dict[str, Any] = {conv.GEN_AI_OPERATION_NAME: conv.GEN_AI_OPERATION_CHAT}
    text_fields = (
        (conv.GEN_AI_PROVIDER_NAME, "provider"),
        (conv.GEN_AI_REQUEST_MODEL, "model"),
        (conv.GEN_AI_RESPONSE_MODEL, "response_model"),
        (conv.GEN_AI_RESPONSE_ID, "response_id"),
        (conv.ATTR_ERROR_TYPE, "error_type"),
    )
    for attribute, key in text_fields:
        value = usage.get(key)
        if isinstance(value, str) and value:
            attributes[attribute] = value
    number_fields = (
        (conv.GEN_AI_REQUEST_TEMPERATURE, "temperature"),
        (conv.GEN_AI_REQUEST_MAX_TOKENS, "max_tokens"),
        (conv.GEN_AI_USAGE_INPUT_TOKENS, "input_tokens"),
        (conv.GEN_AI_USAGE_OUTPUT_TOKENS, "output_tokens"),
        (conv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, "cache_read_input_tokens"),
        (conv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, "cache_creation_input_tokens"),
        (conv.ATTR_LLM_COST_USD, "cost_usd"),
        (conv.ATTR_LLM_ATTEMPTS, "attempts"),
    )
    for attribute, key in number_fields:
        value = usage.get(key)
        if value.__class__ in _NUMBER:
            attributes[attribute] = value
    reason = usage.get("finish_reason")
    if isinstance(reason, str) and reason:
        attributes[conv.GEN_AI_RESPONSE_FINISH_REASONS] = (reason,)
    cache = usage.get("prompt_cache")
    chunks = cache.get("chunks") if isinstance(cache, Mapping) else None
    if isinstance(chunks, list) and chunks:
        attributes[conv.ATTR_LLM_PROMPT_CACHE_CHUNKS] = tuple(str(name) for name in chunks)
    return attributes


def redacted_attributes(attributes: Mapping[str, Any], sanitizer: Sanitizer) -> dict[str, Any]:
    """Every text of a call's attributes through the run's redaction, numbers as they are.

    The response id, the served model's name and the finish reason are whatever the provider
    sent back; a server that echoes the request's key must not get it onto the span.
    """
    redact = sanitizer.redactor.text
    safe: dict[str, Any] = {}
    for name, value in attributes.items():
        if isinstance(value, str):
            value = redact(value)
        elif isinstance(value, tuple):
            value = tuple(redact(part) if isinstance(part, str) else part for part in value)
        safe[name] = value
    return safe


def _content_attributes(outputs: Mapping[str, Any], sanitizer: Sanitizer) -> dict[str, str]:
    """Prompt, system instructions and completion as GenAI message JSON, sanitized first."""
    attributes: dict[str, str] = {}

    def text_part(value: Any) -> dict[str, Any]:
        return {"type": "text", "content": sanitizer.value(value)}

    system = outputs.get("system")
    if isinstance(system, str):
        attributes[conv.GEN_AI_SYSTEM_INSTRUCTIONS] = json.dumps([text_part(system)])
    prompt = outputs.get("prompt")
    if isinstance(prompt, str):
        message = {"role": "user", "parts": [text_part(prompt)]}
        attributes[conv.GEN_AI_INPUT_MESSAGES] = json.dumps([message])
    response = outputs.get("response")
    if response is not None:
        usage = outputs.get("llm_usage") or {}
        answer = {"role": "assistant", "parts": [text_part(response)]}
        if usage.get("finish_reason"):
            answer["finish_reason"] = usage["finish_reason"]
        attributes[conv.GEN_AI_OUTPUT_MESSAGES] = json.dumps([answer])
    return attributes


def record_llm_call(
    span: Span,
    usage: Mapping[str, Any],
    outputs: Any,
    sanitizer: Sanitizer,
    capture_content: bool,
) -> None:
    """Put one call on its (still open) span: attributes, content if opted in, retry events."""
    if not span.is_recording():
        return
    attributes = gen_ai_attributes(usage)
    if capture_content and outputs.__class__ is dict:
        attributes.update(_content_attributes(outputs, sanitizer))
    span.set_attributes(redacted_attributes(attributes, sanitizer))
    for retry in usage.get("retries") or ():
        if not isinstance(retry, Mapping):
            continue
        event: dict[str, Any] = {
            conv.ATTR_RETRY_ATTEMPT: retry.get("attempt", 0),
            conv.ATTR_RETRY_ERROR: sanitizer.text(str(retry.get("error", ""))),
        }
        if isinstance(retry.get("error_type"), str):
            event[conv.ATTR_ERROR_TYPE] = sanitizer.text(retry["error_type"])
        at = retry.get("time_unix_nano")
        if at is not None and not is_unix_nano(at):  # the event keeps "now" and notes the value
            event[ATTR_INVALID_TIME] = invalid_time_note(at)
            at = None
        span.add_event(conv.EVENT_LLM_RETRY, event, timestamp=at)
