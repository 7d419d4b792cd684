"""The console-script entry point: answers ``--version`` before anything heavy is imported.

Scripts and CI jobs call ``pflow-trace --version`` to check what is installed; that should cost
little more than starting Python. Everything else goes to the click group in
:mod:`pflow_trace.cli.main`.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments == ["--version"]:
        from pflow_trace import __version__

        print(f"pflow-trace, version {__version__}")
        return
    from pflow_trace.cli.main import cli

    cli.main(args=arguments, prog_name="pflow-trace")
