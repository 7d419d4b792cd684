"""Adding up LLM calls: the one rule every view uses for tokens and cost.

A call's ``llm_usage`` (what the ``llm`` node returns, and what pflow writes as ``llm_usage``
/ ``llm_call``) counts tokens this way, and nothing here ever adds a cached token twice:

* ``input_tokens`` is every input token of the call, cached ones included;
* ``cache_read_input_tokens`` and ``cache_creation_input_tokens`` are the parts of
  ``input_tokens`` read from / written to the provider's prompt cache (never added on top);
* ``thinking_tokens`` is the part of ``output_tokens`` spent on reasoning;
* ``total_tokens`` is ``input_tokens + output_tokens``.

``cost_usd`` is ``None`` when the model's price is unknown; a total over calls is then ``None``
as well (with ``known_cost_usd`` holding what could be priced), never a silent 0. The trace
file (``llm_usage`` per item and node, ``llm_summary``),
``run`` and ``show`` all add calls up with :class:`UsageTotals`, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: The token counts a call records, in the order they are shown.
TOKEN_KEYS = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "thinking_tokens",
)
#: Finish reasons that mean the answer was cut off by the output-token limit.
CUT_OFF_FINISH_REASONS = frozenset({"length", "max_tokens", "max_output_tokens"})


def token_count(usage: Mapping[str, Any], key: str) -> int:
    """A token count as an int; missing, negative or not a number counts 0."""
    value = usage.get(key)
    if value.__class__ is int and value > 0:
        return int(value)
    if value.__class__ is float and value > 0:
        return int(value)
    return 0


def call_total_tokens(usage: Mapping[str, Any]) -> int:
    """``total_tokens`` as recorded, else input + output."""
    total = token_count(usage, "total_tokens")
    return total or token_count(usage, "input_tokens") + token_count(usage, "output_tokens")


def call_cost(usage: Mapping[str, Any]) -> float | None:
    """The call's ``cost_usd``; None when it is unknown (absent, null, not a number)."""
    cost = usage.get("cost_usd")
    if cost.__class__ in (int, float) and cost >= 0:
        return float(cost)
    return None


class _Bucket:
    """Counts for one group of calls (all of them, or one model's)."""

    __slots__ = ("calls", "failed_calls", "known_cost_usd", "tokens", "unpriced_calls")

    def __init__(self) -> None:
        self.calls = 0
        self.failed_calls = 0
        self.unpriced_calls = 0
        self.known_cost_usd = 0.0
        self.tokens = dict.fromkeys(TOKEN_KEYS, 0)

    def add(self, usage: Mapping[str, Any]) -> None:
        self.calls += 1
        if usage.get("error"):
            self.failed_calls += 1
        tokens = self.tokens
        for key in TOKEN_KEYS:
            tokens[key] += token_count(usage, key)
        if not usage.get("total_tokens"):
            tokens["total_tokens"] += token_count(usage, "input_tokens") + token_count(
                usage, "output_tokens"
            )
        cost = call_cost(usage)
        if cost is None:
            self.unpriced_calls += 1
        else:
            self.known_cost_usd += cost

    def as_dict(self) -> dict[str, Any]:
        known = round(self.known_cost_usd, 8)
        return {
            "calls": self.calls,
            "failed_calls": self.failed_calls,
            **self.tokens,
            "cost_usd": None if self.unpriced_calls else known,
            "known_cost_usd": known,
            "unpriced_calls": self.unpriced_calls,
        }


class UsageTotals:
    """Adds calls up: totals, and the same per model; see the module docstring for the rule."""

    __slots__ = ("_all", "_by_model")

    def __init__(self) -> None:
        self._all = _Bucket()
        self._by_model: dict[str, _Bucket] = {}

    def add(self, usage: Mapping[str, Any] | None) -> None:
        """Count one call; ``None`` or an empty mapping (no usage known) is not a call."""
        if not usage:
            return
        self._all.add(usage)
        model = usage.get("model")
        name = model if isinstance(model, str) and model else "(unknown model)"
        bucket = self._by_model.get(name)
        if bucket is None:
            bucket = self._by_model[name] = _Bucket()
        bucket.add(usage)

    @property
    def calls(self) -> int:
        return self._all.calls

    def as_dict(self) -> dict[str, Any]:
        """Totals plus ``models`` (per model) and ``unpriced_models`` (price unknown)."""
        document = self._all.as_dict()
        document["unpriced_models"] = sorted(
            name for name, bucket in self._by_model.items() if bucket.unpriced_calls
        )
        document["models"] = {
            name: self._by_model[name].as_dict() for name in sorted(self._by_model)
        }
        return document


def summarize_usages(usages: Iterable[Mapping[str, Any] | None]) -> dict[str, Any] | None:
    """The totals of some calls as a dict, or None when none of them was an LLM call."""
    totals = UsageTotals()
    for usage in usages:
        totals.add(usage)
    return totals.as_dict() if totals.calls else None
