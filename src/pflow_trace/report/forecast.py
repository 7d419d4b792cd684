"""``run --dry-run``'s forecast: per node and in total, items, wall time and LLM cost, each a range.

Two sources, per node, the better one that exists:

* **History**: the node's figures in past runs of the same workflow (by name) in the trace
  directory. Per item (a batch) or per execution, the node's wall time and LLM cost in each past
  run; the forecast is the item count times the median (wall time) or mean (cost) of those, and
  the range is the count times their smallest and largest. The item count is the one the dry run
  resolved, else the last run's, ranging over the past runs' counts.
* **Prompt sizes** (an ``llm`` node no past run has): each call's prompt and system text as the
  dry run resolved them. Tokens are counted with ``tiktoken`` when it is installed and knows the
  model (the ``llm`` library exposes no tokenizer), else estimated as characters / 4, ranging
  from characters / 8 to characters / 2 (English prose sits near / 4; code, numbers and
  non-Latin scripts run higher: CJK text can pass the upper end). Output tokens are not knowable
  before the call: the estimate is the prompt's size (at least 64, at most ``max_tokens``),
  the range 1 to ``max_tokens`` (or, without it, the larger of 1,024 and four times the
  prompt). A call's wall time is guessed from a hosted model's pace, 1 s plus 15 ms per output
  token, ranging from 0.2 s to 5 s plus 50 ms per token. The cost is the price table's
  (:mod:`pflow_trace.nodes.llm_pricing`) for those tokens.

A model the price table does not know gets "price unknown" and the total cost says so; it is
never counted as $0. A node that makes no LLM call costs nothing and says so; its wall time
without history is unknown, and the total wall time then covers only the nodes that have one
(the forecast names the others).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pflow_trace.nodes.llm_pricing import price_table
from pflow_trace.report.diff_samples import NodeSample, node_samples
from pflow_trace.runtime.dry_run import LlmCall, NodePreview, WorkflowPreview
from pflow_trace.runtime.pilot import Range
from pflow_trace.tracefile.model import TraceRun

SCHEMA_NAME = "pflow-trace/forecast"
SCHEMA_VERSION = 1
#: Characters per token: the estimate, and the range's two ends (module docstring).
CHARS_PER_TOKEN, CHARS_PER_TOKEN_LOW, CHARS_PER_TOKEN_HIGH = 4.0, 8.0, 2.0
MIN_OUTPUT_ESTIMATE, MIN_OUTPUT_HIGH = 64, 1024
#: A call's guessed wall time: (fixed ms, ms per output token) for the estimate, low and high.
CALL_MS, CALL_MS_LOW, CALL_MS_HIGH = (1000.0, 15.0), (200.0, 0.0), (5000.0, 50.0)


@dataclass(slots=True)
class NodeForecast:
    node_id: str
    node_type: str
    batch: bool
    #: ``history (N runs)``, ``prompt sizes`` or ``no estimate``.
    source: str
    items: Range | None = None
    wall_ms: Range | None = None
    #: None: unknown (``cost_note`` says why); a node without LLM calls has 0 and a note.
    cost_usd: Range | None = None
    cost_note: str | None = None
    llm_calls: Range | None = None
    tokens_method: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Forecast:
    workflow_name: str
    history_runs: int
    nodes: list[NodeForecast]
    ran_to_find_items: list[str]
    #: Items over every batch node; None when a batch's count is unknown.
    items: Range | None
    wall_ms: Range | None
    cost_usd: Range | None
    #: Nodes whose wall time is unknown (left out of ``wall_ms``).
    wall_unknown: list[str]
    #: What the total cost leaves out: "price unknown for echo", ...
    cost_unknown: list[str]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, Range):
                return value.as_dict()
            if isinstance(value, list):
                return [plain(item) for item in value]
            if isinstance(value, NodeForecast):
                return {name: plain(getattr(value, name)) for name in value.__slots__}
            return value

        document = {name: plain(getattr(self, name)) for name in self.__dataclass_fields__}
        return {"schema": SCHEMA_NAME, "schema_version": SCHEMA_VERSION, **document}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)


def token_estimate(text: str, model_id: str | None) -> tuple[Range, str]:
    """The tokens of ``text`` for ``model_id``: exact with tiktoken, else characters / 4."""
    try:
        import tiktoken  # type: ignore[import-not-found]

        encoding = tiktoken.encoding_for_model(model_id or "")
        count = float(len(encoding.encode(text)))
        return Range(count, count, count), "tiktoken"
    except Exception:  # not installed, or a model it does not know
        chars = len(text)
        return (
            Range(
                math.ceil(chars / CHARS_PER_TOKEN),
                math.ceil(chars / CHARS_PER_TOKEN_LOW),
                math.ceil(chars / CHARS_PER_TOKEN_HIGH),
            ),
            "characters / 4",
        )


def _output_tokens(prompt_tokens: Range, max_tokens: int | None) -> Range:
    cap = float(max_tokens) if max_tokens else math.inf
    estimate = min(cap, max(MIN_OUTPUT_ESTIMATE, prompt_tokens.estimate))
    assert prompt_tokens.high is not None
    high = cap if max_tokens else max(MIN_OUTPUT_HIGH, 4 * prompt_tokens.high)
    return Range(estimate, 1.0, high)


def _call_ms(output: Range) -> Range:
    assert output.low is not None and output.high is not None
    return Range(
        CALL_MS[0] + CALL_MS[1] * output.estimate,
        CALL_MS_LOW[0] + CALL_MS_LOW[1] * output.low,
        CALL_MS_HIGH[0] + CALL_MS_HIGH[1] * output.high,
    )


def _add(ranges: Sequence[Range | None]) -> Range | None:
    if not ranges or any(part is None for part in ranges):
        return None
    known = [part for part in ranges if part is not None]
    lows = [part.low for part in known]
    highs = [part.high for part in known]
    return Range(
        sum(part.estimate for part in known),
        None if None in lows else sum(low for low in lows if low is not None),
        None if None in highs else sum(high for high in highs if high is not None),
    )


def _scaled(range_: Range, factor: float) -> Range:
    return Range(
        range_.estimate * factor,
        None if range_.low is None else range_.low * factor,
        None if range_.high is None else range_.high * factor,
    )


def _default_model() -> str | None:
    try:
        import llm

        return str(llm.get_default_model())
    except Exception:  # no llm library configuration: the model stays unnamed
        return None


def from_prompts(preview: NodePreview) -> NodeForecast:
    """An ``llm`` node's forecast from its calls' prompt sizes and the price table."""
    result = NodeForecast(preview.node_id, preview.node_type, preview.batch, "prompt sizes")
    if preview.batch and preview.items is None:
        result.source = "no estimate"
        result.notes.append(preview.items_reason or "items unknown")
        result.cost_note = "unknown: the items are only known by running"
        return result
    model = preview.model if isinstance(preview.model, str) else _default_model()
    priced = price_table().lookup(model)
    costs: list[Range | None] = []
    times: list[Range] = []
    for call in preview.calls:
        tokens_in, method = token_estimate(call.prompt + call.system, model)
        result.tokens_method = method
        output = _output_tokens(tokens_in, preview.max_tokens)
        times.append(_call_ms(output))
        costs.append(_call_cost(tokens_in, output, priced, call))
    count = len(preview.calls)
    result.items = Range(count, count, count) if preview.batch else None
    result.llm_calls = Range(count, count, count)
    lanes = max(1, min(preview.lanes, count or 1))
    per_call = _add(times)
    result.wall_ms = _scaled(per_call, 1 / count * math.ceil(count / lanes)) if per_call else None
    if priced is None:
        result.cost_note = f"price unknown for {model or 'the default model'}"
    else:
        result.cost_usd = _add(costs)
    if any(call.unknown_values for call in preview.calls):
        result.notes.append(
            "the prompt reads values not known before running (or missing): its size is a floor"
        )
    return result


def _call_cost(tokens_in: Range, output: Range, priced: Any, call: LlmCall) -> Range | None:
    if priced is None:
        return None
    price = priced[1]

    def cost(input_tokens: float | None, output_tokens: float | None) -> float | None:
        if input_tokens is None or output_tokens is None or math.isinf(output_tokens):
            return None
        usage = {"input_tokens": int(input_tokens), "output_tokens": int(output_tokens)}
        return float(price.cost_usd(usage))

    estimate = cost(tokens_in.estimate, output.estimate)
    high = None if call.unknown_values else cost(tokens_in.high, output.high)
    return Range(estimate or 0.0, cost(tokens_in.low, output.low), high)


def _rates(per_run: Sequence[float], counts: Sequence[int]) -> list[float]:
    """Per-item figures of each past run: a run's total over its item count."""
    if len(per_run) == len(counts):
        return [total / count for total, count in zip(per_run, counts, strict=True) if count]
    mean_count = statistics.fmean(counts) if counts else 0
    return [total / mean_count for total in per_run] if mean_count else []


