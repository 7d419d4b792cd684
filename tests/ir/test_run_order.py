"""Which node can have run before which, asked one question at a time (ir/run_order.py)."""

from __future__ import annotations

import itertools
import random

import pytest

from pflow_trace.ir.run_order import RunOrder


def order(ids: str, edges: str = "") -> RunOrder:
    """``order("abc", "ab bc")``: nodes a, b, c and the edges a→b, b→c."""
    first_index = {node_id: index for index, node_id in enumerate(ids)}
    return RunOrder(first_index, [{"from": e[0], "to": e[1]} for e in edges.split()])


def reachable(ids: str, edges: str, start: str, goal: str) -> bool:
    """Plain search over at least one edge: the rule RunOrder must match."""
    successors = {node: [e[1] for e in edges.split() if e[0] == node] for node in ids}
    stack, seen = list(successors[start]), set()
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            stack.extend(successors[node])
    return False


def test_without_edges_the_list_order_decides() -> None:
    nodes = order("abc")
    assert nodes.may_run_before("a", "c")
    assert not nodes.may_run_before("c", "a")
    assert not nodes.may_run_before("b", "b")


def test_with_edges_reachability_decides_and_a_loop_reaches_itself() -> None:
    nodes = order("abcd", "ab bc cb")
    assert nodes.may_run_before("a", "c")
    assert nodes.may_run_before("c", "b") and nodes.may_run_before("b", "b")
    assert not nodes.may_run_before("a", "a")
    assert not nodes.may_run_before("a", "d") and not nodes.may_run_before("d", "a")


def test_a_diamond_is_found_off_the_depth_first_tree() -> None:
    nodes = order("abcd", "ab ac bd cd")
    assert nodes.may_run_before("b", "d") and nodes.may_run_before("c", "d")
    assert not nodes.may_run_before("b", "c") and not nodes.may_run_before("c", "b")


def test_edges_naming_unknown_nodes_still_mean_edges_are_given() -> None:
    nodes = order("ab", "xa")
    assert not nodes.may_run_before("a", "b")


@pytest.mark.parametrize("seed", range(30))
def test_random_graphs_agree_with_a_plain_search(seed: int) -> None:
    rng = random.Random(seed)
    ids = "abcdefgh"[: rng.randint(2, 8)]
    pairs = [a + b for a, b in itertools.product(ids, repeat=2)]
    edges = " ".join(rng.sample(pairs, rng.randint(1, min(len(pairs), 14))))
    nodes = order(ids, edges)
    for start, goal in itertools.product(ids, repeat=2):
        assert nodes.may_run_before(start, goal) == reachable(ids, edges, start, goal), (
            edges,
            start,
            goal,
        )


def test_edge_ends_that_are_no_ids_are_ignored() -> None:
    nodes = RunOrder({"a": 0, "b": 1}, [{"from": "a", "to": []}, {"from": {}, "to": "b"}])
    assert not nodes.may_run_before("a", "b")
