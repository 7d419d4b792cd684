"""Reading trace files (ours and pflow's) into one model, and summarising them for ``show``.

The pipeline is: ``locate`` (which files) -> ``readers`` (file -> :class:`TraceRun`) ->
``stats.build_summary`` (runs -> :class:`ShowSummary`) -> ``render.render_text`` or
``ShowSummary.to_json``. Only ``readers`` knows file formats.
"""

from __future__ import annotations

from pflow_trace.traces.locate import default_trace_dir, resolve_trace_paths
from pflow_trace.traces.model import BatchInfo, BatchItem, TraceNode, TraceRun
from pflow_trace.traces.readers import read_trace
from pflow_trace.traces.stats import build_summary, percentile
from pflow_trace.traces.summary import ShowSummary

__all__ = [
    "BatchInfo",
    "BatchItem",
    "ShowSummary",
    "TraceNode",
    "TraceRun",
    "build_summary",
    "default_trace_dir",
    "percentile",
    "read_trace",
    "resolve_trace_paths",
]
