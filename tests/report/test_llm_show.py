"""``show`` for LLM calls: quality signals from a real run, and pflow's traces read alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llm_server import chat_server, configure_model
from pflow_samples import PFLOW_JSON_SAMPLE, PFLOW_JSONL_SAMPLE
from pflow_trace import api
from pflow_trace.api import TraceOptions
from pflow_trace.observe.export_settings import resolve_export_settings
from pflow_trace.report.terminal import render_text

PROMPTS = ["EMPTY one", "CUT-OFF two", "alpha", "beta gamma", "delta epsilon zeta"]


@pytest.fixture(scope="module")
def server_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("llm-show")
    user_dir = directory / "llm-user"
    with pytest.MonkeyPatch.context() as patch, chat_server() as (api_base, _):
        patch.setenv("LLM_USER_PATH", str(user_dir))
        configure_model(user_dir, api_base)
        workflow = {
            "ir_version": "0.1.0",
            "name": "quality",
            "nodes": [
                {
                    "id": "ask",
                    "type": "llm",
                    "params": {"prompt": "${item}", "model": "local-gpt", "max_tokens": 8},
                    "batch": {"items": PROMPTS, "parallel": True, "max_concurrent": 3},
                }
            ],
        }
        options = TraceOptions(
            export=resolve_export_settings("none", env={}),
            trace_file=str(directory / "quality.trace.json"),
            join_env_trace_context=False,
        )
        outcome = api.run(api.validate_workflow(workflow), {}, options)
    assert outcome.status == "success" and outcome.trace_path is not None
    return outcome.trace_path


def test_quality_signals_name_the_items(server_trace: Path) -> None:
    llm = api.summarize([server_trace]).runs[0].llm
    assert llm is not None
    (quality,) = llm.quality
    assert (quality.empty_responses, quality.empty_response_indexes) == (1, [0])
    assert (quality.cut_off, quality.cut_off_indexes) == (1, [1])
    assert quality.output_tokens_min == 0  # the blank answer counts as no output
    assert quality.output_tokens_min <= quality.output_tokens_p50 <= quality.output_tokens_max
    assert llm.ranked_by == "cost_usd" and llm.totals.cost_usd > 0  # gpt-4o-mini has a price


def test_terminal_says_what_success_hid(server_trace: Path) -> None:
    text = render_text(api.summarize([server_trace]))
    assert "ask: 1 of 5 calls succeeded with an empty response (items 0)" in text
    assert "ask: 1 of 5 calls cut off by the output-token limit" in text
    assert "items 1)" in text


def _pflow_jsonl_with_llm_calls(path: Path) -> Path:
    """The shared pflow 0.16 sample with LLM calls written the way pflow writes them."""
    lines = []
    for line in PFLOW_JSONL_SAMPLE.read_text().splitlines():
        record = json.loads(line)
        if record.get("node_id") == "work" and "batch_items" in record:
            for number, item in enumerate(record["batch_items"]):
                item["llm_call"] = {
                    "model": "anthropic/claude-3-5-haiku-latest",
                    "input_tokens": 100 + number,
                    "output_tokens": 10,
                    "total_tokens": 110 + number,
                    "cache_read_input_tokens": 20,
                    "cost_usd": 0.001,
                }
                item["llm_response"] = "" if item["index"] == 2 else "fine"
        if record.get("node_id") == "make_items" and record.get("kind") == "event":
            record["llm_call"] = {"model": "ollama/llama3", "input_tokens": 5, "output_tokens": 1}
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_pflow_jsonl_llm_calls_are_read_like_ours(tmp_path: Path) -> None:
    trace = _pflow_jsonl_with_llm_calls(tmp_path / "pflow-llm.jsonl")
    llm = api.summarize([trace]).runs[0].llm
    assert llm is not None
    assert llm.totals.calls == 9  # 8 items of "work" and the one call of "make_items"
    assert llm.totals.cache_read_input_tokens == 160
    assert llm.totals.cost_usd is None  # the ollama call has no cost: unknown, not 0
    assert llm.totals.known_cost_usd == pytest.approx(0.008)
    assert llm.unpriced_models == ["ollama/llama3"]
    assert [node.node_id for node in llm.nodes] == ["make_items", "work"]
    (work,) = [quality for quality in llm.quality if quality.node_id == "work"]
    assert work.empty_response_indexes == [2]


def test_pflow_json_node_llm_usage_is_read(tmp_path: Path) -> None:
    document: dict[str, Any] = json.loads(PFLOW_JSON_SAMPLE.read_text())
    node = next(node for node in document["nodes"] if "batch_items" not in node)
    after = node.setdefault("shared_after", {})
    after[node["node_id"]] = {
        "response": "ok",
        "llm_usage": {"model": "gpt-4o", "input_tokens": 7, "output_tokens": 3, "cost_usd": 0.5},
    }
    path = tmp_path / "pflow.json"
    path.write_text(json.dumps(document))
    llm = api.summarize([path]).runs[0].llm
    assert llm is not None and llm.totals.calls == 1 and llm.totals.total_tokens == 10
    assert llm.most_expensive[0].node_id == node["node_id"]
