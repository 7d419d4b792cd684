"""Unit tests for the engine core: prep → exec → post, and flows that follow actions."""

from __future__ import annotations

from typing import Any

from pflow_trace.engine import BaseNode, Flow


class Recorder(BaseNode):
    """Appends its name to ``shared["trail"]`` and returns a fixed action."""

    def __init__(self, name: str, action: str | None = None) -> None:
        super().__init__()
        self.name = name
        self.action = action

    def post(self, shared: Any, prep_result: Any, exec_result: Any) -> str | None:
        shared.setdefault("trail", []).append(self.name)
        return self.action


def test_node_runs_prep_exec_post_in_order_and_passes_results_along() -> None:
    calls: list[tuple[str, Any]] = []

    class Steps(BaseNode):
        def prep(self, shared: Any) -> Any:
            calls.append(("prep", dict(shared)))
            return shared["x"] + 1

        def exec(self, prep_result: Any) -> Any:
            calls.append(("exec", prep_result))
            return prep_result * 10

        def post(self, shared: Any, prep_result: Any, exec_result: Any) -> str | None:
            calls.append(("post", (prep_result, exec_result)))
            shared["y"] = exec_result
            return "done"

    shared = {"x": 1}
    assert Steps().run(shared) == "done"
    assert calls == [("prep", {"x": 1}), ("exec", 2), ("post", (2, 20))]
    assert shared == {"x": 1, "y": 20}


def test_set_params_replaces_params() -> None:
    node = BaseNode()
    node.set_params({"a": 1})
    node.set_params({"b": 2})
    assert node.params == {"b": 2}


def test_flow_follows_the_action_each_node_returns() -> None:
    start = Recorder("start", "left")
    left = Recorder("left")
    right = Recorder("right")
    after = Recorder("after")
    start.next(left, "left")
    start.next(right, "right")
    left.next(after)
    shared: dict[str, Any] = {}
    Flow(start).run(shared)
    assert shared["trail"] == ["start", "left", "after"]


def test_flow_uses_default_when_a_node_returns_no_action() -> None:
    first = Recorder("first")
    second = Recorder("second")
    first.next(second)
    shared: dict[str, Any] = {}
    Flow(first).run(shared)
    assert shared["trail"] == ["first", "second"]


def test_flow_stops_when_no_successor_matches_the_action() -> None:
    first = Recorder("first", "unknown")
    first.next(Recorder("never"))
    shared: dict[str, Any] = {}
    assert Flow(first).run(shared) == "unknown"
    assert shared["trail"] == ["first"]


def test_flow_without_following_actions_is_a_plain_sequence() -> None:
    first = Recorder("first", "elsewhere")
    second = Recorder("second", "anything")
    first.next(second)
    shared: dict[str, Any] = {}
    Flow(first, follow_actions=False).run(shared)
    assert shared["trail"] == ["first", "second"]


def test_flow_can_loop_back_until_a_node_says_stop() -> None:
    class Counter(BaseNode):
        def post(self, shared: Any, prep_result: Any, exec_result: Any) -> str | None:
            shared["n"] = shared.get("n", 0) + 1
            return "again" if shared["n"] < 3 else "stop"

    counter = Counter()
    counter.next(counter, "again")
    done = Recorder("done")
    counter.next(done, "stop")
    flow = Flow()
    flow.start(counter)
    shared: dict[str, Any] = {}
    flow.run(shared)
    assert shared["n"] == 3
    assert shared["trail"] == ["done"]


def test_next_returns_the_successor_so_calls_chain() -> None:
    a, b, c = Recorder("a"), Recorder("b"), Recorder("c")
    a.next(b).next(c)
    shared: dict[str, Any] = {}
    Flow(a).run(shared)
    assert shared["trail"] == ["a", "b", "c"]
