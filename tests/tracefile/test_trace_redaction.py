"""Integration: what the trace file hides — root keys, secret node ids, values learned late,
user key patterns and switched-off previews."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pflow_trace import api
from pflow_trace.api import TraceOptions
from pflow_trace.cli.main import cli
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.export_settings import resolve_export_settings
from pflow_trace.observe.redaction import REDACTED
from pflow_trace.observe.sanitize import NO_PREVIEW


def options(tmp_path: Path, **extra: Any) -> TraceOptions:
    return TraceOptions(
        export=resolve_export_settings("none", env={}),
        trace_file=str(tmp_path / "trace.json"),
        **extra,
    )


def events(tmp_path: Path) -> dict[str, dict[str, Any]]:
    document = json.loads((tmp_path / "trace.json").read_text(encoding="utf-8"))
    return {event["node_id"]: event for event in document["nodes"]}


def test_root_inputs_and_a_secret_node_id_are_hidden_by_name_and_value(tmp_path: Path) -> None:
    workflow = {
        "ir_version": "0.1.0",
        "name": "root-keys",
        "inputs": {"api_key": {"type": "string"}, "db_password": {"type": "string"}},
        "nodes": [
            {"id": "get_token", "type": "echo", "params": {"value": "node-secret-4242"}},
            {
                "id": "use",
                "type": "echo",
                "params": {"line": "${api_key}/${db_password}/${get_token.value}"},
            },
        ],
        "outputs": {"line": "${use.line}"},
    }
    inputs = {"api_key": "root-key-1111", "db_password": "root-pass-2222"}
    outcome = api.run(workflow, inputs, options(tmp_path))
    assert outcome.status == "success"
    assert outcome.outputs == {"line": f"{REDACTED}/{REDACTED}/{REDACTED}"}
    use = events(tmp_path)["use"]
    assert use["shared_before"] == {
        "api_key": REDACTED,
        "db_password": REDACTED,
        "get_token": REDACTED,
    }
    assert use["template_resolutions"]["line"]["resolved"] == "/".join([REDACTED] * 3)
    assert "node-secret-4242" not in (tmp_path / "trace.json").read_text(encoding="utf-8")


def test_a_value_learned_late_is_hidden_in_what_was_recorded_before(tmp_path: Path) -> None:
    token = "tok-learned-late-98765"
    workflow = {
        "ir_version": "0.1.0",
        "name": "late",
        "nodes": [
            {"id": "early", "type": "echo", "params": {"note": f"saw {token}"}},
            {
                "id": "items",
                "type": "echo",
                "params": {"value": "${item}", "fail_if": 2, "message": f"item 2 had {token}"},
                "batch": {"items": [1, 2], "error_handling": "continue"},
            },
            {"id": "login", "type": "echo", "params": {"session": {"refresh_token": token}}},
        ],
    }
    api.run(workflow, {}, options(tmp_path))
    text = (tmp_path / "trace.json").read_text(encoding="utf-8")
    assert token not in text
    recorded = events(tmp_path)
    assert recorded["early"]["shared_after"]["early"]["note"] == f"saw {REDACTED}"
    assert recorded["items"]["batch_items"][1]["error"] == f"item 2 had {REDACTED}"


def test_user_key_patterns_from_the_flag_and_the_environment(tmp_path: Path) -> None:
    workflow = tmp_path / "wf.json"
    workflow.write_text(
        json.dumps(
            {
                "ir_version": "0.1.0",
                "name": "patterns",
                "nodes": [
                    {
                        "id": "person",
                        "type": "echo",
                        "params": {"ssn": "123-45-6789", "IBAN_number": "DE00123", "name": "Ada"},
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    trace = tmp_path / "trace.json"
    result = CliRunner().invoke(
        cli,
        ["run", str(workflow), "--redact-key", "^ssn$", "--output-format", "json",
         "--trace-file", str(trace)],
        env={"PFLOW_TRACE_REDACT_KEYS": "iban"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    expected = {"ssn": REDACTED, "IBAN_number": REDACTED, "name": "Ada"}
    assert json.loads(result.stdout)["nodes"]["person"] == expected
    assert events(tmp_path)["person"]["shared_after"]["person"] == expected
    bad = CliRunner().invoke(cli, ["run", str(workflow), "--redact-key", "(", "--no-trace-file"])
    assert bad.exit_code == 2 and "--redact-key '(' is not a valid regex" in bad.stderr


def test_no_previews_leaves_item_values_out_of_spans_trace_and_show(tmp_path: Path) -> None:
    workflow = {
        "ir_version": "0.1.0",
        "name": "no-previews",
        "nodes": [
            {
                "id": "each",
                "type": "echo",
                "params": {"value": "${item}"},
                "batch": {"items": ["patient-ada", "patient-grace"]},
            }
        ],
    }
    exporter = InMemorySpanExporter()
    processors = [SimpleSpanProcessor(exporter)]
    api.run(workflow, {}, options(tmp_path, previews=False, extra_processors=processors))
    item_spans = [
        span
        for span in exporter.get_finished_spans()
        if (span.attributes or {}).get(conv.ATTR_LAYER) == conv.LAYER_BATCH_ITEM
    ]
    assert [span.attributes[conv.ATTR_BATCH_ITEM_PREVIEW] for span in item_spans] == [
        NO_PREVIEW
    ] * 2
    assert [item["item"] for item in events(tmp_path)["each"]["batch_items"]] == [NO_PREVIEW] * 2
    shown = CliRunner().invoke(cli, ["show", str(tmp_path / "trace.json")])
    assert shown.exit_code == 0 and "patient-" not in shown.stdout


def test_a_value_learned_late_is_hidden_in_spooled_rows_and_batch_items(tmp_path: Path) -> None:
    token = "tok-learned-late-24680"
    values = [f"plain {n}" for n in range(3000)]  # several spooled blocks of both lists
    values[2500] = f"has {token}"
    workflow = {
        "ir_version": "0.1.0",
        "name": "late-spooled",
        "nodes": [
            {
                "id": "items",
                "type": "echo",
                "params": {"value": "${item}"},
                "batch": {"items": values},
            },
            {"id": "login", "type": "echo", "params": {"session": {"refresh_token": token}}},
        ],
    }
    outcome = api.run(workflow, {}, options(tmp_path))
    text = (tmp_path / "trace.json").read_text(encoding="utf-8")
    assert token not in text
    document = json.loads(text)
    assert document == outcome.document
    items = {event["node_id"]: event for event in document["nodes"]}["items"]["batch_items"]
    assert items[2500]["item"] == f"has {REDACTED}"
    assert [item["item"] for item in items[:2]] == ["plain 0", "plain 1"]
    rows = document["otel"]["spans"]["rows"]
    previews = [(row[7] or {}).get(conv.ATTR_BATCH_ITEM_PREVIEW) for row in rows]
    assert f"has {REDACTED}" in previews and "plain 2999" in previews
