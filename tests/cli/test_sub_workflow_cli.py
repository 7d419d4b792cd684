"""A run with sub-workflows through the command line: the trace file, ``show`` (table and
``--json``), the HTML report and the exports all place a child's nodes under their caller; bad
references are one problem line and exit 2, never a traceback."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pflow_trace.cli.main import cli

CHILD = """# Shout

Uppercases a text.

## Inputs

### text

The text.

- type: string

## Outputs

### loud

The loud text.

- source: ${upper.stdout}

## Steps

### upper

Uppercases the text.

- type: shell
- command: printf '%s' "${text}" | tr a-z A-Z
"""

PARENT = """# Caller

Calls the child, then uses what it gave.

## Steps

### shout

Shouts a word through the child.

- type: workflow
- workflow: ./kids/shout.pflow.md
- inputs:
    text: hello

### after

Reads the child's output.

- type: shell
- stdin: ${shout.loud}
- command: cat

## Outputs

### said

What the last step printed.

- source: ${after.stdout}
"""


def invoke(*arguments: str) -> Any:
    return CliRunner().invoke(cli, list(arguments))


@pytest.fixture
def traced_run(tmp_path: Path) -> tuple[Path, Path]:
    """(the trace file, the child file) of one successful run."""
    child = tmp_path / "kids" / "shout.pflow.md"
    child.parent.mkdir()
    child.write_text(CHILD, encoding="utf-8")
    workflow = tmp_path / "caller.pflow.md"
    workflow.write_text(PARENT, encoding="utf-8")
    trace = tmp_path / "trace.json"
    done = invoke("run", str(workflow), "--trace-file", str(trace))
    assert done.exit_code == 0, done.output
    # The run's status line of a child's node names the step that called it.
    assert "shout > upper" in done.output
    return trace, child


def test_the_trace_attributes_child_records_and_records_the_file(
    traced_run: tuple[Path, Path],
) -> None:
    trace, child = traced_run
    document = json.loads(trace.read_text())
    records = {record["node_id"]: record for record in document["nodes"]}
    assert [record["node_id"] for record in document["nodes"]] == ["upper", "shout", "after"]
    assert records["upper"]["call_path"] == ["shout"]
    assert records["upper"]["caller_span_id"] == records["shout"]["span_id"]
    assert "call_path" not in records["after"]
    sha256 = hashlib.sha256(child.read_bytes()).hexdigest()
    assert records["shout"]["sub_workflows"] == [{"path": str(child.resolve()), "sha256": sha256}]
    assert records["shout"]["shared_after"]["shout"] == {"loud": "HELLO"}


def test_show_lists_the_child_under_its_caller(traced_run: tuple[Path, Path]) -> None:
    trace, _ = traced_run
    table = invoke("show", str(trace)).output
    rows = [line.split() for line in table.splitlines() if line.strip()[:1].isdigit()]
    assert [row[:2] for row in rows[-3:]] == [["1", "shout"], ["2", "└"], ["3", "after"]]
    assert rows[-2][2] == "upper"
    summary = json.loads(invoke("show", "--json", str(trace)).output)
    nodes = summary["runs"][0]["nodes"]
    assert [(node["order"], node["node_id"], node["call_path"]) for node in nodes] == [
        (1, "shout", []),
        (2, "upper", ["shout"]),
        (3, "after", []),
    ]


def test_the_report_carries_the_nesting(traced_run: tuple[Path, Path], tmp_path: Path) -> None:
    trace, _ = traced_run
    page = tmp_path / "report.html"
    done = invoke("report", str(trace), "-o", str(page))
    assert done.exit_code == 0, done.output
    html = page.read_text()
    assert '"node_id":"upper","node_type":"shell"' in html
    assert '"call_path":["shout"]' in html
    assert "nodeLabel(node)" in html


def _parents_otlp(document: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(span id → parent span id, span name → span id) of an OTLP/JSON export."""
    spans = [
        span
        for resource in document["resourceSpans"]
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
    ]
    parents = {span["spanId"]: span.get("parentSpanId", "") for span in spans}
    return parents, {span["name"]: span["spanId"] for span in spans}


def _is_under(span_id: str, ancestor: str, parents: dict[str, str]) -> bool:
    while span_id in parents:
        span_id = parents[span_id]
        if span_id == ancestor:
            return True
    return False


