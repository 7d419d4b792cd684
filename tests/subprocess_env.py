"""The environment for CLI subprocesses in tests: this process's, minus tracing settings."""

from __future__ import annotations

import os


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
