"""Compute a :class:`~pflow_trace.report.diff.RunDiff` from the runs of two sides.

For each node id, every figure is compared the same way: the base and new values, their
change, a bootstrap interval of the change, and a test (Mann-Whitney U for durations, tokens
and cost; Fisher's exact test for error and retry rates). A change is *called* (``slower``,
``more errors``, ``costlier``...) only when the test is significant at ``alpha``, the
interval (when there is one) leaves out zero, and the change — and the nearer end of its
interval — is at least the minimum effect of :class:`~pflow_trace.report.diff.DiffSettings`;
otherwise it is ``no change``. Nothing
here reads a file format: it sees :mod:`pflow_trace.tracefile.model` only.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from pflow_trace.report.diff import (
    DiffSettings,
    DiffSide,
    MetricDiff,
    NodeDiff,
    RunDiff,
)
from pflow_trace.report.diff_gate import GateRule, evaluate_rules
from pflow_trace.report.diff_items import match_items
from pflow_trace.report.diff_samples import NodeSample, node_samples
from pflow_trace.report.diff_stats import (
    MEAN,
    Statistic,
    bootstrap_interval,
    fisher_exact,
    mann_whitney_u,
)
from pflow_trace.tracefile.model import TraceRun

TEST_MWU = "mann-whitney-u"
TEST_FISHER = "fisher-exact"
#: The item percentiles compared per batch.
ITEM_PERCENTILES = (50, 95, 99)
#: Items each side needs beyond a percentile for it to be tested.
ITEMS_BEYOND = 5
#: (worse, better) words per kind of figure.
_WORDS = {
    "duration": ("slower", "faster"),
    "errors": ("more errors", "fewer errors"),
    "retries": ("more retries", "fewer retries"),
    "tokens": ("more tokens", "fewer tokens"),
    "cost": ("costlier", "cheaper"),
}


def build_diff(
    base_runs: Sequence[TraceRun],
    new_runs: Sequence[TraceRun],
    settings: DiffSettings | None = None,
    rules: Sequence[GateRule] = (),
) -> RunDiff:
    """Compare the new runs with the base runs, node by node; apply ``rules`` as a gate."""
    settings = settings or DiffSettings()
    base_samples, new_samples = node_samples(base_runs), node_samples(new_runs)
    warnings = _workflow_warnings(base_runs, new_runs)
    nodes = []
    for node_id in [*base_samples, *(n for n in new_samples if n not in base_samples)]:
        before, after = base_samples.get(node_id), new_samples.get(node_id)
        nodes.append(_node_diff(node_id, before, after, settings, warnings))
    diff = RunDiff(
        base=_side(base_runs),
        new=_side(new_runs),
        settings=settings,
        same_workflow=_same_workflow(base_runs, new_runs),
        warnings=warnings,
        nodes=nodes,
        rules=[rule.text for rule in rules],
    )
    diff.gate = evaluate_rules(rules, diff.nodes)
    return diff


def _side(runs: Sequence[TraceRun]) -> DiffSide:
    return DiffSide(
        sources=[run.source for run in runs],
        runs=len(runs),
        workflow_names=[run.workflow_name for run in runs],
        final_statuses=[run.final_status for run in runs],
        start_times=[run.start_time for run in runs],
        duration_ms=[run.duration_ms for run in runs],
    )


def _same_workflow(base_runs: Sequence[TraceRun], new_runs: Sequence[TraceRun]) -> bool:
    return len({run.workflow_name for run in [*base_runs, *new_runs]}) == 1


def _workflow_warnings(base_runs: Sequence[TraceRun], new_runs: Sequence[TraceRun]) -> list[str]:
    if _same_workflow(base_runs, new_runs):
        return []
    names = {
        side: ", ".join(sorted({str(run.workflow_name) for run in runs}))
        for side, runs in (("base", base_runs), ("new", new_runs))
    }
    return [
        f"different workflows: base is {names['base']}, new is {names['new']}; "
        "nodes are compared by id anyway"
    ]


def _node_diff(
    node_id: str,
    before: NodeSample | None,
    after: NodeSample | None,
    settings: DiffSettings,
    warnings: list[str],
) -> NodeDiff:
    known = before or after
    assert known is not None
    if before is None or after is None:
        presence = "base only" if after is None else "new only"
        warnings.append(f"node '{node_id}' ran only in {presence.split()[0]}: not compared")
        return NodeDiff(
            node_id=node_id,
            node_type=known.node_type,
            presence=presence,
            base_status=before.statuses[-1] if before else None,
            new_status=after.statuses[-1] if after else None,
            batch=known.batch,
        )
    rng = random.Random(f"{settings.seed}:{node_id}")
    node = NodeDiff(
        node_id=node_id,
        node_type=after.node_type,
        presence="both",
        base_status=before.statuses[-1],
        new_status=after.statuses[-1],
        batch=before.batch or after.batch,
        metrics=_metrics(before, after, settings, rng),
    )
    if node.batch:
        _add_batch_facts(node, before, after, settings, warnings)
    return node


def _add_batch_facts(
    node: NodeDiff,
    before: NodeSample,
    after: NodeSample,
    settings: DiffSettings,
    warnings: list[str],
) -> None:
    """Item counts (and a warning when they differ) and the items that changed."""
    node.base_item_counts = list(before.item_counts)
    node.new_item_counts = list(after.item_counts)
    counts = set(before.item_counts) | set(after.item_counts)
    node.same_item_count = len(counts) <= 1
    if not node.same_item_count:
        warnings.append(
            f"node '{node.node_id}': different item counts (base "
            f"{_counts(before.item_counts)}, new {_counts(after.item_counts)}); "
            "rates and percentiles are compared, items only where they match"
        )
    if not before.executions_items or not after.executions_items:
        return
    movement = match_items(before.executions_items, after.executions_items, settings.top_items)
    node.item_match = movement.match
    if movement.note is not None:
        warnings.append(
            f"node '{node.node_id}': {movement.note}; items matched by {movement.match} instead"
        )
    node.newly_failing = movement.newly_failing[: settings.top_items]
    node.newly_failing_count = len(movement.newly_failing)
    node.newly_succeeding = movement.newly_succeeding[: settings.top_items]
    node.newly_succeeding_count = len(movement.newly_succeeding)
    node.moved_most = movement.moved_most


def _counts(counts: list[int]) -> str:
    return "/".join(str(count) for count in counts) or "?"


# -- the figures ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Comparison:
    """What every figure needs before its verdict: values, interval, test."""

    metric: str
    kind: str
    base: float | None
    new: float | None
    interval: tuple[float, float] | None
    test: str | None
    p_value: float | None
    base_n: int
    new_n: int


def _metrics(
    before: NodeSample, after: NodeSample, settings: DiffSettings, rng: random.Random
) -> list[MetricDiff]:
    comparisons = [_wall(before, after, settings, rng)]
    comparisons += _item_percentiles(before, after, settings, rng)
    comparisons.append(
        _rate("error_rate", "errors", before.failed, after.failed, before, after, settings, rng)
    )
    if before.batch and before.retried is not None and after.retried is not None:
        comparisons.append(
            _rate(
                "retry_rate", "retries", before.retried, after.retried, before, after, settings, rng
            )
        )
    if before.tokens_per_call or after.tokens_per_call:
        comparisons.append(_tokens(before, after, settings, rng))
    if before.cost_per_call or after.cost_per_call:
        comparisons.append(_cost(before, after, settings, rng))
    return [_verdict(comparison, settings) for comparison in comparisons]


def _interval(
    base: list[float],
    new: list[float],
    statistic: Statistic,
    settings: DiffSettings,
    rng: random.Random,
) -> tuple[float, float] | None:
    return bootstrap_interval(
        base,
        new,
        statistic,
        resamples=settings.resamples,
        confidence=settings.confidence,
        rng=rng,
    )


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _wall(
    before: NodeSample, after: NodeSample, settings: DiffSettings, rng: random.Random
) -> _Comparison:
    """The node's time per run: tested only with two or more runs on each side."""
    base, new = sorted(before.wall_ms_per_run), sorted(after.wall_ms_per_run)
    tested = len(base) >= 2 and len(new) >= 2
    return _Comparison(
        "wall_ms",
        "duration",
        _mean(base),
        _mean(new),
        _interval(base, new, MEAN, settings, rng) if tested else None,
        TEST_MWU if tested else None,
        mann_whitney_u(base, new) if tested else None,
        len(base),
        len(new),
    )


