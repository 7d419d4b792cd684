"""``run --dry-run`` as text: a line per node, the totals, and everything the totals leave out.

A cost that is not known reads "price unknown" (with why), never $0; a range is printed beside
every estimate, and an open end as "?".
"""

from __future__ import annotations

from collections.abc import Callable

from pflow_trace.report.forecast import Forecast, NodeForecast
from pflow_trace.report.llm_layout import fmt_usd
from pflow_trace.runtime.pilot import Range
from pflow_trace.text import format_duration_ms, terminal_safe


def fmt_count(value: float | None) -> str:
    return "?" if value is None else f"{value:,.0f}"


def fmt_cost(value: float | None) -> str:
    return "?" if value is None else fmt_usd(value)


def fmt_ms(value: float | None) -> str:
    return "?" if value is None else format_duration_ms(value)


def fmt_range(value: Range | None, fmt: Callable[[float | None], str]) -> str:
    """``12 s (4 s to 30 s)``; a range that is one value prints once; None prints ``unknown``."""
    if value is None:
        return "unknown"
    if value.low == value.high == value.estimate:
        return fmt(value.estimate)
    return f"{fmt(value.estimate)} ({fmt(value.low)} to {fmt(value.high)})"


def _node_line(node: NodeForecast) -> str:
    parts = [f"  {terminal_safe(node.node_id)} ({node.node_type})"]
    if node.batch:
        parts.append(f"items {fmt_range(node.items, fmt_count)}")
    parts.append(f"time {fmt_range(node.wall_ms, fmt_ms)}")
    if node.cost_usd is not None and node.cost_note == "no LLM calls":
        parts.append("cost: no LLM calls")
    elif node.cost_usd is not None:
        parts.append(f"cost {fmt_range(node.cost_usd, fmt_cost)}")
    else:
        parts.append(f"cost: {node.cost_note or 'price unknown'}")
    method = f", tokens by {node.tokens_method}" if node.tokens_method else ""
    parts.append(f"[{node.source}{method}]")
    return "  ".join(parts)


def render_forecast(forecast: Forecast) -> str:
    source = (
        f"from {forecast.history_runs} past run{'s' if forecast.history_runs != 1 else ''}"
        if forecast.history_runs
        else "no past runs: from prompt sizes and the price table"
    )
    lines = [f"dry run of {terminal_safe(forecast.workflow_name)} ({source}); nothing was sent"]
    if forecast.ran_to_find_items:
        lines.append(f"ran to find batch items: {', '.join(forecast.ran_to_find_items)}")
    lines.extend(_node_line(node) for node in forecast.nodes)
    for node in forecast.nodes:
        lines.extend(f"    {node.node_id}: {terminal_safe(note)}" for note in node.notes)
    if any(node.batch for node in forecast.nodes):
        lines.append(f"total batch items: {fmt_range(forecast.items, fmt_count)}")
    wall = fmt_range(forecast.wall_ms, fmt_ms)
    if forecast.wall_unknown:
        wall += f", plus unknown time for {', '.join(forecast.wall_unknown)}"
    lines.append(f"total time: {wall}")
    cost = fmt_range(forecast.cost_usd, fmt_cost)
    if forecast.cost_unknown:
        cost = f"price unknown ({'; '.join(forecast.cost_unknown)})" + (
            f"; known part {cost}"
            if forecast.cost_usd is not None and forecast.cost_usd.high
            else ""
        )
    lines.append(f"total LLM cost: {cost}")
    lines.extend(f"note: {terminal_safe(note)}" for note in forecast.notes)
    return "\n".join(lines) + "\n"
