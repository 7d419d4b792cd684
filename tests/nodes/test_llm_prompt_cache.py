"""Prompt caching as pflow-cli 0.16 declares it: a workflow's ``## Cache`` chunks, sent by the
``llm`` nodes that list them in ``prompt_cache``, recorded in ``llm_usage.prompt_cache`` and on
the call's span; the provider's cache hits are the ``gen_ai`` cache token counts.

``tests/fixtures/pflow-cache-song.json`` is the IR pflow's own markdown parser made of
``pflow-cache-song.pflow.md`` (the example of ``pflow guide prompt-caching``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_server import CACHED_TOKENS, chat_server, configure_model
from pflow_trace import api
from pflow_trace.api import TraceOptions
from pflow_trace.errors import WorkflowValidationError
from pflow_trace.ir.markdown_workflow import parse_markdown
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.export_settings import resolve_export_settings
from pflow_trace.observe.facts import InMemoryObserver

FIXTURES = Path(__file__).parent.parent / "fixtures"
SONG = FIXTURES / "pflow-cache-song.pflow.md"


def run_traced(document: Any, inputs: dict[str, Any]) -> tuple[Any, list[Any], InMemoryObserver]:
    exporter = InMemorySpanExporter()
    facts = InMemoryObserver()
    outcome = api.run(
        document,
        inputs,
        TraceOptions(
            export=resolve_export_settings("none", env={}),
            write_trace_file=False,
            join_env_trace_context=False,
            extra_processors=[SimpleSpanProcessor(exporter)],
            observers=[facts],
        ),
    )
    return outcome, list(exporter.get_finished_spans()), facts


def test_the_cache_section_reads_as_pflows_parser_reads_it() -> None:
    ours = validate_workflow(parse_markdown(SONG.read_text(), SONG).workflow)
    pflows = validate_workflow(json.loads((FIXTURES / "pflow-cache-song.json").read_text()))
    assert ours["cache"] == pflows["cache"]
    assert ours["cache"]["items"][1] == {
        "name": "creative-direction.response",
        "var": "creative-direction.response",
        "prose_before": "\n\nThe creative direction decisions:\n\n",
    }
    assert [node.get("prompt_cache") for node in ours["nodes"]] == [
        node.get("prompt_cache") for node in pflows["nodes"]
    ]


def test_chunks_go_ahead_of_the_prompt_and_are_recorded() -> None:
    document = api.load_workflow(SONG)
    outcome, spans, facts = run_traced(document, {"concept": "a song about tea"})
    assert outcome.status == "success"
    first, second = facts.executions
    assert first.llm_usage["prompt_cache"]["chunks"] == ["concept"]
    assert second.llm_usage["prompt_cache"]["chunks"] == ["concept", "creative-direction.response"]
    assert second.llm_usage["prompt_cache"]["ttl"] == "5m"
    assert len(second.llm_usage["prompt_cache"]["sha256"]) == 64
    sent = json.loads(outcome.result.shared["write-lyrics"]["response"])["system"]
    first_answer = outcome.result.shared["creative-direction"]["response"]
    assert sent == (
        "The concept we are building this song around:\n\na song about tea"
        "\n\nThe creative direction decisions:\n\n" + first_answer
    )
    (span,) = [
        s
        for s in spans
        if s.attributes.get(conv.ATTR_LAYER) == conv.LAYER_INSTRUMENTED
        and s.attributes.get(conv.ATTR_NODE_ID) == "write-lyrics"
    ]
    assert span.attributes[conv.ATTR_LLM_PROMPT_CACHE_CHUNKS] == (
        "concept",
        "creative-direction.response",
    )


def test_a_chunk_whose_value_is_not_there_is_left_out_and_named() -> None:
    document = {
        "ir_version": "0.1.0",
        "inputs": {"maybe": {"type": "string", "required": False}, "rule": {"type": "object"}},
        "cache": {
            "items": [
                {"name": "rule", "var": "rule", "prose_before": "Rules: "},
                {"name": "maybe", "var": "maybe", "prose_before": "\nExtra: "},
            ]
        },
        "nodes": [
            {
                "id": "ask",
                "type": "llm",
                "prompt_cache": ["rule", "maybe"],
                "params": {"model": "echo", "prompt": "go", "system": "Be brief."},
            }
        ],
    }
    outcome, _, facts = run_traced(validate_workflow(document), {"rule": {"b": 1, "a": [2]}})
    assert outcome.status == "success"
    (execution,) = facts.executions
    assert execution.llm_usage["prompt_cache"]["chunks"] == ["rule"]
    assert execution.llm_usage["prompt_cache"]["skipped"] == ["maybe"]
    sent = json.loads(outcome.result.shared["ask"]["response"])["system"]
    assert sent == 'Be brief.\n\nRules: {"a":[2],"b":1}'  # a value as compact, sorted JSON


def test_cache_tokens_the_server_reports_reach_the_span(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_dir = tmp_path / "llm-user"
    monkeypatch.setenv("LLM_USER_PATH", str(user_dir))
    document = api.load_workflow(SONG)
    for node in document["nodes"]:
        node["params"]["model"] = "local-gpt"
        node["params"]["prompt"] += " CACHED"
    with chat_server() as (api_base, log):
        configure_model(user_dir, api_base)
        outcome, spans, facts = run_traced(document, {"concept": "tea"})
    assert outcome.status == "success"
    system = [m for m in log.requests[1]["body"]["messages"] if m["role"] == "system"]
    assert "The concept we are building this song around:\n\ntea" in system[0]["content"]
    (span,) = [
        s
        for s in spans
        if s.attributes.get(conv.ATTR_NODE_ID) == "write-lyrics"
        and s.attributes.get(conv.ATTR_LAYER) == conv.LAYER_INSTRUMENTED
    ]
    assert span.attributes[conv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == CACHED_TOKENS
    assert facts.executions[1].llm_usage["cache_read_input_tokens"] == CACHED_TOKENS


def song_with(change: Any) -> dict[str, Any]:
    document = copy.deepcopy(json.loads((FIXTURES / "pflow-cache-song.json").read_text()))
    change(document)
    return document


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["nodes"][1].update(prompt_cache=["creative-direction.response", "concept"]),
            "nodes[1].prompt_cache: list the chunks in the order the cache declares them",
        ),
        (
            lambda d: d["nodes"][0].update(prompt_cache=["lyrics"]),
            "nodes[0].prompt_cache: lyrics not declared in the workflow's cache",
        ),
        (
            lambda d: d["nodes"][0].update(type="shell", params={"command": "true"}),
            "nodes[0].prompt_cache: only llm nodes take prompt_cache",
        ),
        (lambda d: d["cache"].update(ttl="2h"), "cache.ttl: '2h' is not a TTL"),
        (lambda d: d["cache"].update(ttl="0m"), "cache.ttl: '0m' is not a TTL"),
        (lambda d: d["nodes"][0].update(prompt_cache="concept"), "nodes[0].prompt_cache"),
        (lambda d: d["cache"]["items"][0].update(var="nowhere"), "names unknown 'nowhere'"),
    ],
)
def test_bad_cache_shapes_are_refused_in_one_line(change: Any, message: str) -> None:
    with pytest.raises(WorkflowValidationError) as caught:
        validate_workflow(song_with(change))
    assert any(
        problem.startswith(message) or message in problem for problem in caught.value.problems
    ), caught.value.problems
    assert all("\n" not in problem for problem in caught.value.problems)


def test_a_cache_section_holds_only_items_and_a_cache_block() -> None:
    text = SONG.read_text().replace(
        "## Steps", "```yaml\nx: 1\n```\n\n### stray\n\nNot a chunk.\n\n## Steps"
    )
    with pytest.raises(WorkflowValidationError) as caught:
        parse_markdown(text, SONG)
    problems = caught.value.problems
    assert any("'### stray': ## Cache holds items and a cache block" in p for p in problems)
    assert any("a 'yaml' block in ## Cache" in p for p in problems)
