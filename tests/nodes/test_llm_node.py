"""The ``llm`` node run for real: on the offline echo model, and through the ``llm`` library's
OpenAI plugin against an OpenAI-compatible server on loopback (``tests/llm_server.py``).

Each test compiles and runs a workflow with the public API and reads the result, the facts,
the spans (through the SDK's in-memory exporter) and the trace document.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_server import CACHED_TOKENS, SERVED_MODEL, chat_server, configure_model, silent_server
from pflow_trace import api
from pflow_trace.api import TracedRun, TraceOptions
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.nodes.base import NodeFailure
from pflow_trace.nodes.llm import LlmNode
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.export_settings import resolve_export_settings
from pflow_trace.observe.facts import InMemoryObserver


def llm_workflow(params: dict[str, Any], items: list[Any] | None = None, **batch: Any) -> Any:
    node: dict[str, Any] = {"id": "ask", "type": "llm", "params": params}
    if items is not None:
        node["batch"] = {"items": items, "error_handling": "continue", **batch}
    return validate_workflow({"ir_version": "0.1.0", "name": "llm", "nodes": [node]})


def run_traced(
    document: Any, inputs: dict[str, Any] | None = None, **options: Any
) -> tuple[TracedRun, list[ReadableSpan], InMemoryObserver]:
    exporter = InMemorySpanExporter()
    facts = InMemoryObserver()
    outcome = api.run(
        document,
        inputs or {},
        TraceOptions(
            export=resolve_export_settings("none", env={}),
            write_trace_file=False,
            join_env_trace_context=False,
            extra_processors=[SimpleSpanProcessor(exporter)],
            observers=[facts],
            **options,
        ),
    )
    return outcome, list(exporter.get_finished_spans()), facts


def spans_of_layer(spans: list[ReadableSpan], layer: str) -> list[ReadableSpan]:
    found = [span for span in spans if span.attributes.get(conv.ATTR_LAYER) == layer]
    return sorted(found, key=lambda span: span.attributes.get(conv.ATTR_BATCH_INDEX, 0))


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    user_dir = tmp_path / "llm-user"
    monkeypatch.setenv("LLM_USER_PATH", str(user_dir))
    with chat_server() as (api_base, log):
        configure_model(user_dir, api_base)
        yield log


# -- the echo model ------------------------------------------------------------------------


def test_echo_call_outputs_response_prompt_and_usage() -> None:
    node = LlmNode("ask")
    node.set_params({"prompt": "three short words", "system": "be brief", "model": "echo"})
    outputs = node.exec(node.prep({}))
    assert '"prompt": "three short words"' in outputs["response"]
    assert outputs["prompt"] == "three short words" and outputs["system"] == "be brief"
    usage = outputs["llm_usage"]
    # llm-echo counts words: 3 of prompt + 2 of system in; the JSON it answers with out.
    assert (usage["model"], usage["provider"], usage["input_tokens"]) == ("echo", "echo", 5)
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 5
    assert usage["cost_usd"] is None  # echo has no price: unknown, not 0
    assert usage["attempts"] == 1 and usage["empty_response"] is False


def test_blank_answer_is_marked_but_succeeds() -> None:
    node = LlmNode("ask")
    node.set_params({"prompt": '{"raw": "  \\n "}', "model": "echo"})
    outputs = node.exec(node.prep({}))
    assert outputs["response"].strip() == ""
    assert outputs["llm_usage"]["empty_response"] is True


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"model": "no-such-model"}, "unknown model 'no-such-model'"),
        ({"model": "echo", "temperature": 0.3}, "does not accept option 'temperature'"),
    ],
)
def test_bad_model_or_option_fails_with_one_line(params: dict[str, Any], message: str) -> None:
    node = LlmNode("ask")
    node.set_params({"prompt": "hi", **params})
    with pytest.raises(NodeFailure, match=message) as caught:
        node.exec(node.prep({}))
    assert "\n" not in caught.value.message


def test_echo_batch_puts_usage_in_facts_spans_and_batch_metadata() -> None:
    prompts = ["one two", "one two three four", '{"raw": ""}']
    outcome, spans, facts = run_traced(
        llm_workflow({"prompt": "${item}", "model": "echo"}, prompts, parallel=True)
    )
    assert outcome.status == "success"
    (execution,) = facts.executions
    usages = [item.llm_usage for item in sorted(execution.batch_items, key=lambda i: i.index)]
    assert [usage["input_tokens"] for usage in usages] == [2, 4, 2]  # echo counts words
    items = spans_of_layer(spans, conv.LAYER_BATCH_ITEM)
    for span, usage in zip(items, usages, strict=True):
        assert span.attributes[conv.GEN_AI_OPERATION_NAME] == "chat"
        assert span.attributes[conv.GEN_AI_PROVIDER_NAME] == "echo"
        assert span.attributes[conv.GEN_AI_REQUEST_MODEL] == "echo"
        assert span.attributes[conv.GEN_AI_USAGE_INPUT_TOKENS] == usage["input_tokens"]
        assert span.attributes[conv.GEN_AI_USAGE_OUTPUT_TOKENS] == usage["output_tokens"]
        assert conv.ATTR_LLM_COST_USD not in span.attributes  # price unknown: left out
        assert conv.GEN_AI_INPUT_MESSAGES not in span.attributes  # content is opt-in
    # The store holds what pflow's does; the batch's totals are in the trace.
    assert "llm_usage" not in outcome.result.nodes["ask"]["batch_metadata"]
    (event,) = [node for node in outcome.document["nodes"] if node["node_id"] == "ask"]
    totals = event["llm_usage"]
    assert totals["calls"] == 3 and totals["input_tokens"] == 8
    assert totals["cost_usd"] is None and totals["unpriced_models"] == ["echo"]
    summary = outcome.document["llm_summary"]
    assert summary["total_tokens"] == sum(usage["total_tokens"] for usage in usages)


def test_content_is_recorded_only_on_request_and_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    document = validate_workflow(
        {
            "ir_version": "0.1.0",
            "name": "llm",
            "inputs": {"code": {"type": "string", "sensitive": True}},
            "nodes": [
                {
                    "id": "ask",
                    "type": "llm",
                    "params": {"prompt": "the code is ${code}", "model": "echo", "system": "hi"},
                }
            ],
        }
    )
    _, spans, _ = run_traced(document, {"code": "hunter2-secret"})
    (top,) = spans_of_layer(spans, conv.LAYER_INSTRUMENTED)
    assert top.attributes[conv.GEN_AI_REQUEST_MODEL] == "echo"
    assert conv.GEN_AI_INPUT_MESSAGES not in top.attributes

    monkeypatch.setenv(conv.ENV_CAPTURE_MESSAGE_CONTENT, "true")
    _, spans, _ = run_traced(document, {"code": "hunter2-secret"})
    (top,) = spans_of_layer(spans, conv.LAYER_INSTRUMENTED)
    recorded = " ".join(
        str(top.attributes[name])
        for name in (
            conv.GEN_AI_INPUT_MESSAGES,
            conv.GEN_AI_OUTPUT_MESSAGES,
            conv.GEN_AI_SYSTEM_INSTRUCTIONS,
        )
    )
    assert "the code is <redacted>" in recorded
    assert "hunter2-secret" not in recorded


# -- an OpenAI-compatible server through the llm library's OpenAI plugin -------------------


def test_usage_finish_reasons_and_cached_tokens_from_the_server(server: Any) -> None:
    prompts = ["plain question", "CUT-OFF please", "CACHED context question"]
    outcome, spans, facts = run_traced(
        llm_workflow({"prompt": "${item}", "model": "local-gpt", "max_tokens": 64}, prompts)
    )
    assert outcome.status == "success"
    usages = [item.llm_usage for item in facts.executions[0].batch_items]
    assert [usage["finish_reason"] for usage in usages] == ["stop", "length", "stop"]
    assert all(usage["response_model"] == SERVED_MODEL for usage in usages)
    assert usages[2]["cache_read_input_tokens"] == CACHED_TOKENS
    # Cached input is part of input_tokens: total = input + output, nothing added twice.
    assert usages[2]["total_tokens"] == usages[2]["input_tokens"] + usages[2]["output_tokens"]
    # gpt-4o-mini is in the built-in table (the served name without its date suffix).
    assert all(usage["cost_usd"] is not None and usage["cost_usd"] > 0 for usage in usages)
    cut = spans_of_layer(spans, conv.LAYER_BATCH_ITEM)[1]
    assert tuple(cut.attributes[conv.GEN_AI_RESPONSE_FINISH_REASONS]) == ("length",)
    assert cut.attributes[conv.GEN_AI_RESPONSE_ID].startswith("chatcmpl-")
    assert cut.attributes[conv.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert cut.attributes[conv.GEN_AI_RESPONSE_MODEL] == SERVED_MODEL
    cached = spans_of_layer(spans, conv.LAYER_BATCH_ITEM)[2]
    assert cached.attributes[conv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == CACHED_TOKENS


def test_a_429_is_answered_by_a_retry_recorded_as_a_span_event(server: Any) -> None:
    document = llm_workflow(
        {"prompt": "RATE-LIMIT-ONCE hello", "model": "local-gpt", "retry_wait": 0}
    )
    outcome, spans, facts = run_traced(document)
    assert outcome.status == "success"
    assert len(server.requests) == 2  # the client's own hidden retries are off: ours only
    usage = facts.executions[0].llm_usage
    assert usage["attempts"] == 2
    assert usage["retries"][0]["error_type"] == "429"
    (top,) = spans_of_layer(spans, conv.LAYER_INSTRUMENTED)
    assert top.attributes[conv.ATTR_LLM_ATTEMPTS] == 2
    (event,) = [event for event in top.events if event.name == conv.EVENT_LLM_RETRY]
    assert event.attributes[conv.ATTR_RETRY_ATTEMPT] == 1
    assert event.attributes[conv.ATTR_ERROR_TYPE] == "429"
    assert "HTTP 429" in event.attributes[conv.ATTR_RETRY_ERROR]
    assert "Rate limit reached" in event.attributes[conv.ATTR_RETRY_ERROR]


def test_a_rate_limit_that_never_ends_fails_after_max_retries(server: Any) -> None:
    document = llm_workflow(
        {"prompt": "ALWAYS-429 ${item}", "model": "local-gpt", "retry_wait": 0, "max_retries": 2},
        ["a", "b"],
    )
    outcome, spans, facts = run_traced(document)
    assert outcome.status == "failed"  # a continue batch with no successful item fails
    items = facts.executions[0].batch_items
    assert all(item.status == "failed" and "after 2 attempts" in item.error for item in items)
    assert all(item.llm_usage["error_type"] == "429" for item in items)
    for span in spans_of_layer(spans, conv.LAYER_BATCH_ITEM):
        assert span.attributes[conv.ATTR_ERROR_TYPE] == "429"
        assert [e.name for e in span.events] == [conv.EVENT_LLM_RETRY]
    assert outcome.document["llm_summary"]["failed_calls"] == 2


# -- a hostile server that echoes the key ----------------------------------------------------


@pytest.mark.parametrize("key", ["k-42x", "sk-live-key-4477123"])
def test_a_key_the_server_echoes_reaches_no_span_nor_usage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    """id, model and finish_reason are the provider's words; a short key is hidden as well."""
    user_dir = tmp_path / "llm-user"
    monkeypatch.setenv("LLM_USER_PATH", str(user_dir))
    monkeypatch.setenv("OPENAI_API_KEY", key)
    with chat_server() as (api_base, log):
        configure_model(user_dir, api_base, key_name="openai")
        outcome, spans, facts = run_traced(
            llm_workflow({"prompt": "ECHO-KEY ${item}", "model": "local-gpt"}, ["a"]),
            capture_llm_content=True,
        )
    assert log.requests[0]["auth"] == f"Bearer {key}"  # it was sent, and echoed back
    assert outcome.status == "success"
    (item,) = spans_of_layer(spans, conv.LAYER_BATCH_ITEM)
    assert item.attributes[conv.GEN_AI_RESPONSE_ID] == "chatcmpl-<redacted>"
    assert item.attributes[conv.GEN_AI_RESPONSE_MODEL] == f"{SERVED_MODEL}-<redacted>"
    assert tuple(item.attributes[conv.GEN_AI_RESPONSE_FINISH_REASONS]) == ("stop:<redacted>",)
    for span in spans:
        assert key not in repr(dict(span.attributes)) + repr(span.events)
    usage = facts.executions[0].batch_items[0].llm_usage
    assert key not in repr(usage) and key not in repr(outcome.document)
    assert key not in repr(outcome.result.nodes)


