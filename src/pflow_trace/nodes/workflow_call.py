"""The ``workflow`` node: runs another workflow file as one step (pflow's sub-workflows).

The node type only states the contract: its params (``workflow``, ``inputs``, ``max_depth``)
and that its outputs are the child's declared outputs. Running a child means compiling it into
wrapper chains, which is the runtime's job, not a node's; so the compiler gives each instance a
:class:`ChildRunner` (``runtime/sub_workflow.py``) and ``exec`` hands the call to it.

The child's nodes therefore run through the same runtime as the caller's: their spans sit under
the calling step's span and their records reach the same observers.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from pflow_trace.nodes.base import RUNTIME_KEYS, NodeFailure, WorkflowNode

#: How deep workflows may call workflows, unless the node's ``max_depth`` says otherwise
#: (pflow's default).
DEFAULT_MAX_DEPTH = 10
#: The param the loader sets on every ``workflow`` node: the directory of the file the node is
#: written in, which a relative ``workflow`` path is resolved against.
WORKFLOW_DIR_PARAM = "__workflow_dir__"


class ChildRunner(Protocol):
    """Runs the child a ``workflow`` node names and returns what the node outputs."""

    def __call__(self, node_id: str, params: dict[str, Any]) -> dict[str, Any]: ...


class WorkflowCallNode(WorkflowNode):
    """Runs the workflow file named by ``workflow`` with ``inputs``; outputs its outputs."""

    type_name: ClassVar[str] = "workflow"
    params_schema: ClassVar[dict[str, Any] | None] = {
        "type": "object",
        "required": ["workflow"],
        "properties": {
            "workflow": {"type": "string", "minLength": 1},
            "inputs": {"type": "object"},
            "max_depth": {"type": "integer", "minimum": 1},
        },
        "patternProperties": RUNTIME_KEYS,
        "additionalProperties": False,
    }
    #: The child runs in this process, through this run's observers and tracer.
    ships_to_workers: ClassVar[bool] = False

    def __init__(self, node_id: str = "") -> None:
        super().__init__(node_id)
        #: Set by the compiler; None only for an instance built outside a compiled workflow.
        self.runner: ChildRunner | None = None

    def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.runner is None:
            raise NodeFailure("a workflow node runs only inside a compiled workflow")
        return self.runner(self.node_id, params)
