"""The ``pflow-trace diff`` model: was the new run worse than the base, node by node?

``diff_build.build_diff`` fills these classes; the text, markdown and ``--format json``
views all draw the same object, so a field is added here once. Field names are the JSON keys
documented in ``docs/diff.md`` and checked by ``schemas/diff.schema.json``.

Times are milliseconds, rates are fractions (0.05 = 5 %), cost is US dollars. ``None`` (JSON
``null``) means "not known from these traces", never zero. A change is new minus base.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

#: Identifies the JSON document; bumped only on an incompatible change (see docs/diff.md).
SCHEMA_NAME = "pflow-trace/diff"
SCHEMA_VERSION = 1

#: Verdicts that mean "worse"; every other verdict is an improvement or no call at all.
REGRESSIONS = frozenset({"slower", "more errors", "more retries", "more tokens", "costlier"})


@dataclass(frozen=True, slots=True)
class DiffSettings:
    """When a change is called: significant at ``alpha`` and at least the minimum effect.

    A duration must move by ``min_relative`` of its base and by ``min_duration_ms``; tokens
    and cost by ``min_cost_relative``; an error or retry rate by ``min_rate_points`` (0.01 =
    one percentage point). ``seed`` makes the bootstrap intervals repeatable.
    """

    alpha: float = 0.05
    min_relative: float = 0.10
    min_duration_ms: float = 1.0
    min_cost_relative: float = 0.05
    min_rate_points: float = 0.01
    confidence: float = 0.95
    resamples: int = 1000
    seed: int = 0
    #: Items listed per batch as newly failing, newly succeeding and moved most.
    top_items: int = 5


@dataclass(slots=True)
class MetricDiff:
    """One figure of one node, base against new, with how sure the change is."""

    #: ``wall_ms``, ``p50_ms``, ``p95_ms``, ``p99_ms``, ``error_rate``, ``retry_rate``,
    #: ``tokens_per_call`` or ``cost_usd`` (per run).
    metric: str
    base: float | None
    new: float | None
    change: float | None
    #: change / base; None when base is 0 or unknown.
    change_relative: float | None
    #: The bootstrap interval of the change (``DiffSettings.confidence``), None when untested.
    ci_low: float | None
    ci_high: float | None
    #: ``mann-whitney-u`` or ``fisher-exact``; None when a side has too few values.
    test: str | None
    p_value: float | None
    significant: bool | None
    #: ``slower``/``faster``, ``more errors``/``fewer errors``, ``more retries``/``fewer
    #: retries``, ``more tokens``/``fewer tokens``, ``costlier``/``cheaper``, ``no change``
    #: or ``untested``.
    verdict: str
    #: Sample sizes behind the test: items (or runs, for wall time) on each side.
    base_n: int
    new_n: int

    @property
    def regression(self) -> bool:
        return self.verdict in REGRESSIONS


@dataclass(slots=True)
class ItemChange:
    """One batch item matched across the runs: it began failing, stopped failing, or moved."""

    #: The item's ``batch.key``, value (its preview) or index: what ``NodeDiff.item_match`` says.
    key: str
    base_status: str | None
    new_status: str | None
    base_ms: float | None
    new_ms: float | None
    change_ms: float | None
    #: The error of its latest failure on the new side (newly failing items only).
    error: str | None = None


@dataclass(slots=True)
class NodeDiff:
    """One node id, present on one or both sides; a node run several times is pooled."""

    node_id: str
    node_type: str
    #: ``both``, ``base only`` or ``new only``.
    presence: str
    #: The node's status on each side (``show``'s word), the latest run's.
    base_status: str | None
    new_status: str | None
    batch: bool
    #: How batch items were matched: ``key`` (their ``batch.key``), ``value`` (their previews
    #: were unique) or ``index``; a warning says why recorded keys could not be used.
    item_match: str | None = None
    #: Items per run on each side (one number per run that ran the node).
    base_item_counts: list[int] = field(default_factory=list)
    new_item_counts: list[int] = field(default_factory=list)
    same_item_count: bool | None = None
    metrics: list[MetricDiff] = field(default_factory=list)
    newly_failing: list[ItemChange] = field(default_factory=list)
    newly_failing_count: int = 0
    newly_succeeding: list[ItemChange] = field(default_factory=list)
    newly_succeeding_count: int = 0
    moved_most: list[ItemChange] = field(default_factory=list)

    def metric(self, name: str) -> MetricDiff | None:
        return next((m for m in self.metrics if m.metric == name), None)


@dataclass(slots=True)
class DiffSide:
    """The runs on one side: where they came from and what they were."""

    sources: list[str]
    runs: int
    workflow_names: list[str | None]
    final_statuses: list[str | None]
    start_times: list[str | None]
    duration_ms: list[float | None]


@dataclass(slots=True)
class GateFinding:
    """One ``--fail-on`` rule against one node's metric: crossed or not, and why."""

    rule: str
    node_id: str
    metric: str
    change: float | None
    change_relative: float | None
    verdict: str
    crossed: bool


@dataclass(slots=True)
class RunDiff:
    """Everything ``pflow-trace diff`` prints, as data."""

    base: DiffSide
    new: DiffSide
    settings: DiffSettings
    #: True when every run on both sides is of one workflow.
    same_workflow: bool
    #: Plain sentences: different workflows, different item counts, nodes on one side only.
    warnings: list[str]
    nodes: list[NodeDiff]
    #: ``--fail-on`` rules as given (defaults expanded), and what each found.
    rules: list[str] = field(default_factory=list)
    gate: list[GateFinding] = field(default_factory=list)

    @property
    def gate_failed(self) -> bool:
        return any(finding.crossed for finding in self.gate)

    def regressions(self) -> list[tuple[NodeDiff, MetricDiff]]:
        """Every (node, metric) called worse, in node order."""
        return [(node, m) for node in self.nodes for m in node.metrics if m.regression]

    def to_dict(self) -> dict[str, Any]:
        """The ``--format json`` document as plain data (see docs/diff.md)."""
        return {
            "schema": SCHEMA_NAME,
            "schema_version": SCHEMA_VERSION,
            "base": asdict(self.base),
            "new": asdict(self.new),
            "settings": asdict(self.settings),
            "same_workflow": self.same_workflow,
            "warnings": list(self.warnings),
            "nodes": [_node_dict(node) for node in self.nodes],
            "rules": list(self.rules),
            "gate": [asdict(finding) for finding in self.gate],
            "gate_failed": self.gate_failed,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)


def _node_dict(node: NodeDiff) -> dict[str, Any]:
    document = asdict(node)
    for metric, as_dict in zip(node.metrics, document["metrics"], strict=True):
        as_dict["regression"] = metric.regression
    return document
