"""How ``show`` lays out a run's LLM calls: totals, per node, per model, priciest calls, quality.

A block list like :mod:`pflow_trace.report.layout` makes, drawn by the same terminal code. A
cost that cannot be known is printed as "price unknown" with the models that lack a price,
never as $0.
"""

from __future__ import annotations

from pflow_trace.report.blocks import Block, Cell, Fields, Heading, Note, Table
from pflow_trace.report.llm_stats import LlmQuality, LlmSummary, LlmTotals

PRICE_UNKNOWN = "price unknown"


def fmt_usd(cost: float | None) -> str:
    """``$1.58``, ``$0.0042``; ``price unknown`` for None."""
    if cost is None:
        return PRICE_UNKNOWN
    if cost == 0 or cost >= 1:
        return f"${cost:,.2f}"
    return f"${cost:.4f}" if cost >= 0.0001 else f"${cost:.6f}"


def fmt_tokens(count: int | float | None) -> str:
    """A token count with thousands separators; ``-`` when unknown."""
    if count is None:
        return "-"
    return f"{count:,.0f}"


def _cost_cell(totals: LlmTotals) -> Cell:
    """The cost, or what is known of it when some calls have no price."""
    if totals.cost_usd is not None:
        return fmt_usd(totals.cost_usd)
    if totals.unpriced_calls < totals.calls:
        return (f"{fmt_usd(totals.known_cost_usd)} + {PRICE_UNKNOWN}", "warn")
    return (PRICE_UNKNOWN, "warn")


def _tokens_text(totals: LlmTotals) -> str:
    text = (
        f"{fmt_tokens(totals.total_tokens)} ({fmt_tokens(totals.input_tokens)} input, "
        f"{fmt_tokens(totals.output_tokens)} output)"
    )
    cached = []
    if totals.cache_read_input_tokens:
        cached.append(f"{fmt_tokens(totals.cache_read_input_tokens)} read from cache")
    if totals.cache_creation_input_tokens:
        cached.append(f"{fmt_tokens(totals.cache_creation_input_tokens)} written to cache")
    if totals.thinking_tokens:
        cached.append(f"{fmt_tokens(totals.thinking_tokens)} thinking")
    return text + (f"; of which {', '.join(cached)}" if cached else "")


def llm_blocks(summary: LlmSummary) -> list[Block]:
    """The LLM section of one run."""
    totals = summary.totals
    calls = f"{totals.calls}" + (f" ({totals.failed_calls} failed)" if totals.failed_calls else "")
    fields: list[tuple[str, Cell]] = [
        ("calls", calls),
        ("tokens", _tokens_text(totals)),
        ("cost", _cost_cell(totals)),
    ]
    if summary.unpriced_models:
        names = ", ".join(summary.unpriced_models)
        fields.append(("no price for", (f"{names} (cost_usd null; add --prices FILE)", "warn")))
    blocks: list[Block] = [Heading("LLM calls", "batch"), Fields(fields)]
    blocks.append(_usage_table("by node", [(n.node_id, n.totals) for n in summary.nodes]))
    blocks.append(_usage_table("by model", [(m.model, m.totals) for m in summary.models]))
    if summary.most_expensive:
        blocks.append(_expensive_table(summary))
    for quality in summary.quality:
        blocks.extend(_quality_notes(quality))
    return blocks


def _usage_table(title: str, rows: list[tuple[str, LlmTotals]]) -> Table:
    table = Table(
        [
            (title.removeprefix("by "), "left"),
            ("calls", "right"),
            ("input", "right"),
            ("cached", "right"),
            ("output", "right"),
            ("total", "right"),
            ("cost", "right"),
        ],
        title=title,
    )
    for name, totals in rows:
        table.rows.append(
            [
                name,
                str(totals.calls),
                fmt_tokens(totals.input_tokens),
                fmt_tokens(totals.cache_read_input_tokens),
                fmt_tokens(totals.output_tokens),
                fmt_tokens(totals.total_tokens),
                _cost_cell(totals),
            ]
        )
    return table


def _expensive_table(summary: LlmSummary) -> Table:
    ranked = "cost" if summary.ranked_by == "cost_usd" else "tokens (some prices unknown)"
    table = Table(
        [
            ("node", "left"),
            ("item", "right"),
            ("preview", "left"),
            ("model", "left"),
            ("tokens in/out", "right"),
            ("finish", "left"),
            ("cost", "right"),
        ],
        title=f"most expensive calls, by {ranked}",
    )
    for call in summary.most_expensive:
        table.rows.append(
            [
                call.node_id,
                "-" if call.index is None else str(call.index),
                (call.item or "", "dim"),
                call.model or "-",
                f"{fmt_tokens(call.input_tokens)}/{fmt_tokens(call.output_tokens)}",
                call.finish_reason or "-",
                fmt_usd(call.cost_usd),
            ]
        )
    return table


def _indexes(indexes: list[int], count: int) -> str:
    shown = ", ".join(str(index) for index in indexes)
    return shown + (f", +{count - len(indexes)} more" if count > len(indexes) else "")


def _quality_notes(quality: LlmQuality) -> list[Block]:
    """What a node's successes hide: blank answers, cut-off answers, the output spread."""
    notes: list[Block] = []
    node = quality.node_id
    if quality.empty_responses:
        items = _indexes(quality.empty_response_indexes, quality.empty_responses)
        notes.append(
            Note(
                f"{node}: {quality.empty_responses} of {quality.calls} calls succeeded with an "
                f"empty response (items {items})",
                "warn",
            )
        )
    if quality.cut_off:
        items = _indexes(quality.cut_off_indexes, quality.cut_off)
        notes.append(
            Note(
                f"{node}: {quality.cut_off} of {quality.calls} calls cut off by the output-token "
                f"limit (finish_reason length / max_tokens; items {items})",
                "warn",
            )
        )
    if quality.output_tokens_max is not None and quality.calls > 1:
        notes.append(
            Note(
                f"{node}: output tokens per call: min {fmt_tokens(quality.output_tokens_min)}, "
                f"p50 {fmt_tokens(quality.output_tokens_p50)}, "
                f"p95 {fmt_tokens(quality.output_tokens_p95)}, "
                f"max {fmt_tokens(quality.output_tokens_max)}"
            )
        )
    return notes
