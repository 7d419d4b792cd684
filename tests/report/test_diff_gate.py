"""The ``--fail-on`` grammar and when a rule crosses."""

from __future__ import annotations

import pytest

from pflow_trace.errors import UsageError
from pflow_trace.report.diff import MetricDiff
from pflow_trace.report.diff_gate import DEFAULT_RULES, GateRule, parse_rule, parse_rules


def metric(name: str, base: float, new: float, verdict: str) -> MetricDiff:
    change = new - base
    return MetricDiff(
        metric=name,
        base=base,
        new=new,
        change=change,
        change_relative=change / base if base else None,
        ci_low=None,
        ci_high=None,
        test="mann-whitney-u",
        p_value=0.001,
        significant=verdict != "no change",
        verdict=verdict,
        base_n=100,
        new_n=100,
    )


def test_rules_parse_with_scope_units_and_defaults() -> None:
    assert parse_rule("p95:+10%") == GateRule("p95:+10%", "p95_ms", 10.0, True)
    assert parse_rule("node=fetch-pages:p99:+2.5") == GateRule(
        "node=fetch-pages:p99:+2.5", "p99_ms", 2.5, False, "fetch-pages"
    )
    rules = parse_rules(["default", "errors:+0, tokens:+1%"])
    assert [rule.text for rule in rules] == [*DEFAULT_RULES, "errors:+0", "tokens:+1%"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("p95:10%", "not a rule"),
        ("p95:-10%", "not a rule"),
        ("p95", "not a rule"),
        ("node=:p95:+1%", "not a rule"),
        ("latency:+10%", "unknown metric 'latency'"),
        ("p95:+ten%", "not a rule"),
    ],
)
def test_malformed_rules_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_rule(text)
    assert caught.value.message.startswith(f"--fail-on {text!r}: {problem}")
    assert "\n" not in caught.value.message


def test_a_rule_crosses_only_on_a_called_regression_beyond_its_amount() -> None:
    rule = parse_rule("p95:+10%")
    assert rule.crossed_by(metric("p95_ms", 10.0, 13.0, "slower"))
    assert not rule.crossed_by(metric("p95_ms", 10.0, 10.8, "slower"))  # +8 %
    assert not rule.crossed_by(metric("p95_ms", 10.0, 13.0, "no change"))  # not significant
    assert not rule.crossed_by(metric("p95_ms", 13.0, 10.0, "faster"))


def test_rates_are_in_percentage_points_and_zero_means_any_rise() -> None:
    assert parse_rule("errors:+0").crossed_by(metric("error_rate", 0.0, 0.2, "more errors"))
    assert not parse_rule("errors:+25").crossed_by(metric("error_rate", 0.0, 0.2, "more errors"))
    assert parse_rule("errors:+15").crossed_by(metric("error_rate", 0.0, 0.2, "more errors"))


def test_a_relative_rule_crosses_when_a_figure_grows_from_zero() -> None:
    assert parse_rule("errors:+50%").crossed_by(metric("error_rate", 0.0, 0.2, "more errors"))
