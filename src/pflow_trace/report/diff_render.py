"""Draw a :class:`~pflow_trace.report.diff.RunDiff` as plain text or as markdown.

Both views read the same model (``--format json`` is ``RunDiff.to_json``) and share the
formatting of values here, so a figure reads the same in a terminal and in a pull-request
comment. Every name, item and error comes from a trace: text output passes it through
``terminal_safe``, markdown escapes the characters that would break a table.
"""

from __future__ import annotations

from collections.abc import Callable

from pflow_trace.report.diff import ItemChange, MetricDiff, NodeDiff, RunDiff
from pflow_trace.text import format_duration_ms, one_line, terminal_safe

#: How each metric is labelled.
LABELS = {
    "wall_ms": "wall",
    "p50_ms": "item p50",
    "p95_ms": "item p95",
    "p99_ms": "item p99",
    "error_rate": "errors",
    "retry_rate": "retried",
    "tokens_per_call": "tokens/call",
    "cost_usd": "cost/run",
}
_KEY_CHARS = 40


def value_text(metric: str, value: float | None) -> str:
    """A metric's value for people: a duration, a percentage, tokens or dollars."""
    if value is None:
        return "-"
    if metric.endswith("_ms"):
        return format_duration_ms(value)
    if metric.endswith("_rate"):
        return f"{value * 100:.1f}%"
    if metric == "cost_usd":
        return f"${value:.4f}"
    return f"{value:.1f}"


def change_text(m: MetricDiff) -> str:
    """``+2.13 ms (+30.9%)``; rates change in percentage points (``+0.5 pt``)."""
    if m.change is None:
        return "-"
    sign = "+" if m.change >= 0 else "-"
    if m.metric.endswith("_rate"):
        return f"{sign}{abs(m.change) * 100:.1f} pt"
    amount = f"{sign}{value_text(m.metric, abs(m.change))}"
    if m.change_relative is not None:
        amount += f" ({m.change_relative * 100:+.1f}%)"
    return amount


def interval_text(m: MetricDiff) -> str:
    if m.ci_low is None or m.ci_high is None:
        return "-"
    if m.metric.endswith("_rate"):
        return f"[{m.ci_low * 100:+.1f}, {m.ci_high * 100:+.1f}] pt"
    low, high = value_text(m.metric, abs(m.ci_low)), value_text(m.metric, abs(m.ci_high))
    return f"[{'-' if m.ci_low < 0 else '+'}{low}, {'-' if m.ci_high < 0 else '+'}{high}]"


def p_text(p_value: float | None) -> str:
    if p_value is None:
        return "-"
    return "<0.001" if p_value < 0.001 else f"{p_value:.3f}"


def _metric_row(m: MetricDiff) -> list[str]:
    return [
        LABELS.get(m.metric, m.metric),
        value_text(m.metric, m.base),
        value_text(m.metric, m.new),
        change_text(m),
        interval_text(m),
        p_text(m.p_value),
        m.verdict,
    ]


_HEADER = ["metric", "base", "new", "change", "CI", "p", "verdict"]


def _node_title(node: NodeDiff, safe: Callable[[str], str]) -> str:
    title = f"node {safe(node.node_id)} ({safe(node.node_type)}"
    if node.presence != "both":
        return f"{title}): {node.presence}"
    if node.batch:
        base = "/".join(map(str, node.base_item_counts)) or "?"
        new = "/".join(map(str, node.new_item_counts)) or "?"
        title += f", batch of {base} -> {new} items"
        if node.item_match:
            title += f", items matched by {node.item_match}"
    return f"{title}): {node.base_status} -> {node.new_status}"


def _item_lines(node: NodeDiff, safe: Callable[[str], str]) -> list[str]:
    lines = []
    for label, listed, count in (
        ("newly failing", node.newly_failing, node.newly_failing_count),
        ("newly succeeding", node.newly_succeeding, node.newly_succeeding_count),
    ):
        if count:
            more = f" (+{count - len(listed)} more)" if count > len(listed) else ""
            names = ", ".join(_item_text(item, safe, with_error=True) for item in listed)
            lines.append(f"{label} ({count}): {names}{more}")
    if node.moved_most:
        moved = ", ".join(_item_text(item, safe, with_error=False) for item in node.moved_most)
        lines.append(f"moved most: {moved}")
    return lines


