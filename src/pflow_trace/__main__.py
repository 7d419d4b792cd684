"""``python -m pflow_trace``: the same command line as the ``pflow-trace`` script."""

from pflow_trace.cli.entry import main

main()
