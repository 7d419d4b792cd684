"""BaseNode and Flow: the whole execution model in two ideas.

1. A node runs ``prep(shared) -> exec(prep_result) -> post(shared, prep_result, exec_result)``.
2. :class:`Flow` runs its start node and follows the action each node returns to a successor.

Retrying a failed ``exec`` is not this module's business: whether another attempt is made
and how long to wait first is decided by :class:`pflow_trace.engine.retry.RetryPolicy`, and a
batch item's attempts are run (and recorded as span events) by
:mod:`pflow_trace.runtime.item_life`.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

Shared = MutableMapping[str, Any]

DEFAULT_ACTION = "default"


class BaseNode:
    """A step with parameters and successors keyed by action name."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.successors: dict[str, BaseNode] = {}

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def next(self, node: BaseNode, action: str = DEFAULT_ACTION) -> BaseNode:
        """Make ``node`` the successor for ``action``; returns it so calls chain."""
        self.successors[action] = node
        return node

    def prepare(self) -> None:
        """Set-up a node needs once per process before it runs many times (loading a library,
        resolving a model). A batch calls it before its clock starts, so no item's time holds
        it; a single run pays it inside ``exec`` as usual. Nothing by default."""

    def prep(self, shared: Shared) -> Any:
        return None

    def exec(self, prep_result: Any) -> Any:
        return None

    def post(self, shared: Shared, prep_result: Any, exec_result: Any) -> str | None:
        return None

    def _run(self, shared: Shared) -> str | None:
        prep_result = self.prep(shared)
        exec_result = self.exec(prep_result)
        return self.post(shared, prep_result, exec_result)

    def run(self, shared: Shared) -> str | None:
        """Run this node alone (successors are followed only by a :class:`Flow`)."""
        return self._run(shared)


class Flow(BaseNode):
    """Runs nodes from ``start``, following the action each returns until none matches.

    With ``follow_actions=False`` every node goes to its ``default`` successor whatever it
    returns: a plain sequence.
    """

    def __init__(self, start: BaseNode | None = None, follow_actions: bool = True) -> None:
        super().__init__()
        self.start_node = start
        self.follow_actions = follow_actions

    def start(self, node: BaseNode) -> BaseNode:
        self.start_node = node
        return node

    def next_node(self, current: BaseNode, action: str | None) -> BaseNode | None:
        if not self.follow_actions:
            action = DEFAULT_ACTION
        return current.successors.get(action or DEFAULT_ACTION)

    def _orchestrate(self, shared: Shared) -> str | None:
        current = self.start_node
        last_action: str | None = None
        while current is not None:
            last_action = current._run(shared)
            current = self.next_node(current, last_action)
        return last_action

    def _run(self, shared: Shared) -> str | None:
        prep_result = self.prep(shared)
        last_action = self._orchestrate(shared)
        return self.post(shared, prep_result, last_action)

    def post(self, shared: Shared, prep_result: Any, exec_result: Any) -> str | None:
        return exec_result
