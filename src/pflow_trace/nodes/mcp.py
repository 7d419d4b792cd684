"""MCP tool nodes: ``mcp-<server>-<tool>`` calls one tool of a configured MCP server.

Named, configured and shaped as pflow's MCP nodes are (``docs/mcp.md``): the params are the
tool's arguments, plus ``timeout`` (seconds, 30) which is never sent; the output is ``result``
— the tool's ``structuredContent`` when it sends one, else its content blocks (text parsed as
JSON when it is JSON; one block alone, several as a list). A result with ``isError`` set, a
server that does not start, a tool the server does not have and a call that times out fail
the node with one line, and write ``error`` and ``error_details`` as pflow does, so an
``error`` edge can route them. Every call is a span of its own, a child of the node span,
with OpenTelemetry's MCP attributes. The session is shared (``mcp_sessions.py``).
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any, ClassVar
from urllib.parse import urlsplit

from opentelemetry.trace import SpanKind, Status, StatusCode

from pflow_trace.nodes.base import (
    CallTracing,
    NodeFailure,
    WorkflowNode,
    current_call_tracing,
    exception_line,
)
from pflow_trace.nodes.mcp_config import (
    TRANSPORT_HTTP,
    McpConfigError,
    ServerConfig,
    load_servers,
    server_config,
    split_type,
)
from pflow_trace.nodes.mcp_sessions import McpUnavailable, Session, pool
from pflow_trace.observe import conventions as conv

DEFAULT_TIMEOUT_S = 30.0
#: Params of every MCP node that belong to the node, not the tool.
NODE_PARAMS = frozenset({"timeout", "result_format"})
#: ``result_format`` value: the one fenced JSON block of a text result becomes ``result``.
JSON_BLOCK = "json_block"
#: A ```json fence line, its body, and the next ``` fence line (pflow's pattern: a JSON body
#: holds no raw newline, so no line inside it can start with ```).
_JSON_FENCE = re.compile(
    r"^[ \t]*```json[ \t]*\r?\n(.*?)^[ \t]*```[ \t]*\r?$", re.MULTILINE | re.DOTALL | re.IGNORECASE
)


class McpToolNode(WorkflowNode):
    """Base of the generated ``mcp-<server>-<tool>`` types; subclasses set the two names."""

    server_name: ClassVar[str] = ""
    tool_name: ClassVar[str] = ""
    output_keys: ClassVar[frozenset[str] | None] = frozenset({"result", "error", "error_details"})
    #: The session lives in this process; a worker process would start a server per worker.
    ships_to_workers: ClassVar[bool] = False

    def prepare(self) -> None:
        """Start the server's session before a batch's clock starts: a server takes seconds
        to start, and inside the first item of each lane it would read as slow items. A
        failure here is left to the items to report, each with the same one line."""
        try:
            pool.session(self._server())
        except (NodeFailure, McpUnavailable):
            pass

    def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        timeout_s = _timeout_s(params.get("timeout", DEFAULT_TIMEOUT_S))
        result_format = params.get("result_format")
        if result_format is not None and result_format != JSON_BLOCK:
            raise NodeFailure(
                f"mcp: 'result_format' {result_format!r} is not supported: the one value is "
                f"'{JSON_BLOCK}'; leave it out to keep the tool's result as returned"
            )
        arguments = {
            key: value
            for key, value in params.items()
            if not key.startswith("__") and key not in NODE_PARAMS
        }
        server = self._server()
        tracing = current_call_tracing.get()
        span = _start_span(tracing, server, self.tool_name)
        try:
            result = self._call(server, arguments, timeout_s, span)
            if result_format == JSON_BLOCK and result.structuredContent is None:
                outputs = {"result": self._json_block(result)}
            else:
                outputs = {"result": extract_result(result)}
        except BaseException as exc:
            if span is not None and tracing is not None:
                _end_failed(span, tracing, exc)
            raise
        if span is not None:
            span.end()
        return outputs

    def _server(self) -> ServerConfig:
        try:
            entry = load_servers().get(self.server_name)
            if entry is None:
                raise McpConfigError(f"MCP server '{self.server_name}' is no longer configured")
            return server_config(self.server_name, entry, os.environ)
        except McpConfigError as exc:
            message = f"mcp: {self.server_name}/{self.tool_name}: {exc}"
            raise NodeFailure(message, outputs=self._error_outputs(message)) from None

    def _call(
        self, server: ServerConfig, arguments: dict[str, Any], timeout_s: float, span: Any
    ) -> Any:
        """The tool's ``CallToolResult``; every way the call can fail is a one-line failure."""
        where = f"mcp: {server.name}/{self.tool_name}"
        try:
            session = pool.session(server)
        except McpUnavailable as exc:
            raise self._failure(f"{where}: {exc}", "server_unavailable") from None
        if span is not None:
            span.set_attributes(_session_attributes(session))
        if self.tool_name not in session.tool_names:
            known = ", ".join(session.tool_names) or "none"
            raise self._failure(
                f"{where}: server '{server.name}' has no tool '{self.tool_name}' "
                f"(its tools: {known})",
                "tool_not_found",
            )
        started = time.monotonic()
        try:
            result = pool.call(session, self.tool_name, arguments, timeout_s)
        except Exception as exc:
            waited = time.monotonic() - started
            if _is_timeout(exc) or waited >= timeout_s:
                message = f"{where}: no answer within {timeout_s:g} s (the 'timeout' param)"
                raise self._failure(message, "timeout") from None
            raise self._failure(f"{where}: {exception_line(exc)}", type(exc).__name__) from None
        if result.isError:
            message = _error_text(result)
            failure = self._failure(
                f"{where}: the tool reported an error: {message}", conv.MCP_ERROR_TOOL
            )
            failure.outputs = {"error": message, "error_details": self._details(True)}
            raise failure
        return result

    def _json_block(self, result: Any) -> Any:
        """The single fenced JSON block of a text-only result (pflow's ``json_block``)."""
        where = f"mcp: {self.server_name}/{self.tool_name}: result_format '{JSON_BLOCK}'"
        kinds = sorted({str(getattr(block, "type", "?")) for block in result.content or []})
        if kinds != ["text"]:
            found = ", ".join(kinds) or "no"
            raise self._failure(
                f"{where} needs a text-only result; it has {found} content", "result_format"
            )
        text = "\n".join(block.text for block in result.content)
        bodies = _JSON_FENCE.findall(text)
        if len(bodies) != 1:
            message = f"{where} needs exactly one ```json block; the text has {len(bodies)}"
            raise self._failure(message, "result_format")
        try:
            return json.loads(bodies[0])
        except ValueError as exc:
            raise self._failure(
                f"{where}: the block is not valid JSON ({exc})", "result_format"
            ) from None

    def _details(self, tool_error: bool = False) -> dict[str, Any]:
        details: dict[str, Any] = {"server": self.server_name, "tool": self.tool_name}
        if tool_error:
            details["is_tool_error"] = True
        return details

    def _error_outputs(self, message: str) -> dict[str, Any]:
        return {"error": message, "error_details": self._details()}

    def _failure(self, message: str, error_type: str) -> NodeFailure:
        failure = NodeFailure(message, outputs=self._error_outputs(message))
        failure.error_type = error_type  # type: ignore[attr-defined]
        return failure


