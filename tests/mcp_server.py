"""A small MCP server for the tests, written with the ``mcp`` SDK the nodes use.

``python tests/mcp_server.py`` serves over stdio; ``python tests/mcp_server.py --http`` serves
streamable HTTP on 127.0.0.1 at a free port, which it prints as its first line of stdout.
Tools: ``echo``, ``fenced`` (prose around a fenced JSON block), ``fail`` (an ``isError``
result), ``env_secret`` (the value of ``MCP_TEST_SECRET`` in the server's environment),
``auth_header`` (the request's ``Authorization`` header, over HTTP), ``session`` (which
server process and session answered) and ``sleep``. Only ``session`` sends
``structuredContent``; the others answer in text.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys

from mcp.server.fastmcp import Context, FastMCP

server = FastMCP("pflow-trace-test", host="127.0.0.1", log_level="WARNING")


@server.tool(structured_output=False)
def echo(text: str) -> str:
    """Answer with the text given."""
    return text


@server.tool(structured_output=False)
def fenced(body: str) -> str:
    """Answer with ``body`` inside a fenced json block, wrapped in prose."""
    return f"Here is the answer:\n```json\n{body}\n```\nDone."


@server.tool(structured_output=False)
def fail(message: str) -> str:
    """Fail with the message given (the result has ``isError`` set)."""
    raise ValueError(message)


@server.tool(structured_output=False)
def env_secret() -> str:
    """Reveal the secret the server was started with."""
    return f"the secret is {os.environ.get('MCP_TEST_SECRET', '')}"


@server.tool(structured_output=False)
def auth_header(ctx: Context) -> str:
    """Reveal the request's Authorization header (streamable HTTP only)."""
    request = ctx.request_context.request
    headers = getattr(request, "headers", {}) or {}
    return f"you sent {headers.get('authorization', '')}"


@server.tool()
def session(ctx: Context) -> dict[str, int]:
    """Which process and which session answered: one session per client, one pid per server."""
    return {"pid": os.getpid(), "session": id(ctx.session)}


@server.tool(structured_output=False)
async def sleep(seconds: float) -> str:
    """Answer after ``seconds``."""
    await asyncio.sleep(seconds)
    return "slept"


def serve_http() -> None:
    import uvicorn

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    config = uvicorn.Config(server.streamable_http_app(), log_level="warning")
    uvicorn.Server(config).run(sockets=[listener])


if __name__ == "__main__":
    if "--http" in sys.argv:
        serve_http()
    else:
        server.run("stdio")
