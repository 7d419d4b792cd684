"""docs/python-api.md's example runs as written, and the public names are what it documents."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import pflow_trace

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "python-api.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text("utf-8"), flags=re.S)


def test_the_documented_example_runs_and_prints_what_it_promises() -> None:
    (example,) = python_blocks()
    finished = subprocess.run(
        [sys.executable, "-c", example], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    assert lines[:3] == ["load: ok", "summarise: ok", "save: ok"]
    assert lines[3] == "success 505.5"
    assert lines[4] == "pipeline success 3 nodes"


def test_every_exported_name_resolves_and_is_documented() -> None:
    documented = DOC.read_text("utf-8")
    for name in pflow_trace.__all__:
        assert getattr(pflow_trace, name) is not None
        if name != "__version__":
            assert f"`{name}" in documented, f"{name} is exported but not in docs/python-api.md"


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = pflow_trace.nope  # type: ignore[attr-defined]


def test_importing_the_package_loads_nothing_heavy() -> None:
    probe = (
        "import sys, pflow_trace; "
        "print('opentelemetry.sdk' in sys.modules, pflow_trace.__version__)"
    )
    finished = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert finished.stdout.split() == ["False", pflow_trace.__version__]


def test_run_accepts_a_path_and_returns_redacted_outputs(tmp_path: Path) -> None:
    workflow = tmp_path / "wf.json"
    workflow.write_text(
        '{"ir_version": "0.1.0", "name": "w", '
        '"inputs": {"pin": {"type": "string", "sensitive": true}}, '
        '"nodes": [{"id": "e", "type": "echo", "params": {"said": "pin is ${pin}"}}], '
        '"outputs": {"said": "${e.said}"}}'
    )
    options = pflow_trace.TraceOptions(trace_file=str(tmp_path / "t.trace.json"))
    outcome = pflow_trace.run(str(workflow), {"pin": "4711-secret"}, options)
    assert outcome.status == "success"
    assert outcome.outputs == {"said": "pin is <redacted>"}
    assert outcome.result.outputs == {"said": "pin is 4711-secret"}
    assert outcome.trace_write_seconds > 0
    run = pflow_trace.read_trace(outcome.trace_path)
    assert run.workflow_name == "w" and run.final_status == "success"


def test_the_package_exports_exactly_the_api_modules_names() -> None:
    """``pflow_trace.__all__`` is spelled out (importing api eagerly is slow): keep it equal."""
    from pflow_trace import api

    assert set(pflow_trace.__all__) - {"__version__"} == set(api.__all__)
