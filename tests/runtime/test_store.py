"""Unit tests for the namespaced view of the shared store."""

from __future__ import annotations

from typing import Any

import pytest

from pflow_trace.runtime.store import NamespacedStore, is_root_key


def make() -> tuple[dict[str, Any], dict[str, Any], NamespacedStore]:
    namespace: dict[str, Any] = {}
    root: dict[str, Any] = {"input": "in", "other": {"result": 1}, "me": namespace}
    return root, namespace, NamespacedStore(root, namespace)


def test_writes_land_in_the_node_namespace() -> None:
    root, namespace, view = make()
    view["result"] = 42
    assert namespace == {"result": 42}
    assert "result" not in root
    assert root["me"] is namespace


def test_two_nodes_writing_the_same_key_do_not_collide() -> None:
    root: dict[str, Any] = {}
    first, second = {}, {}
    root["a"], root["b"] = first, second
    NamespacedStore(root, first)["result"] = "from a"
    NamespacedStore(root, second)["result"] = "from b"
    assert root == {"a": {"result": "from a"}, "b": {"result": "from b"}}


@pytest.mark.parametrize("key", ["__action__", "__run_id__", "__x__"])
def test_dunder_keys_go_to_the_root(key: str) -> None:
    root, namespace, view = make()
    view[key] = "run-wide"
    assert root[key] == "run-wide"
    assert key not in namespace
    assert view[key] == "run-wide"


@pytest.mark.parametrize(
    ("key", "expected"),
    [("__x__", True), ("__long_name__", True), ("____", False), ("__x", False), ("x__", False)],
)
def test_is_root_key(key: str, expected: bool) -> None:
    assert is_root_key(key) is expected


def test_reads_see_the_namespace_then_the_root() -> None:
    _, namespace, view = make()
    assert view["input"] == "in"
    assert view["other"] == {"result": 1}
    namespace["input"] = "shadowed"
    assert view["input"] == "shadowed"


def test_missing_key_raises_key_error_and_get_defaults() -> None:
    _, _, view = make()
    with pytest.raises(KeyError):
        view["absent"]
    assert view.get("absent", "fallback") == "fallback"
    assert "absent" not in view


def test_falsy_values_are_present_not_missing() -> None:
    _, _, view = make()
    for key, value in {"zero": 0, "empty": "", "no": False, "none": None}.items():
        view[key] = value
        assert key in view
        assert view[key] == value
        assert view.get(key, "default") == value


def test_iteration_lists_each_visible_key_once_namespace_first() -> None:
    _, namespace, view = make()
    namespace["input"] = "shadowed"
    namespace["own"] = 1
    assert list(view) == ["input", "own", "other", "me"]
    assert len(view) == 4
    assert dict(view)["input"] == "shadowed"


def test_delete_removes_from_the_namespace_first() -> None:
    root, namespace, view = make()
    namespace["input"] = "shadowed"
    del view["input"]
    assert view["input"] == "in"
    del view["input"]
    assert "input" not in root
