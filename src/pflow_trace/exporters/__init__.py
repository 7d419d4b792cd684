"""Saved runs, rendered for other tools: OTLP replay, Jaeger JSON, OTLP/JSON, Chrome trace.

Every exporter reads one model, :mod:`replay_model` (spans rebuilt from our trace file's span
table, or synthesized from a pflow trace), so the formats agree on ids, times and parents.
Modules are imported only when their format is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pflow_trace.exporters.replay_model import ReplayTrace

#: ``--format`` names, each rendered to one JSON document.
FILE_FORMATS = ("jaeger-json", "otlp-json", "chrome")


def render(trace: ReplayTrace, file_format: str) -> dict[str, Any]:
    """One JSON document of ``trace`` in ``file_format`` (one of :data:`FILE_FORMATS`)."""
    if file_format == "jaeger-json":
        from pflow_trace.exporters.jaeger_json import to_jaeger_json

        return to_jaeger_json(trace)
    if file_format == "otlp-json":
        from pflow_trace.exporters.otlp_json import to_otlp_json

        return to_otlp_json(trace)
    if file_format == "chrome":
        from pflow_trace.exporters.chrome import to_chrome_trace

        return to_chrome_trace(trace)
    raise ValueError(f"unknown format {file_format!r} (choose from {', '.join(FILE_FORMATS)})")
