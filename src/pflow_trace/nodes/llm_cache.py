"""The cached prefix an ``llm`` node with ``prompt_cache`` sends ahead of its prompt.

The compiler hands the node its chunks as the resolved ``__prompt_cache__`` param
(``ir/prompt_cache.py``): each chunk is its prose and its value, a string as it is and any
other value as compact JSON with sorted keys, so the same data always makes the same bytes (a
provider's cache matches on bytes). A chunk whose value is not there is left out and named.
The chunks follow the node's ``system`` text in the system prompt, the stable part of a
request that providers cache. Where the model's ``llm`` plugin has a ``cache`` option (the
Anthropic plugin marks the prompt for caching with it), it is switched on; OpenAI-compatible
models cache long prefixes on their own. What was sent is recorded by name, size and SHA-256.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def serialised(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def cached_system(
    system: str | None, cache: dict[str, Any] | None
) -> tuple[str | None, dict[str, Any] | None]:
    """The system prompt with the cached chunks after it, and the record of what was sent."""
    if not cache:
        return system, None
    sent, skipped, texts = [], [], []
    for chunk in cache.get("chunks") or []:
        if chunk.get("value") is None:
            skipped.append(chunk["name"])
            continue
        sent.append(chunk["name"])
        texts.append(chunk.get("prose", "") + serialised(chunk["value"]))
    prefix = "".join(texts)
    record: dict[str, Any] = {"chunks": sent, "skipped": skipped, "ttl": cache.get("ttl")}
    if not sent:
        return system, record
    record["chars"] = len(prefix)
    record["sha256"] = hashlib.sha256(prefix.encode()).hexdigest()
    return (f"{system}\n\n{prefix}" if system else prefix), record


def cache_option(model: Any) -> dict[str, Any]:
    """``{"cache": True}`` when the model's plugin takes a ``cache`` option, else nothing."""
    fields = getattr(getattr(model, "Options", None), "model_fields", {}) or {}
    return {"cache": True} if "cache" in fields else {}