def test_a_batch_reuses_one_client_and_its_connections(server: Any) -> None:
    prompts = [f"question {index}" for index in range(24)]
    outcome, _, _ = run_traced(
        llm_workflow(
            {"prompt": "${item}", "model": "local-gpt"}, prompts, parallel=True, max_concurrent=3
        )
    )
    assert outcome.status == "success"
    assert len(server.requests) == 24
    # A client per call opened a connection per call; a kept client keeps one per lane.
    assert len({request["peer"] for request in server.requests}) <= 3


def test_a_new_key_gets_a_new_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user_dir = tmp_path / "llm-user"
    monkeypatch.setenv("LLM_USER_PATH", str(user_dir))
    with chat_server() as (api_base, log):
        configure_model(user_dir, api_base, key_name="openai")
        for key in ("sk-first-000000", "sk-second-11111", "sk-first-000000"):
            monkeypatch.setenv("OPENAI_API_KEY", key)
            run_traced(llm_workflow({"prompt": "hello", "model": "local-gpt"}))
    assert [request["auth"] for request in log.requests] == [
        "Bearer sk-first-000000",
        "Bearer sk-second-11111",
        "Bearer sk-first-000000",
    ]


# -- a server that never answers -------------------------------------------------------------


def test_a_server_that_never_answers_times_out_each_attempt_and_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_dir = tmp_path / "llm-user"
    monkeypatch.setenv("LLM_USER_PATH", str(user_dir))
    with silent_server() as api_base:
        configure_model(user_dir, api_base)
        params = {"prompt": "hello?", "model": "local-gpt", "timeout": 0.2, "retry_wait": 0}
        outcome, spans, facts = run_traced(llm_workflow({**params, "max_retries": 2}))
    assert outcome.status == "failed"
    usage = facts.executions[0].llm_usage
    assert usage["attempts"] == 2 and usage["error_type"] == "APITimeoutError"
    assert [retry["error_type"] for retry in usage["retries"]] == ["APITimeoutError"]
    (top,) = spans_of_layer(spans, conv.LAYER_INSTRUMENTED)
    assert [event.name for event in top.events].count(conv.EVENT_LLM_RETRY) == 1


