"""``run --dry-run`` and ``run --pilot K``: parse, call the library, render, ask.

The dry run previews the workflow (``runtime/dry_run.py``), reads the past runs of the same
workflow in the trace directory and prints the forecast (``report/forecast.py``). The pilot
builds the :class:`~pflow_trace.runtime.pilot.PilotPlan` whose ``confirm`` prints each
batch's projection on stderr and asks (``--yes``: prints and goes on).
"""

from __future__ import annotations

import random
import sys
from typing import Any

import click

from pflow_trace.errors import TraceReadError, UsageError
from pflow_trace.report.forecast_text import fmt_cost, fmt_ms, fmt_range
from pflow_trace.runtime.pilot import PilotPlan, PilotProjection
from pflow_trace.text import terminal_safe


def _whole_number(flag: str, text: str | None, least: int | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{flag}: expected a whole number, got {text!r}") from None
    if least is not None and value < least:
        raise UsageError(f"{flag}: expected {least} or more, got {value}")
    return value


def check_forecast_flags(flags: dict[str, Any], resuming: bool) -> None:
    """One line and exit 2 for flags that do not go together (``--pilot`` and
    ``--pilot-seed`` are parsed here, into ints, so a bad value is one line too)."""
    flags["pilot"] = _whole_number("--pilot", flags["pilot"], 1)
    flags["pilot_seed"] = _whole_number("--pilot-seed", flags["pilot_seed"], None)
    if flags["dry_run"] and flags["pilot"] is not None:
        raise UsageError("--dry-run sends nothing; --pilot runs items for real: pick one")
    if flags["dry_run"] and resuming:
        raise UsageError("--dry-run forecasts a new run; it does not take --resume")
    if flags["pilot_seed"] is not None and flags["pilot"] is None:
        raise UsageError("--pilot-seed is for --pilot K")
    if flags["yes"] and flags["pilot"] is None:
        raise UsageError("--yes answers --pilot's question; add --pilot K")
    if flags["pilot"] is not None and not flags["yes"] and not sys.stdin.isatty():
        raise UsageError(
            "--pilot asks before the rest of each batch runs, but stdin is not a terminal: "
            "add --yes to go on without asking"
        )


def pilot_plan(k: int, seed: int | None, yes: bool) -> PilotPlan:
    """The plan ``run --pilot K`` hands the API; the seed is drawn (and printed) when not given."""
    chosen_seed = seed if seed is not None else random.SystemRandom().randrange(1, 2**31)

    def confirm(projection: PilotProjection) -> bool:
        click.echo(projection_text(projection), err=True, nl=False)
        if yes:
            return True
        return click.confirm(
            f"go on with the other {projection.remaining} items?", default=False, err=True
        )

    return PilotPlan(k, chosen_seed, confirm)


def pause_display_while_asking(plan: PilotPlan, display: Any) -> None:
    """Wrap ``plan.confirm`` so the status display's progress bar is down while it asks."""
    ask = plan.confirm

    def confirm(projection: PilotProjection) -> bool:
        display.pause()
        try:
            return ask(projection)
        finally:
            display.resume()

    plan.confirm = confirm


def projection_text(projection: PilotProjection) -> str:
    """What a batch's pilot measured and what it projects, two or three lines."""
    spent = (
        "price unknown"
        if projection.pilot_cost_usd is None
        else fmt_cost(projection.pilot_cost_usd)
    )
    head = (
        f"pilot of batch '{terminal_safe(projection.node_id)}': {len(projection.indices)} of "
        f"{projection.item_count} items (seed {projection.seed}, items "
        f"{', '.join(map(str, projection.indices))}) took {fmt_ms(projection.pilot_ms)}"
    )
    if projection.llm_calls:
        head += f", LLM cost {spent}"
    if projection.failed:
        head += f", {projection.failed} failed"
    lanes = f"{projection.lanes} lane{'s' if projection.lanes != 1 else ''}"
    wall = fmt_range(projection.rest_wall_ms, fmt_ms)
    rest = f"  the other {projection.remaining} items on {lanes}: time {wall}"
    if projection.llm_calls:
        cost = (
            "price unknown"
            if projection.rest_cost_usd is None
            else fmt_range(projection.rest_cost_usd, fmt_cost)
        )
        rest += f", LLM cost {cost}"
    lines = [head, rest + " (95% interval)"]
    lines.extend(f"  note: {note}" for note in projection.notes)
    return "\n".join(lines) + "\n"


def dry_run(workflow_path: str, assignments: tuple[str, ...], flags: dict[str, Any]) -> None:
    """Print the forecast of WORKFLOW (text or one JSON object); ``--prices`` is already in
    force (``run`` checks it first)."""
    from pflow_trace import api
    from pflow_trace.report.forecast import build_forecast
    from pflow_trace.report.forecast_text import render_forecast
    from pflow_trace.runtime.dry_run import preview_workflow
    from pflow_trace.runtime.inputs import parse_assignments

    loaded = api.load_workflow(workflow_path)
    preview = preview_workflow(loaded, parse_assignments(assignments))
    forecast = build_forecast(preview, _past_runs(flags["trace_dir"], preview.workflow_name))
    if flags["output_format"] == "json":
        click.echo(forecast.to_json(indent=None))
    else:
        click.echo(render_forecast(forecast), nl=False)


def _past_runs(trace_dir: str | None, name: str) -> list[Any]:
    """The readable traces of workflow ``name`` in the trace directory; none when it is absent.

    A file that is not a trace is skipped silently: the forecast says how many runs it used."""
    from pflow_trace.tracefile.locate import (
        default_trace_dir,
        trace_files_in,
        workflow_name_hint,
    )
    from pflow_trace.tracefile.readers import read_trace

    try:
        files = trace_files_in(default_trace_dir(trace_dir))
    except TraceReadError:
        return []
    runs = []
    for path in files:
        if workflow_name_hint(path) not in (None, name):
            continue  # another workflow's run: not parsed
        try:
            run = read_trace(path)
        except TraceReadError:
            continue
        if run.workflow_name == name:
            runs.append(run)
    return runs