def from_history(preview: NodePreview, sample: NodeSample, runs: int) -> NodeForecast:
    """A node's forecast from its figures in past runs (module docstring)."""
    result = NodeForecast(
        preview.node_id,
        preview.node_type,
        preview.batch,
        f"history ({runs} run{'s' if runs != 1 else ''})",
    )
    factor = 1.0
    if preview.batch:
        counts = sample.item_counts
        if preview.items is not None:
            n = float(len(preview.items))
            result.items = Range(n, n, n)
        elif counts:
            result.items = Range(float(counts[-1]), float(min(counts)), float(max(counts)))
            result.notes.append(preview.items_reason or "items unknown: counted from past runs")
        walls = _rates(sample.wall_ms_per_run, counts)
        costs = _rates(sample.cost_per_run, counts)
        assert result.items is not None or not counts
        factor = result.items.estimate if result.items is not None else 0.0
    else:
        walls, costs = list(sample.wall_ms_per_run), list(sample.cost_per_run)
    if runs == 1:
        result.notes.append("one past run: its figures are the whole range")
    if walls:
        result.wall_ms = _history_range(walls, statistics.median(walls), result.items, factor)
    if costs:
        result.cost_usd = _history_range(costs, statistics.fmean(costs), result.items, factor)
    elif sample.tokens_per_call:
        result.cost_note = "price unknown: past runs recorded tokens but no cost"
    elif preview.node_type == "llm":
        result.cost_note = "past runs recorded no LLM call"
    else:
        result.cost_usd, result.cost_note = Range(0.0, 0.0, 0.0), "no LLM calls"
    return result


