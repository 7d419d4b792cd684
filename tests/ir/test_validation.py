"""Workflow validation: the JSON Schema, every semantic check, JSON paths, all problems at once."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from pflow_trace.errors import UsageError, WorkflowValidationError
from pflow_trace.ir.loading import load_and_validate
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.nodes.registry import NodeRegistry
from pflow_trace.text import json_path

VALID: dict[str, Any] = {
    "ir_version": "0.1.0",
    "name": "valid",
    "inputs": {"names": {"type": "array", "default": ["a", "b"]}},
    "nodes": [
        {
            "id": "greet",
            "type": "echo",
            "params": {"text": "hi ${item}"},
            "batch": {"items": "${names}", "parallel": True},
        },
        {
            "id": "count",
            "type": "code",
            "params": {"code": "result = len(r)", "inputs": {"r": "${greet.results}"}},
        },
    ],
    "outputs": {"total": "${count.result}"},
}


def problems_of(workflow: Any, registry: NodeRegistry | None = None) -> list[str]:
    with pytest.raises(WorkflowValidationError) as info:
        validate_workflow(workflow, "wf.json", registry)
    return info.value.problems


def workflow(*nodes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"ir_version": "0.1.0", "nodes": list(nodes), **extra}


def echo(node_id: str, **params: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "echo", "params": params}


def test_a_valid_workflow_is_returned_unchanged() -> None:
    original = copy.deepcopy(VALID)
    assert validate_workflow(VALID) is VALID
    assert original == VALID


def test_json_path_rendering_as_validation_problems_use_it() -> None:
    path = json_path(["nodes", 2, "batch", "max_concurrent"], root="")
    assert path == "nodes[2].batch.max_concurrent"
    assert json_path([], root="") == "(root)"
    assert json_path(["outputs", "x"], root="") == "outputs.x"


# --- the schema -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda w: w.update(ir_version="0.2"), 'ir_version: expected "0.1.0", got "0.2"'),
        (lambda w: w.update(nodes=[]), "nodes: [] should be non-empty"),
        (lambda w: w.update(bogus=1), "(root): unknown key 'bogus'"),
        (lambda w: w["nodes"][0].update(id="a b"), "nodes[0].id: 'a b' is not an identifier"),
        (lambda w: w["nodes"][0].pop("type"), "nodes[0]: 'type' is a required property"),
        (
            lambda w: w["nodes"][0].update(extra=1),
            "nodes[0]: unknown key 'extra'",
        ),
        (
            lambda w: w["nodes"][0]["batch"].update(max_concurrent=0),
            "nodes[0].batch.max_concurrent: 0 is less than the minimum of 1",
        ),
        (
            lambda w: w["nodes"][0]["batch"].update(max_concurrent=1001),
            "nodes[0].batch.max_concurrent: 1001 is greater than the maximum of 1000",
        ),
        (
            lambda w: w["nodes"][0]["batch"].update(max_retries=0),
            "nodes[0].batch.max_retries: 0 is less than the minimum of 1",
        ),
        (
            lambda w: w["nodes"][0]["batch"].update(retry_wait=-1),
            "nodes[0].batch.retry_wait: -1 is less than the minimum of 0",
        ),
        (
            lambda w: w["nodes"][0]["batch"].update(parallel="yes"),
            "nodes[0].batch.parallel: 'yes' is not of type 'boolean'",
        ),
        (
            lambda w: w["nodes"][0]["batch"].update(error_handling="stop"),
            "nodes[0].batch.error_handling: 'stop' is not one of ['fail_fast', 'continue']",
        ),
        (
            lambda w: w["nodes"][0]["batch"].update(items="names"),
            "nodes[0].batch.items: expected a single ${...} template or a JSON array",
        ),
        (
            lambda w: w["nodes"][0]["batch"].update(items="${names} and ${names}"),
            "nodes[0].batch.items: expected a single ${...} template or a JSON array",
        ),
        (
            lambda w: w["nodes"][0]["batch"].update({"as": "my-item"}),
            "nodes[0].batch.as: 'my-item' is not an identifier (letters, digits and _)",
        ),
        (
            lambda w: w["nodes"][0]["batch"].pop("items"),
            "nodes[0].batch: 'items' is a required property",
        ),
        (
            lambda w: w["inputs"]["names"].update(type="list"),
            "inputs.names.type: 'list' is not one of",
        ),
        (
            lambda w: w["inputs"].update({"1bad": {}}),
            "inputs: input name '1bad' is not an identifier",
        ),
        (
            lambda w: w.update(edges=[{"from": "greet"}]),
            "edges[0]: 'to' is a required property",
        ),
        (
            lambda w: w["outputs"].update(total="count.result"),
            "outputs.total: expected a ${node.key} template, got 'count.result'",
        ),
    ],
)
def test_schema_problems_name_the_json_path_and_what_was_expected(
    change: Any, expected: str
) -> None:
    broken = copy.deepcopy(VALID)
    change(broken)
    problems = problems_of(broken)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_a_workflow_that_is_not_an_object_is_one_problem() -> None:
    assert problems_of([]) == ["(root): [] is not of type 'object'"]


def test_literal_array_items_are_accepted() -> None:
    validate_workflow(workflow({**echo("e", v="${item}"), "batch": {"items": [0, "", None]}}))


# --- the semantic checks ----------------------------------------------------------------------


def test_duplicate_ids() -> None:
    assert problems_of(workflow(echo("a"), echo("b"), echo("a"))) == [
        "nodes[2].id: duplicate id 'a' (first at nodes[0])"
    ]


def test_unknown_node_type_suggests_the_closest() -> None:
    problems = problems_of(workflow({"id": "a", "type": "ech"}))
    assert problems == ["nodes[0].type: unknown node type 'ech' (did you mean echo?)"]


def test_unknown_node_type_with_nothing_close_lists_known_types() -> None:
    (problem,) = problems_of(workflow({"id": "a", "type": "zzzzzz"}))
    assert problem.startswith("nodes[0].type: unknown node type 'zzzzzz' (known: ")
    assert "shell" in problem and "write-file" in problem


def test_node_types_come_from_the_registry_given() -> None:
    registry = NodeRegistry(types={})
    assert problems_of(workflow(echo("a")), registry)[0].startswith(
        "nodes[0].type: unknown node type 'echo'"
    )


def test_edges_to_and_from_unknown_nodes() -> None:
    problems = problems_of(
        workflow(
            echo("first"),
            echo("second"),
            edges=[
                {"from": "first", "to": "secnd"},
                {"from": "frist", "to": "second"},
            ],
        )
    )
    assert problems == [
        "edges[0].to: unknown node 'secnd' (did you mean 'second'?)",
        "edges[1].from: unknown node 'frist' (did you mean 'first'?)",
    ]


def test_two_edges_with_the_same_from_and_action() -> None:
    problems = problems_of(
        workflow(
            echo("a"),
            echo("b"),
            echo("c"),
            edges=[
                {"from": "a", "to": "b"},
                {"from": "a", "to": "c", "action": "default"},
                {"from": "a", "to": "c", "action": "retry"},
                {"from": "b", "to": "c", "action": "retry"},
                {"from": "a", "to": "b", "action": "retry"},
            ],
        )
    )
    assert problems == [
        "edges[1]: a second edge from 'a' for action 'default' (first at edges[0])",
        "edges[4]: a second edge from 'a' for action 'retry' (first at edges[2])",
    ]


def test_template_reading_a_later_node_in_list_order() -> None:
    problems = problems_of(workflow(echo("a", v="${b.value}"), echo("b", value=1)))
    assert problems == [
        "nodes[0].params.v: ${b.value} reads 'b', a node that cannot have run before it"
    ]


def test_template_reading_the_node_itself() -> None:
    assert problems_of(workflow(echo("a", v="${a.v}"))) == [
        "nodes[0].params.v: ${a.v} reads 'a', itself"
    ]


def test_with_edges_what_ran_before_follows_the_edges_not_the_list() -> None:
    # Listed b first, but the edges run a then b: b may read a, a may not read b.
    nodes = [echo("a", v="${b.v}"), echo("b", v="${a.v}")]
    nodes_reordered = [{**nodes[0], "params": {"v": 1}}, nodes[1]]
    validate_workflow(workflow(*nodes_reordered, edges=[{"from": "a", "to": "b"}]))
    problems = problems_of(workflow(*nodes, edges=[{"from": "a", "to": "b"}]))
    assert problems == [
        "nodes[0].params.v: ${b.v} reads 'b', a node that cannot have run before it"
    ]


def test_with_edges_a_loop_lets_nodes_read_each_other() -> None:
    validate_workflow(
        workflow(
            echo("a", v="${b.v}"),
            echo("b", v="${a.v}", __action__="again"),
            edges=[{"from": "a", "to": "b"}, {"from": "b", "to": "a", "action": "again"}],
        )
    )


def test_template_naming_something_unknown_suggests_the_closest_visible_name() -> None:
    problems = problems_of(
        workflow(echo("fetch", v=1), echo("use", v="${fecth.v}", w="${nothing_like}"))
    )
    assert problems == [
        "nodes[1].params.v: ${fecth.v} names unknown 'fecth' (closest: fetch)",
        "nodes[1].params.w: ${nothing_like} names unknown 'nothing_like'",
    ]


def test_templates_nested_in_params_are_checked_with_their_paths() -> None:
    node = {"id": "c", "type": "code", "params": {"code": "x", "inputs": {"a": ["${missing}"]}}}
    assert problems_of(workflow(node)) == [
        "nodes[0].params.inputs: ${missing} names unknown 'missing'"
    ]


def test_malformed_template_is_a_problem() -> None:
    assert problems_of(workflow(echo("a", v="${a..b}"))) == [
        "nodes[0].params.v: invalid template path '${a..b}'"
    ]


def test_escaped_template_and_root_keys_are_not_checked() -> None:
    validate_workflow(workflow(echo("a", v="$${HOME}", w="${__run_id__}")))


def test_inputs_are_visible_everywhere() -> None:
    validate_workflow(
        workflow(echo("a", v="${who}"), inputs={"who": {"type": "string", "default": "x"}})
    )


def test_batch_alias_is_visible_only_in_params_not_in_items() -> None:
    validate_workflow(workflow({**echo("a", v="${row}"), "batch": {"items": [1], "as": "row"}}))
    problems = problems_of(workflow({**echo("a", v="${item}"), "batch": {"items": "${item}"}}))
    assert problems == ["nodes[0].batch.items: ${item} names unknown 'item'"]


def test_item_outside_a_batch_is_unknown() -> None:
    assert problems_of(workflow(echo("a", v="${item}"))) == [
        "nodes[0].params.v: ${item} names unknown 'item'"
    ]


def test_batch_items_reading_a_later_node() -> None:
    problems = problems_of(
        workflow({**echo("a", v="${item}"), "batch": {"items": "${b.list}"}}, echo("b", list=[]))
    )
    assert problems == [
        "nodes[0].batch.items: ${b.list} reads 'b', a node that cannot have run before it"
    ]


def test_batch_alias_shadowing_a_node_or_an_input() -> None:
    problems = problems_of(
        workflow(
            echo("rows", v=[1]),
            {**echo("a", v="${rows}"), "batch": {"items": "${rows.v}", "as": "rows"}},
            {**echo("b", v="${limit}"), "batch": {"items": [1], "as": "limit"}},
            {**echo("c", v="${item}"), "batch": {"items": [1]}},
            inputs={"limit": {"type": "number", "default": 1}},
        )
    )
    assert problems == [
        "nodes[1].batch.as: alias 'rows' shadows node 'rows'",
        "nodes[2].batch.as: alias 'limit' shadows input 'limit'",
    ]


def test_default_alias_item_shadowing_a_node() -> None:
    problems = problems_of(
        workflow(echo("item", v=1), {**echo("a", v="${item}"), "batch": {"items": [1]}})
    )
    assert problems == ["nodes[1].batch.as: alias 'item' shadows node 'item'"]


def test_a_node_named_like_an_input() -> None:
    problems = problems_of(workflow(echo("limit"), inputs={"limit": {"default": 1}}))
    assert problems == [
        "nodes[0].id: 'limit' is also the name of an input",
        # ``${limit}`` would read the node, so nothing can read the input.
        "inputs.limit: input 'limit' is declared but no template reads it",
    ]


def test_outputs_may_name_any_node_or_input_but_nothing_else() -> None:
    problems = problems_of(
        workflow(
            echo("a", v=1),
            inputs={"n": {"default": 1}},
            outputs={"ok": "${a.v}", "also": "${n}", "bad": "${b.v}"},
        )
    )
    assert problems == ["outputs.bad: ${b.v} names unknown 'b'"]


# --- everything at once -----------------------------------------------------------------------


def test_all_problems_are_reported_together_schema_and_semantic() -> None:
    broken = workflow(
        {"id": "a", "type": "ech"},
        echo("a"),
        {**echo("b", v="${c.x}"), "batch": {"items": "${a.list}", "max_concurrent": 0}},
        echo("c"),
        edges=[{"from": "a", "to": "zzz"}],
    )
    with pytest.raises(WorkflowValidationError) as info:
        validate_workflow(broken, "broken.json")
    error = info.value
    assert error.problems == [
        "nodes[2].batch.max_concurrent: 0 is less than the minimum of 1",
        "nodes[0].type: unknown node type 'ech' (did you mean echo?)",
        "nodes[1].id: duplicate id 'a' (first at nodes[0])",
        "edges[0].to: unknown node 'zzz'",
        "nodes[2].params.v: ${c.x} reads 'c', a node that cannot have run before it",
        # With edges, only what the edges connect can run before: nothing leads to b.
        "nodes[2].batch.items: ${a.list} reads 'a', a node that cannot have run before it",
    ]
    assert error.source == "broken.json"
    assert error.message.startswith(
        "broken.json: 6 problems:\n  - nodes[2].batch.max_concurrent: 0 is less than"
    )
    assert error.message.count("\n  - ") == 6  # one problem per line
    assert error.exit_code == 2


def test_one_problem_is_singular_in_the_message() -> None:
    with pytest.raises(WorkflowValidationError, match=r"^wf\.json: 1 problem:\n  - "):
        validate_workflow(workflow(echo("a", v="${a.v}")), "wf.json")


# --- files ------------------------------------------------------------------------------------


def test_load_and_validate_reads_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(VALID))
    assert load_and_validate(path) == VALID


def test_bad_json_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "ir_version": "0.1.0",\n  "nodes": [,]\n}')
    with pytest.raises(WorkflowValidationError) as info:
        load_and_validate(path)
    (problem,) = info.value.problems
    assert problem.startswith("not valid JSON: Expecting value (line 3, column")
    assert info.value.message.startswith(f"{path}: 1 problem:\n  - not valid JSON")


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(UsageError, match="no such workflow file") as info:
        load_and_validate(path)
    assert str(path) in info.value.message
    assert info.value.exit_code == 2


def test_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a directory"):
        load_and_validate(tmp_path)


def test_a_file_with_schema_problems_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "wf.json"
    path.write_text(
        json.dumps(
            {
                "ir_version": "0.1.0",
                "nodes": [
                    {"id": "a", "type": "echo", "batch": {"items": [1], "max_concurrent": 5000}}
                ],
            }
        )
    )
    with pytest.raises(WorkflowValidationError) as info:
        load_and_validate(path)
    assert info.value.message == (
        f"{path}: 1 problem:\n  - nodes[0].batch.max_concurrent: 5000 is greater than the maximum "
        "of 1000"
    )


# --- the keys a node writes, where they are fixed ---------------------------------------------


def shell(node_id: str, command: str = "true") -> dict[str, Any]:
    return {"id": node_id, "type": "shell", "params": {"command": command}}


def test_a_misspelt_output_of_a_shell_node_is_named_with_the_key_meant() -> None:
    wf = workflow(shell("s"), echo("e", v="${s.stdot}"))
    assert problems_of(wf) == [
        "nodes[1].params.v: ${s.stdot} reads 'stdot', which shell node 's' does not write "
        "(did you mean 'stdout'?)"
    ]


def test_a_misspelt_output_of_a_batch_node_is_named_whatever_its_type() -> None:
    batch = {**echo("b", v="${item}"), "batch": {"items": [1, 2]}}
    wf = workflow(batch, echo("e", v="${b.reslts}"), outputs={"n": "${b.count}"})
    assert problems_of(wf) == [
        "nodes[1].params.v: ${b.reslts} reads 'reslts', which batch node 'b' does not write "
        "(did you mean 'results'?)"
    ]


def test_a_misspelt_output_in_the_workflows_outputs_and_in_a_fallback_is_found() -> None:
    wf = workflow(
        {"id": "r", "type": "read-file", "params": {"file_path": "x"}},
        echo("e", v='${r.content ?? r.contnt ?? "none"}'),
        outputs={"text": "${r.contents}"},
    )
    assert problems_of(wf) == [
        "nodes[1].params.v: ${r.content ?? r.contnt ?? \"none\"} reads 'contnt', which "
        "read-file node 'r' does not write (did you mean 'content'?)",
        "outputs.text: ${r.contents} reads 'contents', which read-file node 'r' does not write "
        "(did you mean 'content'?)",
    ]


def test_a_key_nothing_like_any_output_lists_what_the_node_writes() -> None:
    wf = workflow({"id": "w", "type": "write-file", "params": {"file_path": "x", "content": 1}})
    wf["outputs"] = {"o": "${w.zzz}"}
    assert problems_of(wf) == [
        "outputs.o: ${w.zzz} reads 'zzz', which write-file node 'w' does not write "
        "(it writes written)"
    ]


def test_every_documented_output_and_open_ended_nodes_raise_no_false_alarm() -> None:
    reads = {
        "s": "${s.stdout}${s.stderr}${s.exit_code}${s.command}${s.stdout_is_binary}",
        "c": "${c.result.anything[0]}${c.stdout}${c.stderr}",
        "h": "${h.response.x}${h.status_code}${h.response_headers}${h.response_time}${h.error}",
        "l": "${l.response.field}${l.llm_usage}${l.prompt}${l.system}",
        "e": "${e.whatever_it_was_given}${e[0]}",
    }
    wf = workflow(
        shell("s"),
        {"id": "c", "type": "code", "params": {"code": "result = 1"}},
        {"id": "h", "type": "http", "params": {"url": "http://127.0.0.1:1"}},
        {"id": "l", "type": "llm", "params": {"prompt": "hi"}},
        echo("e", anything=1),
        echo("last", **reads),
        outputs={"any": "${e.other}", "keys": "${s.stdout}"},
    )
    assert validate_workflow(wf) is wf


def test_a_node_type_that_declares_no_outputs_is_not_checked() -> None:
    from pflow_trace.nodes.echo import EchoNode

    class Custom(EchoNode):
        type_name = "custom"

    registry = NodeRegistry()
    registry.register("custom", Custom)
    wf = workflow({"id": "x", "type": "custom", "params": {}}, echo("e", v="${x.anything}"))
    assert validate_workflow(wf, "wf.json", registry) is wf


# --- shapes the schema refuses never crash the later checks -------------------------------------


@pytest.mark.parametrize("field", ["inputs", "outputs"])
@pytest.mark.parametrize("shape", [["a"], "a", 3, None, True])
def test_inputs_or_outputs_of_the_wrong_shape_are_one_problem_each(field: str, shape: Any) -> None:
    wf = workflow(echo("a1", v=1), **{field: shape})
    assert [p for p in problems_of(wf) if p.startswith(field)] == [
        f"{field}: {shape!r} is not of type 'object'"
    ]


@pytest.mark.parametrize("field", ["nodes", "edges"])
@pytest.mark.parametrize("shape", [5, "ab", {"a": 1}, True])
def test_nodes_or_edges_of_the_wrong_shape_are_problems_not_crashes(field: str, shape: Any) -> None:
    wf = workflow(echo("a1", v=1))
    wf[field] = shape
    assert any(p.startswith(f"{field}:") for p in problems_of(wf))


def test_a_byte_order_mark_before_a_json_workflow_is_no_problem(tmp_path: Path) -> None:
    path = tmp_path / "wf.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(workflow(echo("a", v=1))).encode())
    assert load_and_validate(path)["nodes"][0]["id"] == "a"


# --- big workflows: the order check answers one question at a time ---------------------------


def test_a_long_chain_of_edges_reading_earlier_nodes_is_valid_and_a_late_read_is_not() -> None:
    count = 3000
    nodes = [echo(f"n{i}", v=f"${{n{max(i - 1, 0)}.v}}" if i else 1) for i in range(count)]
    nodes[5]["params"]["late"] = f"${{n{count - 1}.v}}"
    edges = [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(count - 1)]
    assert problems_of(workflow(*nodes, edges=edges)) == [
        f"nodes[5].params.late: ${{n{count - 1}.v}} reads 'n{count - 1}', "
        "a node that cannot have run before it"
    ]


def test_spelling_hints_stop_after_a_budget_but_every_problem_is_reported() -> None:
    from pflow_trace.ir.validation import MAX_SPELLING_HINTS

    count = MAX_SPELLING_HINTS + 20
    nodes = [echo("fetch", v=1)] + [echo(f"e{i}", v="${fecth.v}") for i in range(count)]
    found = problems_of(workflow(*nodes))
    assert len(found) == count
    assert found[0].endswith("names unknown 'fecth' (closest: fetch)")
    assert found[-1].endswith("names unknown 'fecth'")


def test_an_input_no_template_reads_is_refused_as_pflow_refuses_it() -> None:
    read_everywhere = workflow(
        echo("a", v="${in_param}", deep={"x": ["${in_list[0]}"]}),
        inputs={name: {"default": 1} for name in ("in_param", "in_list", "in_out", "unread")},
        outputs={"o": "n=${a.v ?? in_out}"},
    )
    assert problems_of(read_everywhere) == [
        "inputs.unread: input 'unread' is declared but no template reads it"
    ]


def test_batch_key_sees_the_alias_and_must_be_a_template() -> None:
    validate_workflow(
        workflow({**echo("a", v="${row}"), "batch": {"items": [{"id": 1}], "as": "row",
                                                     "key": "${row.id}-${__index__}"}})
    )  # fmt: skip
    expect = "nodes[0].batch.key: expected a template naming each item, such as ${item.id}, got "
    for key, expected in [
        (3, expect + "3"),
        ("id", expect + "'id'"),
        ("${itme.id}", "nodes[0].batch.key: ${itme.id} names unknown 'itme' (closest: item)"),
    ]:
        assert problems_of(
            workflow({**echo("a", v="${item}"), "batch": {"items": [1], "key": key}})
        ) == [expected]


def test_batch_key_is_read_from_a_markdown_batch_block(tmp_path: Path) -> None:
    path = tmp_path / "wf.pflow.md"
    path.write_text(
        "# T\n\nKeys.\n\n## Steps\n\n### b\n\nDoes it.\n\n- type: echo\n- v: ${item.id}\n\n"
        '```yaml batch\nitems: [{"id": "a"}]\nkey: ${item.id}\n```\n',
        encoding="utf-8",
    )
    assert load_and_validate(path)["nodes"][0]["batch"]["key"] == "${item.id}"
