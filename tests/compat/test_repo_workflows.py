"""Differential test over pflow's own workflows (``repo_workflows/``, from its public
repository): each runs offline in pflow-trace and is compared field by field with what
pflow-cli 0.16 did with the same offline copy (``goldens/repo/``, written by ``record_repo.py``).

A difference fails the test unless docs/pflow-compat.md lists it under "Known differences in
pflow's own workflows", with its reason; a listed difference no workflow shows any more fails
too. Workflows that cannot run offline are not skipped tests: ``repo_workflows/README.md``
lists them with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from compat_cases import differences, known_differences, normalise
from compat_run import our_facts
from compat_server import local_server
from repo_cases import (
    CASES,
    REPO_GOLDENS,
    REPO_WORKFLOWS,
    offline_copy,
    offline_env,
    prepare_workdir,
)

HEADING = "## Known differences in pflow's own workflows\n"
ALLOWED = known_differences(heading=HEADING)
USED: dict[str, int] = {pattern.pattern: 0 for pattern, _ in ALLOWED}
RAN: set[str] = set()


@pytest.fixture(scope="module")
def base_url() -> Any:
    with local_server() as url:
        yield url


def _excused(name: str, path: str) -> bool:
    for pattern, _ in ALLOWED:
        if pattern.match(f"{name}:{path}"):
            USED[pattern.pattern] += 1
            return True
    return False


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, id=case.name, marks=[pytest.mark.slow] if case.slow else [])
        for case in CASES
    ],
)
def test_matches_pflow(
    case: Any, base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    golden = json.loads((REPO_GOLDENS / f"{case.name}.json").read_text())
    workdir = tmp_path / "work"
    workdir.mkdir()
    prepare_workdir(case, workdir)
    workflow = offline_copy(case, base_url, tmp_path, workdir)
    for key, value in offline_env(base_url).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(workdir)  # the workflows name files relative to where they run
    ours = normalise(
        our_facts(workflow, dict(case.inputs)),
        {base_url: "<base_url>", str(workdir): "<workdir>", str(tmp_path): "<tmp>"},
    )
    expected = {key: golden[key] for key in ("status", "outputs", "nodes", "batches")}
    unexplained = [
        f"{path}: pflow {pflow!r}, ours {mine!r}"
        for path, pflow, mine in differences(expected, ours)
        if not _excused(case.name, path)
    ]
    RAN.add(case.name)
    assert not unexplained, "differences from pflow-cli 0.16:\n" + "\n".join(unexplained)


def test_every_known_difference_still_happens() -> None:
    """Runs after the cases: a listed difference no workflow shows is stale and must go."""
    if len(RAN) < len(CASES):
        pytest.skip("not every repository workflow ran in this session")
    stale = [pattern for pattern, count in USED.items() if count == 0]
    assert not stale, f"docs/pflow-compat.md lists differences no workflow shows: {stale}"


def test_every_case_has_its_file_and_golden() -> None:
    for case in CASES:
        assert (REPO_WORKFLOWS / case.path).is_file(), f"{case.path} missing"
        assert (REPO_GOLDENS / f"{case.name}.json").is_file(), f"record_repo.py {case.name}"


def test_the_readme_names_every_case() -> None:
    """The README's table of workflows says what became of each one, the runs included."""
    readme = (REPO_WORKFLOWS / "README.md").read_text(encoding="utf-8")
    missing = [case.path for case in CASES if f"`{case.path}`" not in readme]
    assert not missing, f"repo_workflows/README.md does not list: {missing}"