def _item_text(item: ItemChange, safe: Callable[[str], str], *, with_error: bool) -> str:
    text = safe(one_line(item.key, _KEY_CHARS))
    if with_error and item.error:
        return f"{text} ({safe(one_line(item.error, 80))})"
    if not with_error and item.change_ms is not None:
        sign = "+" if item.change_ms >= 0 else "-"
        return f"{text} {sign}{format_duration_ms(abs(item.change_ms))}"
    return text


def _headline(diff: RunDiff) -> str:
    regressions = diff.regressions()
    if diff.gate_failed:
        crossed = sum(1 for finding in diff.gate if finding.crossed)
        return f"gate FAILED: {crossed} rule check(s) crossed"
    if regressions:
        return f"{len(regressions)} regression(s) found" + ("; gate passed" if diff.rules else "")
    return "no regression found" + ("; gate passed" if diff.rules else "")


def _regression_lines(diff: RunDiff, safe: Callable[[str], str]) -> list[str]:
    return [
        f"{safe(node.node_id)} {LABELS.get(m.metric, m.metric)} {m.verdict}: {change_text(m)}"
        for node, m in diff.regressions()
    ]


# -- plain text ----------------------------------------------------------------------------------


def render_diff_text(diff: RunDiff) -> str:
    """The diff as aligned plain text, one block per node."""
    safe = terminal_safe
    lines = [
        f"base: {_side_text(diff.base.runs, diff.base.workflow_names, safe)}",
        f"new:  {_side_text(diff.new.runs, diff.new.workflow_names, safe)}",
    ]
    lines += [f"warning: {safe(warning)}" for warning in diff.warnings]
    for node in diff.nodes:
        lines += ["", _node_title(node, safe)]
        if node.metrics:
            lines += ["  " + row for row in _aligned([_HEADER, *map(_metric_row, node.metrics)])]
        lines += ["  " + line for line in _item_lines(node, safe)]
    lines += ["", _headline(diff)]
    lines += ["  " + line for line in _regression_lines(diff, safe)]
    lines += [f"  crossed: {safe(f.rule)} by {safe(f.node_id)}" for f in diff.gate if f.crossed]
    return "\n".join(lines) + "\n"


def _side_text(runs: int, names: list[str | None], safe: Callable[[str], str]) -> str:
    workflows = ", ".join(sorted({safe(str(name)) for name in names}))
    return f"{runs} run(s) of {workflows}"


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


# -- markdown ------------------------------------------------------------------------------------


def render_diff_markdown(diff: RunDiff) -> str:
    """The diff for a pull-request comment: a headline, the regressions, a table per node that
    changed (nodes with no call at all are listed in one line)."""
    safe = _markdown_safe
    mark = "❌" if diff.gate_failed else ("⚠️" if diff.regressions() else "✅")
    lines = [f"### {mark} pflow-trace diff: {_headline(diff)}", ""]
    lines.append(
        f"Base: {_side_text(diff.base.runs, diff.base.workflow_names, safe)}; "
        f"new: {_side_text(diff.new.runs, diff.new.workflow_names, safe)}."
    )
    lines += [f"> **Warning:** {safe(warning)}" for warning in diff.warnings]
    regressions = _regression_lines(diff, safe)
    if regressions:
        lines += ["", "**Regressions**", ""] + [f"- {line}" for line in regressions]
    crossed = [f"{safe(f.rule)} by {safe(f.node_id)}" for f in diff.gate if f.crossed]
    if crossed:
        lines += ["", "**Gate rules crossed:** " + ", ".join(crossed)]
    unchanged = []
    for node in diff.nodes:
        if not _has_news(node):
            unchanged.append(safe(node.node_id))
            continue
        lines += ["", f"#### {_node_title(node, safe)}", ""]
        if node.metrics:
            lines.append("| " + " | ".join(_HEADER) + " |")
            lines.append("|" + "---|" * len(_HEADER))
            lines += ["| " + " | ".join(_metric_row(m)) + " |" for m in node.metrics]
        lines += ["", *(f"- {line}" for line in _item_lines(node, safe))]
    if unchanged:
        lines += ["", "No change called: " + ", ".join(unchanged) + "."]
    return "\n".join(line for line in lines).rstrip() + "\n"


def _has_news(node: NodeDiff) -> bool:
    called = any(m.verdict not in ("no change", "untested") for m in node.metrics)
    return called or node.presence != "both" or bool(node.newly_failing_count)


def _markdown_safe(text: str) -> str:
    """Text from a trace inside markdown: no control characters, no table-breaking pipes,
    no HTML."""
    text = terminal_safe(text)
    for char in ("\\", "|", "`", "*", "_", "<", ">", "[", "]"):
        text = text.replace(char, "\\" + char)
    return text