def _item_percentiles(
    before: NodeSample, after: NodeSample, settings: DiffSettings, rng: random.Random
) -> list[_Comparison]:
    """p50, p95 and p99 of item durations; one Mann-Whitney test for the whole distribution.

    A percentile is tested only when each side has at least :data:`ITEMS_BEYOND` items
    beyond it (p95: 100 items, p99: 500): below that, the p95 of a 30-item batch is its
    second-slowest item, and one item held up by the machine moves it.
    """
    base, new = sorted(before.item_durations_ms), sorted(after.item_durations_ms)
    if not base and not new:
        return []
    p_value = mann_whitney_u(base, new)
    fewest = min(len(base), len(new))
    comparisons = []
    for p in ITEM_PERCENTILES:
        statistic = Statistic(p)
        tested = p_value is not None and fewest * (100 - p) / 100 >= ITEMS_BEYOND
        comparisons.append(
            _Comparison(
                f"p{p}_ms",
                "duration",
                statistic.of_sorted(base),
                statistic.of_sorted(new),
                _interval(base, new, statistic, settings, rng) if tested else None,
                TEST_MWU if tested else None,
                p_value if tested else None,
                len(base),
                len(new),
            )
        )
    return comparisons


def _rate(
    metric: str,
    kind: str,
    base_hits: int,
    new_hits: int,
    before: NodeSample,
    after: NodeSample,
    settings: DiffSettings,
    rng: random.Random,
) -> _Comparison:
    """A share of finished items (failed, retried), by Fisher's exact test."""
    base_n, new_n = before.finished, after.finished
    base = [0.0] * (base_n - base_hits) + [1.0] * base_hits
    new = [0.0] * (new_n - new_hits) + [1.0] * new_hits
    p_value = fisher_exact(base_hits, base_n, new_hits, new_n)
    return _Comparison(
        metric,
        kind,
        base_hits / base_n if base_n else None,
        new_hits / new_n if new_n else None,
        _interval(base, new, MEAN, settings, rng),
        TEST_FISHER if p_value is not None else None,
        p_value,
        base_n,
        new_n,
    )


