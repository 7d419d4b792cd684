"""Sub-workflows: a ``workflow`` step runs another file through the same runtime.

What pflow-cli 0.16 does (``pflow guide sub-workflows``, and the compat cases 50 to 52 recorded from
it): the child's store holds only its inputs (its defaults fill the rest); the step's namespace
gets the child's declared outputs, or every node namespace of a child without outputs; a failing
child fails the step with ``Sub-workflow failed at <file> (node '<id>'): <error>``. Here, in
addition, the child's nodes are spans under the calling step and records naming their caller,
and the file run is recorded by path and sha256.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pflow_trace.errors import WorkflowValidationError
from pflow_trace.ir.loading import load_and_validate
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.facts import InMemoryObserver
from pflow_trace.runtime.context import RunContext
from pflow_trace.runtime.workflow_run import RunResult, run_workflow

CHILD = """# Shout

Uppercases a text.

## Inputs

### text

The text.

- type: string

### suffix

Appended.

- type: string
- required: false
- default: "!"

## Outputs

### loud

The loud text.

- source: ${upper.stdout}

## Steps

### upper

Uppercases the text.

- type: shell
- command: printf '%s%s' "${text}" "${suffix}" | tr a-z A-Z
"""


def step(node_id: str, reference: str, inputs: str, extra: str = "") -> str:
    return f"""### {node_id}

Calls a child.

