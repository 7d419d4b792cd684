"""pflow-trace: an observability-first workflow runtime.

The public entry points are :func:`pflow_trace.runtime.executor.run_workflow` for running a
workflow as a library and the ``pflow-trace`` command line.
"""

__version__ = "0.1.0"
