"""The trace file (issue 4): one file per ``pflow-trace run``, whatever the outcome.

Integration tests run the CLI in-process through click's runner; the Ctrl-C test runs it in a
subprocess and sends a real SIGINT. Every trace written here is also validated against the
shipped schema by ``conftest.py`` when each test ends.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pflow_samples import PFLOW_JSON_SAMPLE
from pflow_trace.cli.main import cli
from pflow_trace.errors import TraceWriteError
from pflow_trace.observe.facts import NodeExecution, RunRecord
from pflow_trace.observe.redaction import REDACTED, Redactor
from pflow_trace.observe.sanitize import Sanitizer
from pflow_trace.tracefile import writer as trace_file
from pflow_trace.tracefile.builder import TraceDocumentBuilder
from pflow_trace.tracefile.schema import (
    TraceSchemaError,
    trace_schema,
    validate_trace_document,
)

DOCS = Path(__file__).resolve().parents[2] / "docs/trace-format.md"

NAME_PATTERN = re.compile(
    r"^workflow-trace-(?P<name>[A-Za-z0-9_.-]+)-(?P<stamp>\d{8}-\d{6})-(?P<short_id>[0-9a-f]{8})\.json$"
)
HEX16 = re.compile(r"^[0-9a-f]{16}$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")

TOP_LEVEL_FIELDS = {
    "checkpoint",  # the resume checkpoint's id and hash (docs/resume.md)
    "format_version",
    "generator",
    "execution_id",
    "workflow_name",
    "start_time",
    "end_time",
    "duration_ms",
    "final_status",
    "nodes_executed",
    "nodes_failed",
    "error",
    "failed_node",
    "otel",
    "nodes",
}
OTEL_FIELDS = {
    "trace_id",
    "span_id",
    "parent_span_id",
    "service_name",
    "start_time_unix_nano",
    "spans",
}
NODE_FIELDS = {
    "node_id",
    "node_type",
    "duration_ms",
    "success",
    "shared_before",
    "shared_after",
    "mutations",
    "timestamp",
    "start_offset_ms",
    "span_id",
    "template_resolutions",
}
BATCH_ITEM_FIELDS = {
    "index",
    "item",
    "status",
    "attempts",
    "duration_ms",
    "start_offset_ms",
    "worker",
    "error",
    "span_id",
    "time_us",
}
BATCH_OUTPUT_FIELDS = {
    "results",
    "count",
    "success_count",
    "error_count",
    "errors",
    "batch_metadata",
}


# -- helpers --------------------------------------------------------------------------------------


def workflow(name: str, nodes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"ir_version": "0.1.0", "name": name, "nodes": nodes, **extra}


def write_workflow(directory: Path, document: dict[str, Any], file_name: str = "wf.json") -> Path:
    path = directory / file_name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def run_cli(*args: Any, env: dict[str, str | None] | None = None) -> Result:
    """``pflow-trace run ...`` in-process; a Python exception (a bug) fails the test."""
    result = CliRunner().invoke(cli, ["run", *map(str, args)], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert "Traceback" not in result.stderr
    return result


def run_json(*args: Any, env: dict[str, str | None] | None = None) -> tuple[Result, dict[str, Any]]:
    result = run_cli(*args, "--output-format", "json", env=env)
    return result, json.loads(result.stdout)


def load_trace(path: str | Path) -> dict[str, Any]:
    """Parse strictly: NaN and Infinity are not JSON."""

    def reject(constant: str) -> None:
        raise AssertionError(f"the trace holds {constant}, which is not JSON")

    return json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=reject)


def only_trace_in(directory: Path) -> Path:
    files = sorted(directory.glob("*.json"))
    assert len(files) == 1, files
    return files[0]


def event(document: dict[str, Any], node_id: str) -> dict[str, Any]:
    return next(node for node in document["nodes"] if node["node_id"] == node_id)


def mixed_workflow() -> dict[str, Any]:
    """A plain node, a parallel batch over its output, and a code node after both."""
    return workflow(
        "mixed",
        [
            {"id": "seed", "type": "echo", "params": {"values": [1, 2, 3, 4], "label": "x"}},
            {
                "id": "each",
                "type": "echo",
                "batch": {"items": "${seed.values}", "parallel": True, "max_concurrent": 2},
                "params": {"value": "${item}", "delay_ms": 5},
            },
            {
                "id": "total",
                "type": "code",
                "params": {
                    "code": "result = sum(r['value'] for r in rows)",
                    "inputs": {"rows": "${each.results}"},
                },
            },
        ],
        outputs={"total": "${total.result}"},
    )


# -- field set and types ---------------------------------------------------------------------------


def test_trace_has_exactly_our_fields_with_their_types(
    tmp_path: Path, trace_dir: Path, validate_trace: Any
) -> None:
    result, payload = run_json(write_workflow(tmp_path, mixed_workflow()))
    assert result.exit_code == 0, result.output
    path = Path(payload["trace_file"])
    assert path.parent == trace_dir
    document = validate_trace(load_trace(path))

    assert set(document) == TOP_LEVEL_FIELDS
    assert document["format_version"] == "1.2.0"
    assert document["generator"].startswith("pflow-trace ")
    assert document["workflow_name"] == "mixed"
    assert document["final_status"] == "success"
    assert document["error"] is None and document["failed_node"] is None
    assert document["nodes_executed"] == 3 and document["nodes_failed"] == 0
    assert isinstance(document["duration_ms"], float) and document["duration_ms"] > 0
    assert document["start_time"] <= document["end_time"]
    assert set(document["otel"]) == OTEL_FIELDS
    assert HEX32.match(document["otel"]["trace_id"])
    assert HEX16.match(document["otel"]["span_id"])
    assert document["otel"]["parent_span_id"] is None
    assert document["otel"]["service_name"] == "pflow-trace"

    assert [node["node_id"] for node in document["nodes"]] == ["seed", "each", "total"]
    span_ids = set()
    for node in document["nodes"]:
        batch_fields = {"batch_items", "batch_time_us"}
        expected = NODE_FIELDS | (batch_fields if node["node_id"] == "each" else set())
        assert set(node) == expected, node["node_id"]
        assert node["success"] is True
        assert isinstance(node["duration_ms"], float) and node["duration_ms"] >= 0
        assert isinstance(node["start_offset_ms"], float)
        assert node["start_offset_ms"] + node["duration_ms"] <= document["duration_ms"] + 0.01
        assert HEX16.match(node["span_id"])
        span_ids.add(node["span_id"])
        assert set(node["mutations"]) == {"added", "removed", "modified"}
    assert len(span_ids) == 3
    offsets = [node["start_offset_ms"] for node in document["nodes"]]
    assert offsets == sorted(offsets)

    each = event(document, "each")
    assert set(each["shared_after"]["each"]) == BATCH_OUTPUT_FIELDS
    assert each["shared_after"]["each"]["results"] == [
        {"value": n, "item": n, "original_index": n - 1} for n in (1, 2, 3, 4)
    ]
    for record in each["batch_items"]:
        assert set(record) == BATCH_ITEM_FIELDS
        assert isinstance(record["item"], str)
        assert HEX16.match(record["span_id"])
    assert [record["item"] for record in each["batch_items"]] == ["1", "2", "3", "4"]
    assert event(document, "total")["shared_after"]["total"]["result"] == 10

    # The span table holds the root span, every node's span and every item's span.
    table = document["otel"]["spans"]
    column = table["columns"].index("span_id")
    recorded = {row[column] for row in table["rows"]}
    assert document["otel"]["span_id"] in recorded
    assert span_ids <= recorded
    assert {record["span_id"] for record in each["batch_items"]} <= recorded


def test_the_schema_ships_in_the_package_and_names_problems_by_json_path(tmp_path: Path) -> None:
    schema = trace_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["node_event"]["additionalProperties"] is False
    assert schema["$defs"]["batch_item"]["additionalProperties"] is False

    _, payload = run_json(write_workflow(tmp_path, mixed_workflow()))
    document = load_trace(payload["trace_file"])
    document["surprise"] = 1
    del document["nodes"][0]["span_id"]
    document["nodes"][1]["batch_items"][2]["attempts"] = "one"
    document["nodes"][1]["shared_after"]["each"]["batch_metadata"]["timing"]["avg_item_ms"] = None
    document["final_status"] = "fine"
    with pytest.raises(TraceSchemaError) as caught:
        validate_trace_document(document, "broken.json")
    message = str(caught.value)
    assert message.startswith("broken.json: 5 schema problems")
    assert "$: Additional properties are not allowed ('surprise'" in message
    assert "$.nodes[0]: 'span_id' is a required property" in message
    assert "$.nodes[1].batch_items[2].attempts: 'one' is not of type 'integer'" in message
    assert "$.nodes[1].shared_after.each.batch_metadata.timing" in message
    assert "$.final_status: 'fine' is not one of" in message


def test_docs_explain_every_field_of_the_schema() -> None:
    text = DOCS.read_text(encoding="utf-8")
    schema = trace_schema()
    names: set[str] = set(schema["properties"]) | set(schema["properties"]["otel"]["properties"])
    for definition in (
        "node_event",
        "batch_item",
        "batch_output",
        "mutations",
        "template_resolution",
    ):
        names |= set(schema["$defs"][definition]["properties"])
    names |= set(schema["$defs"]["batch_output"]["properties"]["batch_metadata"]["properties"])
    missing = sorted(name for name in names if f"`{name}`" not in text)
    assert not missing, f"docs/trace-format.md does not explain: {missing}"
    for setting in (
        "PFLOW_TRACE_MAX_STRING",
        "PFLOW_TRACE_MAX_LIST",
        "PFLOW_TRACE_MAX_DEPTH",
        "PFLOW_TRACE_PREVIEW_CHARS",
        "PFLOW_TRACE_DIR",
        "--max-string",
        "--max-list",
        "--trace-file",
        "--trace-dir",
        "--no-trace-file",
        "templates read",
    ):
        assert setting in text, setting


def test_snapshots_show_the_namespaces_a_node_reads_and_writes(tmp_path: Path) -> None:
    mixed = mixed_workflow()
    document = {
        **mixed,
        "inputs": {"limit": {"type": "number", "default": 2}},
        "outputs": {**mixed["outputs"], "cap": "${limit}"},  # an input must be read
    }
    _, payload = run_json(write_workflow(tmp_path, document))
    document = load_trace(payload["trace_file"])
    seed, each, total = document["nodes"]
    seed_output = {"values": [1, 2, 3, 4], "label": "x"}
    inputs = {"limit": 2}
    assert seed["shared_before"] == inputs
    assert seed["shared_after"] == {**inputs, "seed": seed_output}
    # ``each`` reads seed (its batch items): seed is shown, in full, before and after.
    assert each["shared_before"] == {**inputs, "seed": seed_output}
    assert set(each["shared_after"]) == {"limit", "seed", "each"}
    assert each["shared_after"]["each"]["count"] == 4
    # ``total`` reads only each: seed's namespace is left out, though mutations see every key.
    assert set(total["shared_before"]) == {"limit", "each"}
    assert set(total["shared_after"]) == {"limit", "each", "total"}
    assert total["mutations"] == {"added": ["total"], "removed": [], "modified": []}


# -- batch timing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "sequential"])
def test_batch_metadata_timing_agrees_with_batch_items(tmp_path: Path, parallel: bool) -> None:
    delays = [30, 5, 60, 10, 20, 0, 15, 40]
    wf = workflow(
        "timing",
        [
            {
                "id": "work",
                "type": "echo",
                "batch": {
                    "items": delays,
                    "parallel": parallel,
                    "max_concurrent": 3,
                    "error_handling": "continue",
                },
                "params": {
                    "value": "${item}",
                    "delay_ms": "${item}",
                    "fail_if": 15,
                    "message": "fifteen is unlucky",
                },
            }
        ],
    )
    result, payload = run_json(write_workflow(tmp_path, wf))
    assert result.exit_code == 0, result.output
    assert payload["status"] == "degraded"
    document = load_trace(payload["trace_file"])
    assert document["final_status"] == "degraded"
    node = event(document, "work")
    output = node["shared_after"]["work"]
    records = node["batch_items"]
    timing = output["batch_metadata"]["timing"]

    assert [record["index"] for record in records] == list(range(len(delays)))
    assert [record["item"] for record in records] == [str(delay) for delay in delays]
    assert output["count"] == len(records)
    assert output["success_count"] == sum(record["status"] == "success" for record in records)
    assert output["error_count"] == 1
    assert output["errors"] == [{"index": 6, "item": 15, "error": "fifteen is unlucky"}]
    assert records[6]["status"] == "failed" and records[6]["error"] == "fifteen is unlucky"
    assert all(record["error"] is None for i, record in enumerate(records) if i != 6)
    assert all(record["attempts"] == 1 for record in records)

    durations = [record["duration_ms"] for record in records if record["status"] != "skipped"]
    assert timing["min_item_ms"] <= timing["avg_item_ms"] <= timing["max_item_ms"]
    tolerance = 0.005 + 0.0005 * len(durations)  # rounded to 2 places vs 3 places per item
    assert timing["total_items_ms"] == pytest.approx(sum(durations), abs=tolerance)
    assert timing["avg_item_ms"] == pytest.approx(sum(durations) / len(durations), abs=tolerance)
    assert timing["min_item_ms"] == pytest.approx(min(durations), abs=0.006)
    assert timing["max_item_ms"] == pytest.approx(max(durations), abs=0.006)
    for record, delay in zip(records, delays, strict=True):
        assert record["duration_ms"] >= delay

    offsets = [record["start_offset_ms"] for record in records]
    assert min(offsets) == 0.0
    ends = [record["start_offset_ms"] + record["duration_ms"] for record in records]
    assert max(ends) <= node["duration_ms"] + 0.01
    metadata = output["batch_metadata"]
    if parallel:
        assert metadata["execution_mode"] == "parallel" and metadata["max_concurrent"] == 3
        assert {record["worker"] for record in records} <= {0, 1, 2}
        assert max(ends) < sum(durations)  # items overlapped
    else:
        assert metadata["execution_mode"] == "sequential" and metadata["max_concurrent"] is None
        assert {record["worker"] for record in records} == {0}
        for previous, current in itertools.pairwise(records):
            assert (
                current["start_offset_ms"]
                >= previous["start_offset_ms"] + previous["duration_ms"] - 0.002
            )


# -- mutations and template resolutions ------------------------------------------------------------


def test_mutations_list_added_removed_and_modified_keys() -> None:
    builder = TraceDocumentBuilder(Sanitizer(Redactor()))
    builder.run_started(RunRecord("run-1", "unit", start_ns=time.time_ns()))
    shared: dict[str, Any] = {"kept": {"a": 1}, "changed": "old", "dropped": 1, "same_text": "t"}
    execution = NodeExecution("step", "echo", start_ns=time.time_ns())
    builder.node_started(execution, shared)
    shared["changed"] = "new"
    del shared["dropped"]
    shared["step"] = {"out": 1}
    shared["zeta"] = 0
    execution.end_ns, execution.success = time.time_ns(), True
    builder.node_finished(execution, shared)

    node = builder.events[0]
    assert node["mutations"] == {
        "added": ["step", "zeta"],
        "removed": ["dropped"],
        "modified": ["changed"],
    }
    assert node["shared_before"]["changed"] == "old" and node["shared_after"]["changed"] == "new"
    assert "dropped" not in node["shared_after"] and node["shared_after"]["zeta"] == 0


def test_mutations_in_a_run_record_each_node_adding_its_namespace(tmp_path: Path) -> None:
    _, payload = run_json(write_workflow(tmp_path, mixed_workflow()))
    document = load_trace(payload["trace_file"])
    assert [node["mutations"] for node in document["nodes"]] == [
        {"added": ["seed"], "removed": [], "modified": []},
        {"added": ["each"], "removed": [], "modified": []},
        {"added": ["total"], "removed": [], "modified": []},
    ]


def test_template_resolutions_record_source_and_resolved_value(tmp_path: Path) -> None:
    wf = workflow(
        "templates",
        [
            {"id": "first", "type": "echo", "params": {"name": "ada", "count": 3}},
            {
                "id": "second",
                "type": "echo",
                "params": {
                    "greeting": "hi ${first.name}",
                    "count": "${first.count}",
                    "nested": {"who": "${first.name}", "fixed": 1},
                    "literal": "no template here",
                    "escaped": "$${not.a.template}",
                },
            },
            {
                "id": "each",
                "type": "echo",
                "batch": {"items": ["a", "b"]},
                "params": {"letter": "${item}!"},
            },
        ],
        inputs={"unused": {"type": "string", "required": False}},
        outputs={"unused": "${unused}"},  # an input must be read; it is null, so left out
    )
    _, payload = run_json(write_workflow(tmp_path, wf))
    document = load_trace(payload["trace_file"])
    assert event(document, "first")["template_resolutions"] == {}
    assert event(document, "second")["template_resolutions"] == {
        "greeting": {"template": "hi ${first.name}", "resolved": "hi ada"},
        "count": {"template": "${first.count}", "resolved": 3},
        "nested": {
            "template": {"who": "${first.name}", "fixed": 1},
            "resolved": {"who": "ada", "fixed": 1},
        },
        "escaped": {"template": "$${not.a.template}", "resolved": "${not.a.template}"},
    }
    # A batch records the first item's resolution.
    assert event(document, "each")["template_resolutions"] == {
        "letter": {"template": "${item}!", "resolved": "a!"}
    }


# -- what goes in: limits --------------------------------------------------------------------------


def limits_workflow() -> dict[str, Any]:
    code = (
        "result = {'long': 'x' * 5000, 'blob': b'\\x00\\x01\\x02', 'odd': {1, 2}, "
        "'inf': float('inf'), 'nan': float('nan'), 'many': list(range(50)), "
        "'deep': {'a': {'b': {'c': {'d': 'bottom'}}}}}"
    )
    return workflow(
        "limits",
        [
            {"id": "make", "type": "code", "params": {"code": code}},
            {
                "id": "each",
                "type": "echo",
                "batch": {"items": ["y" * 300]},
                "params": {"v": "${item}"},
            },
        ],
    )


def test_default_limits_mark_truncation_binary_and_unserialisable_values(tmp_path: Path) -> None:
    _, payload = run_json(write_workflow(tmp_path, limits_workflow()))
    document = load_trace(payload["trace_file"])
    result = event(document, "make")["shared_after"]["make"]["result"]
    assert result["long"] == "x" * 2000 + "…<truncated 3000 chars>"
    assert result["blob"] == "<binary: 3 bytes>"
    assert result["odd"] == "{1, 2}"
    assert result["inf"] == "inf" and result["nan"] == "nan"
    assert result["many"] == list(range(50))
    assert result["deep"] == {"a": {"b": {"c": {"d": "bottom"}}}}
    assert event(document, "each")["batch_items"][0]["item"] == "y" * 120 + "…<truncated 180 chars>"


def test_limit_flags_and_environment_variables(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, limits_workflow())
    env = {
        "PFLOW_TRACE_MAX_STRING": "50",
        "PFLOW_TRACE_MAX_LIST": "7",
        "PFLOW_TRACE_MAX_DEPTH": "3",
        "PFLOW_TRACE_PREVIEW_CHARS": "20",
    }
    _, payload = run_json(path, env=env)
    document = load_trace(payload["trace_file"])
    result = event(document, "make")["shared_after"]["make"]["result"]
    assert result["long"] == "x" * 50 + "…<truncated 4950 chars>"
    assert result["many"] == [0, 1, 2, 3, 4, 5, 6, "<43 more items>"]
    # The namespace is depth 0, result 1, deep 2: the dict under "a" is at the limit.
    assert result["deep"] == {"a": "<max depth 3 reached>"}
    assert event(document, "each")["batch_items"][0]["item"] == "y" * 20 + "…<truncated 280 chars>"

    # Flags win over the environment.
    _, payload = run_json(path, "--max-string", "100", "--max-list", "20", env=env)
    result = event(load_trace(payload["trace_file"]), "make")["shared_after"]["make"]["result"]
    assert result["long"] == "x" * 100 + "…<truncated 4900 chars>"
    assert result["many"][-1] == "<30 more items>" and len(result["many"]) == 21


# -- redaction -------------------------------------------------------------------------------------

SENSITIVE = "s3cr3t-Sensitive-Value-8842"
SENSITIVE_PIN = 73195824613
AUTHORIZATION = "Bearer auth-literal-5521"
DB_PASSWORD = "db-password-literal-6634"
API_KEY = "api-key-literal-7745"
ITEM_TOKEN = "item-token-literal-9956"
COOKIE = "cookie-literal-1067"
PRIVATE_KEY = "private-key-literal-2178"
SECRETS = [
    SENSITIVE,
    str(SENSITIVE_PIN),
    AUTHORIZATION,
    "auth-literal-5521",
    DB_PASSWORD,
    API_KEY,
    ITEM_TOKEN,
    COOKIE,
    PRIVATE_KEY,
]


def secrets_workflow() -> dict[str, Any]:
    make_items = (
        f"print('using', s)\nresult = [{{'token': '{ITEM_TOKEN}', 'n': 1}}, 'item carries ' + s, 2]"
    )
    return workflow(
        "secrets",
        [
            {
                "id": "call",
                "type": "echo",
                "params": {
                    "url": "https://api.example/?k=${api_secret}",
                    "Authorization": AUTHORIZATION,
                    "config": {"db": {"password": DB_PASSWORD, "host": "db.local"}},
                    "API_KEY": API_KEY,
                    "pin": "${pin}",
                    "keys": [{"Private_Key": PRIVATE_KEY}],
                    "headers": {"Cookie": COOKIE, "X-Request": "r-1"},
                    "user": "${user}",
                },
            },
            {
                "id": "make",
                "type": "code",
                "params": {"code": make_items, "inputs": {"s": "${api_secret}"}},
            },
            {
                "id": "each",
                "type": "echo",
                "batch": {
                    "items": "${make.result}",
                    "parallel": True,
                    "max_concurrent": 2,
                    "error_handling": "continue",
                },
                "params": {
                    "value": "${item}",
                    "fail_if": 2,
                    "message": "failed near ${api_secret}",
                },
            },
            {
                "id": "bad",
                "type": "echo",
                "params": {"fail": True, "message": "gave up on ${api_secret}"},
            },
        ],
        inputs={
            "api_secret": {"type": "string", "sensitive": True},
            "pin": {"type": "number", "sensitive": True},
            "user": {"type": "string"},
        },
        outputs={"url": "${call.url}", "pin": "${call.pin}", "stdout": "${make.stdout}"},
    )


def assert_no_secret(text: str, where: str) -> None:
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"{where} leaks {leaked}"


def test_secrets_never_reach_the_file_or_the_terminal(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, secrets_workflow())
    inputs = [f"api_secret={SENSITIVE}", f"pin={SENSITIVE_PIN}", "user=grace"]
    for output_format in ("json", "text"):
        trace = tmp_path / f"{output_format}.trace.json"
        result = run_cli(path, *inputs, "--output-format", output_format, "--trace-file", trace)
        assert result.exit_code == 1, result.output
        assert_no_secret(result.stdout, f"{output_format} stdout")
        assert_no_secret(result.stderr, f"{output_format} stderr")
        text = trace.read_text(encoding="utf-8")
        assert_no_secret(text, f"trace ({output_format} run)")
        assert REDACTED in result.stdout

    document = load_trace(tmp_path / "json.trace.json")
    call = event(document, "call")["shared_after"]["call"]
    assert call["Authorization"] == REDACTED
    assert call["config"] == {"db": {"password": REDACTED, "host": "db.local"}}
    assert call["API_KEY"] == REDACTED
    assert call["keys"] == [{"Private_Key": REDACTED}]
    assert call["headers"] == {"Cookie": REDACTED, "X-Request": "r-1"}
    assert call["url"] == f"https://api.example/?k={REDACTED}"
    assert call["pin"] == REDACTED and call["user"] == "grace"
    first = event(document, "call")
    assert first["shared_before"] == {"api_secret": REDACTED, "pin": REDACTED, "user": "grace"}
    assert first["template_resolutions"]["pin"] == {"template": "${pin}", "resolved": REDACTED}
    each = event(document, "each")
    assert each["batch_items"][0]["item"] == json.dumps(
        {"token": REDACTED, "n": 1}, separators=(",", ":")
    )
    assert each["batch_items"][1]["item"] == f"item carries {REDACTED}"
    assert each["batch_items"][2]["error"] == f"failed near {REDACTED}"
    assert event(document, "make")["shared_after"]["make"]["stdout"] == f"using {REDACTED}\n"
    assert document["error"] == f"node 'bad' failed: gave up on {REDACTED}"


def test_secret_named_template_params_keep_their_shape() -> None:
    builder = TraceDocumentBuilder(Sanitizer(Redactor([SENSITIVE])))
    builder.run_started(RunRecord("run-1", "unit", start_ns=time.time_ns()))
    execution = NodeExecution("call", "http", start_ns=time.time_ns())
    builder.node_started(execution, {})
    execution.template_resolutions = {
        "Authorization": {"template": "Bearer ${token}", "resolved": "Bearer abc"},
        "url": {"template": "https://x/${key}", "resolved": f"https://x/{SENSITIVE}"},
    }
    execution.end_ns, execution.success = time.time_ns(), True
    builder.node_finished(execution, {})
    assert builder.events[0]["template_resolutions"] == {
        "Authorization": {"template": REDACTED, "resolved": REDACTED},
        "url": {"template": "https://x/${key}", "resolved": f"https://x/{REDACTED}"},
    }


def test_span_attributes_are_redacted_too(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from pflow_trace import api
    from pflow_trace.api import TraceOptions
    from pflow_trace.observe.export_settings import resolve_export_settings

    exporter = InMemorySpanExporter()
    options = TraceOptions(
        export=resolve_export_settings("none", env={}),
        trace_file=str(tmp_path / "spans.trace.json"),
        extra_processors=[SimpleSpanProcessor(exporter)],
    )
    inputs = {"api_secret": SENSITIVE, "pin": SENSITIVE_PIN, "user": "grace"}
    outcome = api.run(secrets_workflow(), inputs, options)
    assert outcome.result.status == "failed"
    spans = exporter.get_finished_spans()
    assert len(spans) > 10
    rendered = []
    for span in spans:
        rendered.append(span.name)
        rendered.append(json.dumps(dict(span.attributes or {}), default=str))
        rendered.append(span.status.description or "")
        for span_event in span.events:
            rendered.append(json.dumps(dict(span_event.attributes or {}), default=str))
    assert_no_secret("\n".join(rendered), "span data")
    assert_no_secret((tmp_path / "spans.trace.json").read_text(encoding="utf-8"), "trace")


# -- failed and interrupted runs -------------------------------------------------------------------


def test_a_failed_run_still_writes_its_trace(tmp_path: Path) -> None:
    wf = workflow(
        "fails",
        [
            {"id": "ok", "type": "echo", "params": {"x": 1}},
            {"id": "boom", "type": "echo", "params": {"fail": True, "message": "it broke"}},
            {"id": "never", "type": "echo", "params": {"y": 2}},
        ],
    )
    result = run_cli(write_workflow(tmp_path, wf))
    assert result.exit_code == 1
    match = re.search(r"^trace: (.+)$", result.stdout, re.MULTILINE)
    assert match is not None, result.stdout
    document = load_trace(match.group(1))
    assert document["final_status"] == "failed"
    assert document["error"] == "node 'boom' failed: it broke"
    assert document["failed_node"] == "boom"
    assert document["nodes_executed"] == 2 and document["nodes_failed"] == 1
    boom = event(document, "boom")
    assert boom["success"] is False and boom["error"] == "it broke"
    assert "error" not in event(document, "ok")
    assert [node["node_id"] for node in document["nodes"]] == ["ok", "boom"]


def test_a_fail_fast_batch_keeps_the_items_that_ran(tmp_path: Path) -> None:
    wf = workflow(
        "fastfail",
        [
            {
                "id": "work",
                "type": "echo",
                "batch": {"items": [0, 1, 2, 3, 4]},
                "params": {"value": "${item}", "fail_if": 2},
            }
        ],
    )
    result, payload = run_json(write_workflow(tmp_path, wf))
    assert result.exit_code == 1 and payload["status"] == "failed"
    document = load_trace(payload["trace_file"])
    node = event(document, "work")
    assert node["success"] is False and node["error"].startswith("item 2 failed")
    assert [record["status"] for record in node["batch_items"]] == ["success", "success", "failed"]
    assert node["shared_after"]["work"]["count"] == 3  # attempted before fail_fast stopped
    assert node["shared_after"]["work"]["success_count"] == 2


def pflow_trace_command() -> list[str]:
    script = Path(sys.executable).with_name("pflow-trace")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pflow_trace"]


def test_ctrl_c_during_a_parallel_batch_saves_an_interrupted_trace(
    tmp_path: Path, trace_dir: Path, validate_trace: Any
) -> None:
    started = tmp_path / "batch-started"
    wf = workflow(
        "slow",
        [
            {"id": "mark", "type": "shell", "params": {"command": f"touch '{started}'"}},
            {
                "id": "work",
                "type": "echo",
                "batch": {"items": list(range(20)), "parallel": True, "max_concurrent": 4},
                "params": {"value": "${item}", "delay_ms": 300},
            },
            {"id": "after", "type": "echo", "params": {"x": 1}},
        ],
    )
    path = write_workflow(tmp_path, wf)
    process = subprocess.Popen(
        [*pflow_trace_command(), "run", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while not started.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the workflow never reached its batch"
            time.sleep(0.02)
        time.sleep(0.45)  # the first wave of 4 items is done, the second is running
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    assert "status: interrupted" in stdout
    trace_path = only_trace_in(trace_dir)
    assert f"trace: {trace_path}" in stdout
    document = validate_trace(load_trace(trace_path))
    assert document["final_status"] == "interrupted"
    assert document["error"] == "interrupted by the user (Ctrl-C)"
    assert [node["node_id"] for node in document["nodes"]] == ["mark", "work"]
    work = event(document, "work")
    assert work["success"] is False and work["error"] == "interrupted"
    assert 1 <= len(work["batch_items"]) < 20
    assert all(record["status"] == "success" for record in work["batch_items"])
    output = work["shared_after"]["work"]
    assert output["count"] == 20 and output["success_count"] == len(work["batch_items"])
    assert not list(trace_dir.glob(".trace-*"))


# -- where the file goes ---------------------------------------------------------------------------


def test_trace_file_option_writes_exactly_there(tmp_path: Path, trace_dir: Path) -> None:
    target = tmp_path / "nested" / "dir" / "mine.json"
    result, payload = run_json(
        write_workflow(tmp_path, mixed_workflow()),
        "--trace-file",
        target,
        "--trace-dir",
        tmp_path / "ignored",
    )
    assert result.exit_code == 0
    assert payload["trace_file"] == str(target) and target.is_file()
    assert load_trace(target)["workflow_name"] == "mixed"
    assert not (tmp_path / "ignored").exists()
    assert not list(trace_dir.iterdir())


def test_trace_dir_option_wins_over_the_environment(tmp_path: Path, trace_dir: Path) -> None:
    chosen = tmp_path / "chosen"
    _, payload = run_json(write_workflow(tmp_path, mixed_workflow()), "--trace-dir", chosen)
    written = only_trace_in(chosen)
    assert payload["trace_file"] == str(written)
    assert NAME_PATTERN.match(written.name)
    assert not list(trace_dir.iterdir())


def test_environment_directory_and_the_file_name_pattern(tmp_path: Path, trace_dir: Path) -> None:
    wf = mixed_workflow()
    wf["name"] = "my flow/v2"
    _, payload = run_json(write_workflow(tmp_path, wf))
    written = only_trace_in(trace_dir)
    assert payload["trace_file"] == str(written)
    match = NAME_PATTERN.match(written.name)
    assert match is not None, written.name
    assert match["name"] == "my-flow-v2"
    document = load_trace(written)
    assert document["workflow_name"] == "my flow/v2"
    assert match["short_id"] == document["execution_id"].replace("-", "")[:8]
    assert time.strftime("%Y%m%d", time.localtime()) in match["stamp"] or match["stamp"]


def test_default_directory_is_under_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("PFLOW_TRACE_DIR")
    _, payload = run_json(write_workflow(tmp_path, mixed_workflow()))
    written = only_trace_in(home / ".pflow-trace" / "traces")
    assert payload["trace_file"] == str(written)
    assert NAME_PATTERN.match(written.name)


def test_no_trace_file_writes_nothing(tmp_path: Path, trace_dir: Path) -> None:
    path = write_workflow(tmp_path, mixed_workflow())
    result, payload = run_json(path, "--no-trace-file")
    assert result.exit_code == 0
    assert payload["trace_file"] is None
    assert HEX32.match(payload["trace_id"])
    text = run_cli(path, "--no-trace-file")
    assert "trace:" not in text.stdout
    assert not list(trace_dir.iterdir())
    assert not list(tmp_path.rglob("workflow-trace-*"))


def test_json_output_names_the_trace_file_and_trace_id(tmp_path: Path) -> None:
    _, payload = run_json(write_workflow(tmp_path, mixed_workflow()))
    assert {"trace_file", "trace_id"} <= set(payload)
    document = load_trace(payload["trace_file"])
    assert payload["trace_id"] == document["otel"]["trace_id"]
    assert payload["outputs"] == {"total": 10}


def test_text_output_prints_the_trace_path(tmp_path: Path, trace_dir: Path) -> None:
    result = run_cli(write_workflow(tmp_path, mixed_workflow()))
    assert result.exit_code == 0
    written = only_trace_in(trace_dir)
    assert result.stdout.rstrip().splitlines()[-1] == f"trace: {written}"


# -- atomic writes ---------------------------------------------------------------------------------


def test_no_temporary_files_are_left_behind(tmp_path: Path, trace_dir: Path) -> None:
    path = write_workflow(tmp_path, mixed_workflow())
    for _ in range(3):
        run_json(path)
    # Each run leaves its trace and, beside it, its resume checkpoint (docs/resume.md).
    traces = [file for file in trace_dir.iterdir() if not file.name.endswith(".checkpoint")]
    assert all(NAME_PATTERN.match(file.name) for file in traces)
    assert len(traces) == 3 and len(list(trace_dir.iterdir())) == 6


class HalfWritingHandle:
    """A file handle that writes half of what it is given, then finds the disk full."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def __enter__(self) -> HalfWritingHandle:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.handle.close()

    def write(self, text: str) -> int:
        self.handle.write(text[: len(text) // 2])
        self.handle.flush()
        raise OSError(28, "No space left on device")


def exploding_encoder(*args: Any, **kwargs: Any) -> Any:
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("crash", ["encoder raises", "disk fills mid-write"])
def test_a_crash_while_writing_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash: str
) -> None:
    from pflow_trace import api
    from pflow_trace.api import TraceOptions

    target = tmp_path / "run.trace.json"
    path = write_workflow(tmp_path, mixed_workflow())
    run_json(path, "--trace-file", target)
    before = target.read_bytes()
    expected_files = ["run.trace.json", "run.trace.json.checkpoint", "wf.json"]

    with monkeypatch.context() as patch:
        if crash == "encoder raises":
            patch.setattr(trace_file, "encode_json", exploding_encoder)
            patch.setattr(trace_file, "encode_elements", exploding_encoder)
        else:
            real_fdopen = os.fdopen
            patch.setattr(
                trace_file.os, "fdopen", lambda *a, **k: HalfWritingHandle(real_fdopen(*a, **k))
            )
        with pytest.raises(TraceWriteError, match=f"{target}: No space left on device$"):
            trace_file.write_trace(target, load_trace(target))
        assert target.read_bytes() == before
        assert sorted(file.name for file in tmp_path.iterdir()) == expected_files

        outcome = api.run(mixed_workflow(), {}, TraceOptions(trace_file=str(target)))
        assert outcome.status == "success" and outcome.trace_path is None
        expected = f"cannot write the trace file {target}: No space left on device"
        assert outcome.trace_error == expected
        assert target.read_bytes() == before
        assert sorted(file.name for file in tmp_path.iterdir()) == expected_files
    load_trace(target)


# -- one reader for pflow's files and ours ---------------------------------------------------------


def test_pflow_sample_and_our_trace_are_read_by_the_same_reader(tmp_path: Path) -> None:
    from pflow_trace.tracefile.readers import read_trace

    sample = json.loads(PFLOW_JSON_SAMPLE.read_text(encoding="utf-8"))
    _, payload = run_json(write_workflow(tmp_path, mixed_workflow()))
    ours = load_trace(payload["trace_file"])
    # Our file is a superset of pflow 1.2.0: every field pflow writes, we write.
    assert set(sample) <= set(ours)
    for node in ours["nodes"]:
        assert set(sample["nodes"][0]) <= set(node)
    sample_batch = next(
        n
        for n in sample["nodes"]
        if "batch_metadata" in (n["shared_after"].get(n["node_id"]) or {})
    )
    our_batch = event(ours, "each")
    assert set(sample_batch["shared_after"][sample_batch["node_id"]]) == set(
        our_batch["shared_after"]["each"]
    )
    assert set(sample_batch["shared_after"][sample_batch["node_id"]]["batch_metadata"]) == set(
        our_batch["shared_after"]["each"]["batch_metadata"]
    )

    theirs_run = read_trace(PFLOW_JSON_SAMPLE)
    ours_run = read_trace(payload["trace_file"])
    assert theirs_run.format == "pflow" and ours_run.format == "pflow-trace"
    for run, source in ((theirs_run, sample), (ours_run, ours)):
        assert run.format_version == "1.2.0"
        assert run.workflow_name == source["workflow_name"]
        assert run.final_status == source["final_status"]
        assert run.execution_id == source["execution_id"]
        assert run.duration_ms == source["duration_ms"]
        assert [node.node_id for node in run.nodes] == [n["node_id"] for n in source["nodes"]]
        batches = [node.batch for node in run.nodes if node.batch is not None]
        assert batches
        for batch in batches:
            assert batch.execution_mode in ("parallel", "sequential")
            assert batch.count is not None and batch.count > 0
            assert set(batch.reported_timing_ms) == {
                "total_items_ms",
                "avg_item_ms",
                "min_item_ms",
                "max_item_ms",
            }
    assert ours_run.trace_id == ours["otel"]["trace_id"]
    our_batch_info = next(node.batch for node in ours_run.nodes if node.node_id == "each")
    assert our_batch_info is not None and our_batch_info.items is not None
    assert [item.index for item in our_batch_info.items] == [0, 1, 2, 3]
    assert all(item.worker is not None for item in our_batch_info.items)
    # pflow keeps no per-item records: its batches are known through batch_metadata only.
    assert all(node.batch.items is None for node in theirs_run.nodes if node.batch is not None)


# -- the suite-wide check itself -------------------------------------------------------------------


@pytest.mark.no_trace_validation
def test_the_suite_check_rejects_a_broken_trace_and_skips_foreign_files(tmp_path: Path) -> None:
    import conftest

    _, payload = run_json(write_workflow(tmp_path, mixed_workflow()))
    good = Path(payload["trace_file"])
    assert conftest.validate_trace_file(good) is not None

    document = load_trace(good)
    del document["nodes"][1]["batch_items"][0]["worker"]
    broken = tmp_path / "workflow-trace-broken.json"
    broken.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(TraceSchemaError, match=r"\$\.nodes\[1\]\.batch_items\[0\]: 'worker'"):
        conftest.validate_trace_file(broken)

    assert conftest.validate_trace_file(PFLOW_JSON_SAMPLE) is None  # pflow's own: not ours
    not_json = tmp_path / "workflow-trace-cut.json"
    not_json.write_text('{"format_version": "1.2.0", "gener', encoding="utf-8")
    assert conftest.validate_trace_file(not_json) is None
    with pytest.raises(AssertionError, match="not JSON"):
        conftest.validate_trace_file(not_json, written_by_runtime=True)
