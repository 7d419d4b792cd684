"""``--fail-on`` rules: the small grammar a CI gate is written in, and applying it to a diff.

::

    RULE   := [ "node=" NODE ":" ] METRIC ":+" AMOUNT [ "%" ]
    METRIC := wall | p50 | p95 | p99 | errors | retries | tokens | cost
    AMOUNT := a number >= 0

``p95:+10%`` crosses when a node's item p95 is called ``slower`` and grew by more than 10 %;
``p95:+50`` when it grew by more than 50 ms. ``errors`` and ``retries`` are rates, and their
plain amount is in percentage points (``errors:+0``: any significant rise). ``tokens`` is per
call, ``cost`` US dollars per run. ``node=NAME:`` limits a rule to one node. ``default``
stands for :data:`DEFAULT_RULES`. A rule crosses only on a change the diff *called* a
regression (significant and above the minimum effect), so noise never trips it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pflow_trace.errors import UsageError
from pflow_trace.report.diff import GateFinding, MetricDiff, NodeDiff

#: What ``--fail-on default`` means.
DEFAULT_RULES = ("p95:+10%", "errors:+0", "cost:+5%")
#: Rule metric name -> the MetricDiff it reads.
RULE_METRICS = {
    "wall": "wall_ms",
    "p50": "p50_ms",
    "p95": "p95_ms",
    "p99": "p99_ms",
    "errors": "error_rate",
    "retries": "retry_rate",
    "tokens": "tokens_per_call",
    "cost": "cost_usd",
}
#: Rates are written in percentage points.
_POINTS = frozenset({"error_rate", "retry_rate"})
_RULE = re.compile(
    r"^(?:node=(?P<node>[^:]+):)?(?P<metric>[a-z0-9]+):\+(?P<amount>\d+(?:\.\d+)?)(?P<pct>%)?$"
)


@dataclass(frozen=True, slots=True)
class GateRule:
    """One parsed rule; ``text`` is how it is shown back."""

    text: str
    metric: str
    amount: float
    relative: bool
    node_id: str | None = None

    def crossed_by(self, metric: MetricDiff) -> bool:
        if not metric.regression or metric.change is None:
            return False
        if self.relative:
            if metric.change_relative is None:  # grew from zero: more than any percentage
                return metric.change > 0
            return metric.change_relative * 100 > self.amount
        scale = 100 if metric.metric in _POINTS else 1
        return metric.change * scale > self.amount


def parse_rules(texts: Iterable[str]) -> list[GateRule]:
    """Every rule of the ``--fail-on`` values (each may hold several, comma-separated)."""
    rules: list[GateRule] = []
    for text in texts:
        for part in (piece.strip() for piece in text.split(",")):
            if part == "default":
                rules.extend(parse_rule(rule) for rule in DEFAULT_RULES)
            elif part:
                rules.append(parse_rule(part))
            else:
                raise UsageError(f"--fail-on {text!r}: an empty rule")
    return rules


def parse_rule(text: str) -> GateRule:
    """One rule, or a ``UsageError`` saying what is wrong with it."""
    match = _RULE.match(text)
    if match is None:
        raise UsageError(
            f"--fail-on {text!r}: not a rule; write METRIC:+AMOUNT[%] or "
            "node=NAME:METRIC:+AMOUNT[%], e.g. p95:+10%"
        )
    metric = RULE_METRICS.get(match["metric"])
    if metric is None:
        raise UsageError(
            f"--fail-on {text!r}: unknown metric {match['metric']!r}; one of "
            + ", ".join(RULE_METRICS)
        )
    amount = float(match["amount"])
    if not math.isfinite(amount):
        raise UsageError(f"--fail-on {text!r}: the amount is not a number")
    return GateRule(text, metric, amount, bool(match["pct"]), match["node"])


def evaluate_rules(rules: Sequence[GateRule], nodes: Sequence[NodeDiff]) -> list[GateFinding]:
    """Each rule against each node it covers that has its metric; a rule naming a node no
    run has is a usage error (a typo must not make a gate that never fails)."""
    known = {node.node_id for node in nodes}
    findings = []
    for rule in rules:
        if rule.node_id is not None and rule.node_id not in known:
            raise UsageError(f"--fail-on {rule.text!r}: no node {rule.node_id!r} in these runs")
        for node in nodes:
            if rule.node_id is not None and node.node_id != rule.node_id:
                continue
            metric = node.metric(rule.metric)
            if metric is None:
                continue
            findings.append(
                GateFinding(
                    rule=rule.text,
                    node_id=node.node_id,
                    metric=metric.metric,
                    change=metric.change,
                    change_relative=metric.change_relative,
                    verdict=metric.verdict,
                    crossed=rule.crossed_by(metric),
                )
            )
    return findings
