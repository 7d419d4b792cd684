"""The helpers that make values safe to print and to encode: control characters, depth, NaN."""

from __future__ import annotations

import json

from pflow_trace.text import cap_depth, nesting_problem, terminal_safe


def test_terminal_safe_shows_control_characters_as_escapes() -> None:
    assert terminal_safe("plain ✓ é") == "plain ✓ é"
    assert (
        terminal_safe("x\x1b]0;pwned\x07\nforged: line\r") == "x\\e]0;pwned\\x07\\nforged: line\\r"
    )
    assert terminal_safe("\x9b2J\x00\t") == "\\x9b2J\\x00\\t"  # C1 CSI, NUL, tab
    assert terminal_safe(3) == "3"


def test_nesting_problem_finds_depth_and_non_finite_numbers_without_recursing() -> None:
    value: list[object] = []
    for _ in range(100_000):  # far beyond the recursion limit: the walk is iterative
        value = [value]
    assert nesting_problem(value) == "nested more than 100 levels deep"
    assert nesting_problem({"a": [1, {"b": float("inf")}]}) == "inf is not a JSON number"
    assert nesting_problem({"a": [1, {"b": "ok"}]}) is None


def test_cap_depth_makes_any_value_encodable() -> None:
    value: list[object] = []
    for _ in range(5000):
        value = [value]
    capped = cap_depth({"deep": value, "nan": float("nan"), "big": 10**5000}, max_depth=10)
    text = json.dumps(capped)  # no RecursionError, no ValueError, no bare NaN
    assert "<nested deeper than 10 levels>" in text
    assert capped["nan"] == "nan"
    assert capped["big"] == "<integer of about 5001 digits>"
