"""Which node can have run before which: the order rule templates are checked against.

Without edges, nodes run in list order, so it is a comparison of positions. With edges, node
``a`` can have run before ``b`` when ``b`` is reachable from ``a`` (in a loop, a node can have
run before itself). Computing every node's full set of predecessors takes memory quadratic in
the node count (gigabytes for 20,000 nodes), so questions are answered one at a time instead:

- the edges' strongly connected components (loops) are found once, in linear time; components
  come out in reverse topological order, so a later component can never reach an earlier one;
- a depth-first forest over the components gives each an interval that holds its tree
  descendants, which answers the usual question (a chain, a tree, an early node read late) at
  once;
- anything else is a search from the earlier node, pruned by the topological order.

The searches share a budget proportional to the workflow's size. A graph tangled enough to spend
it (which no hand-written workflow is) gets the benefit of the doubt for its remaining templates:
they are checked when they are resolved, at run time, instead. Validation stays linear.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: Search steps allowed per node and edge of the workflow, over all questions together.
SEARCH_STEPS_PER_ELEMENT = 32


class RunOrder:
    """Answers "can ``earlier`` have run before ``later``?" for the nodes of one workflow."""

    def __init__(self, first_index: dict[str, int], edges: Iterable[dict[str, Any]]) -> None:
        self._position = {node_id: position for position, node_id in enumerate(first_index)}
        successors: list[list[int]] = [[] for _ in self._position]
        self._has_edges = False
        edge_count = 0
        for edge in edges:
            self._has_edges = True
            start, end = self._node_at(edge.get("from")), self._node_at(edge.get("to"))
            if start is not None and end is not None:
                successors[start].append(end)
                edge_count += 1
        self._component, count = _components(successors)
        self._cyclic = [False] * count
        self._dag: list[set[int]] = [set() for _ in range(count)]
        for start, ends in enumerate(successors):
            for end in ends:
                if self._component[start] == self._component[end]:
                    self._cyclic[self._component[start]] = True
                else:
                    self._dag[self._component[start]].add(self._component[end])
        self._enter, self._leave = _intervals(self._dag)
        self._answers: dict[tuple[int, int], bool] = {}
        self._steps_left = SEARCH_STEPS_PER_ELEMENT * (len(successors) + edge_count) + 10_000

    def _node_at(self, end: Any) -> int | None:
        """The position of an edge's end; None for an unknown node or a value that is no id."""
        return self._position.get(end) if isinstance(end, str) else None

    def may_run_before(self, earlier: str, later: str) -> bool:
        """Whether ``earlier`` can have run before ``later`` (both node ids of the workflow)."""
        first, second = self._position[earlier], self._position[later]
        if not self._has_edges:
            return first < second
        start, goal = self._component[first], self._component[second]
        if start == goal:
            return self._cyclic[start]
        if start < goal:  # components are numbered in reverse topological order
            return False
        if self._encloses(start, goal):
            return True
        key = (start, goal)
        if key not in self._answers:
            self._answers[key] = self._search(start, goal)
        return self._answers[key]

    def _encloses(self, ancestor: int, component: int) -> bool:
        return (
            self._enter[ancestor] <= self._enter[component]
            and self._leave[component] <= self._leave[ancestor]
        )

    def _search(self, start: int, goal: int) -> bool:
        """Depth-first from ``start``, never entering a component ordered after ``goal``."""
        stack, seen = [start], {start}
        while stack:
            for successor in self._dag[stack.pop()]:
                self._steps_left -= 1
                if self._steps_left < 0:
                    return True  # out of budget: the run checks this template instead
                if successor == goal or self._encloses(successor, goal):
                    return True
                if successor > goal and successor not in seen:
                    seen.add(successor)
                    stack.append(successor)
        return False


def _components(successors: list[list[int]]) -> tuple[list[int], int]:
    """Tarjan's strongly connected components, iteratively: each node's component number.

    Components are numbered as they complete, which is reverse topological order: an edge
    between two components always goes from a higher number to a lower one.
    """
    count = len(successors)
    order, low, component = [-1] * count, [0] * count, [-1] * count
    on_stack = [False] * count
    stack: list[int] = []
    visited = components = 0
    for root in range(count):
        if order[root] != -1:
            continue
        work = [(root, 0)]
        order[root] = low[root] = visited
        visited += 1
        stack.append(root)
        on_stack[root] = True
        while work:
            node, next_child = work[-1]
            if next_child < len(successors[node]):
                work[-1] = (node, next_child + 1)
                child = successors[node][next_child]
                if order[child] == -1:
                    order[child] = low[child] = visited
                    visited += 1
                    stack.append(child)
                    on_stack[child] = True
                    work.append((child, 0))
                elif on_stack[child]:
                    low[node] = min(low[node], order[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == order[node]:
                while True:
                    member = stack.pop()
                    on_stack[member] = False
                    component[member] = components
                    if member == node:
                        break
                components += 1
    return component, components


def _intervals(dag: list[set[int]]) -> tuple[list[int], list[int]]:
    """Enter and leave times of a depth-first forest over the components, sources first."""
    count = len(dag)
    enter, leave = [-1] * count, [-1] * count
    clock = 0
    for root in range(count - 1, -1, -1):  # highest numbers first: nothing reaches them later
        if enter[root] != -1:
            continue
        enter[root] = clock
        clock += 1
        work = [(root, iter(dag[root]))]
        while work:
            node, children = work[-1]
            child = next((c for c in children if enter[c] == -1), None)
            if child is None:
                work.pop()
                leave[node] = clock
                clock += 1
                continue
            enter[child] = clock
            clock += 1
            work.append((child, iter(dag[child])))
    return enter, leave
