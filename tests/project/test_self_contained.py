"""The suite passes in any fresh clone: no test reads a file outside the repository.

Two checks. A static scan of the test and benchmark code for paths that leave the checkout
(a sibling ``shared`` folder, an absolute ``/work`` path, ``Path(__file__).parents[N]``
climbing above the repository root). And a run: the tests that read pflow's sample traces are
copied, with the rest of ``tests/``, into an empty temporary directory and run there with
pytest, where nothing lies beside the copy.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pflow_samples

ROOT = Path(__file__).resolve().parents[2]
SCANNED_FOLDERS = ("tests", "benchmarks")
SCANNED_SUFFIXES = (".py", ".md", ".toml", ".sh")
#: Recorded data (pflow's own traces, compat goldens) may name the paths they were recorded in.
DATA_FOLDERS = ("tests/fixtures", "tests/compat/fixtures", "tests/compat/goldens")
OUTSIDE_PATTERNS = {
    "a sibling shared/ folder": re.compile(r"\.\./shared|shared/fixtures|PFLOW_FIXTURES_DIR"),
    "an absolute /work path": re.compile(r"(?<![\w.~-])/work/"),
}
PARENTS_INDEX = re.compile(r"Path\(__file__\)\.resolve\(\)\.parents\[(\d+)\]")
#: The tests that read the samples and run in a couple of seconds.
SAMPLE_READERS = (
    "tests/tracefile/test_readers.py",
    "tests/report/test_show_json.py::test_pflow_samples_validate",
    "tests/report/test_show_stats.py::test_aggregate_mixes_formats",
)


def scanned_files() -> list[Path]:
    files = []
    for folder in SCANNED_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            relative = path.relative_to(ROOT).as_posix()
            if path.suffix not in SCANNED_SUFFIXES or "__pycache__" in relative:
                continue
            if relative.startswith(DATA_FOLDERS):
                continue
            files.append(path)
    return files


def outside_references(path: Path, text: str) -> list[str]:
    """Each place in ``text`` (the contents of ``path``) that names a path outside the repo."""
    relative = path.relative_to(ROOT)
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        for what, pattern in OUTSIDE_PATTERNS.items():
            if pattern.search(line):
                problems.append(f"{relative}:{number}: {what}: {line.strip()}")
        for match in PARENTS_INDEX.finditer(line):
            # parents[len(parts) - 1] is the repository root; anything higher is outside it.
            if int(match.group(1)) > len(relative.parts) - 1:
                problems.append(f"{relative}:{number}: climbs above the repository: {line.strip()}")
    return problems


def test_the_scan_catches_each_kind_of_outside_path() -> None:
    """The patterns below would have caught the lookups the suite used to make."""
    here = ROOT / "tests" / "tracefile" / "test_example.py"
    old_lookups = [
        'Path(__file__).resolve().parents[3] / "shared/fixtures/sample.json"',
        'os.environ.get("PFLOW_FIXTURES_DIR")',
        'Path("../shared/fixtures")',
        'SAMPLE = Path("/work/shared/fixtures/sample.json")',
    ]
    for line in old_lookups:
        assert outside_references(here, line), line
    inside = 'Path(__file__).resolve().parents[2] / "docs" / "trace-format.md"'
    assert outside_references(here, inside) == []


def test_no_test_or_benchmark_names_a_path_outside_the_repository() -> None:
    problems = []
    for path in scanned_files():
        if path == Path(__file__).resolve():
            continue  # this file spells the patterns out
        problems += outside_references(path, path.read_text(encoding="utf-8"))
    assert problems == []


def test_the_pflow_samples_are_in_the_repository() -> None:
    for sample in pflow_samples.PFLOW_SAMPLES:
        assert sample.is_file(), sample
        assert sample.resolve().is_relative_to(ROOT)


def test_the_sample_readers_pass_in_a_copy_with_nothing_beside_it(tmp_path: Path) -> None:
    checkout = tmp_path / "fresh" / "pflow-trace"
    shutil.copytree(
        ROOT / "tests", checkout / "tests", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", checkout)
    assert sorted(path.name for path in checkout.parent.iterdir()) == ["pflow-trace"]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PFLOW_")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", *SAMPLE_READERS],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # A missing sample must fail, never skip its way to green.
    assert re.search(r"^\d+ passed in ", result.stdout, re.MULTILINE), result.stdout
    assert "skipped" not in result.stdout, result.stdout


@pytest.mark.parametrize("name", ["../shared", "shared/fixtures", "/work/"])
def test_docs_send_no_one_outside_the_repository(name: str) -> None:
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        assert name not in page.read_text(encoding="utf-8"), page.name
