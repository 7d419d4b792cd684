"""``.pflow.md`` workflows and pflow's JSON IR: parsing, line-numbered problems, and parity
with the IR pflow's own parser produced for every compat workflow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pflow_trace.errors import WorkflowValidationError
from pflow_trace.ir.loading import load_and_validate
from pflow_trace.ir.markdown_entities import read_file_params
from pflow_trace.ir.markdown_workflow import parse_markdown
from pflow_trace.ir.pflow_ir import adapt_pflow_ir
from pflow_trace.ir.validation import validate_workflow
from subprocess_env import clean_env

COMPAT = Path(__file__).resolve().parents[1] / "compat" / "workflows"

DOC = """# Fetch and count

Counts what the API returns.

## Inputs

### limit

How many to keep.

- type: integer
- required: false
- default: 2

## Steps

### fetch

Lists the rows.

- type: shell
- env:
    LIMIT: ${limit}
- timeout: 10

```shell command
seq 1 "$LIMIT"
```

### each

One line per row, as text and as data.

- type: code
- inputs: { row: "${row}", at: "${__index__}" }

```python code
row: Any
at: int
result: dict = {"row": row, "at": at}
```

```yaml batch
items: ${fetch.stdout.rows ?? []}
as: row
parallel: true
```

## Outputs

### rows

Every result.

- source: ${each.results}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(WorkflowValidationError) as info:
        parse_markdown(text, "wf.pflow.md")
    return info.value.problems


def test_a_document_becomes_pflows_ir() -> None:
    workflow = parse_markdown(DOC, "dir/fetch.pflow.md").workflow
    assert workflow["name"] == "fetch"  # the file name, as pflow names its traces
    assert workflow["description"] == "Counts what the API returns."
    assert workflow["inputs"] == {
        "limit": {
            "description": "How many to keep.",
            "type": "integer",
            "required": False,
            "default": 2,
        }
    }
    fetch, each = workflow["nodes"]
    assert fetch == {
        "id": "fetch",
        "type": "shell",
        "purpose": "Lists the rows.",
        "params": {"env": {"LIMIT": "${limit}"}, "timeout": 10, "command": 'seq 1 "$LIMIT"'},
    }
    assert each["params"]["inputs"] == {"row": "${row}", "at": "${__index__}"}
    assert each["params"]["code"].startswith("row: Any\n")
    assert each["batch"] == {"items": "${fetch.stdout.rows ?? []}", "as": "row", "parallel": True}
    assert workflow["edges"] == [{"from": "fetch", "to": "each"}]  # document order, explicit
    assert workflow["outputs"] == {
        "rows": {"description": "Every result.", "source": "${each.results}"}
    }
    assert validate_workflow(workflow)["outputs"] == {"rows": "${each.results}"}


def test_item_values_are_yaml_and_templates_survive_flow_mappings() -> None:
    text = DOC.replace(
        "- timeout: 10",
        '- timeout: 10\n- flags: {deep: ${limit}, fast: yes}\n- note: "two\\nlines"',
    )
    params = parse_markdown(text).workflow["nodes"][0]["params"]
    assert params["flags"] == {"deep": "${limit}", "fast": True}
    assert params["note"] == "two\nlines"