@pytest.mark.parametrize("recorded", [True, False], ids=["span-table", "synthesized"])
def test_exports_nest_the_child_under_its_caller(
    traced_run: tuple[Path, Path], tmp_path: Path, recorded: bool
) -> None:
    trace, _ = traced_run
    if not recorded:  # a trace without its span table: the tree is rebuilt from the records
        document = json.loads(trace.read_text())
        del document["otel"]["spans"]
        trace = tmp_path / "no-spans.json"
        trace.write_text(json.dumps(document))
    out = tmp_path / "otlp.json"
    assert invoke("export", str(trace), "--format", "otlp-json", "-o", str(out)).exit_code == 0
    parents, by_name = _parents_otlp(json.loads(out.read_text()))
    child, caller = by_name["upper instrumented"], by_name["shout instrumented"]
    assert _is_under(child, caller, parents)
    assert not _is_under(by_name["after instrumented"], caller, parents)
    jaeger = tmp_path / "jaeger.json"
    assert invoke("export", str(trace), "--format", "jaeger-json", "-o", str(jaeger)).exit_code == 0
    spans = json.loads(jaeger.read_text())["data"][0]["spans"]
    jaeger_parents = {
        span["spanID"]: (span["references"] or [{"spanID": ""}])[0]["spanID"] for span in spans
    }
    names = {span["operationName"]: span["spanID"] for span in spans}
    assert _is_under(names["upper instrumented"], names["shout instrumented"], jaeger_parents)
    chrome = tmp_path / "chrome.json"
    assert invoke("export", str(trace), "--format", "chrome", "-o", str(chrome)).exit_code == 0
    events = {
        event["name"]: event
        for event in json.loads(chrome.read_text())["traceEvents"]
        if event.get("ph") == "X"
    }
    inner, outer = events["upper instrumented"], events["shout instrumented"]
    assert outer["ts"] <= inner["ts"] and inner["ts"] + inner["dur"] <= outer["ts"] + outer["dur"]


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("./kids/missing.pflow.md", "sub-workflow file not found: ./kids/missing.pflow.md"),
        ("./caller.pflow.md", "circular sub-workflow reference: "),
    ],
)
def test_a_bad_reference_is_one_problem_line_and_exit_2(
    tmp_path: Path, reference: str, expected: str
) -> None:
    workflow = tmp_path / "caller.pflow.md"
    workflow.write_text(PARENT.replace("./kids/shout.pflow.md", reference), encoding="utf-8")
    for command in ("validate", "run"):
        done = invoke(command, str(workflow))
        assert done.exit_code == 2, done.output
        problems = [line for line in done.output.splitlines() if line.startswith("  - ")]
        assert len(problems) == 1 and expected in problems[0], done.output
        assert "Traceback" not in done.output


def test_a_child_with_problems_is_named_in_the_callers_problem(tmp_path: Path) -> None:
    (tmp_path / "kids").mkdir()
    (tmp_path / "kids" / "shout.pflow.md").write_text(
        CHILD.replace("${upper.stdout}", "${uper.stdout}"), encoding="utf-8"
    )
    workflow = tmp_path / "caller.pflow.md"
    workflow.write_text(PARENT, encoding="utf-8")
    done = invoke("validate", str(workflow))
    assert done.exit_code == 2
    (problem,) = [line for line in done.output.splitlines() if line.startswith("  - ")]
    assert "nodes[0].params.workflow: in ./kids/shout.pflow.md: line " in problem
    assert "uper" in problem


def test_resume_reuses_the_calling_step_whole(tmp_path: Path) -> None:
    (tmp_path / "kids").mkdir()
    (tmp_path / "kids" / "shout.pflow.md").write_text(CHILD, encoding="utf-8")
    flag = tmp_path / "flag"
    workflow = tmp_path / "caller.pflow.md"
    workflow.write_text(
        PARENT.replace("- command: cat", f"- command: test -f {flag} && cat"), encoding="utf-8"
    )
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    assert invoke("run", str(workflow), "--trace-file", str(first)).exit_code == 1
    flag.touch()
    done = invoke("resume", str(first), "--trace-file", str(second))
    assert done.exit_code == 0, done.output
    records = json.loads(second.read_text())["nodes"]
    # The step is taken from the first run as a whole: its child's nodes do not run again.
    assert [record["node_id"] for record in records] == ["shout", "after"]
    assert records[1]["shared_after"]["after"]["stdout"] == "HELLO"


def test_views_over_several_runs_keep_a_childs_node_apart(
    traced_run: tuple[Path, Path], tmp_path: Path
) -> None:
    """A child's node is pooled as ``caller/node``: never with a caller's node of the same id."""
    trace, _ = traced_run
    workflow = trace.parent / "caller.pflow.md"
    # The caller gets a node of its own named like the child's.
    workflow.write_text(PARENT.replace("### after", "### upper"), encoding="utf-8")
    workflow.write_text(
        workflow.read_text().replace("${after.stdout}", "${upper.stdout}"), encoding="utf-8"
    )
    second = tmp_path / "second.json"
    assert invoke("run", str(workflow), "--trace-file", str(second)).exit_code == 0
    third = tmp_path / "third.json"
    assert invoke("run", str(workflow), "--trace-file", str(third)).exit_code == 0
    compared = json.loads(invoke("diff", str(second), str(third), "--format", "json").output)
    assert [node["node_id"] for node in compared["nodes"]] == ["shout", "shout/upper", "upper"]
    summary = json.loads(invoke("show", "--json", str(second), str(third)).output)
    (pooled,) = summary["aggregate"]["workflows"]
    assert [node["node_id"] for node in pooled["nodes"]] == ["shout", "shout/upper", "upper"]
    assert [node["runs"] for node in pooled["nodes"]] == [2, 2, 2]
