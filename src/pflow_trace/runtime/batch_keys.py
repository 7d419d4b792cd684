"""A batch's ``key`` template, evaluated once per item: the name ``diff`` matches items by.

``batch.key`` (say ``${item.id}``) gives every item a stable identity that survives a
reordered, grown or shrunk input list, which an index does not and a preview of a large
object may not. The batch layer evaluates it for every item before any item runs, with the
item under its alias and its position as ``${__index__}`` (what the node's params see), and
the trace file records each item's key (``batch_items[].key``).

The key is observability, not work: it neither fails nor degrades a run. An item whose key
does not resolve still runs and is recorded with a ``null`` key; keys that repeat are recorded
as they are. ``diff`` notices both, says so, and matches that batch's items by value or index
instead. Keys pass the run's redaction and are cut at :data:`KEY_CHARS` characters.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping
from typing import Any

from pflow_trace.ir.templates import UnresolvedTemplate, resolve, to_text
from pflow_trace.observe.redaction import Redactor
from pflow_trace.runtime.item_life import INDEX_KEY
from pflow_trace.text import truncate_marked

#: The longest key recorded; a longer one is cut (and two cut alike count as repeated).
KEY_CHARS = 200


def item_keys(
    compiled_key: Any,
    alias: str,
    items: list[Any],
    shared: Mapping[str, Any],
    redactor: Redactor,
) -> list[str | None]:
    """Each item's key, redacted and capped; None where the template did not resolve."""
    keys: list[str | None] = []
    append = keys.append
    for index, item in enumerate(items):
        store = ChainMap({alias: item, INDEX_KEY: index}, shared)  # type: ignore[arg-type]
        try:
            value = resolve(compiled_key, store)
        except UnresolvedTemplate:
            append(None)
            continue
        append(truncate_marked(redactor.text(to_text(value)), KEY_CHARS))
    return keys