def _history_range(values: list[float], centre: float, items: Range | None, factor: float) -> Range:
    """Rounded to 10 decimals, as costs are priced: a per-item rate times the count must not
    miss the run it came from by a float's last bit."""
    if items is None:
        low, estimate, high = min(values), centre, max(values)
    else:
        assert items.low is not None and items.high is not None
        low, estimate, high = min(values) * items.low, centre * factor, max(values) * items.high
    return Range(round(estimate, 10), round(low, 10), round(high, 10))


def build_forecast(preview: WorkflowPreview, history: Sequence[TraceRun]) -> Forecast:
    """The forecast of every node of ``preview`` and the totals; ``history`` is the past runs
    of the same workflow (any others are ignored)."""
    runs = [run for run in history if run.workflow_name == preview.workflow_name]
    samples = node_samples(runs) if runs else {}
    nodes: list[NodeForecast] = []
    for node in preview.nodes:
        sample = samples.get(node.node_id)
        if sample is not None and (sample.wall_ms_per_run or sample.item_counts):
            nodes.append(from_history(node, sample, len(runs)))
        elif node.node_type == "llm":
            nodes.append(from_prompts(node))
        else:
            nodes.append(_no_history(node))
    wall_unknown = [node.node_id for node in nodes if node.wall_ms is None]
    cost_unknown = [f"{node.node_id}: {node.cost_note}" for node in nodes if node.cost_usd is None]
    return Forecast(
        workflow_name=preview.workflow_name,
        history_runs=len(runs),
        nodes=nodes,
        ran_to_find_items=preview.ran,
        items=_add([node.items for node in nodes if node.batch])
        if any(n.batch for n in nodes)
        else Range(0.0, 0.0, 0.0),
        wall_ms=_add([node.wall_ms for node in nodes if node.wall_ms is not None]),
        cost_usd=_add([node.cost_usd for node in nodes if node.cost_usd is not None]),
        wall_unknown=wall_unknown,
        cost_unknown=cost_unknown,
        notes=list(preview.notes),
    )


def _no_history(node: NodePreview) -> NodeForecast:
    result = NodeForecast(node.node_id, node.node_type, node.batch, "no estimate")
    if node.batch:
        if node.items is not None:
            n = float(len(node.items))
            result.items = Range(n, n, n)
        else:
            result.notes.append(node.items_reason or "items unknown")
    result.cost_usd, result.cost_note = Range(0.0, 0.0, 0.0), "no LLM calls"
    result.notes.append("wall time unknown without a past run")
    return result
