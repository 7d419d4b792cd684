"""The MCP config alone: reading pflow's file, naming a server's tools, and its secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pflow_trace.errors import WorkflowValidationError
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.nodes.mcp import McpToolNode
from pflow_trace.nodes.mcp_config import (
    DEFAULT_CONFIG_PATH,
    ENV_MCP_CONFIG,
    McpConfigError,
    config_path,
    expand,
    secret_values,
    server_config,
    split_type,
    workflow_secrets,
)
from pflow_trace.nodes.registry import NodeRegistry


def test_the_config_is_pflows_file_unless_the_variable_names_another() -> None:
    assert config_path({}) == Path(DEFAULT_CONFIG_PATH).expanduser()
    assert config_path({ENV_MCP_CONFIG: "/srv/mcp.json"}) == Path("/srv/mcp.json")


def test_the_longest_configured_server_name_wins() -> None:
    servers = ["test", "test-with-dashes"]
    assert split_type("mcp-test-with-dashes-echo", servers) == ("test-with-dashes", "echo")
    assert split_type("mcp-test-echo_all", servers) == ("test", "echo_all")
    assert split_type("mcp-test-", servers) is None
    assert split_type("mcp-other-echo", servers) is None
    assert split_type("shell", servers) is None


def test_variables_expand_with_defaults_and_a_missing_one_is_named() -> None:
    environ = {"TOKEN": "abc"}
    assert expand({"a": ["${TOKEN}-x", "${NOPE:-fallback}"]}, environ, "s") == {
        "a": ["abc-x", "fallback"]
    }
    with pytest.raises(McpConfigError, match="environment variable NOPE is not set"):
        expand("${NOPE}", environ, "s")


def test_an_entry_without_its_command_or_url_is_one_line() -> None:
    with pytest.raises(McpConfigError, match="a stdio server needs 'command'"):
        server_config("s", {"args": []}, {})
    with pytest.raises(McpConfigError, match="an http server needs 'url'"):
        server_config("s", {"type": "http"}, {})
    with pytest.raises(McpConfigError, match="type 'sse' is not stdio or http"):
        server_config("s", {"type": "sse", "url": "http://x"}, {})


def test_env_values_and_headers_are_secrets_with_a_bearer_token_apart() -> None:
    entry = {
        "command": "server",
        "env": {"API_KEY": "${KEY}", "MISSING": "${NOT_SET}"},
        "headers": {"Authorization": "Bearer tok-123456"},
    }
    found = secret_values(entry, {"KEY": "k-9"})
    assert found == ["k-9", "Bearer tok-123456", "tok-123456"]


def test_a_workflow_learns_only_the_servers_it_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mcp.json"
    servers = {
        "a": {"command": "x", "env": {"K": "aaaa"}},
        "b": {"command": "y", "env": {"K": "bbbb"}},
    }
    path.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
    environ = {ENV_MCP_CONFIG: str(path)}
    assert workflow_secrets(["mcp-a-tool", "shell"], environ) == ["aaaa"]
    assert workflow_secrets(["shell"], environ) == []


def test_the_registry_makes_a_type_per_server_tool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {"my-srv": {"command": "x"}}}), encoding="utf-8")
    monkeypatch.setenv(ENV_MCP_CONFIG, str(path))
    found = NodeRegistry().get("mcp-my-srv-do_it")
    assert found is not None and issubclass(found, McpToolNode)
    assert (found.type_name, found.server_name, found.tool_name) == (
        "mcp-my-srv-do_it",
        "my-srv",
        "do_it",
    )
    assert NodeRegistry().get("mcp-elsewhere-do_it") is None


def test_a_config_that_is_not_json_is_one_validation_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mcp.json"
    path.write_text("{not json", encoding="utf-8")
    monkeypatch.setenv(ENV_MCP_CONFIG, str(path))
    with pytest.raises(WorkflowValidationError) as caught:
        validate_workflow(
            {"ir_version": "0.1.0", "nodes": [{"id": "n", "type": "mcp-a-b", "params": {}}]}
        )
    assert caught.value.problems == [
        f"nodes[0].type: unknown node type 'mcp-a-b': MCP config {path}: not valid JSON"
    ]


def test_a_batch_of_mcp_calls_is_refused_on_worker_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {"s": {"command": "x"}}}), encoding="utf-8")
    monkeypatch.setenv(ENV_MCP_CONFIG, str(path))
    node = {"id": "n", "type": "mcp-s-t", "params": {}}
    node["batch"] = {"items": [1, 2], "parallel": True, "executor": "processes"}
    with pytest.raises(WorkflowValidationError) as caught:
        validate_workflow({"ir_version": "0.1.0", "nodes": [node]})
    assert "must run in the run's own process" in caught.value.problems[0]
