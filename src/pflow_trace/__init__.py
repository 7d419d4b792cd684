"""pflow-trace: an observability-first workflow runtime.

The public API lives in :mod:`pflow_trace.api` and is re-exported here: ``load_workflow``,
``validate_workflow``, ``run`` (with :class:`TraceOptions`, returning a :class:`TracedRun`),
``read_trace``, ``summarize`` and ``diff`` (returning a :class:`RunDiff`). Names are resolved
on first use, so ``import pflow_trace`` (and ``pflow-trace --version``) stays cheap. The
version lives in :mod:`pflow_trace.version`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pflow_trace.version import __version__

__all__ = [
    "DiffSettings",
    "ExportSettings",
    "PilotPlan",
    "PilotProjection",
    "ResumePoint",
    "ResumeRequest",
    "RunDiff",
    "RunObserver",
    "ShowSummary",
    "SnapshotLimits",
    "TraceOptions",
    "TraceRun",
    "TracedRun",
    "__version__",
    "diff",
    "load_workflow",
    "open_resume",
    "read_trace",
    "resume",
    "run",
    "summarize",
    "validate_workflow",
]

if TYPE_CHECKING:
    from pflow_trace.api import (
        DiffSettings,
        ExportSettings,
        PilotPlan,
        PilotProjection,
        ResumePoint,
        ResumeRequest,
        RunDiff,
        RunObserver,
        ShowSummary,
        SnapshotLimits,
        TracedRun,
        TraceOptions,
        TraceRun,
        diff,
        load_workflow,
        open_resume,
        read_trace,
        resume,
        run,
        summarize,
        validate_workflow,
    )


def __getattr__(name: str) -> Any:
    if name in __all__:
        from pflow_trace import api

        return getattr(api, name)
    raise AttributeError(f"module 'pflow_trace' has no attribute {name!r}")
