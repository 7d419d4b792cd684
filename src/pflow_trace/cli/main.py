"""The ``pflow-trace`` command group: parses arguments, calls the library, renders results.

Every user-facing problem is a :class:`~pflow_trace.errors.PflowTraceError`; it is caught once,
here, printed as one ``error:`` line and turned into its exit code. Subcommands are imported
lazily so ``pflow-trace --help`` and ``--version`` stay fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import click

from pflow_trace.errors import EXIT_INTERRUPTED, PflowTraceError
from pflow_trace.version import __version__

#: command name -> (module, attribute, one-line help shown by --help without importing it)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": (
        "pflow_trace.cli.run",
        "run",
        "Run a workflow; write its trace file; export its spans.",
    ),
    "resume": (
        "pflow_trace.cli.resume",
        "resume",
        "Run a traced run again, re-running only what did not succeed.",
    ),
    "validate": (
        "pflow_trace.cli.validate",
        "validate",
        "Check a workflow file without running it.",
    ),
    "show": ("pflow_trace.cli.show", "show", "Summarise one or more trace files."),
    "diff": (
        "pflow_trace.cli.diff",
        "diff",
        "Compare two runs (or sets of runs) node by node; optionally a CI gate.",
    ),
    "history": (
        "pflow_trace.cli.history",
        "history",
        "Trends of one workflow's runs: p95, errors and cost per node.",
    ),
    "export": ("pflow_trace.cli.export", "export", "Replay or convert a saved trace."),
    "report": (
        "pflow_trace.cli.report",
        "report",
        "Write a self-contained HTML report of one or more traces.",
    ),
}


class LazyGroup(click.Group):
    """Loads a subcommand's module only when that subcommand runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._available(name)]

    @staticmethod
    def _available(name: str) -> bool:
        from importlib.util import find_spec

        return find_spec(COMMANDS[name][0]) is not None

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not self._available(name):
            return None
        module_name, attribute, _ = COMMANDS[name]
        return getattr(import_module(module_name), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PflowTraceError as exc:
            from pflow_trace.observe.redaction import redact_message

            click.echo(f"error: {redact_message(exc.message)}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt as exc:  # before or after a run: the run handles its own
            click.echo("interrupted", err=True)
            ctx.exit(getattr(exc, "exit_code", EXIT_INTERRUPTED))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pflow-trace")
def cli() -> None:
    """pflow-trace: run JSON workflows and see where the time goes.

    Every run writes a trace file; spans go to any OTLP backend (Jaeger) when asked.
    """
