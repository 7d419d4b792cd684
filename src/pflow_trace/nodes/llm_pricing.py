"""What an LLM call cost: a dated price table shipped as data, overridable by the user's file.

The built-in table (``nodes/data/llm_prices.json``) names its date and source; prices are US
dollars per million tokens. A user file of the same shape (``--prices FILE`` or the
``PFLOW_TRACE_PRICES`` variable) is laid over it: its models and aliases win. A model found in
neither has no price, and its calls get ``cost_usd: null`` — shown as "price unknown", never 0.

The cost of one call follows the token rule of :mod:`pflow_trace.observe.llm_usage` (cached
input is part of ``input_tokens``, so it is priced once, at its own rate)::

    uncached = input_tokens - cache_read_input_tokens - cache_creation_input_tokens
    cost = (uncached * input + cache_read_input_tokens * cache_read
            + cache_creation_input_tokens * cache_write + output_tokens * output) / 1e6

``cache_read`` and ``cache_write`` default to the ``input`` price when a model lists none.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pflow_trace.errors import UsageError
from pflow_trace.observe.llm_usage import token_count

#: The variable naming a user price file (what ``pflow-trace run --prices FILE`` sets).
PRICES_ENV = "PFLOW_TRACE_PRICES"
_PER_TOKENS = 1_000_000
_DATE_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """US dollars per million tokens of each kind."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None

    def cost_usd(self, usage: dict[str, Any]) -> float:
        """The call's cost by the rule in the module docstring."""
        read = token_count(usage, "cache_read_input_tokens")
        written = token_count(usage, "cache_creation_input_tokens")
        uncached = max(0, token_count(usage, "input_tokens") - read - written)
        read_price = self.input if self.cache_read is None else self.cache_read
        write_price = self.input if self.cache_write is None else self.cache_write
        total = (
            uncached * self.input
            + read * read_price
            + written * write_price
            + token_count(usage, "output_tokens") * self.output
        )
        return round(total / _PER_TOKENS, 10)


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Model name -> price, with aliases; ``source`` says where the prices came from."""

    prices: dict[str, ModelPrice]
    aliases: dict[str, str]
    source: str

    def lookup(self, *names: str | None) -> tuple[str, ModelPrice] | None:
        """The first of ``names`` with a price, trying each as given, without its provider
        prefix (``openai/gpt-4o``), and without a date or ``-latest`` suffix."""
        for name in names:
            for candidate in _candidates(name):
                key = self.aliases.get(candidate, candidate)
                price = self.prices.get(key)
                if price is not None:
                    return key, price
        return None


def _candidates(name: str | None) -> list[str]:
    if not name:
        return []
    found = [name]
    bare = name.rsplit("/", 1)[-1]
    found.append(bare)
    undated = _DATE_SUFFIX.sub("", bare)
    found.append(undated)
    return list(dict.fromkeys(found))


def _parse_table(document: Any, where: str) -> tuple[dict[str, ModelPrice], dict[str, str]]:
    """The models and aliases of a price document; every problem names ``where``."""
    if not isinstance(document, dict) or not isinstance(document.get("models"), dict):
        raise UsageError(f"{where}: a price file is a JSON object with a 'models' object")
    prices: dict[str, ModelPrice] = {}
    for model, entry in document["models"].items():
        if not isinstance(entry, dict):
            raise UsageError(f"{where}: models.{model} must be an object")
        values: dict[str, float | None] = {}
        for field in ("input", "output", "cache_read", "cache_write"):
            value = entry.get(field)
            required = field in ("input", "output")
            if value is None and not required:
                values[field] = None
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise UsageError(
                    f"{where}: models.{model}.{field} must be a number >= 0 "
                    "(US dollars per million tokens)"
                )
            values[field] = float(value)
        prices[str(model)] = ModelPrice(**values)  # type: ignore[arg-type]
    aliases = document.get("aliases") or {}
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise UsageError(f"{where}: 'aliases' must map names to model names")
    return prices, {str(key): value for key, value in aliases.items()}


def _builtin_document() -> dict[str, Any]:
    text = resources.files("pflow_trace.nodes").joinpath("data/llm_prices.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def read_user_prices(path: str | os.PathLike[str]) -> tuple[dict[str, ModelPrice], dict[str, str]]:
    """A user price file, checked; a missing or malformed file is a one-line UsageError."""
    name = os.fspath(path)
    try:
        text = Path(name).read_text("utf-8")
    except FileNotFoundError:
        raise UsageError(f"price file {name}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"price file {name}: cannot read ({exc})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"price file {name}: not JSON ({exc.msg} at line {exc.lineno})") from None
    return _parse_table(document, f"price file {name}")


_cache_lock = threading.Lock()
_cache: dict[tuple[str, float], PriceTable] = {}


def price_table(user_file: str | None = None) -> PriceTable:
    """The built-in table with ``user_file`` (default: ``$PFLOW_TRACE_PRICES``) laid over it.

    Read once per file and modification time, so a batch of thousands of calls reads it once.
    """
    path = user_file if user_file is not None else os.environ.get(PRICES_ENV, "")
    try:
        stamp = os.stat(path).st_mtime if path else 0.0
    except OSError:
        stamp = -1.0  # missing: read_user_prices below raises the one-line error
    key = (path, stamp)
    with _cache_lock:
        table = _cache.get(key)
    if table is not None:
        return table
    builtin = _builtin_document()
    prices, aliases = _parse_table(builtin, "built-in price table")
    source = f"built-in table of {builtin.get('as_of', '?')}"
    if path:
        user_prices, user_aliases = read_user_prices(path)
        prices = {**prices, **user_prices}
        aliases = {**aliases, **user_aliases}
        for model in user_prices:  # a user's own entry beats a built-in alias of that name
            aliases.pop(model, None)
        source = f"{path} over the {source}"
    table = PriceTable(prices, aliases, source)
    with _cache_lock:
        _cache[key] = table
    return table
