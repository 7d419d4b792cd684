"""The ``echo`` node: hands its params back as outputs, and fails or waits on request.

It exists for tests, demos and benchmarks (20,000-item batches), so ``exec`` does almost nothing.
Retry behaviour is testable without state on the node: the batch runtime publishes the 1-based
attempt number in :data:`~pflow_trace.nodes.base.current_attempt` (an ``__attempt__`` param, when
given, wins), and ``fail_times`` compares against it.
"""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar

from pflow_trace.nodes.base import NodeFailure, WorkflowNode, current_attempt

#: Params that steer the node rather than being echoed back.
CONTROL_PARAMS = frozenset({"delay_ms", "fail", "fail_times", "fail_if"})
DEFAULT_FAILURE = "echo failed on demand"
# Other "__" keys are runtime control values; "__action__" is echoed so demos can branch.
ACTION_KEY = "__action__"


def _same(left: Any, right: Any) -> bool:
    """JSON-style equality: ``true`` does not equal ``1`` (Python says it does)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    return bool(left == right)


class EchoNode(WorkflowNode):
    """Outputs every non-control param unchanged, falsy values included.

    ``__action__`` is echoed too, so ``{"__action__": "retry"}`` picks the ``retry`` successor.
    """

    type_name: ClassVar[str] = "echo"
    params_schema: ClassVar[dict[str, Any] | None] = {
        "type": "object",
        "properties": {
            "delay_ms": {"type": "number", "minimum": 0},
            "fail": {"type": "boolean"},
            "fail_times": {"type": "integer", "minimum": 0},
            "fail_if": {},
            "message": {"type": "string"},
            "__attempt__": {"type": "integer", "minimum": 1},
        },
    }

    def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        delay_ms = params.get("delay_ms")
        if delay_ms:
            time.sleep(delay_ms / 1000)
        if params.get("fail"):
            raise NodeFailure(params.get("message") or DEFAULT_FAILURE)
        fail_times = params.get("fail_times")
        if fail_times:
            attempt = params.get("__attempt__") or current_attempt.get()
            if attempt <= fail_times:
                base = params.get("message") or DEFAULT_FAILURE
                raise NodeFailure(f"{base} (attempt {attempt} of {fail_times} set to fail)")
        if "fail_if" in params and _same(params.get("value"), params["fail_if"]):
            value = json.dumps(params.get("value"), default=str)
            raise NodeFailure(params.get("message") or f"{DEFAULT_FAILURE} for value {value}")
        return {
            key: value
            for key, value in params.items()
            if key not in CONTROL_PARAMS and (key == ACTION_KEY or not key.startswith("__"))
        }
