"""One error hierarchy for everything a user can get wrong.

Each error carries the one-line message the CLI prints and the exit code it exits with, so the
command line catches :class:`PflowTraceError` once at the top and never shows a traceback for a
user mistake. Anything else that escapes is a bug and keeps its traceback.

The tree (exit code in brackets)::

    PflowTraceError [2]
    ├── UsageError [2]               a bad argument, a missing file, an input that does not parse
    ├── WorkflowValidationError [2]  every problem of a workflow file, each with its JSON path
    ├── TraceReadError [2]           a trace file that cannot be read
    │   └── TraceSchemaError [2]     a trace document that breaks the trace-file schema
    ├── ResumeError [2]              a run that cannot be resumed from this trace (a missing,
    │                                corrupt or foreign checkpoint; a changed workflow or input)
    ├── NodeExecutionError [1]       a node failed while the workflow ran
    │   └── NodeVisitLimitError [1]  a loop of edges ran more nodes than a run allows
    ├── TemplateError [1]            a template could not be resolved at run time
    ├── ExportError [1]              a backend did not take a replayed trace's spans
    ├── TraceWriteError [1]          a finished run's trace file could not be written
    └── RegressionFound [3]          ``diff --fail-on``: a significant regression crossed a rule

    RunInterrupted [128 + signal]    (a KeyboardInterrupt, not a PflowTraceError) Ctrl-C,
                                     SIGTERM or SIGHUP stopped the run
"""

from __future__ import annotations

import signal

EXIT_OK = 0
EXIT_WORKFLOW_FAILED = 1
EXIT_USAGE = 2
#: ``pflow-trace diff --fail-on``: the new runs regressed past a rule (a CI gate's "no").
EXIT_REGRESSION = 3
EXIT_INTERRUPTED = 130


class PflowTraceError(Exception):
    """Base class: a problem the user can fix, with the exit code the CLI should use."""

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(PflowTraceError):
    """A bad argument, a missing file, an input that does not parse."""


class WorkflowValidationError(PflowTraceError):
    """The workflow file failed validation; every problem is kept so all are reported at once."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        # One problem per line: a workflow with several problems stays readable.
        super().__init__(f"{source}: {count} {noun}:\n  - " + "\n  - ".join(problems))


class TraceReadError(PflowTraceError):
    """A trace file that is missing, not JSON, truncated or of an unknown format."""


class TraceSchemaError(TraceReadError):
    """A trace document that does not match the schema; ``problems`` lists each by JSON path."""

    def __init__(self, problems: list[str], source: str = "trace") -> None:
        self.problems = problems
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{source}: {count} schema {noun}:\n  " + "\n  ".join(problems))


class ResumeError(PflowTraceError):
    """A run that cannot be resumed from a trace: its checkpoint is missing, corrupt or
    another run's, or the workflow or inputs changed so that reusing results would be wrong."""


class NodeExecutionError(PflowTraceError):
    """A node failed while the workflow ran; the workflow fails with exit code 1."""

    exit_code = EXIT_WORKFLOW_FAILED

    def __init__(self, node_id: str, message: str) -> None:
        self.node_id = node_id
        super().__init__(f"node '{node_id}' failed: {message}")


class ExportError(PflowTraceError):
    """A backend did not take a replayed trace's spans (down, refused, timed out).

    Exit code 1, as for a failed run: the command was right, the export did not happen.
    """

    exit_code = EXIT_WORKFLOW_FAILED


class TemplateError(PflowTraceError):
    """A template could not be resolved: names the template and the closest available names."""

    exit_code = EXIT_WORKFLOW_FAILED


class NodeVisitLimitError(NodeExecutionError):
    """A run executed more nodes than its limit: almost always an edge loop that never ends."""

    def __init__(self, node_id: str, limit: int, loop: list[str]) -> None:
        self.limit = limit
        self.loop = loop
        cycle = " → ".join([*loop, loop[0]]) if loop else node_id
        NodeExecutionError.__init__(
            self,
            node_id,
            f"the run reached its limit of {limit:,} node executions in the loop {cycle}; "
            "raise the limit with --max-node-visits if the loop is meant to run longer",
        )


class TraceWriteError(PflowTraceError):
    """The trace file of a finished run could not be written (disk full, name too long)."""

    exit_code = EXIT_WORKFLOW_FAILED


class RegressionFound(PflowTraceError):
    """``pflow-trace diff --fail-on``: a significant regression crossed a gate rule.

    Its own exit code (3), so a CI job tells "worse than the base" from a failed run (1) and
    a usage mistake (2); the diff itself is printed before this is raised.
    """

    exit_code = EXIT_REGRESSION


def _signal_name(signal_number: int) -> str:
    try:
        return signal.Signals(signal_number).name
    except ValueError:
        return f"signal {signal_number}"


class RunInterrupted(KeyboardInterrupt):
    """A signal (Ctrl-C, SIGTERM, SIGHUP) stopped the run; raised by the run's signal handler.

    A ``KeyboardInterrupt`` so everything that already stops for Ctrl-C stops for it too; its
    own class so a plain ``KeyboardInterrupt`` raised by a node's code is not taken for the
    user's. The exit code is the shell convention, 128 + the signal number.
    """

    def __init__(self, signal_number: int = signal.SIGINT) -> None:
        self.signal_number = int(signal_number)
        self.exit_code = 128 + self.signal_number
        if self.signal_number == signal.SIGINT:
            self.message = "interrupted by the user (Ctrl-C)"
        else:
            self.message = f"interrupted by {_signal_name(self.signal_number)}"
        super().__init__(self.message)
