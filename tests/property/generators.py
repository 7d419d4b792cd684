"""Hypothesis strategies for the property suite: workflows, trace files and their corruptions.

Every strategy mixes the ordinary with the hostile a user or a damaged file can bring: control
characters and terminal escapes in names, NaN and infinities, numbers too large for a float,
nesting deeper than the recursion limit, unknown keys, truncated and flipped bytes.

Importing this module also loads the suite's Hypothesis profile: ``ci`` (the default) keeps
the suite to about a minute; ``dev`` runs many more examples, by hand:
``PFLOW_HYPOTHESIS_PROFILE=dev .venv/bin/python -m pytest tests/property``. (Not a
``conftest.py``: a second module of that name would shadow the suite's own ``conftest``, which
tests import by name.) No example database is written: a run leaves no files behind.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

_PROFILE_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
}
settings.register_profile("ci", max_examples=100, derandomize=True, **_PROFILE_SETTINGS)
settings.register_profile("dev", max_examples=2000, **_PROFILE_SETTINGS)
settings.load_profile(os.environ.get("PFLOW_HYPOTHESIS_PROFILE", "ci"))

#: Text with what a terminal acts on: escapes, bells, line breaks, and OSC title changes.
HOSTILE_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["\x1b]0;pwned\x07", "line\nforged: yes", "\r\x1b[2J", "\x00\x9b", "é✓"]),
)
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)


def deep(depth: int) -> Any:
    """A list nested ``depth`` levels deep, built without recursion."""
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


#: Depths either side of every limit: ours (100), Python's recursion limit, and far beyond.
DEPTHS = st.sampled_from([3, 99, 101, 900, 1500, 5000])

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    HOSTILE_TEXT,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
#: What a corrupted field can hold: any JSON value, or something JSON does not have.
HOSTILE_VALUES = st.one_of(
    JSON_VALUES,
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 10**5000, 1e308]),
    DEPTHS.map(deep),
)


def dumps(value: Any) -> str:
    """JSON text of ``value`` as a careless writer would produce it: NaN and Infinity bare,
    nesting of any depth (written by hand, since ``json.dumps`` recurses)."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        depth, inner = 0, value
        while isinstance(inner, list) and len(inner) == 1 and isinstance(inner[0], list):
            depth, inner = depth + 1, inner[0]
        return "[" * depth + json.dumps(inner) + "]" * depth
    if isinstance(value, int) and value.bit_length() > 14_000:
        return "9" * 5000
    return json.dumps(value)


def set_path(document: Any, path: list[Any], value: Any) -> Any:
    """A copy of ``document`` with the value at ``path`` replaced (or ``value`` at the root)."""
    if not path:
        return value
    copied = json.loads(json.dumps(document))
    target = copied
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return copied


def paths_of(document: Any, limit: int = 400) -> list[list[Any]]:
    """Every path in a JSON document (dict keys and list positions), breadth first."""
    found: list[list[Any]] = [[]]
    queue: list[tuple[list[Any], Any]] = [([], document)]
    while queue and len(found) < limit:
        path, value = queue.pop(0)
        children = (
            value.items()
            if isinstance(value, dict)
            else enumerate(value)
            if isinstance(value, list)
            else ()
        )
        for key, child in children:
            found.append([*path, key])
            queue.append(([*path, key], child))
    return found


@st.composite
def mutated_text(draw: st.DrawFn, document: Any, text: str | None = None) -> str:
    """The document's JSON text, valid or damaged in one of the ways files get damaged."""
    text = json.dumps(document) if text is None else text
    how = draw(st.sampled_from(["valid", "field", "truncate", "bytes", "splice"]))
    if how == "valid":
        return text
    if how == "field":
        path = draw(st.sampled_from(paths_of(document)))
        placeholder = "__PFLOW_PROPERTY_PLACEHOLDER__"
        replaced = json.dumps(set_path(document, path, placeholder))
        return replaced.replace(json.dumps(placeholder), dumps(draw(HOSTILE_VALUES)), 1)
    position = draw(st.integers(min_value=0, max_value=max(0, len(text) - 1)))
    if how == "truncate":
        return text[:position]
    if how == "bytes":
        junk = draw(st.text(min_size=1, max_size=8))
        return text[:position] + junk + text[position + 1 :]
    return text[:position] + text[position:][::-1][:50] + text[position:]


# -- workflows -------------------------------------------------------------------------------

#: Code snippets that misbehave in every way a run must survive.
CODE_SNIPPETS = [
    "result = 1",
    "print('noise on stdout')\nresult = [1, 2]",
    "import os\nos.system('echo from-a-child')\nresult = 'x'",
    "result = float('nan')",
    "r = []\nx = r\nfor _ in range(3000):\n    x.append([])\n    x = x[0]\nresult = r",
    "raise ValueError('bad value 7')",
    "result = {'a': '\\x1b]0;title\\x07'}",
]


@st.composite
def workflow_node(draw: st.DrawFn, node_id: str, earlier: list[str]) -> dict[str, Any]:
    """An ``echo`` or ``code`` node (fast, no network), sometimes a batch, maybe with templates."""
    if draw(st.booleans()):
        node: dict[str, Any] = {
            "id": node_id,
            "type": "code",
            "params": {"code": draw(st.sampled_from(CODE_SNIPPETS))},
        }
    else:
        params: dict[str, Any] = {"message": draw(HOSTILE_TEXT)}
        if draw(st.booleans()):
            params["fail"] = draw(st.booleans())
        if earlier and draw(st.booleans()):
            params["value"] = "${" + draw(st.sampled_from(earlier)) + "}"
        node = {"id": node_id, "type": "echo", "params": params}
    if draw(st.integers(0, 3)) == 0:
        alias = draw(st.sampled_from(["item", "uid"]))
        node["params"]["value"] = "${item}"
        node["batch"] = {
            "items": draw(st.lists(JSON_SCALARS, max_size=5)),
            "as": alias,
            "parallel": draw(st.booleans()),
            "max_retries": draw(st.integers(1, 2)),
            "error_handling": draw(st.sampled_from(["fail_fast", "continue"])),
        }
    return node


@st.composite
def workflows(draw: st.DrawFn) -> dict[str, Any]:
    """A workflow that may or may not validate, built from runnable nodes."""
    ids = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    nodes = [draw(workflow_node(node_id, ids[:index])) for index, node_id in enumerate(ids)]
    return {"ir_version": "0.1.0", "name": draw(HOSTILE_TEXT), "nodes": nodes}
