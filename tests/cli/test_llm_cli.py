"""End to end: LLM calls through ``pflow-trace run``, ``show`` and ``export`` in subprocesses.

The bundled example runs on the offline echo model; the API-key test runs through the ``llm``
library's OpenAI plugin against an OpenAI-compatible server on loopback that tries to leak the
key back (in an answer and in an error).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from llm_server import chat_server, configure_model
from otlp_receiver import OtlpReceiver
from pflow_trace.observe import conventions as conv
from pflow_trace.tracefile.schema import validate_trace_document
from subprocess_env import clean_env

#: The LLM example run against a loopback server, and CLI subprocesses.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "llm-batch.json"
PRICES = ROOT / "examples" / "data" / "llm-prices.json"
API_KEY = "sk-test-0123456789abcdefSECRET"


def cli(*arguments: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pflow_trace", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env if env is not None else clean_env(),
    )


@dataclass
class ExampleRun:
    run: subprocess.CompletedProcess
    trace_path: Path
    document: dict[str, Any]


@pytest.fixture(scope="module")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> ExampleRun:
    directory = tmp_path_factory.mktemp("llm-example")
    trace_path = directory / "llm.trace.json"
    completed = cli("run", EXAMPLE, "--prices", PRICES, "--trace-file", trace_path)
    assert completed.returncode == 0, completed.stderr
    return ExampleRun(completed, trace_path, json.loads(trace_path.read_text()))


def item_span_attributes(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every batch.item span's attributes (its kind's and its own), from the span table."""
    table = document["otel"]["spans"]
    found = []
    for row in table["rows"]:
        kind = table["kinds"][row[0]]
        if kind["attributes"].get(conv.ATTR_LAYER) == conv.LAYER_BATCH_ITEM:
            found.append({**kind["attributes"], **(row[7] or {})})
    return found


def test_run_prints_tokens_and_cost(example_run: ExampleRun) -> None:
    out = example_run.run.stdout
    summary = example_run.document["llm_summary"]
    assert summary["calls"] == 5 and summary["unpriced_models"] == []
    node_line = next(line for line in out.splitlines() if "summarise" in line and "items" in line)
    assert f"{summary['total_tokens']:,} tokens, $" in node_line
    assert f"llm: 5 calls, {summary['total_tokens']:,} tokens, $" in out


def test_trace_has_usage_per_item_per_node_and_in_spans(example_run: ExampleRun) -> None:
    document = example_run.document
    validate_trace_document(document, str(example_run.trace_path))
    (event,) = [node for node in document["nodes"] if node["node_id"] == "summarise"]
    calls = [item["llm_usage"] for item in event["batch_items"] if "llm_usage" in item]
    assert len(calls) == 5  # the failed item made no call
    assert event["llm_usage"]["total_tokens"] == sum(call["total_tokens"] for call in calls)
    assert "llm_usage" not in event["shared_after"]["summarise"]["batch_metadata"]  # as pflow
    assert event["llm_usage"] == {**document["llm_summary"]}
    expected_cost = sum(call["cost_usd"] for call in calls)
    assert document["llm_summary"]["cost_usd"] == pytest.approx(expected_cost)
    spans = [
        span for span in item_span_attributes(document) if conv.GEN_AI_USAGE_INPUT_TOKENS in span
    ]
    assert sorted(span[conv.GEN_AI_USAGE_INPUT_TOKENS] for span in spans) == sorted(
        call["input_tokens"] for call in calls
    )
    assert all(span[conv.GEN_AI_PROVIDER_NAME] == "echo" for span in spans)
    assert all(span[conv.ATTR_LLM_COST_USD] > 0 for span in spans)


def test_show_prints_the_llm_section(example_run: ExampleRun) -> None:
    completed = cli("show", example_run.trace_path, "--no-color")
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    section = out[out.index("LLM calls") :]
    total = example_run.document["llm_summary"]["total_tokens"]
    assert re.search(rf"tokens +{total:,} \(", section)
    assert "by node:" in section and "by model:" in section
    assert "most expensive calls, by cost:" in section
    assert "output tokens per call: min" in section


def test_show_json_carries_the_llm_summary_and_validates(example_run: ExampleRun) -> None:
    completed = cli("show", example_run.trace_path, "--json")
    assert completed.returncode == 0, completed.stderr
    document = json.loads(completed.stdout)
    schema_text = resources.files("pflow_trace.report").joinpath("schemas/show.schema.json")
    jsonschema.Draft202012Validator(json.loads(schema_text.read_text())).validate(document)
    llm = document["runs"][0]["llm"]
    assert llm["totals"]["calls"] == 5
    assert llm["ranked_by"] == "cost_usd"
    costs = [call["cost_usd"] for call in llm["most_expensive"]]
    assert costs == sorted(costs, reverse=True)
    assert [node["node_id"] for node in llm["nodes"]] == ["summarise"]
    assert [model["model"] for model in llm["models"]] == ["echo"]


