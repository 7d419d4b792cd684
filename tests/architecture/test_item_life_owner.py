"""An item's life has one owner: ``runtime/item_life.py`` (with the rule for waits in
``engine/retry.py``). These checks fail as soon as a second place starts building item spans,
deciding retry waits or recording interrupted items, which is how three copies drifted before.
The executors' equivalence tests (tests/runtime/test_executors.py) check the same from the
outside: the item spans every executor produces are alike, key for key.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "src" / "pflow_trace"
OWNER = "runtime/item_life.py"

#: The span vocabulary only an item span's builder needs.
ITEM_SPAN_NAMES = {"LAYER_BATCH_ITEM", "EVENT_RETRY", "ATTR_BATCH_ATTEMPTS"}
#: Where "interrupted" is a run's status or an error's one-line description, not an item's.
NOT_ITEM_RECORDS = {"runtime/workflow_run.py", "runtime/layers.py"}


def _runtime_and_nodes() -> list[Path]:
    return sorted([*PACKAGE_ROOT.glob("runtime/**/*.py"), *PACKAGE_ROOT.glob("nodes/**/*.py")])


def _where(predicate: object) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in _runtime_and_nodes():
        tree = ast.parse(path.read_text("utf-8"))
        hits = {hit for node in ast.walk(tree) if (hit := predicate(node))}  # type: ignore[operator]
        if hits:
            found[str(path.relative_to(PACKAGE_ROOT))] = hits
    return found


def _attribute_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and node.attr in ITEM_SPAN_NAMES:
        return node.attr
    return None


def _pause_call(node: ast.AST) -> str | None:
    func = node.func if isinstance(node, ast.Call) else None
    return "pause_s" if isinstance(func, ast.Attribute) and func.attr == "pause_s" else None


def _interrupted_status(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and node.value == "interrupted":
        return "interrupted"
    return None


def test_only_item_life_builds_item_spans() -> None:
    assert set(_where(_attribute_name)) == {OWNER}


def test_retry_waits_are_asked_of_the_retry_policy_in_one_runtime_place() -> None:
    """The runtime asks in one place per kind of attempt: an item's (item_life.py) and a whole
    node's under its ``retry`` block (node_retry.py, which has no items: it wraps one node's
    chain and records its attempts on the node span). The ``llm`` node's own provider retries
    ask the same policy class (engine/retry.py) rather than computing a backoff of their own."""
    callers = set(_where(_pause_call))
    assert callers <= {OWNER, "runtime/node_retry.py", "nodes/llm.py"}
    assert OWNER in callers


def test_only_item_life_records_an_item_as_interrupted() -> None:
    assert set(_where(_interrupted_status)) - NOT_ITEM_RECORDS == {OWNER}


def test_the_checks_see_a_planted_second_builder(tmp_path: Path) -> None:
    planted = ast.parse(
        "span.add_event(conv.EVENT_RETRY, {})\npolicy.pause_s(2)\nstatus = 'interrupted'\n"
    )
    nodes = list(ast.walk(planted))
    assert {_attribute_name(n) for n in nodes} >= {"EVENT_RETRY"}
    assert "pause_s" in {_pause_call(n) for n in nodes}
    assert "interrupted" in {_interrupted_status(n) for n in nodes}
