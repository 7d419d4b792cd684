"""Running the CLI as a subprocess in tests: a clean environment, and a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without OTEL_*, PFLOW_TRACE_* or W3C context, plus ``extra``.

    A developer's shell may export an OTLP endpoint or a TRACEPARENT; a test that starts the
    CLI must not inherit them by accident.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "PFLOW_TRACE_"))
        and key not in ("TRACEPARENT", "TRACESTATE")
    }
    env.update(extra)
    return env


def run_on_a_terminal(*arguments: str, env: dict[str, str] | None = None) -> str:
    """Run ``pflow-trace ARGUMENTS`` with stdout on a pseudo-terminal; return what it drew."""
    leader, follower = pty.openpty()
    base = {key: value for key, value in os.environ.items() if key != "NO_COLOR"}
    full_env = {**base, "COLUMNS": "120", "TERM": "xterm-256color", **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "pflow_trace", *arguments],
        stdout=follower,
        stderr=subprocess.PIPE,
        env=full_env,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(leader)
    assert process.returncode == 0
    return b"".join(chunks).decode("utf-8", "replace")
