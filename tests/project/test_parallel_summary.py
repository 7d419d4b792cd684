"""Under ``pytest -n 2`` the suite's summary still counts every trace its workers validated.

``conftest.py`` counts validated traces in each process; pytest-xdist workers hand their
counts to the controller, which prints the sum. Without that hand-over the line vanishes from
the README's test command's output.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
TWO_TRACES = """
import pytest
from trace_factory import parallel_trace, sequential_trace


@pytest.mark.parametrize("make", [sequential_trace, parallel_trace])
def test_validates(make, validate_trace):
    validate_trace(make())
"""


@pytest.mark.slow
def test_two_workers_report_the_sum_of_their_validated_traces(tmp_path: Path) -> None:
    for helper in ("conftest.py", "trace_factory.py"):
        shutil.copy(TESTS / helper, tmp_path)
    (tmp_path / "test_two.py").write_text(TWO_TRACES, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "test_two.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "trace files validated against the trace schema: 2" in result.stdout, result.stdout