def test_longer_fences_hold_backticks_and_files_can_hold_code(tmp_path: Path) -> None:
    (tmp_path / "calc.py").write_text("result: int = 7\n")
    text = DOC.replace(
        '```shell command\nseq 1 "$LIMIT"\n```',
        "````shell command\necho '```'\n````",
    ).replace("- type: code\n", "- type: code\n- code: ./calc.py\n")
    text = text.split("```python code")[0] + "```yaml batch" + text.split("```yaml batch")[1]
    workflow = parse_markdown(text, tmp_path / "wf.pflow.md").workflow
    assert workflow["nodes"][0]["params"]["command"] == "echo '```'"
    assert (
        workflow["nodes"][1]["params"]["code"] == "result: int = 7\n"
    )  # the file byte for byte, as pflow


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("- timeout: 10", "- timeout: [10"), "line 24: '- timeout: [10' is not valid YAML"),
        (("```shell command", "```shell"), "line 26: code block 'shell' names no param"),
        (("```shell command", "```"), "line 26: code block has no tag"),
        (("- type: shell\n", ""), "line 17: step 'fetch' has no '- type:'"),
        (("## Outputs", "## Results"), "line 49: unknown section '## Results'"),
        (("- source: ${each.results}", "- from: x"), "line 55: output 'rows' has no field 'from'"),
        (("- timeout: 10", "- timeout: 10\n- timeout: 5"), "line 25: 'timeout' is given twice"),
        (("- default: 2", "- default: 2\n- secret: true"), "line 14: input 'limit' has no field"),
        (("# Fetch and count", "Fetch and count"), "line 1: no '# title' line"),
    ],
)
def test_every_parse_problem_names_its_line(change: tuple[str, str], expected: str) -> None:
    found = problems(DOC.replace(*change))
    assert any(problem.startswith(expected) for problem in found), found


def test_an_unclosed_fence_is_reported_at_its_opening_line() -> None:
    found = problems(DOC.replace("parallel: true\n```", "parallel: true\n"))
    assert "line 43: code block opened with ``` is never closed" in found


def test_validation_problems_are_located_on_markdown_lines(tmp_path: Path) -> None:
    path = tmp_path / "wf.pflow.md"
    path.write_text(
        DOC.replace("- type: shell", "- type: shel").replace("${each.results}", "${eech.results}")
    )
    with pytest.raises(WorkflowValidationError) as info:
        load_and_validate(path)
    assert info.value.problems == [
        "line 21: nodes[0].type: unknown node type 'shel' (did you mean shell?)",
        "line 55: outputs.rows: ${eech.results} names unknown 'eech' (closest: each, fetch)",
    ]


