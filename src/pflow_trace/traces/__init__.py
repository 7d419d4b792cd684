"""Reading trace files (ours and pflow's) into one model, and summarising them for ``show``.

The pipeline is: ``locate`` (which files) -> ``readers`` (file -> :class:`TraceRun`) ->
``stats.build_summary`` (runs -> :class:`ShowSummary`) -> ``render.render_text`` or
``ShowSummary.to_json``. Only ``readers`` knows file formats.

Import the modules themselves (``from pflow_trace.traces.readers import read_trace``): this
package imports nothing eagerly, so a command that needs one piece does not pay for all.
"""
