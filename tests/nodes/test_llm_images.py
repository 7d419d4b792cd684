"""The ``llm`` node's ``images``: files and URLs sent as attachments through the ``llm``
library, recorded in the trace by path, size and SHA-256 (or URL), never by their bytes.

What pflow-cli 0.16 does (its ``llm`` node, ``pflow guide llm``): ``images`` is a string or a
list of strings; ``http(s)://`` ones are URLs passed on as they are, the rest are paths relative
to the working directory that must exist, else the node fails with "Image file not found".
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from llm_server import chat_server, configure_model
from pflow_trace import api
from pflow_trace.api import TraceOptions
from pflow_trace.errors import WorkflowValidationError
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.observe.export_settings import resolve_export_settings

#: A PNG of one pixel.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def run(params: dict[str, Any], trace_file: Path) -> tuple[Any, dict[str, Any]]:
    document = validate_workflow(
        {
            "ir_version": "0.1.0",
            "name": "images",
            "nodes": [{"id": "look", "type": "llm", "params": params}],
        }
    )
    outcome = api.run(
        document,
        {},
        TraceOptions(
            export=resolve_export_settings("none", env={}),
            trace_file=str(trace_file),
            checkpoint=False,
            join_env_trace_context=False,
        ),
    )
    return outcome, json.loads(trace_file.read_text())


@pytest.fixture
def image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dot.png").write_bytes(PNG)
    return tmp_path / "dot.png"


def test_a_file_reaches_the_model_and_the_trace_holds_its_hash_not_its_bytes(
    image: Path, tmp_path: Path
) -> None:
    params = {"prompt": "what is it?", "model": "echo", "images": ["./dot.png"]}
    outcome, document = run(params, tmp_path / "trace.json")
    assert outcome.status == "success"
    sent = json.loads(outcome.result.shared["look"]["response"])["attachments"]
    assert [attachment["path"] for attachment in sent] == ["dot.png"]
    (node,) = document["nodes"]
    assert node["llm_usage"]["images"] == [
        {"path": "./dot.png", "bytes": len(PNG), "sha256": hashlib.sha256(PNG).hexdigest()}
    ]
    text = (tmp_path / "trace.json").read_text()
    assert base64.b64encode(PNG).decode()[:24] not in text


def test_one_string_is_one_image(image: Path, tmp_path: Path) -> None:
    outcome, document = run(
        {"prompt": "p", "model": "echo", "images": "dot.png"}, tmp_path / "t.json"
    )
    assert outcome.status == "success"
    assert [entry["path"] for entry in document["nodes"][0]["llm_usage"]["images"]] == ["dot.png"]


def test_a_missing_file_fails_the_node_in_one_line(image: Path, tmp_path: Path) -> None:
    outcome, document = run(
        {"prompt": "p", "model": "echo", "images": ["./gone.png"]}, tmp_path / "t.json"
    )
    assert outcome.status == "failed"
    assert document["nodes"][0]["error"] == "llm: image file not found: ./gone.png"


def test_a_type_the_model_does_not_take_fails_in_one_line(image: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    outcome, document = run(
        {"prompt": "p", "model": "echo", "images": ["notes.txt"]}, tmp_path / "t.json"
    )
    assert outcome.status == "failed"
    error = document["nodes"][0]["error"]
    assert "text/plain" in error and "\n" not in error


@pytest.mark.parametrize("images", [3, [3], {"path": "x.png"}])
def test_a_bad_shape_is_refused_by_validation(images: Any) -> None:
    with pytest.raises(WorkflowValidationError) as caught:
        validate_workflow(
            {
                "ir_version": "0.1.0",
                "nodes": [{"id": "a", "type": "llm", "params": {"prompt": "p", "images": images}}],
            }
        )
    assert all("\n" not in problem for problem in caught.value.problems)
    assert any("params.images" in problem for problem in caught.value.problems)


def test_files_and_urls_reach_an_openai_compatible_server(
    image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_dir = tmp_path / "llm-user"
    monkeypatch.setenv("LLM_USER_PATH", str(user_dir))
    with chat_server() as (api_base, log):
        configure_model(user_dir, api_base)
        params = {
            "prompt": "compare these",
            "model": "local-gpt",
            "images": ["dot.png", "https://example.invalid/cat.png"],
        }
        outcome, document = run(params, tmp_path / "t.json")
    assert outcome.status == "success", document["nodes"][0].get("error")
    (request,) = log.requests
    (message,) = [m for m in request["body"]["messages"] if m["role"] == "user"]
    urls = [part["image_url"]["url"] for part in message["content"] if part["type"] == "image_url"]
    assert urls[0] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert urls[1] == "https://example.invalid/cat.png"
    assert document["nodes"][0]["llm_usage"]["images"][1] == {
        "url": "https://example.invalid/cat.png"
    }