def _timeout_s(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = 0.0
    if not seconds > 0:
        raise NodeFailure(f"mcp: 'timeout' must be a positive number of seconds, not {value!r}")
    return seconds


def _is_timeout(exc: BaseException) -> bool:
    from mcp.shared.exceptions import McpError

    if isinstance(exc, TimeoutError):
        return True
    return isinstance(exc, McpError) and "timed out" in str(exc).lower()


def node_class(type_name: str) -> type[McpToolNode] | None:
    """The node class of an ``mcp-<server>-<tool>`` type, or None when no server matches."""
    try:
        servers = load_servers()
    except McpConfigError:
        return None
    parts = split_type(type_name, servers)
    if parts is None:
        return None
    attributes = {"type_name": type_name, "server_name": parts[0], "tool_name": parts[1]}
    return type(f"McpToolNode[{type_name}]", (McpToolNode,), attributes)


# -- the tool's result, as pflow gives it ---------------------------------------------------


def extract_result(result: Any) -> Any:
    """``structuredContent`` when sent; else one content block's value, or several as a list."""
    if getattr(result, "structuredContent", None) is not None:
        return result.structuredContent
    values = [_block_value(block) for block in result.content or []]
    return values[0] if len(values) == 1 else values


def _block_value(block: Any) -> Any:
    """Text (parsed when it is JSON), or any other block as its MCP JSON."""
    if getattr(block, "type", None) == "text":
        return _maybe_json(block.text)
    return block.model_dump(mode="json", by_alias=True, exclude_none=True)


def _maybe_json(text: str) -> Any:
    stripped = text.strip()
    if not stripped or stripped[0] not in '{["-0123456789tfn':
        return text
    try:
        return json.loads(stripped)
    except ValueError:
        return text


def _error_text(result: Any) -> str:
    """The first text block of an ``isError`` result, on one line."""
    for block in result.content or []:
        if getattr(block, "type", None) == "text" and block.text.strip():
            return " | ".join(line.strip() for line in block.text.splitlines() if line.strip())
    return "Tool execution failed"


# -- the call's span -----------------------------------------------------------------------


def _start_span(tracing: CallTracing | None, server: ServerConfig, tool: str) -> Any:
    """``tools/call <tool>``, a client span under the node span (None outside a traced run)."""
    if tracing is None:
        return None
    attributes: dict[str, Any] = {
        conv.MCP_METHOD_NAME: conv.MCP_METHOD_TOOLS_CALL,
        conv.GEN_AI_OPERATION_NAME: conv.GEN_AI_OPERATION_EXECUTE_TOOL,
        conv.GEN_AI_TOOL_NAME: tool,
        conv.ATTR_MCP_SERVER: server.name,
    }
    if server.transport == TRANSPORT_HTTP:
        url = urlsplit(str(server.config.get("url", "")))
        attributes[conv.NETWORK_TRANSPORT] = "tcp"
        attributes[conv.NETWORK_PROTOCOL_NAME] = "http"
        if url.hostname:
            attributes[conv.SERVER_ADDRESS] = url.hostname
        port = url.port or (443 if url.scheme == "https" else 80)
        attributes[conv.SERVER_PORT] = port
    else:
        attributes[conv.NETWORK_TRANSPORT] = "pipe"
    redact = tracing.sanitizer.redactor.text
    safe = {
        key: redact(value) if isinstance(value, str) else value for key, value in attributes.items()
    }
    name = redact(f"{conv.MCP_METHOD_TOOLS_CALL} {tool}")
    return tracing.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=safe)


def _session_attributes(session: Session) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if session.protocol_version:
        attributes[conv.MCP_PROTOCOL_VERSION] = session.protocol_version
    if session.session_id:
        attributes[conv.MCP_SESSION_ID] = session.session_id
    return attributes


def _end_failed(span: Any, tracing: CallTracing, exc: BaseException) -> None:
    """ERROR with the failure's class (``tool_error``, ``timeout``…) and its redacted line."""
    error_type = getattr(exc, "error_type", "") or type(exc).__name__
    message = exc.message if isinstance(exc, NodeFailure) else exception_line(exc)
    span.set_attribute(conv.ATTR_ERROR_TYPE, tracing.sanitizer.redactor.text(error_type))
    span.set_status(Status(StatusCode.ERROR, tracing.sanitizer.text(message)))
    span.end()
