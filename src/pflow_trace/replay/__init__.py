"""Saved runs, rendered for other tools: OTLP replay, Jaeger JSON, OTLP/JSON, Chrome trace.

Every exporter reads one model, :mod:`pflow_trace.tracefile.replay_model` (spans rebuilt from
our trace file's span table, or synthesized from a pflow trace; see :mod:`.load`), so the
formats agree on ids, times and parents. A format's module is imported only when that format
is asked for, so the formats not used cost nothing at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pflow_trace.tracefile.replay_model import ReplayTrace

#: ``--format`` name -> (module, function) rendering a trace as that format's one JSON document.
_RENDERERS = {
    "jaeger-json": ("pflow_trace.replay.jaeger_json", "to_jaeger_json"),
    "otlp-json": ("pflow_trace.replay.otlp_json", "to_otlp_json"),
    "chrome": ("pflow_trace.replay.chrome", "to_chrome_trace"),
}

#: ``--format`` names, each rendered to one JSON document.
FILE_FORMATS = tuple(_RENDERERS)


def render(trace: ReplayTrace, file_format: str) -> dict[str, Any]:
    """One JSON document of ``trace`` in ``file_format`` (one of :data:`FILE_FORMATS`)."""
    where = _RENDERERS.get(file_format)
    if where is None:
        raise ValueError(f"unknown format {file_format!r} (choose from {', '.join(FILE_FORMATS)})")
    module_name, function_name = where
    renderer: Callable[[ReplayTrace], dict[str, Any]] = getattr(
        import_module(module_name), function_name
    )
    return renderer(trace)
