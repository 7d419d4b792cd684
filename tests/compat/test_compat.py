"""Differential test: every compat workflow, as ``.pflow.md`` and as pflow's JSON IR, run by
pflow-trace and compared field by field with what pflow-cli 0.16 produced (``goldens/``).

A difference fails the test unless docs/pflow-compat.md lists it under "Known differences",
with its reason; a listed difference that no case shows any more fails too, so the list stays
honest. Goldens are written by ``record.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from compat_cases import (
    GOLDENS,
    RUN_IN_CASE_DIR,
    WORKFLOWS,
    case_forms,
    case_inputs,
    case_names,
    differences,
    known_differences,
    normalise,
)
from compat_run import our_facts
from compat_server import local_server
from repo_cases import offline_env

CASES = case_names()
ALLOWED = known_differences()
#: pattern → how many times it excused a difference in this session (checked at the end).
USED: dict[str, int] = {pattern.pattern: 0 for pattern, _ in ALLOWED}
#: (case, form) pairs compared in this session.
RAN: set[tuple[str, str]] = set()


@pytest.fixture(scope="module")
def base_url() -> Any:
    with local_server() as url:
        yield url


def _excused(case: str, path: str) -> bool:
    for pattern, _ in ALLOWED:
        if pattern.match(f"{case}:{path}"):
            USED[pattern.pattern] += 1
            return True
    return False


@pytest.mark.parametrize(
    ("case", "form"), [(case, form) for case in CASES for form in case_forms(case)]
)
def test_matches_pflow(
    case: str, form: str, base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    golden = json.loads((GOLDENS / f"{case}.json").read_text())
    for key, value in offline_env(base_url).items():  # an llm step: the offline model
        monkeypatch.setenv(key, value)
    if case in RUN_IN_CASE_DIR:
        monkeypatch.chdir(WORKFLOWS)
    workdir = tmp_path / "work"
    workdir.mkdir()
    inputs = case_inputs(case, base_url, str(workdir))
    ours = normalise(
        our_facts(WORKFLOWS / f"{case}.{form}", inputs),
        {base_url: "<base_url>", str(workdir): "<workdir>"},
    )
    expected = {key: golden[key] for key in ("status", "outputs", "nodes", "batches")}
    unexplained = [
        f"{path}: pflow {pflow!r}, ours {mine!r}"
        for path, pflow, mine in differences(expected, ours)
        if not _excused(case, path)
    ]
    RAN.add((case, form))
    assert not unexplained, "differences from pflow-cli 0.16:\n" + "\n".join(unexplained)


def test_every_known_difference_still_happens() -> None:
    """Runs after the cases: a listed difference no case shows is stale and must go."""
    if len(RAN) < sum(len(case_forms(case)) for case in CASES):
        pytest.skip("not every differential case ran in this session")
    stale = [pattern for pattern, count in USED.items() if count == 0]
    assert not stale, f"docs/pflow-compat.md lists differences no case shows: {stale}"


def test_there_are_enough_cases_in_both_forms() -> None:
    assert len(CASES) >= 20
    for case in CASES:
        if "json" in case_forms(case):
            assert (WORKFLOWS / f"{case}.json").is_file(), f"{case}.json missing: record.py"
        assert (GOLDENS / f"{case}.json").is_file(), f"golden for {case} missing"


def test_the_feature_tables_name_only_cases_that_exist() -> None:
    """Every case number in a "Proof" column of docs/pflow-compat.md is a real case, and every
    case is named by at least one row (or by "all cases")."""
    from compat_cases import COMPAT_DOC

    numbers = {case.split("-", 1)[0] for case in CASES}
    named: set[str] = set()
    for line in COMPAT_DOC.read_text().split("## Known differences")[0].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1] in ("supported", "partly", "not"):
            for first, last in re.findall(r"\b(\d\d)(?:\u2013(\d\d))?\b", cells[3]):
                span = range(int(first), int(last or first) + 1)
                named.update(f"{n:02d}" for n in span)
    assert named <= numbers, f"rows name cases that do not exist: {sorted(named - numbers)}"
    assert numbers <= named, f"cases no row names: {sorted(numbers - named)}"
