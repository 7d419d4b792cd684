"""A param read from a file is recorded on its node by path (as written) and sha256.

pflow reads ``- command: ./scripts/x.sh``, ``prompt: ./prompts/x.prompt.md`` and the like as the
file's text when it loads a workflow; here the same load keeps which file each param came from,
and the trace record (``files``), the node span (``pflow.node.files``) and ``show --json`` say
so — never with the file's text.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import pflow_trace
from pflow_trace.ir.loading import load_and_validate
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.export_settings import resolve_export_settings
from pflow_trace.report.stats import build_summary
from pflow_trace.tracefile.readers import read_trace

SCRIPT = "printf 'from the script'\n"
PROMPT = "Say the secret word: kumquat.\n"

MARKDOWN = """# Files

Runs a script file and sends a prompt file.

## Steps

### script

Runs the script's text.

- type: shell
- command: ./scripts/say.sh

### ask

Sends the prompt file's text.

- type: llm
- model: echo
- prompt: ./prompts/ask.prompt.md

### plain

Reads no file.

- type: shell
- command: echo plain
"""

JSON_IR = {
    "ir_version": "0.1.0",
    "nodes": [
        {"id": "script", "type": "shell", "params": {"command": "./scripts/say.sh"}},
        {
            "id": "ask",
            "type": "llm",
            "params": {"model": "echo", "prompt": "./prompts/ask.prompt.md"},
            # A file's own value is replaced by what loading read.
            "_files": [{"param": "prompt", "path": "./x", "sha256": "0" * 64, "bytes": 1}],
        },
        {"id": "plain", "type": "shell", "params": {"command": "echo plain"}},
    ],
    "edges": [{"from": "script", "to": "ask"}, {"from": "ask", "to": "plain"}],
}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


EXPECTED = {
    "script": [
        {
            "param": "command",
            "path": "./scripts/say.sh",
            "sha256": sha256(SCRIPT),
            "bytes": len(SCRIPT),
        }
    ],
    "ask": [
        {
            "param": "prompt",
            "path": "./prompts/ask.prompt.md",
            "sha256": sha256(PROMPT),
            "bytes": len(PROMPT),
        }
    ],
}


def workflow_file(folder: Path, form: str) -> Path:
    (folder / "scripts").mkdir()
    (folder / "prompts").mkdir()
    (folder / "scripts" / "say.sh").write_text(SCRIPT, encoding="utf-8")
    (folder / "prompts" / "ask.prompt.md").write_text(PROMPT, encoding="utf-8")
    if form == "markdown":
        path = folder / "files.pflow.md"
        path.write_text(MARKDOWN, encoding="utf-8")
    else:
        path = folder / "files.json"
        path.write_text(json.dumps(JSON_IR), encoding="utf-8")
    return path


def run_traced(path: Path, folder: Path) -> tuple[Any, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    options = pflow_trace.TraceOptions(
        trace_dir=str(folder / "traces"),
        export=resolve_export_settings("none"),
        extra_processors=[SimpleSpanProcessor(exporter)],
    )
    return pflow_trace.run(path, None, options), exporter


@pytest.mark.parametrize("form", ["markdown", "json"])
def test_trace_record_and_span_name_each_file_by_path_and_sha256(tmp_path: Path, form: str) -> None:
    outcome, exporter = run_traced(workflow_file(tmp_path, form), tmp_path)
    assert outcome.result.status == "success"
    # The file's text is what ran: the script's output, the prompt with its trailing newline.
    assert outcome.result.shared["script"]["stdout"] == "from the script"
    assert PROMPT.strip() in outcome.result.shared["ask"]["response"]

    document = json.loads(outcome.trace_path.read_text("utf-8"))
    records = {event["node_id"]: event for event in document["nodes"]}
    assert {node: records[node].get("files") for node in records} == {
        "script": EXPECTED["script"],
        "ask": EXPECTED["ask"],
        "plain": None,
    }

    spans = {
        span.attributes[conv.ATTR_NODE_ID]: span.attributes
        for span in exporter.get_finished_spans()
        if span.attributes.get(conv.ATTR_LAYER) == conv.LAYER_INSTRUMENTED
    }
    assert list(spans["script"][conv.ATTR_NODE_FILES]) == [
        f"command=./scripts/say.sh@{sha256(SCRIPT)}"
    ]
    assert list(spans["ask"][conv.ATTR_NODE_FILES]) == [
        f"prompt=./prompts/ask.prompt.md@{sha256(PROMPT)}"
    ]
    assert conv.ATTR_NODE_FILES not in spans["plain"]
    # Never the text: neither the record's files nor any span attribute quotes the file.
    assert "kumquat" not in json.dumps(records["ask"]["files"])
    assert not any("kumquat" in str(value) for value in spans["ask"].values())


def test_show_json_lists_the_files_of_each_node(tmp_path: Path) -> None:
    outcome, _ = run_traced(workflow_file(tmp_path, "markdown"), tmp_path)
    summary = build_summary([read_trace(outcome.trace_path)]).to_dict()
    files = {node["node_id"]: node["files"] for node in summary["runs"][0]["nodes"]}
    assert files == {"script": EXPECTED["script"], "ask": EXPECTED["ask"], "plain": []}


def test_a_loaded_workflow_with_its_records_validates_again(tmp_path: Path) -> None:
    """A resumed run validates the workflow its checkpoint kept, records included."""
    loaded = load_and_validate(workflow_file(tmp_path, "json"))
    again = validate_workflow(json.loads(json.dumps(loaded)))
    assert [node.get("_files") for node in again["nodes"]] == [
        EXPECTED["script"],
        EXPECTED["ask"],
        None,
    ]
