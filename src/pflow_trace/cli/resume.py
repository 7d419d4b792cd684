"""``pflow-trace resume``: run a traced run's workflow again, reusing what succeeded there.

The workflow and inputs come from the run's checkpoint; ``NAME=VALUE`` replaces an input (a
changed input is refused unless ``--force``). Everything else is ``run``'s (see
``docs/resume.md``).
"""

from __future__ import annotations

from typing import Any

import click

from pflow_trace.cli.run import resume_options, resume_request, run_and_report, run_options


@click.command("resume", context_settings={"ignore_unknown_options": False})
@click.argument("trace", type=click.Path(dir_okay=False))
@click.argument("assignments", nargs=-1, metavar="[NAME=VALUE]...")
@run_options
@resume_options
def resume(trace: str, assignments: tuple[str, ...], **flags: Any) -> None:
    """Run TRACE's workflow again; only what failed, was interrupted or never started runs."""
    run_and_report(flags, assignments, None, resume_request(trace, flags))