def test_a_call_without_a_client_of_ours_is_bounded_by_a_helper_thread() -> None:
    import threading

    from pflow_trace.nodes import llm_calls

    release = threading.Event()
    with pytest.raises(llm_calls.LlmTimeout, match=r"no answer within 0\.05 s"):
        llm_calls.bounded(release.wait, 0.05)
    release.set()
    assert llm_calls.is_transient(llm_calls.LlmTimeout("x"))  # retried like a lost connection
    assert llm_calls.bounded(lambda: 7, 5) == 7
    with pytest.raises(ValueError, match="boom"):
        llm_calls.bounded(lambda: int("boom"), 5)


def test_timeout_must_be_positive() -> None:
    node = LlmNode("ask")
    node.set_params({"prompt": "hi", "model": "echo", "timeout": 0})
    with pytest.raises(NodeFailure, match="timeout"):
        node.prep({})


# -- reasoning_effort ----------------------------------------------------------------------


def reasoning_models(user_dir: Path, api_base: str) -> None:
    """``local-gpt`` without the ``reasoning_effort`` option, ``local-o`` with it."""
    user_dir.mkdir(parents=True, exist_ok=True)
    models = [
        f"- model_id: {model_id}\n  model_name: gpt-4o-mini\n  api_base: {api_base}\n"
        + ("  reasoning: true\n" if reasoning else "")
        for model_id, reasoning in (("local-gpt", False), ("local-o", True))
    ]
    (user_dir / "extra-openai-models.yaml").write_text("".join(models))


