"""Workflows for the resume tests: items that fail while a flag file exists, and a log file
each execution appends a line to, so a test counts real executions, not records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pflow_trace
from pflow_trace.api import TraceOptions
from pflow_trace.observe.export_settings import ExportSettings
from pflow_trace.runtime.resume import ResumeRequest

#: Items whose index is in here fail while the flag file exists.
FAILING = (1, 4)
COUNT = 6


def work_code(log: Path, flag: Path) -> str:
    return (
        "import os\n"
        f"open({str(log)!r}, 'a').write(f'work {{x}}\\n')\n"
        f"if x in {FAILING!r} and os.path.exists({str(flag)!r}):\n"
        "    raise ValueError(f'flag is up for {x}')\n"
        "result = {'tenfold': x * 10}"
    )


def logged_code(log: Path, name: str, body: str) -> str:
    return f"open({str(log)!r}, 'a').write('{name}\\n')\n{body}"


def workflow(tmp_path: Path, executor: str = "threads", parallel: bool = False) -> dict[str, Any]:
    """make -> work (a batch of COUNT items, some failing) -> total (reads every result)."""
    log, flag = tmp_path / "log", tmp_path / "flag"
    batch: dict[str, Any] = {"items": "${make.result}", "error_handling": "continue"}
    if parallel:
        batch.update(parallel=True, max_concurrent=3)
    if executor != "threads":
        batch["executor"] = executor
    return {
        "ir_version": "0.1.0",
        "name": "resumable",
        "inputs": {"scale": {"type": "number", "required": False, "default": 1}},
        "nodes": [
            {
                "id": "make",
                "type": "code",
                "params": {
                    "code": logged_code(log, "make", f"result = list(range({COUNT}))"),
                },
            },
            {
                "id": "work",
                "type": "code",
                "params": {"code": work_code(log, flag), "inputs": {"x": "${item}"}},
                "batch": batch,
            },
            {
                "id": "total",
                "type": "code",
                "params": {
                    "code": logged_code(
                        log, "total", "result = sum(r['result']['tenfold'] for r in rows) * scale"
                    ),
                    "inputs": {"rows": "${work.results}", "scale": "${scale}"},
                },
            },
        ],
        "outputs": {"total": "${total.result}", "rows": "${work.results}"},
    }


def options(trace: Path, request: ResumeRequest | None = None, **extra: Any) -> TraceOptions:
    return TraceOptions(
        export=ExportSettings("none", "http/protobuf", None, "resume-tests"),
        trace_file=str(trace),
        join_env_trace_context=False,
        resume=request,
        **extra,
    )


def executions(log: Path) -> list[str]:
    """Lines the executions wrote since the log was last cleared (then clears it)."""
    lines = log.read_text().splitlines() if log.exists() else []
    log.write_text("")
    return lines


def trace_document(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return document


def run_failing_then_resume(
    tmp_path: Path, wf: dict[str, Any], request_extra: dict[str, Any] | None = None
) -> tuple[Any, Any, list[str], list[str]]:
    """Run with the flag up (items fail), take it down, resume: both outcomes and logs."""
    (tmp_path / "flag").touch()
    first = pflow_trace.run(wf, {}, options(tmp_path / "first.trace.json"))
    first_log = executions(tmp_path / "log")
    (tmp_path / "flag").unlink()
    request = ResumeRequest(str(tmp_path / "first.trace.json"), **(request_extra or {}))
    second = pflow_trace.run(wf, {}, options(tmp_path / "second.trace.json", request))
    return first, second, first_log, executions(tmp_path / "log")