def _tokens(
    before: NodeSample, after: NodeSample, settings: DiffSettings, rng: random.Random
) -> _Comparison:
    base, new = sorted(before.tokens_per_call), sorted(after.tokens_per_call)
    p_value = mann_whitney_u(base, new)
    return _Comparison(
        "tokens_per_call",
        "tokens",
        _mean(base),
        _mean(new),
        _interval(base, new, MEAN, settings, rng),
        TEST_MWU if p_value is not None else None,
        p_value,
        len(base),
        len(new),
    )


def _cost(
    before: NodeSample, after: NodeSample, settings: DiffSettings, rng: random.Random
) -> _Comparison:
    """Cost per run; tested on the cost of each call, its interval scaled to a run's calls."""
    base, new = sorted(before.cost_per_call), sorted(after.cost_per_call)
    p_value = mann_whitney_u(base, new)
    interval = _interval(base, new, MEAN, settings, rng)
    runs = max(len(before.cost_per_run), len(after.cost_per_run), 1)
    calls_per_run = max(len(base), len(new)) / runs
    if interval is not None:
        interval = (interval[0] * calls_per_run, interval[1] * calls_per_run)
    return _Comparison(
        "cost_usd",
        "cost",
        _mean(before.cost_per_run),
        _mean(after.cost_per_run),
        interval,
        TEST_MWU if p_value is not None else None,
        p_value,
        len(base),
        len(new),
    )


def _verdict(c: _Comparison, settings: DiffSettings) -> MetricDiff:
    change = c.new - c.base if c.base is not None and c.new is not None else None
    relative = change / abs(c.base) if change is not None and c.base else None
    significant = None
    verdict = "untested"
    if c.p_value is not None and change is not None:
        excludes_zero = c.interval is None or c.interval[0] > 0 or c.interval[1] < 0
        significant = c.p_value < settings.alpha and excludes_zero
        verdict = "no change"
        # The smallest change the interval allows must clear the minimum effect: a shift that
        # may well be smaller than what matters is not called.
        smallest = change
        if c.interval is not None:
            smallest = min(abs(c.interval[0]), abs(c.interval[1]), abs(change))
        if significant and _large_enough(c.kind, smallest, c.base, settings):
            worse, better = _WORDS[c.kind]
            verdict = worse if change > 0 else better
    low, high = c.interval if c.interval is not None else (None, None)
    return MetricDiff(
        metric=c.metric,
        base=c.base,
        new=c.new,
        change=change,
        change_relative=relative,
        ci_low=low,
        ci_high=high,
        test=c.test,
        p_value=c.p_value,
        significant=significant,
        verdict=verdict,
        base_n=c.base_n,
        new_n=c.new_n,
    )


def _large_enough(kind: str, change: float, base: float | None, s: DiffSettings) -> bool:
    """The documented minimum effect of each kind of figure."""
    size = abs(change)
    if kind == "duration":
        return size >= s.min_duration_ms and size >= s.min_relative * abs(base or 0.0)
    if kind in ("errors", "retries"):
        return size >= s.min_rate_points
    return size > 0 and size >= s.min_cost_relative * abs(base or 0.0)