@pytest.fixture
def reasoning_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    user_dir = tmp_path / "llm-user"
    monkeypatch.setenv("LLM_USER_PATH", str(user_dir))
    with chat_server() as (api_base, log):
        reasoning_models(user_dir, api_base)
        yield log


def test_reasoning_effort_is_sent_to_a_model_that_takes_it(reasoning_server: Any) -> None:
    params = {"prompt": "think", "model": "local-o", "reasoning_effort": "LOW"}
    outcome, _, facts = run_traced(llm_workflow(params))
    assert outcome.status == "success"
    assert reasoning_server.requests[-1]["body"]["reasoning_effort"] == "low"
    usage = facts.executions[0].llm_usage
    assert usage["reasoning_effort"] == "LOW" and "reasoning_effort_not_sent" not in usage


def test_reasoning_effort_a_model_lacks_is_not_sent_and_said(reasoning_server: Any) -> None:
    params = {"prompt": "think", "model": "local-gpt", "reasoning_effort": "high"}
    outcome, _, facts = run_traced(llm_workflow(params))
    assert outcome.status == "success"
    assert "reasoning_effort" not in reasoning_server.requests[-1]["body"]
    note = facts.executions[0].llm_usage["reasoning_effort_not_sent"]
    assert note == "model 'local-gpt' does not take reasoning_effort; not sent"


def test_reasoning_effort_none_is_not_sent(reasoning_server: Any) -> None:
    params = {"prompt": "think", "model": "local-o", "reasoning_effort": "none"}
    outcome, _, facts = run_traced(llm_workflow(params))
    assert outcome.status == "success"
    assert "reasoning_effort" not in reasoning_server.requests[-1]["body"]
    assert "not sent" in facts.executions[0].llm_usage["reasoning_effort_not_sent"]


def test_an_unknown_reasoning_effort_fails_in_one_line() -> None:
    node = LlmNode("ask")
    node.set_params({"prompt": "p", "model": "echo", "reasoning_effort": "extreme"})
    with pytest.raises(NodeFailure, match=r"^llm: invalid reasoning_effort 'extreme'; one of: "):
        node.exec(node.prep({}))
