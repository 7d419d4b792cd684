"""The console-script entry point: answers ``--version`` before anything heavy is imported.

Scripts and CI jobs call ``pflow-trace --version`` to check what is installed; that should cost
little more than starting Python. Everything else goes to the click group in
:mod:`pflow_trace.cli.main`.
"""

from __future__ import annotations

import sys

#: Exit code for Ctrl-C before a run started (the shell convention: 128 + SIGINT).
_EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> None:
    """Run the command; Ctrl-C at any moment (even while modules load) is one line and 130."""
    try:
        _main(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        try:
            print("interrupted", file=sys.stderr)
        except (OSError, KeyboardInterrupt):
            pass
        raise SystemExit(_EXIT_INTERRUPTED) from None


def _main(arguments: list[str]) -> None:
    if arguments == ["--version"]:
        from pflow_trace.version import __version__

        print(f"pflow-trace, version {__version__}")
        return
    from pflow_trace.cli.main import cli

    cli.main(args=arguments, prog_name="pflow-trace")
