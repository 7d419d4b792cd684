"""Where MCP servers are configured, and which server and tool an ``mcp-…`` node type names.

The file is pflow's own: ``~/.pflow/mcp-servers.json`` (or the file named by
``PFLOW_TRACE_MCP_CONFIG``), in the standard ``mcpServers`` format — ``command`` / ``args`` /
``env`` for a stdio server, ``"type": "http"`` with ``url`` / ``headers`` for streamable HTTP.
``${VAR}`` and ``${VAR:-default}`` in any string are read from the environment when the server
starts, as pflow does. A node type is ``mcp-<server>-<tool>``; a server name may hold dashes,
so the longest configured server name that prefixes the type wins (pflow's rule).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The environment variable naming the config file (pflow's location when unset).
ENV_MCP_CONFIG = "PFLOW_TRACE_MCP_CONFIG"
DEFAULT_CONFIG_PATH = "~/.pflow/mcp-servers.json"
TYPE_PREFIX = "mcp-"
TRANSPORT_STDIO = "stdio"
TRANSPORT_HTTP = "http"

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
#: Header schemes whose token is learned on its own too (``Bearer abc`` → ``abc``).
_SCHEME = re.compile(r"^(?:bearer|basic|token)\s+(\S+)$", re.IGNORECASE)


class McpConfigError(Exception):
    """The config file, or one server's entry in it, cannot be used; ``str`` is one line."""


@dataclass(frozen=True)
class ServerConfig:
    """One configured server, its ``${VAR}`` references expanded."""

    name: str
    transport: str
    config: dict[str, Any]

    def fingerprint(self) -> str:
        """Equal for two configs that start the same server (a session may be reused)."""
        return json.dumps([self.name, self.config], sort_keys=True, default=str)


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get(ENV_MCP_CONFIG) or DEFAULT_CONFIG_PATH).expanduser()


def load_servers(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """The ``mcpServers`` entries of the file as written; none when the file does not exist."""
    path = path or config_path()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not valid JSON"
        raise McpConfigError(f"MCP config {path}: {reason}") from None
    servers = document.get("mcpServers") if isinstance(document, dict) else None
    if not isinstance(servers, dict):
        raise McpConfigError(f"MCP config {path}: no 'mcpServers' object")
    return {name: entry for name, entry in servers.items() if isinstance(entry, dict)}


def split_type(type_name: str, server_names: Iterable[str]) -> tuple[str, str] | None:
    """``mcp-my-server-echo`` → ``("my-server", "echo")`` by the longest configured server."""
    if not type_name.startswith(TYPE_PREFIX):
        return None
    rest = type_name[len(TYPE_PREFIX) :]
    matches = [name for name in server_names if rest.startswith(f"{name}-")]
    if not matches:
        return None
    server = max(matches, key=len)
    tool = rest[len(server) + 1 :]
    return (server, tool) if tool else None


def type_problem(type_name: str) -> str | None:
    """Why an ``mcp-…`` type names no configured server's tool, in one line; None if it does."""
    try:
        servers = load_servers()
    except McpConfigError as exc:
        return str(exc)
    if split_type(type_name, servers) is not None:
        return None
    where = config_path()
    if not servers:
        return f"no MCP servers are configured (looked in {where}; {ENV_MCP_CONFIG} names another)"
    known = ", ".join(sorted(servers))
    return f"no configured MCP server matches '{type_name}' (in {where}: {known})"


def expand(value: Any, environ: Mapping[str, str], server: str) -> Any:
    """``${VAR}`` / ``${VAR:-default}`` in every string of a config value, from ``environ``."""
    if isinstance(value, str):

        def variable(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise McpConfigError(
                f"environment variable {name} is not set "
                f"(the config of MCP server '{server}' refers to it)"
            )

        return _VARIABLE.sub(variable, value)
    if isinstance(value, dict):
        return {key: expand(item, environ, server) for key, item in value.items()}
    if isinstance(value, list):
        return [expand(item, environ, server) for item in value]
    return value


def server_config(name: str, entry: dict[str, Any], environ: Mapping[str, str]) -> ServerConfig:
    """One entry, checked and expanded; a missing ``command`` or ``url`` is one line."""
    transport = str(entry.get("type") or TRANSPORT_STDIO).lower()
    if transport in ("streamable-http", "streamable_http"):
        transport = TRANSPORT_HTTP
    if transport not in (TRANSPORT_STDIO, TRANSPORT_HTTP):
        raise McpConfigError(f"MCP server '{name}': type '{transport}' is not stdio or http")
    needed = "command" if transport == TRANSPORT_STDIO else "url"
    if not isinstance(entry.get(needed), str) or not entry[needed]:
        kind = "a stdio server" if transport == TRANSPORT_STDIO else "an http server"
        raise McpConfigError(f"MCP server '{name}': {kind} needs '{needed}'")
    return ServerConfig(name, transport, expand(entry, environ, name))


def secret_values(entry: dict[str, Any], environ: Mapping[str, str]) -> list[str]:
    """What a server entry holds that must never be written: its env values and headers.

    Every value of ``env`` and ``headers`` counts, expanded (a variable that is not set is
    skipped: the server will not start, and nothing holds its value), with a header's token
    apart from its scheme too, since a tool may echo only the token.
    """
    found: list[str] = []
    for section in ("env", "headers"):
        values = entry.get(section)
        if not isinstance(values, dict):
            continue
        for raw in values.values():
            try:
                value = expand(raw, environ, "")
            except McpConfigError:
                continue
            if isinstance(value, str) and value:
                found.append(value)
                scheme = _SCHEME.match(value.strip())
                if scheme:
                    found.append(scheme.group(1))
    return found


def workflow_secrets(
    node_types: Iterable[str], environ: Mapping[str, str] | None = None
) -> list[str]:
    """The secrets of every server the given node types use (none when nothing is configured)."""
    environ = os.environ if environ is None else environ
    wanted = [name for name in node_types if name.startswith(TYPE_PREFIX)]
    if not wanted:
        return []
    try:
        servers = load_servers(config_path(environ))
    except McpConfigError:
        return []
    used = {parts[0] for name in wanted if (parts := split_type(name, servers)) is not None}
    return [value for server in sorted(used) for value in secret_values(servers[server], environ)]
