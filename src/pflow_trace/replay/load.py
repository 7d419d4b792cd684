"""Reads any supported trace file as the replayable spans every exporter renders.

Two sources, one result (:class:`~pflow_trace.tracefile.replay_model.ReplayTrace`):

* **our trace files** keep the run's spans verbatim in ``otel.spans``; they are rebuilt exactly
  (:mod:`pflow_trace.tracefile.spantable_decode`);
* **pflow's traces**, and our files written without a span table, carry no spans, so a tree is
  synthesized from their timings (:mod:`pflow_trace.replay.synthesize`).
"""

from __future__ import annotations

import os

from pflow_trace.observe.export_settings import DEFAULT_SERVICE_NAME
from pflow_trace.replay.synthesize import synthesize
from pflow_trace.tracefile.read_common import FORMAT_OURS
from pflow_trace.tracefile.readers import read_trace
from pflow_trace.tracefile.replay_model import ReplayTrace
from pflow_trace.tracefile.spantable_decode import decode_span_table


def load_replay_trace(path: str | os.PathLike[str], service_name: str | None = None) -> ReplayTrace:
    """Read any supported trace file into replayable spans.

    ``service_name`` names the service of a synthesized (pflow) tree; a recorded span table
    keeps the resource it was recorded with.
    """
    name = os.fspath(path)
    run = read_trace(name)
    replay = decode_span_table(name, run) if run.format == FORMAT_OURS else None
    if replay is None:
        replay = synthesize(run, service_name or DEFAULT_SERVICE_NAME)
    # What the reader worked around, not the run's own recorded warnings: those describe the
    # run, and a conversion of the file is not the place to repeat them.
    read_notes = [warning for warning in run.warnings if warning not in run.recorded_warnings]
    replay.warnings = [*read_notes, *replay.warnings]
    return replay