def test_the_cli_reports_markdown_problems_in_one_line_each_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "wf.pflow.md"
    path.write_text(DOC.replace("- timeout: 10", "- timeout: [10"))
    for command in ("validate", "run"):
        done = subprocess.run(
            [sys.executable, "-m", "pflow_trace", command, str(path)],
            capture_output=True,
            text=True,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 2
        assert "line 24:" in done.stderr and "Traceback" not in done.stderr


ROUTED = """# Routed

Fails over.

## Steps

### primary

Fails.

- type: shell
- command: exit 1
- on-error: backup

### backup

Recovers.

- type: shell
- command: echo backup
{next}
### after

Joins.

- type: shell
- command: echo after
"""


def test_on_error_becomes_an_error_edge_and_handlers_must_say_where_next() -> None:
    workflow = parse_markdown(ROUTED.format(next="- next: after\n")).workflow
    assert workflow["edges"] == [
        {"from": "primary", "to": "backup"},
        {"from": "primary", "to": "backup", "action": "error"},
        {"from": "backup", "to": "after"},
    ]
    assert problems(ROUTED.format(next="")) == [
        "line 15: step 'backup' handles errors of 'primary' but has no '- next:'; it would fall "
        "through to 'after' (add '- next: end' or '- next: <step>')"
    ]


def _comparable(workflow: dict[str, Any]) -> dict[str, Any]:
    adapted, found = adapt_pflow_ir(workflow)
    assert found == []
    nodes = [{k: v for k, v in node.items() if k != "purpose"} for node in adapted["nodes"]]
    inputs = {
        name: {k: v for k, v in spec.items() if k != "description"}
        for name, spec in (adapted.get("inputs") or {}).items()
    }
    edges = sorted(  # no action is the "default" action
        json.dumps({"action": "default", **edge}, sort_keys=True)
        for edge in adapted.get("edges") or []
    )
    return {"nodes": nodes, "inputs": inputs, "edges": edges, "outputs": adapted.get("outputs")}


@pytest.mark.parametrize(
    "case",
    # A case pflow's parser refuses has no JSON form (tests/compat/compat_cases.MARKDOWN_ONLY).
    sorted(
        p.name for p in COMPAT.glob("*.pflow.md") if p.with_suffix("").with_suffix(".json").exists()
    ),
)
def test_our_parser_gives_the_ir_pflows_parser_gave(case: str) -> None:
    ours = parse_markdown((COMPAT / case).read_text(), COMPAT / case).workflow
    pflows = json.loads((COMPAT / case.replace(".pflow.md", ".json")).read_text())
    assert read_file_params(pflows, COMPAT) == []  # pflow reads them when it compiles
    assert _comparable(ours) == _comparable(pflows)


def test_pflow_ir_fields_we_cannot_honour_are_problems_not_silent_drops() -> None:
    workflow = {
        "ir_version": "0.1.0",
        "nodes": [
            {
                "id": "a",
                "type": "shell",
                "params": {"command": "true"},
                "loop": {"max_iterations": 3},
                "_source_line": 4,
                "cache": False,
            }
        ],
        "outputs": {"o": {"source": "${a.stdout}", "description": "out", "_source_line": 9}},
        "enable_namespacing": True,
        "template_resolution_mode": "permissive",
    }
    with pytest.raises(WorkflowValidationError) as info:
        validate_workflow(workflow)
    assert info.value.problems == [
        "template_resolution_mode: only 'strict' is supported",
        "nodes[0].loop: loop is not supported",
    ]
    del workflow["template_resolution_mode"], workflow["nodes"][0]["loop"]
    assert validate_workflow(workflow)["outputs"] == {"o": "${a.stdout}"}


# --- hostile shapes: each one problem on its line, in time linear in the file -----------------

STEP = "# T\n\n## Steps\n\n### s\nDoes it.\n- type: echo\n"


@pytest.mark.parametrize(
    ("block", "alias"),
    [
        ("a: &x [1, 2]\nb: [*x, *x]", "*x"),
        ("&a [*a]", "*a"),  # an alias inside its own anchor: endless before
    ],
)
def test_a_yaml_alias_is_refused_in_one_line(block: str, alias: str) -> None:
    assert problems(STEP + f"\n```yaml value\n{block}\n```\n") == [
        f"line 9: ```yaml value``` is not valid yaml: YAML aliases ({alias}) are not supported "
        "in workflows; write the value out"
    ]


def test_an_item_alias_is_refused_and_an_asterisk_elsewhere_is_text() -> None:
    assert problems(STEP + "- a: [&x 1, *x]\n") == [
        "line 8: '- a: [&x 1, *x]' is not valid YAML: YAML aliases (*x) are not supported in "
        "workflows; write the value out"
    ]
    # A one-line value is text, as pflow reads it: no anchor, no alias there.
    parsed = parse_markdown(STEP + "- sum: 2 * 3\n- b: *x\n- ok: 1\n")
    params = parsed.workflow["nodes"][0]["params"]
    assert params == {"sum": "2 * 3", "b": "*x", "ok": 1}


def test_invalid_yaml_reads_the_same_with_or_without_libyaml() -> None:
    (problem,) = problems(STEP + "- a: {b: c: d}\n")
    assert problem.startswith("line 8: '- a: {b: c: d}' is not valid YAML: ")


def test_a_one_line_value_is_read_as_pflow_reads_it() -> None:
    """Not as a YAML mapping: colons and ``#`` stay in the text; quotes, ``{}``/``[]``,
    null, YAML 1.1 booleans and plain numbers are values (pflow-cli 0.16's rules)."""
    text = STEP + (
        "- prompt: Review this for ${aspect}: ${summary}\n"
        "- note: keep # this\n"
        '- quoted: "a\\tb"\n'
        "- single: 'it''s'\n"
        "- flag: yes\n"
        "- off_flag: Off\n"
        "- none: ~\n"
        "- empty:\n"
        "- count: 012\n"
        "- ratio: .5\n"
        "- big: 1e5\n"
        "- items: [1, two]\n"
    )
    params = parse_markdown(text).workflow["nodes"][0]["params"]
    assert params == {
        "prompt": "Review this for ${aspect}: ${summary}",
        "note": "keep # this",
        "quoted": "a\tb",
        "single": "it's",
        "flag": True,
        "off_flag": False,
        "none": None,
        "empty": None,
        "count": 12,
        "ratio": 0.5,
        "big": "1e5",
        "items": [1, "two"],
    }
    (problem,) = problems(STEP + '- name: "unclosed\n')
    assert problem.startswith("line 8: ") and "never closed" in problem


def test_yaml_nested_past_the_recursion_limit_is_one_short_problem() -> None:
    depth = 20_000
    (problem,) = problems(STEP + "- v: " + "[" * depth + "]" * depth + "\n")
    assert problem.startswith("line 8: '- v: [[[") and problem.endswith("nested too deeply")
    assert len(problem) < 200


@pytest.mark.parametrize(
    ("line", "title"),
    [
        ("# Title", "Title"),
        ("#   Title   ##   ", "Title"),
        ("# a # #", "a #"),
        ("#\tTabbed", "Tabbed"),
        ("# " + " " * 50_000 + "x", "x"),  # a long run of spaces: backtracked for minutes
    ],
)
def test_a_heading_is_trimmed_as_before(line: str, title: str) -> None:
    from pflow_trace.ir.markdown import read_document

    assert read_document(line + "\n").title == title


def test_not_headings_stay_prose() -> None:
    from pflow_trace.ir.markdown import read_document

    doc = read_document("#NoSpace\n####### seven\n# T\n")
    assert doc.title == "T" and doc.prose == ["#NoSpace", "####### seven"]


def test_blank_lines_inside_an_item_are_kept_however_many() -> None:
    text = STEP + "- v: |\n    a\n" + "\n" * 5000 + "    b\n\n### t\nDoes it.\n- type: echo\n"
    value = parse_markdown(text).workflow["nodes"][0]["params"]["v"]
    assert value == "a\n" + "\n" * 5000 + "b"


def test_many_templates_in_one_value_come_back_in_place() -> None:
    value = " ".join(f"${{s{i}.v}}-{i}" for i in range(3000))
    params = parse_markdown(STEP + f'- v: "{value}"\n').workflow["nodes"][0]["params"]
    assert params["v"] == value


def test_a_byte_order_mark_before_the_title_is_no_problem(tmp_path: Path) -> None:
    path = tmp_path / "wf.pflow.md"
    path.write_bytes(b"\xef\xbb\xbf" + STEP.encode())
    assert load_and_validate(path)["nodes"][0]["id"] == "s"
    assert parse_markdown("\ufeff" + STEP).workflow["nodes"][0]["type"] == "echo"


def test_a_code_file_that_is_not_utf8_is_a_problem_on_its_line(tmp_path: Path) -> None:
    (tmp_path / "t.py").write_bytes(b"result = '\xff\xfe'\n")
    path = tmp_path / "wf.pflow.md"
    path.write_text("# T\n\n## Steps\n\n### s\nDoes it.\n- type: code\n- code: ./t.py\n")
    with pytest.raises(WorkflowValidationError) as info:
        load_and_validate(path)
    assert info.value.problems == ["line 8: ./t.py is not UTF-8 text"]


def test_markdown_and_validation_problems_are_reported_together(tmp_path: Path) -> None:
    path = tmp_path / "wf.pflow.md"
    path.write_text(
        "# T\n\n## Steps\n\n### s\nDoes it.\n- type: shell\n- comand: ls\n- bogus\n\n"
        "### t\nDoes it.\n- v: ${s.stdot}\n"
    )
    with pytest.raises(WorkflowValidationError) as info:
        load_and_validate(path)
    assert info.value.problems == [
        "line 5: nodes[0].params: shell needs the param 'command'",
        "line 8: nodes[0].params.comand: unknown param 'comand' for shell (did you mean "
        "'command'?)",
        "line 9: expected '- key: value', got '- bogus'",
        "line 11: step 't' has no '- type:'",  # not also "nodes[1].type: None is not ..."
        "line 13: nodes[1].params.v: ${s.stdot} reads 'stdot', which shell node 's' does not "
        "write (did you mean 'stdout'?)",
    ]


def test_a_literal_next_target_is_found_in_a_small_code_block_only() -> None:
    from pflow_trace.ir.markdown_entities import MAX_ROUTING_PARSE_CHARS, literal_next_targets

    assert literal_next_targets('if x:\n    next = "big"\nelse:\n    next: str = "small"\n') == [
        "big",
        "small",
    ]
    assert literal_next_targets("result = next(iter([1]))\n") == []
    padding = "x = 1\n" * (MAX_ROUTING_PARSE_CHARS // 6 + 1)
    assert literal_next_targets(padding + 'next = "big"\n') == []


def test_a_next_naming_no_step_lists_a_few_steps_or_the_closest() -> None:
    steps = "".join(f"### s{i}\nDoes it.\n- type: echo\n\n" for i in range(30))
    first = "### s0\nDoes it.\n"
    text = "# T\n\n## Steps\n\n" + steps.replace(first, first + "- next: zz\n", 1)
    (problem,) = problems(text)
    assert problem.startswith("line 7: '- next: zz' names no step (steps: s0, s1,")
    assert problem.endswith(", … (30 in all), or end)")
    (problem,) = problems(text.replace("- next: zz", "- next: s1x"))
    assert problem == "line 7: '- next: s1x' names no step (did you mean 's1'?)"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("list-io.json", '{"ir_version": "0.1.0", "inputs": ["a"], "outputs": ["x"], "nodes": []}'),
        ("alias.pflow.md", STEP + "\n```yaml value\n&a [*a]\n```\n"),
        ("nested.pflow.md", STEP + "- v: " + "${s.v[" * 3000 + "0" + "]}" * 3000 + "\n"),
    ],
)
def test_validate_reports_hostile_shapes_without_a_traceback(
    name: str, content: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    path.write_text(content)
    done = subprocess.run(
        [sys.executable, "-m", "pflow_trace", "validate", str(path)],
        capture_output=True,
        text=True,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert all(line.startswith(("  - ", str(path))) for line in done.stderr.splitlines())


def test_a_misspelt_batch_output_in_a_markdown_output_source_names_its_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wf.pflow.md"
    path.write_text(
        "# T\n\n## Steps\n\n### b\nDoes it.\n- type: echo\n- v: ${item}\n\n"
        "```yaml batch\nitems: [1, 2]\n"
        "```\n\n## Outputs\n\n### all\nDoes it.\n- source: ${b.reslts}\n"
    )
    with pytest.raises(WorkflowValidationError) as info:
        load_and_validate(path)
    assert info.value.problems == [
        "line 18: outputs.all: ${b.reslts} reads 'reslts', which batch node 'b' does not write "
        "(did you mean 'results'?)"
    ]


def test_a_prompt_file_keeps_its_trailing_newline_and_a_missing_file_is_a_problem(
    tmp_path: Path,
) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "ask.prompt.md").write_text("Say hi.\n\n")
    text = "# T\n\nProse.\n\n## Steps\n\n### s\n\nAsks.\n\n- type: llm\n"
    text += "- prompt: ./prompts/ask.prompt.md\n"
    parsed = parse_markdown(text, tmp_path / "wf.pflow.md")
    assert parsed.workflow["nodes"][0]["params"]["prompt"] == "Say hi.\n\n"
    with pytest.raises(WorkflowValidationError) as info:
        parse_markdown(text.replace("ask.prompt", "gone.prompt"), tmp_path / "wf.pflow.md")
    assert info.value.problems == ["line 12: cannot read ./prompts/gone.prompt.md: no such file"]


def test_an_entity_without_prose_is_refused_as_pflow_refuses_it() -> None:
    text = (
        "# T\n\n## Inputs\n\n### who\n\n- default: x\n\n## Steps\n\n### s\n\n- type: echo\n"
        "- v: ${who}\n\n## Outputs\n\n### o\n\n- source: ${s.v}\n"
    )
    assert problems(text) == [
        "line 5: input 'who' has no description: write a sentence under its heading",
        "line 11: step 's' has no description: write a sentence under its heading",
        "line 18: output 'o' has no description: write a sentence under its heading",
    ]
    described = text.replace("### who\n\n", "### who\n\nWho.\n").replace(
        "### s\n\n", "### s\n\nS.\n"
    )
    assert parse_markdown(described.replace("### o\n\n", "### o\n\nO.\n")).problems == []