@pytest.mark.parametrize("file_format", ["otlp-json", "jaeger-json"])
def test_file_exports_carry_the_gen_ai_attributes(
    example_run: ExampleRun, tmp_path: Path, file_format: str
) -> None:
    output = tmp_path / f"export.{file_format}.json"
    completed = cli("export", example_run.trace_path, "--format", file_format, "-o", output)
    assert completed.returncode == 0, completed.stderr
    text = output.read_text()
    assert text.count(conv.GEN_AI_USAGE_INPUT_TOKENS) == 5
    assert text.count(conv.GEN_AI_USAGE_OUTPUT_TOKENS) == 5


def test_otlp_replay_carries_the_gen_ai_attributes(example_run: ExampleRun) -> None:
    rows = len(example_run.document["otel"]["spans"]["rows"])
    with OtlpReceiver() as receiver:
        completed = cli(
            "export", example_run.trace_path, "--to", "otlp", "--endpoint", receiver.endpoint
        )
        spans = receiver.wait_for_spans(rows)
    assert completed.returncode == 0, completed.stderr
    calls = [span for span in spans if conv.GEN_AI_USAGE_INPUT_TOKENS in span.attributes]
    assert len(calls) == 5
    assert {span.attributes[conv.GEN_AI_OPERATION_NAME] for span in calls} == {"chat"}


def test_content_goes_on_spans_only_with_the_flag(example_run: ExampleRun, tmp_path: Path) -> None:
    without = item_span_attributes(example_run.document)
    assert all(conv.GEN_AI_INPUT_MESSAGES not in span for span in without)
    trace_path = tmp_path / "content.trace.json"
    completed = cli("run", EXAMPLE, "--capture-llm-content", "--trace-file", trace_path)
    assert completed.returncode == 0, completed.stderr
    spans = item_span_attributes(json.loads(trace_path.read_text()))
    messages = [
        json.loads(span[conv.GEN_AI_INPUT_MESSAGES])
        for span in spans
        if conv.GEN_AI_INPUT_MESSAGES in span
    ]
    assert len(messages) == 5
    assert messages[0][0]["role"] == "user"
    assert messages[0][0]["parts"][0]["content"].startswith("Summarise document ")


def test_without_prices_the_cost_is_visibly_unknown(tmp_path: Path) -> None:
    completed = cli("run", EXAMPLE, "--trace-dir", tmp_path, "--output-format", "json")
    assert completed.returncode == 0, completed.stderr
    llm = json.loads(completed.stdout)["llm"]
    assert llm["cost_usd"] is None and llm["unpriced_models"] == ["echo"]
    shown = cli("show", "--trace-dir", tmp_path, "--no-color").stdout
    assert "price unknown" in shown and re.search(r"no price for +echo", shown)
    assert "$0.00" not in shown


def test_a_bad_price_file_stops_before_the_run(tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text('{"models": {"echo": {"input": "cheap"}}}')
    completed = cli("run", EXAMPLE, "--prices", prices, "--no-trace-file")
    assert completed.returncode == 2
    assert completed.stderr.strip().count("\n") == 0
    assert "models.echo.input must be a number" in completed.stderr


def test_an_api_key_in_the_environment_reaches_no_output(tmp_path: Path) -> None:
    user_dir = tmp_path / "llm-user"
    workflow = tmp_path / "wf.json"
    workflow.write_text(
        json.dumps(
            {
                "ir_version": "0.1.0",
                "name": "keys",
                "nodes": [
                    {
                        "id": "ask",
                        "type": "llm",
                        "params": {"prompt": "${item}", "model": "local-gpt", "retry_wait": 0},
                        "batch": {
                            "items": ["SHOW-AUTH please", "DENY this", "RATE-LIMIT-ONCE hi"],
                            "error_handling": "continue",
                        },
                    }
                ],
                "outputs": {"answers": "${ask.results}"},
            }
        )
    )
    trace_path = tmp_path / "keys.trace.json"
    env = clean_env(
        LLM_USER_PATH=str(user_dir),
        OPENAI_API_KEY=API_KEY,
        OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true",
    )
    with chat_server() as (api_base, log):
        configure_model(user_dir, api_base, key_name="openai")
        text_run = cli("run", workflow, "--trace-file", trace_path, env=env)
        json_run = cli("run", workflow, "--output-format", "json", "--no-trace-file", env=env)
    assert all(request["auth"] == f"Bearer {API_KEY}" for request in log.requests)  # it was sent
    assert "your header was Bearer <redacted>" in text_run.stdout
    exported = tmp_path / "keys.otlp.json"
    export_run = cli("export", trace_path, "--format", "otlp-json", "-o", exported, env=env)
    show_run = cli("show", trace_path, "--json", env=env)
    outputs = [
        text_run.stdout,
        text_run.stderr,
        json_run.stdout,
        json_run.stderr,
        trace_path.read_text(),
        exported.read_text(),
        export_run.stdout + export_run.stderr,
        show_run.stdout + show_run.stderr,
    ]
    for output in outputs:
        assert API_KEY not in output
    assert "HTTP 401" in trace_path.read_text()  # the denied item's error is there, redacted
