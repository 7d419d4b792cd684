"""How pflow-trace runs a compat workflow and reads the run as the goldens read pflow's.

Shared by the differential tests of ``test_compat.py`` (the cases written for it) and
``test_repo_workflows.py`` (pflow's own workflows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compat_cases import batch_facts

from pflow_trace import api
from pflow_trace.errors import WorkflowValidationError
from pflow_trace.observe.export_settings import ExportSettings
from pflow_trace.observe.facts import InMemoryObserver
from pflow_trace.runtime.workflow_run import outputs_as_json


def our_facts(path: Path, inputs: dict[str, Any]) -> dict[str, Any]:
    """Run one workflow in-process, traced in memory, and read it as the goldens read pflow."""
    observer = InMemoryObserver()
    try:
        workflow = api.load_workflow(path)
    except WorkflowValidationError:  # refused before anything runs, as pflow refuses it
        return {"status": "failed", "outputs": None, "nodes": {}, "batches": {}}
    options = api.TraceOptions(
        export=ExportSettings("none", "http/protobuf", None, "compat"),
        write_trace_file=False,
        observers=[observer],
    )
    outcome = api.run(workflow, inputs, options)
    finished = {execution.node_id: execution for execution in observer.executions}
    nodes = {}
    for node in workflow["nodes"]:
        execution = finished.get(node["id"])
        status = (
            "not_executed"
            if execution is None
            else ("completed" if execution.success else "failed")
        )
        nodes[node["id"]] = status
    batches = {
        node["id"]: batch_facts(outcome.result.shared.get(node["id"]) or {})
        for node in workflow["nodes"]
        if "batch" in node and node["id"] in finished
    }
    status = outcome.status
    return {
        "status": status,
        # The goldens hold pflow's JSON result, so the outputs as ``--output-format json`` has them.
        "outputs": outputs_as_json(outcome.outputs) if status != "failed" else None,
        "nodes": nodes,
        "batches": batches,
    }
