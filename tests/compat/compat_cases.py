"""What the compat cases are and how a run of each becomes comparable facts.

Shared by ``record.py`` (which runs pflow-cli and writes goldens) and ``test_compat.py`` (which
runs pflow-trace and compares), so both sides read a run the same way:

- ``status``: success, degraded or failed;
- ``outputs``: the declared outputs;
- ``nodes``: each node's status, as pflow names them (completed, failed, not_executed);
- ``batches``: per batch node, the item counts, the failed indexes and their messages, every
  per-item result dict and ``batch_metadata`` (timings left out).

Values that differ between any two runs (the local server's URL, the temporary directory,
timings, response headers) are normalised away before comparing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
WORKFLOWS = HERE / "workflows"
GOLDENS = HERE / "goldens"
FIXTURES = HERE / "fixtures"
COMPAT_DOC = HERE.parent.parent / "docs" / "pflow-compat.md"
PFLOW_VERSION = "0.16.0"

#: Inputs given on the command line, per case, on top of ``base_url`` and ``workdir``.
CASE_INPUTS: dict[str, dict[str, Any]] = {
    "01-inputs-defaults": {"count": 4, "label": "given"},
}
#: Cases pflow's own markdown parser rejects, so they have no JSON IR form (case → why).
MARKDOWN_ONLY: dict[str, str] = {
    "31-step-without-description": "a description is markdown prose; pflow's parser refuses it",
}
#: Cases run with ``workflows/`` as the working directory (case → why): both tools read an
#: ``llm`` node's ``images`` path relative to where they run.
RUN_IN_CASE_DIR: dict[str, str] = {
    "56-llm-images": "its images name ./files/56-dot.png",
}
#: Keys whose values change from run to run; left out of every comparison.
VOLATILE_KEYS = frozenset({"response_time", "response_headers", "timing", "duration_ms"})


def case_names() -> list[str]:
    return sorted(path.name.removesuffix(".pflow.md") for path in WORKFLOWS.glob("*.pflow.md"))


def case_forms(name: str) -> list[str]:
    """The forms a case is run in: ``pflow.md``, and ``json`` unless it is markdown only."""
    return ["pflow.md"] if name in MARKDOWN_ONLY else ["pflow.md", "json"]


def case_inputs(name: str, base_url: str, workdir: str) -> dict[str, Any]:
    """The inputs a case is run with: its own, plus the server URL and a scratch directory."""
    text = (WORKFLOWS / f"{name}.pflow.md").read_text()
    inputs = dict(CASE_INPUTS.get(name, {}))
    if "### base_url" in text:
        inputs["base_url"] = base_url
    if "### workdir" in text:
        inputs["workdir"] = workdir
    return inputs


def normalise(value: Any, replacements: dict[str, str]) -> Any:
    """Drop volatile keys and replace run-specific strings (URL, directory) by placeholders."""
    if isinstance(value, dict):
        return {
            key: normalise(item, replacements)
            for key, item in value.items()
            if key not in VOLATILE_KEYS
        }
    if isinstance(value, list):
        return [normalise(item, replacements) for item in value]
    if isinstance(value, str):
        for real, placeholder in replacements.items():
            value = value.replace(real, placeholder)
    return value


def batch_facts(output: dict[str, Any]) -> dict[str, Any]:
    """The comparable part of a batch node's namespace."""
    return {
        "count": output.get("count"),
        "success_count": output.get("success_count"),
        "error_count": output.get("error_count"),
        # pflow lists a parallel batch's errors in the order they happened: sort by index.
        "errors": sorted(
            (
                {"index": error.get("index"), "error": error.get("error")}
                for error in output.get("errors") or []
            ),
            key=lambda error: error["index"],
        ),
        "results": output.get("results"),
        # The store is compared byte for byte: the order of each result's keys too.
        "result_keys": [
            ",".join(result) if isinstance(result, dict) else None
            for result in output.get("results") or []
        ],
        "batch_metadata": output.get("batch_metadata"),
    }


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": [1]}}`` → ``{"a.b[0]": 1}``; empty containers stay as leaves."""
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list) and value:
        flat = {}
        for index, item in enumerate(value):
            flat.update(flatten(item, f"{prefix}[{index}]"))
        return flat
    return {prefix: value}


_MISSING = object()


def differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Every path where the two facts differ: (path, pflow's value, ours)."""
    left, right = flatten(expected), flatten(actual)
    found = []
    for path in sorted(set(left) | set(right)):
        a, b = left.get(path, _MISSING), right.get(path, _MISSING)
        if a is _MISSING or b is _MISSING or a != b or type(a) is not type(b):
            found.append((path, None if a is _MISSING else a, None if b is _MISSING else b))
    return found


def known_differences(
    doc: Path = COMPAT_DOC, heading: str = "## Known differences\n"
) -> list[tuple[re.Pattern[str], str]]:
    """The allowed differences listed in docs/pflow-compat.md: (pattern, reason).

    Rows of the table under ``heading`` whose first cell is a backticked ``case:path``
    pattern, where ``*`` matches anything.
    """
    text = doc.read_text(encoding="utf-8")
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    allowed = []
    for row in re.finditer(r"^\|\s*`([^`]+)`\s*\|\s*(.+?)\s*\|\s*$", section, re.MULTILINE):
        pattern = ".*".join(re.escape(piece) for piece in row.group(1).split("*"))
        allowed.append((re.compile(f"^{pattern}$"), row.group(2)))
    return allowed
