"""README's test command is what CI runs verbatim: it checks lint and format and runs every test.

``.ci/run`` reads the line after ``<!-- test-command -->`` (skipping the code fence) and runs
it with bash; these tests read it the same way.
"""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- test-command -->"


def readme_test_command() -> str:
    """The line ``.ci/run`` executes: two lines below the marker (the first is the fence)."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    position = lines.index(MARKER)
    assert lines[position + 1].startswith("```"), "the marker must sit right above a code fence"
    assert lines[position + 3] == "```", "the command must be one line"
    return lines[position + 2]


def test_ci_reads_the_command_after_the_marker() -> None:
    ci_script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "/<!-- test-command -->/{getline; getline; print; exit}" in ci_script


def test_the_command_sets_up_checks_lint_and_format_and_runs_pytest() -> None:
    steps = [step.strip() for step in readme_test_command().split("&&")]
    assert steps[0] == "python3 -m venv .venv"
    assert steps[1] == '.venv/bin/pip install -q -e ".[test]"'
    assert ".venv/bin/ruff check ." in steps
    assert ".venv/bin/ruff format --check ." in steps
    assert steps[-1].startswith(".venv/bin/python -m pytest")


def test_the_command_runs_every_test_including_the_slow_ones() -> None:
    pytest_arguments = shlex.split(readme_test_command().split("&&")[-1])[3:]
    for narrowing in ("-m", "-k", "--lf", "--last-failed", "-x"):
        assert narrowing not in pytest_arguments, pytest_arguments
    assert not any(argument.startswith("tests/") for argument in pytest_arguments)


def test_the_slow_marker_is_registered() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    markers = pyproject["tool"]["pytest"]["ini_options"]["markers"]
    assert any(marker.startswith("slow:") for marker in markers)
