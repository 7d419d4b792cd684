"""What a batch node leaves in its namespace, shaped as pflow (pflow-cli 0.16) shapes it.

``results`` holds one dict per successful item, in input order: the item's outputs plus
``item`` (the input) and ``original_index``; failed items are only in ``errors``, which is
always a list. ``count`` is the items attempted when ``fail_fast`` stopped early, as in pflow;
otherwise every item (also for an interrupted run, whose missing items are "skipped").
The store holds exactly what pflow's does, key for key: what pflow-trace learns beyond it (an
LLM batch's token and cost totals) goes to the trace, never into the store.
Kept apart from the batch layer, which owns running the items; this owns their summary.
"""

from __future__ import annotations

from typing import Any

from pflow_trace.observe.facts import ItemOutcome


def timing_stats(durations: list[float]) -> dict[str, float]:
    """``batch_metadata.timing`` from the item durations (ms); ``{}`` for an empty batch."""
    if not durations:
        return {}
    total = sum(durations)
    return {
        "total_items_ms": round(total, 2),
        "avg_item_ms": round(total / len(durations), 2),
        "min_item_ms": round(min(durations), 2),
        "max_item_ms": round(max(durations), 2),
    }


def _item_result(outputs: Any, item: Any, index: int) -> Any:
    """One ``results`` entry: the item's outputs plus ``item`` and ``original_index``.

    A chain without the Namespaced layer (a test double) may write something that is not a
    dict; that is kept as it is.
    """
    if not isinstance(outputs, dict):
        return outputs
    return {**outputs, "item": item, "original_index": index}


def _taken(results: list[Any], index: int) -> Any:
    """``results[index]``, its slot emptied."""
    value = results[index]
    results[index] = None
    return value


def build_batch_output(
    config: Any, items: list[Any], outcomes: list[ItemOutcome], results: list[Any]
) -> dict[str, Any]:
    """The namespace for ``outcomes`` (sorted by index) of a batch run with ``config``.

    ``results`` is consumed: each item's outputs are let go as its entry is made, so a large
    batch never holds both its outputs and the entries made from them (at a million items
    that was 180 MB of the run's peak)."""
    errors = [
        {"index": o.index, "item": items[o.index], "error": o.error}
        for o in outcomes
        if o.status == "failed"
    ]
    kept = [_item_result(_taken(results, o.index), items[o.index], o.index)
            for o in outcomes if o.status == "success"]  # fmt: skip
    stopped_early = config.error_handling == "fail_fast" and errors
    metadata: dict[str, Any] = {
        "parallel": config.parallel,
        "max_concurrent": config.max_concurrent if config.parallel else None,
        "max_retries": config.max_retries,
        "retry_wait": config.retry_wait or None,  # pflow writes null when none was set
        "execution_mode": config.execution_mode,
        "timing": timing_stats([outcome.duration_ms for outcome in outcomes]),
    }
    return {
        "results": kept,
        "count": len(outcomes) if stopped_early else len(items),
        "success_count": len(kept),
        "error_count": len(errors),
        "errors": errors,
        "batch_metadata": metadata,
    }
