"""The LLM part of the ``show`` summary: tokens and cost per node and model, and what went wrong.

Built from the trace model's call records (``llm_usage`` on items and nodes, in any format)
with the token rule of :mod:`pflow_trace.observe.llm_usage`, so these totals are the ones the
trace file's ``llm_summary`` and each node's ``llm_usage`` hold. The quality signals are
the ones a batch of LLM calls hides behind "success": a blank response, an answer cut off by
the output-token limit, and how widely the output length varies between items.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pflow_trace.observe.llm_usage import (
    CUT_OFF_FINISH_REASONS,
    UsageTotals,
    call_cost,
    call_total_tokens,
    token_count,
)
from pflow_trace.report.percentiles import percentiles
from pflow_trace.text import one_line
from pflow_trace.tracefile.model import ITEM_SUCCESS, TraceNode, TraceRun

#: Item indexes listed per quality signal; the count says how many there were in all.
MAX_INDEXES = 10
_PREVIEW_CHARS = 60


@dataclass(slots=True)
class LlmTotals:
    """Calls added up: tokens by kind and cost (``None`` when some call's price is unknown)."""

    calls: int
    failed_calls: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int
    thinking_tokens: int
    cost_usd: float | None
    known_cost_usd: float
    unpriced_calls: int


@dataclass(slots=True)
class LlmNodeUsage:
    """One node's calls."""

    node_id: str
    totals: LlmTotals
    models: list[str]


@dataclass(slots=True)
class LlmModelUsage:
    """One model's calls over the run."""

    model: str
    totals: LlmTotals


@dataclass(slots=True)
class LlmCall:
    """One of the most expensive calls (by cost, or by tokens when no price is known)."""

    node_id: str
    #: The batch item's index; ``None`` for a node that is not a batch.
    index: int | None
    #: A one-line preview of the item, at most 60 characters; ``None`` outside a batch.
    item: str | None
    model: str | None
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float | None
    finish_reason: str | None


@dataclass(slots=True)
class LlmQuality:
    """What "success" hides in one node's calls."""

    node_id: str
    calls: int
    #: Successful calls whose response was empty or only whitespace.
    empty_responses: int
    empty_response_indexes: list[int]
    #: Calls whose ``finish_reason`` says the output-token limit cut the answer off.
    cut_off: int
    cut_off_indexes: list[int]
    #: Output tokens per call: the spread between items.
    output_tokens_min: int | None
    output_tokens_p50: float | None
    output_tokens_p95: float | None
    output_tokens_max: int | None


@dataclass(slots=True)
class LlmSummary:
    """Every LLM call of a run: totals, per node, per model, the priciest calls, quality."""

    totals: LlmTotals
    #: Models whose price is unknown: their calls have ``cost_usd`` null ("price unknown").
    unpriced_models: list[str]
    #: "cost_usd" when every call in ``most_expensive`` has a price, else "total_tokens".
    ranked_by: str
    nodes: list[LlmNodeUsage] = field(default_factory=list)
    models: list[LlmModelUsage] = field(default_factory=list)
    most_expensive: list[LlmCall] = field(default_factory=list)
    quality: list[LlmQuality] = field(default_factory=list)


def _totals(document: Mapping[str, Any]) -> LlmTotals:
    names = LlmTotals.__dataclass_fields__
    return LlmTotals(**{name: document[name] for name in names})


def _node_calls(node: TraceNode) -> list[tuple[Any, dict[str, Any]]]:
    """``(item or None, call)`` for every call a node made."""
    if node.batch is not None and node.batch.items:
        return [(item, item.llm_usage) for item in node.batch.items if item.llm_usage]
    if node.loop_calls:  # a loop's passes, one call each
        return [(None, call) for call in node.loop_calls]
    return [(None, node.llm_usage)] if node.llm_usage else []


def summarize_llm(run: TraceRun, top: int) -> LlmSummary | None:
    """The run's LLM summary, or None when it made no LLM call the trace records."""
    run_totals = UsageTotals()
    nodes: list[LlmNodeUsage] = []
    calls: list[LlmCall] = []
    quality: list[LlmQuality] = []
    for node in run.nodes:
        node_calls = _node_calls(node)
        if not node_calls:
            continue
        node_totals = UsageTotals()
        for item, usage in node_calls:
            node_totals.add(usage)
            run_totals.add(usage)
            calls.append(_call(node.node_id, item, usage))
        document = node_totals.as_dict()
        nodes.append(LlmNodeUsage(node.node_id, _totals(document), sorted(document["models"])))
        quality.append(_quality(node.node_id, node_calls))
    if not run_totals.calls:
        return None
    document = run_totals.as_dict()
    priced = all(call.cost_usd is not None for call in calls)
    if priced:
        calls.sort(key=lambda call: (-(call.cost_usd or 0.0), -call.total_tokens))
    else:
        calls.sort(key=lambda call: -call.total_tokens)
    return LlmSummary(
        totals=_totals(document),
        unpriced_models=document["unpriced_models"],
        ranked_by="cost_usd" if priced else "total_tokens",
        nodes=nodes,
        models=[LlmModelUsage(name, _totals(one)) for name, one in document["models"].items()],
        most_expensive=calls[:top],
        quality=quality,
    )


def _call(node_id: str, item: Any, usage: Mapping[str, Any]) -> LlmCall:
    model = usage.get("model")
    reason = usage.get("finish_reason")
    preview = None
    if item is not None:
        value = item.item
        preview = one_line(value if isinstance(value, str) else repr(value), _PREVIEW_CHARS)
    return LlmCall(
        node_id=node_id,
        index=item.index if item is not None else None,
        item=preview,
        model=model if isinstance(model, str) else None,
        input_tokens=token_count(usage, "input_tokens"),
        output_tokens=token_count(usage, "output_tokens"),
        total_tokens=call_total_tokens(usage),
        cost_usd=call_cost(usage),
        finish_reason=reason if isinstance(reason, str) else None,
    )


def _quality(node_id: str, node_calls: list[tuple[Any, dict[str, Any]]]) -> LlmQuality:
    empty: list[int] = []
    cut_off: list[int] = []
    outputs: list[int] = []
    for position, (item, usage) in enumerate(node_calls):
        index = item.index if item is not None and item.index is not None else position
        succeeded = item is None or item.status == ITEM_SUCCESS
        if succeeded and usage.get("empty_response") is True:
            empty.append(index)
        if str(usage.get("finish_reason") or "").lower() in CUT_OFF_FINISH_REASONS:
            cut_off.append(index)
        if succeeded and not usage.get("error"):
            outputs.append(token_count(usage, "output_tokens"))
    p50, p95 = percentiles([float(count) for count in outputs], (50, 95))
    return LlmQuality(
        node_id=node_id,
        calls=len(node_calls),
        empty_responses=len(empty),
        empty_response_indexes=sorted(empty)[:MAX_INDEXES],
        cut_off=len(cut_off),
        cut_off_indexes=sorted(cut_off)[:MAX_INDEXES],
        output_tokens_min=min(outputs) if outputs else None,
        output_tokens_p50=p50,
        output_tokens_p95=p95,
        output_tokens_max=max(outputs) if outputs else None,
    )
