"""Runs of the CLI aimed at a real Jaeger: a workflow that exercises every span shape, a run
that exports live (or only writes its trace file), and the CLI's ``export`` and ``report``.

Every run gets its own service name, so a search by service finds that run's traces and no
other test's, though all tests share one Jaeger.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pflow_samples import PFLOW_JSONL_SAMPLE
from pflow_trace.replay.load import load_replay_trace
from pflow_trace.tracefile.replay_model import ReplayTrace
from subprocess_env import clean_env

from .jaeger_api import JaegerApi

HTTP = "http/protobuf"
GRPC = "grpc"
#: pflow's own JSON-lines trace of a batch run (pflow CLI 0.16), as pflow wrote it.
PFLOW_TRACE = PFLOW_JSONL_SAMPLE

#: A plain node; a parallel batch on two lanes where item 3 fails after one retry (a
#: ``pflow.retry`` event, an ``exception`` event and an ERROR status); a sequential batch with
#: falsy items.
WORKFLOW = {
    "ir_version": "0.1.0",
    "name": "jaeger-demo",
    "nodes": [
        {"id": "hello", "type": "echo", "params": {"value": "hi"}},
        {
            "id": "fan",
            "type": "echo",
            "params": {"value": "${item}", "delay_ms": 5, "fail_if": 3},
            "batch": {
                "items": [1, 2, 3, 4, 5, 6],
                "parallel": True,
                "max_concurrent": 2,
                "max_retries": 2,
                "error_handling": "continue",
            },
        },
        {
            "id": "seq",
            "type": "echo",
            "params": {"value": "${item}"},
            "batch": {"items": ["a", "", 0]},
        },
    ],
}


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``pflow-trace ARGS`` in a subprocess with a clean environment plus ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "pflow_trace", *args],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=300,
        check=False,
    )


def unique_service(label: str) -> str:
    return f"pflow-jaeger-test-{label}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Run:
    """A finished run: its service name, trace file and the spans that file records."""

    service: str
    trace_path: Path
    replay: ReplayTrace

    @property
    def trace_id(self) -> str:
        return self.replay.trace_id


def write_workflow(directory: Path, workflow: dict[str, Any] = WORKFLOW) -> Path:
    path = directory / "workflow.json"
    path.write_text(json.dumps(workflow), encoding="utf-8")
    return path


def run_workflow(
    directory: Path,
    jaeger: JaegerApi | None,
    protocol: str = HTTP,
    *options: str,
    workflow: dict[str, Any] = WORKFLOW,
    service: str | None = None,
    exit_code: int = 0,
    **env: str,
) -> Run:
    """Run ``workflow``, exporting live to ``jaeger`` over ``protocol`` (``None``: no export).

    ``service`` defaults to a name of its own; ``exit_code`` is the one the run must end with.
    """
    service = service or unique_service(directory.name)
    trace_path = directory / "run.trace.json"
    export = ["--exporter", "none"]
    if jaeger is not None:
        endpoint = jaeger.otlp_http if protocol == HTTP else jaeger.otlp_grpc
        export = ["--exporter", "otlp", "--otlp-endpoint", endpoint, "--otlp-protocol", protocol]
    completed = cli(
        "run",
        str(write_workflow(directory, workflow)),
        "--trace-file",
        str(trace_path),
        "--service-name",
        service,
        *export,
        *options,
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=jaeger-test",
        **env,
    )
    assert completed.returncode == exit_code, completed.stderr
    # The run's own warnings (a continue batch with a failed item) are expected; an export
    # warning (a span dropped, a backend that refused) is not.
    unexpected = [
        line
        for line in completed.stderr.lower().splitlines()
        if "warning" in line and "items failed" not in line
    ]
    assert not unexpected, completed.stderr
    return Run(service, trace_path, load_replay_trace(trace_path))


def export_to(jaeger: JaegerApi, trace: Path, protocol: str) -> None:
    """``pflow-trace export TRACE --to otlp`` into ``jaeger``."""
    endpoint = jaeger.otlp_http if protocol == HTTP else jaeger.otlp_grpc
    completed = cli(
        "export", str(trace), "--to", "otlp", "--protocol", protocol, "--endpoint", endpoint
    )
    assert completed.returncode == 0, completed.stderr


def export_jaeger_json(trace: Path, output: Path) -> dict[str, Any]:
    """``pflow-trace export TRACE --format jaeger-json``: the document it wrote."""
    completed = cli("export", str(trace), "--format", "jaeger-json", "-o", str(output))
    assert completed.returncode == 0, completed.stderr
    return json.loads(output.read_text(encoding="utf-8"))