- type: workflow
- workflow: {reference}
- inputs:
{inputs}
{extra}
"""


def parent(*steps: str, outputs: str = "") -> str:
    return "# Parent\n\nCalls children.\n\n## Steps\n\n" + "\n".join(steps) + outputs


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def traced(path: Path) -> tuple[RunResult, InMemorySpanExporter, InMemoryObserver]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observer = InMemoryObserver()
    run = RunContext(tracer=provider.get_tracer("test"), observer=observer)
    return run_workflow(load_and_validate(path), {}, run=run), exporter, observer


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    found = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        found.append(span)
    return found


def instrumented(spans: list[ReadableSpan], node_id: str) -> list[ReadableSpan]:
    return [
        span
        for span in spans
        if span.attributes.get(conv.ATTR_LAYER) == conv.LAYER_INSTRUMENTED
        and span.attributes.get(conv.ATTR_NODE_ID) == node_id
    ]


def test_outputs_defaults_and_a_relative_path(tmp_path: Path) -> None:
    write(tmp_path, "lib/shout.pflow.md", CHILD)
    path = write(
        tmp_path,
        "main.pflow.md",
        parent(
            step("a", "./lib/shout.pflow.md", "    text: hi"),
            step("b", "./lib/shout.pflow.md", '    text: ho\n    suffix: "?"'),
        ),
    )
    result, _, _ = traced(path)
    assert result.status == "success"
    # Only the declared outputs reach the caller's namespace; the child's nodes stay inside.
    assert result.shared["a"] == {"loud": "HI!"}
    assert result.shared["b"] == {"loud": "HO?"}
    assert "upper" not in result.shared and "text" not in result.shared


def test_a_child_without_outputs_hands_back_its_node_namespaces(tmp_path: Path) -> None:
    child = CHILD.split("## Outputs")[0] + "## Steps" + CHILD.split("## Steps")[1]
    write(tmp_path, "plain.pflow.md", child)
    path = write(tmp_path, "main.pflow.md", parent(step("a", "./plain.pflow.md", "    text: x")))
    result, _, _ = traced(path)
    assert result.shared["a"]["upper"]["stdout"] == "X!"


def test_child_spans_sit_under_the_calling_step_and_records_name_it(tmp_path: Path) -> None:
    child_path = write(tmp_path, "shout.pflow.md", CHILD)
    path = write(tmp_path, "main.pflow.md", parent(step("call", "./shout.pflow.md", "    text: a")))
    result, exporter, observer = traced(path)
    assert result.status == "success"
    spans = list(exporter.get_finished_spans())
    by_id = {span.context.span_id: span for span in spans}
    (caller,) = instrumented(spans, "call")
    (child,) = instrumented(spans, "upper")
    assert caller in ancestors(child, by_id)
    # The file is on the caller's span and record, by path and sha256.
    sha256 = hashlib.sha256(child_path.read_bytes()).hexdigest()
    recorded = [
        span.attributes
        for span in ancestors(child, by_id)
        if conv.ATTR_SUB_WORKFLOW_PATH in span.attributes
    ]
    assert recorded[0][conv.ATTR_SUB_WORKFLOW_SHA256] == sha256
    executions = {execution.node_id: execution for execution in observer.executions}
    assert executions["upper"].call_path == ("call",)
    assert executions["upper"].caller_span_id == caller.context.span_id
    assert executions["call"].call_path == ()
    assert executions["call"].sub_workflows == [{"path": str(child_path), "sha256": sha256}]


def test_a_batch_over_a_child_nests_each_run_under_its_item(tmp_path: Path) -> None:
    write(tmp_path, "shout.pflow.md", CHILD)
    batch = "```yaml batch\nitems: [a, b, c]\nparallel: true\nmax_concurrent: 2\n```\n"
    path = write(
        tmp_path,
        "main.pflow.md",
        parent(step("each", "./shout.pflow.md", "    text: ${item}", batch)),
    )
    result, exporter, _ = traced(path)
    assert [row["loud"] for row in result.shared["each"]["results"]] == ["A!", "B!", "C!"]
    spans = list(exporter.get_finished_spans())
    by_id = {span.context.span_id: span for span in spans}
    items = {
        span.attributes[conv.ATTR_BATCH_INDEX]: span
        for span in spans
        if span.attributes.get(conv.ATTR_LAYER) == conv.LAYER_BATCH_ITEM
    }
    children = instrumented(spans, "upper")
    assert len(children) == 3
    owners = sorted(
        next(i for i, item in items.items() if item in ancestors(child, by_id))
        for child in children
    )
    assert owners == [0, 1, 2]


def test_a_failing_child_fails_the_step_with_pflows_message(tmp_path: Path) -> None:
    write(tmp_path, "bad.pflow.md", CHILD.replace("| tr a-z A-Z", "; exit 3"))
    path = write(tmp_path, "main.pflow.md", parent(step("call", "./bad.pflow.md", "    text: a")))
    result, _, _ = traced(path)
    assert result.status == "failed"
    assert result.record.failed_node == "call"
    assert result.error == (
        "node 'call' failed: Sub-workflow failed at ./bad.pflow.md (node 'upper'): "
        "command exited with code 3"
    )


def test_a_json_workflow_resolves_its_reference_next_to_itself(tmp_path: Path) -> None:
    write(tmp_path, "kids/shout.pflow.md", CHILD)
    path = write(
        tmp_path,
        "main.json",
        '{"ir_version": "0.1.0", "nodes": [{"id": "call", "type": "workflow", "params": '
        '{"workflow": "./kids/shout.pflow.md", "inputs": {"text": "json"}}}], '
        '"outputs": {"said": "${call.loud}"}}',
    )
    result, _, _ = traced(path)
    assert result.outputs == {"said": "JSON!"}


def problems(path: Path) -> list[str]:
    with pytest.raises(WorkflowValidationError) as info:
        load_and_validate(path)
    return info.value.problems


def test_validate_names_the_child_file_and_reports_every_problem_at_once(tmp_path: Path) -> None:
    write(tmp_path, "shout.pflow.md", CHILD)
    write(tmp_path, "broken.pflow.md", CHILD.replace("- type: shell", "- type: shel"))
    path = write(
        tmp_path,
        "main.pflow.md",
        parent(
            step("missing", "./nowhere.pflow.md", "    text: a"),
            step("typo", "./shout.pflow.md", "    txt: a"),
            step("broken", "./broken.pflow.md", "    text: a"),
        ),
    )
    found = problems(path)
    assert len(found) == 4
    assert "nodes[0].params.workflow: sub-workflow file not found: ./nowhere.pflow.md" in found[0]
    assert "declares no input 'txt' (did you mean 'text'?)" in found[1]
    assert "required input 'text' is not given" in found[2]
    assert "nodes[2].params.workflow: in ./broken.pflow.md: line " in found[3]
    assert "unknown node type 'shel'" in found[3]
    assert all("\n" not in problem for problem in found)


def test_a_cycle_of_references_is_refused_in_one_line(tmp_path: Path) -> None:
    write(tmp_path, "b.pflow.md", parent(step("to-a", "./a.pflow.md", "    {}")))
    path = write(tmp_path, "a.pflow.md", parent(step("to-b", "./b.pflow.md", "    {}")))
    (problem,) = problems(path)
    assert "circular sub-workflow reference" in problem
    assert problem.endswith(
        f"{tmp_path / 'a.pflow.md'} -> {tmp_path / 'b.pflow.md'} -> {tmp_path / 'a.pflow.md'}"
    )


def test_a_step_calling_its_own_file_is_a_cycle(tmp_path: Path) -> None:
    path = write(tmp_path, "self.pflow.md", parent(step("again", "./self.pflow.md", "    {}")))
    (problem,) = problems(path)
    assert "circular sub-workflow reference" in problem


def test_a_template_reference_is_checked_when_the_step_runs(tmp_path: Path) -> None:
    write(tmp_path, "shout.pflow.md", CHILD)
    batch = (
        "```yaml batch\nitems: [./shout.pflow.md, ./gone.pflow.md]\nerror_handling: continue\n```\n"
    )
    path = write(
        tmp_path,
        "main.pflow.md",
        parent(step("each", "${item}", "    text: t", batch)),
    )
    result, _, _ = traced(path)
    output = result.shared["each"]
    assert output["results"][0]["loud"] == "T!"
    (error,) = output["errors"]
    assert error["index"] == 1
    assert "sub-workflow file not found: ./gone.pflow.md" in error["error"]


def test_workflow_params_are_checked_like_pflow_checks_them(tmp_path: Path) -> None:
    write(tmp_path, "shout.pflow.md", CHILD)
    path = write(
        tmp_path,
        "main.pflow.md",
        parent(step("call", "./shout.pflow.md", "    text: a", "- cwd: /tmp")),
    )
    assert any("cwd" in problem for problem in problems(path))


def test_nesting_deeper_than_max_depth_fails_the_step(tmp_path: Path) -> None:
    write(tmp_path, "shout.pflow.md", CHILD)
    # As in pflow, a step's max_depth bounds how deep the step itself may be.
    inner = step("inner", "./shout.pflow.md", "    text: m", "- max_depth: 1")
    write(tmp_path, "middle.pflow.md", parent(inner))
    path = write(tmp_path, "main.pflow.md", parent(step("outer", "./middle.pflow.md", "    {}")))
    result, _, observer = traced(path)
    assert result.status == "failed"
    assert "max_depth (1)" in (result.error or "")
    assert {execution.node_id: execution.call_path for execution in observer.executions} == {
        "inner": ("outer",),
        "outer": (),
    }


def test_inputs_that_are_not_a_mapping_fail_the_step(tmp_path: Path) -> None:
    write(tmp_path, "shout.pflow.md", CHILD)
    text = parent(step("call", "./shout.pflow.md", "    text: a")).replace(
        "- inputs:\n    text: a", "- inputs: ${words}"
    )
    text = text.replace(
        "## Steps", "## Inputs\n\n### words\n\nWords.\n\n- type: array\n- default: [1]\n\n## Steps"
    )
    path = write(tmp_path, "main.pflow.md", text)
    result, _, _ = traced(path)
    assert result.status == "failed"
    assert result.error == (
        "node 'call' failed: workflow: invalid param 'inputs': [1] is not of type 'object'"
    )


def test_the_callers_own_problems_and_its_childs_come_together(tmp_path: Path) -> None:
    write(tmp_path, "broken.pflow.md", CHILD.replace("${upper.stdout}", "${upper.stdot}"))
    path = write(
        tmp_path,
        "main.pflow.md",
        parent(step("call", "./broken.pflow.md", "    text: a", "- cwd: /tmp")),
    )
    found = problems(path)
    assert len(found) == 2
    assert "in ./broken.pflow.md: line " in found[0] and "stdot" in found[0]
    assert "unknown param 'cwd'" in found[1]


@pytest.mark.parametrize("reference", ["x\\u0000y", "a" * 5000, "/"])
def test_a_reference_no_file_answers_is_a_problem_not_a_traceback(
    tmp_path: Path, reference: str
) -> None:
    path = write(
        tmp_path,
        "main.json",
        '{"ir_version": "0.1.0", "nodes": [{"id": "call", "type": "workflow", '
        f'"params": {{"workflow": "{reference}"}}}}]}}',
    )
    (problem,) = problems(path)
    assert problem.startswith("nodes[0].params.workflow: sub-workflow file ")


def test_a_chain_of_files_deeper_than_validate_follows_is_a_problem(tmp_path: Path) -> None:
    for depth in range(60):
        write(
            tmp_path,
            f"f{depth}.pflow.md",
            parent(step("next", f"./f{depth + 1}.pflow.md", "    {}")),
        )
    write(tmp_path, "f60.pflow.md", CHILD)
    (problem,) = problems(tmp_path / "f0.pflow.md")
    assert problem.endswith("sub-workflows nested more than 50 files deep")


def test_a_child_file_changed_between_runs_is_read_again(tmp_path: Path) -> None:
    child = write(tmp_path, "shout.pflow.md", CHILD)
    path = write(tmp_path, "main.pflow.md", parent(step("call", "./shout.pflow.md", "    text: a")))
    first, _, observer = traced(path)
    assert first.shared["call"] == {"loud": "A!"}
    child.write_text(CHILD.replace("tr a-z A-Z", "tr a-z A-Z | rev"), encoding="utf-8")
    second, _, later = traced(path)
    assert second.shared["call"] == {"loud": "!A"}
    sha = {run[-1].sub_workflows[0]["sha256"] for run in (observer.executions, later.executions)}
    assert len(sha) == 2


def test_reading_an_output_the_child_does_not_declare_is_a_problem(tmp_path: Path) -> None:
    write(tmp_path, "shout.pflow.md", CHILD)
    reader = "### after\n\nReads the step.\n\n- type: shell\n- command: echo ${call.lod}\n"
    path = write(
        tmp_path, "main.pflow.md", parent(step("call", "./shout.pflow.md", "    text: a"), reader)
    )
    (problem,) = problems(path)
    assert problem.endswith(
        "${call.lod} reads 'lod', which the sub-workflow of step 'call' does not output "
        "(did you mean 'loud'?)"
    )
