"""The cost rules: the built-in table, unknown models, a user price file, and cached tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pflow_trace.errors import UsageError
from pflow_trace.nodes.llm_pricing import PRICES_ENV, ModelPrice, price_table
from pflow_trace.observe.llm_usage import summarize_usages


def test_builtin_table_is_dated_and_names_its_source() -> None:
    document = json.loads(
        (
            Path(__file__).resolve().parents[2] / "src/pflow_trace/nodes/data/llm_prices.json"
        ).read_text()
    )
    assert document["as_of"] and document["source"] and "per 1,000,000 tokens" in document["unit"]
    assert "built-in table of " + document["as_of"] in price_table("").source


@pytest.mark.parametrize(
    "name",
    ["gpt-4o-mini", "openai/gpt-4o-mini", "gpt-4o-mini-2024-07-18", "4o-mini"],
)
def test_known_model_is_found_by_id_prefix_date_or_alias(name: str) -> None:
    found = price_table("").lookup(name)
    assert found is not None and found[0] == "gpt-4o-mini"
    usage = {"input_tokens": 1_000_000, "output_tokens": 1_000_000}
    assert found[1].cost_usd(usage) == pytest.approx(0.15 + 0.60)


def test_unknown_model_has_no_price() -> None:
    assert price_table("").lookup("echo", "my-local-llama") is None


def test_cached_input_is_priced_once_at_its_own_rate() -> None:
    price = ModelPrice(input=2.0, output=8.0, cache_read=0.5, cache_write=2.5)
    usage = {
        "input_tokens": 1000,  # includes the 600 read from and the 100 written to the cache
        "cache_read_input_tokens": 600,
        "cache_creation_input_tokens": 100,
        "output_tokens": 50,
    }
    expected = (300 * 2.0 + 600 * 0.5 + 100 * 2.5 + 50 * 8.0) / 1e6
    assert price.cost_usd(usage) == pytest.approx(expected)
    # With no cache price listed, cached tokens cost the input price: never less than nothing,
    # never counted twice.
    plain = ModelPrice(input=2.0, output=8.0)
    assert plain.cost_usd(usage) == pytest.approx((1000 * 2.0 + 50 * 8.0) / 1e6)


def test_totals_never_add_cached_tokens_on_top() -> None:
    calls = [
        {
            "model": "m",
            "input_tokens": 100,
            "cache_read_input_tokens": 40,
            "output_tokens": 10,
            "total_tokens": 110,
            "cost_usd": 0.001,
        },
        {"model": "m", "input_tokens": 50, "output_tokens": 5, "cost_usd": 0.002},
    ]
    totals = summarize_usages(calls)
    assert totals is not None
    assert (totals["input_tokens"], totals["total_tokens"]) == (150, 165)
    assert totals["cache_read_input_tokens"] == 40
    assert totals["cost_usd"] == pytest.approx(0.003)


def test_one_unpriced_call_makes_the_total_unknown_not_smaller() -> None:
    totals = summarize_usages(
        [
            {"model": "gpt-4o-mini", "input_tokens": 10, "output_tokens": 1, "cost_usd": 0.25},
            {"model": "echo", "input_tokens": 10, "output_tokens": 1, "cost_usd": None},
        ]
    )
    assert totals is not None
    assert totals["cost_usd"] is None
    assert totals["known_cost_usd"] == pytest.approx(0.25)
    assert totals["unpriced_models"] == ["echo"]
    assert totals["models"]["gpt-4o-mini"]["cost_usd"] == pytest.approx(0.25)


def test_user_file_adds_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps(
            {
                "models": {
                    "echo": {"input": 1.0, "output": 2.0},
                    "gpt-4o-mini": {"input": 10.0, "output": 20.0},
                },
                "aliases": {"house-model": "echo"},
            }
        )
    )
    monkeypatch.setenv(PRICES_ENV, str(prices))
    table = price_table()
    assert table.lookup("echo")[1] == ModelPrice(input=1.0, output=2.0)
    assert table.lookup("house-model")[0] == "echo"
    assert table.lookup("gpt-4o-mini")[1].input == 10.0  # the user's price wins
    assert table.lookup("gpt-4o")[1].input == 2.5  # the rest of the built-in table stays
    assert str(prices) in table.source


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        ('{"prices": {}}', "a JSON object with a 'models' object"),
        ('{"models": {"x": {"input": -1, "output": 1}}}', "models.x.input must be a number >= 0"),
        ('{"models": {"x": {"input": 1}}}', "models.x.output must be a number"),
    ],
)
def test_a_bad_price_file_is_one_clear_line(tmp_path: Path, content: str, message: str) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(content)
    with pytest.raises(UsageError, match=message) as caught:
        price_table(str(prices))
    assert str(prices) in caught.value.message


def test_a_missing_price_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        price_table(str(tmp_path / "absent.json"))
