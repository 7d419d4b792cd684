"""Unit tests for ``${...}`` templates: parsing, type keeping, interpolation, escapes, misses."""

from __future__ import annotations

from typing import Any

import pytest

from pflow_trace.errors import TemplateError
from pflow_trace.ir.templates import (
    Interpolation,
    Reference,
    TemplateSyntaxError,
    compile_value,
    has_templates,
    iter_references,
    json_list_or_value,
    parse_path,
    parse_string,
    resolve,
    resolve_param,
    to_text,
)
from pflow_trace.runtime.store import NamespacedStore

STORE: dict[str, Any] = {
    "name": "ada",
    "count": 3,
    "zero": 0,
    "empty": "",
    "flag": False,
    "nothing": None,
    "fetch": {
        "json": {"users": [{"name": "ada", "tags": ["x", "y"]}, {"name": "bob"}]},
        "status": 200,
        "headers": {"content-type": "application/json"},
    },
    "rows": [1, 2, 3],
}


def render(text: str, store: Any = STORE) -> Any:
    return resolve(compile_value(text), store)


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "path"),
    [
        ("name", ("name",)),
        ("node.key", ("node", "key")),
        ("node.key.sub[0].field", ("node", "key", "sub", 0, "field")),
        ("rows[2]", ("rows", 2)),
        ("m[0][1]", ("m", 0, 1)),
        ("fetch.headers.content-type", ("fetch", "headers", "content-type")),
        (" spaced.name ", ("spaced", "name")),
    ],
)
def test_parse_path(expression: str, path: tuple[Any, ...]) -> None:
    assert parse_path(expression) == path


@pytest.mark.parametrize(
    "expression", ["", "a.", ".a", "a..b", "[0]", "a[x]", "a[-1]", "1abc", "a b"]
)
def test_parse_path_rejects_malformed_paths(expression: str) -> None:
    with pytest.raises(TemplateSyntaxError, match="invalid template path"):
        parse_path(expression)


def test_plain_string_compiles_to_itself() -> None:
    assert parse_string("no templates here") == "no templates here"
    assert not has_templates(compile_value({"a": ["plain", 1, None]}))


def test_whole_value_template_compiles_to_a_reference() -> None:
    assert parse_string("${node.key}") == Reference("${node.key}", ("node", "key"))


def test_template_inside_text_compiles_to_an_interpolation() -> None:
    compiled = parse_string("hi ${name}!")
    assert isinstance(compiled, Interpolation)
    assert compiled.parts == ("hi ", Reference("${name}", ("name",)), "!")


def test_references_are_found_inside_nested_params() -> None:
    compiled = compile_value({"a": ["${x}", {"b": "pre ${y.z} ${w[0]}"}], "c": 5})
    assert [ref.text for ref in iter_references(compiled)] == ["${x}", "${y.z}", "${w[0]}"]


# --- resolving --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${count}", 3),
        ("${zero}", 0),
        ("${empty}", ""),
        ("${flag}", False),
        ("${nothing}", None),
        ("${rows}", [1, 2, 3]),
        ("${fetch.json.users[0]}", {"name": "ada", "tags": ["x", "y"]}),
        ("${fetch.json.users[0].tags[1]}", "y"),
        ("${fetch.headers.content-type}", "application/json"),
    ],
)
def test_a_param_that_is_exactly_one_template_keeps_the_value_type(
    template: str, expected: Any
) -> None:
    assert render(template) == expected
    assert type(render(template)) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("hello ${name}", "hello ada"),
        ("n=${count}", "n=3"),
        ("zero=${zero} empty=[${empty}]", "zero=0 empty=[]"),
        # As pflow-cli 0.16 renders them: Python's spelling of booleans, None as nothing.
        ("flag=${flag} none=${nothing}", "flag=False none="),
        ("rows=${rows}", "rows=[1, 2, 3]"),
        ("user=${fetch.json.users[1]}", 'user={"name": "bob"}'),
        ("${name}${count}", "ada3"),
        ("${name} ", "ada "),
    ],
)
def test_templates_inside_a_longer_string_interpolate(template: str, expected: str) -> None:
    assert render(template) == expected


def test_double_dollar_is_a_literal_dollar_brace() -> None:
    assert render("$${name}") == "${name}"
    assert render("cost: $${price} for ${name}") == "cost: ${price} for ada"
    assert render("shell: $${HOME:-/tmp}") == "shell: ${HOME:-/tmp}"
    assert not has_templates(compile_value("$${name}"))


def test_dicts_and_lists_in_params_resolve_element_by_element() -> None:
    params = {"inputs": {"n": "${count}", "who": ["${name}", "x ${zero}"]}, "fixed": 1.5}
    assert resolve(compile_value(params), STORE) == {
        "inputs": {"n": 3, "who": ["ada", "x 0"]},
        "fixed": 1.5,
    }


def test_resolution_reads_through_a_namespaced_store() -> None:
    root: dict[str, Any] = {"item": 7, "other": {"out": "x"}}
    view = NamespacedStore(root, {"own": "mine"})
    assert render("${item}/${other.out}/${own}", view) == "7/x/mine"


# --- misses -----------------------------------------------------------------------------------


def miss(template: str, param: str = "command") -> str:
    with pytest.raises(TemplateError) as info:
        resolve_param("report", param, compile_value(template), STORE)
    return info.value.message


def test_unresolved_template_names_node_param_template_and_closest_names() -> None:
    message = miss("echo ${nmae}")
    assert message.startswith("node 'report' param 'command': cannot resolve ${nmae}")
    assert "'nmae' not found" in message
    assert "closest: name" in message


def test_unresolved_nested_key_suggests_keys_at_the_level_where_the_walk_stopped() -> None:
    message = miss("${fetch.stauts}", param="url")
    assert "param 'url'" in message
    assert "${fetch.stauts}" in message
    assert "closest: status" in message


def test_unresolved_with_nothing_close_lists_what_is_available() -> None:
    message = miss("${fetch.qqqqqqqq}")
    assert "available: headers, json, status" in message


def test_index_out_of_range_is_a_miss_listing_the_indexes() -> None:
    message = miss("${rows[7]}")
    assert "'7' not found" in message
    assert "[0], [1], [2]" in message


def test_walking_into_a_scalar_is_a_miss() -> None:
    message = miss("${count.value}")
    assert "cannot resolve ${count.value}" in message
    assert "available: none" in message


def test_a_falsy_value_is_found_not_missed() -> None:
    for template in ("${zero}", "${empty}", "${flag}", "${nothing}"):
        resolve_param("n", "p", compile_value(template), STORE)


# --- pflow's additions: ``??``, computed indexes, paths into JSON text ------------------------


PFLOW_STORE: dict[str, Any] = {
    "a": {"stdout": '{"team": {"members": [{"name": "ada"}, {"name": "bob"}]}}', "n": 0},
    "names": ["x", "y", "z"],
    "__index__": 2,
    "row": {"idx": 1},
    "plain": {"stdout": "not json"},
}


@pytest.mark.parametrize(
    ("template", "value"),
    [
        ("${a.stdout.team.members[1].name}", "bob"),
        ("${names[${__index__}]}", "z"),
        ("${names[${row.idx}]}", "y"),
        ("${a.missing ?? 'none'}", "none"),
        ('${a.missing ?? "none"}', "none"),
        ("${a.missing ?? gone.x ?? a.n}", 0),  # a falsy value is a value
        ("${a.missing ?? []}", []),
        ("${a.n ?? 5}", 0),
        ("n=${a.missing ?? 7}", "n=7"),
        ('${a.stdout.team.lead ?? "no lead"}', "no lead"),
    ],
)
def test_pflow_template_forms(template: str, value: Any) -> None:
    assert render(template, PFLOW_STORE) == value


def test_a_fallback_that_never_resolves_names_the_last_operand() -> None:
    with pytest.raises(TemplateError, match="cannot resolve"):
        resolve_param("n", "p", compile_value("${a.x ?? b.y}"), PFLOW_STORE)


def test_text_that_is_not_json_cannot_be_walked_into() -> None:
    with pytest.raises(TemplateError, match="'field' not found"):
        resolve_param("n", "p", compile_value("${plain.stdout.field}"), PFLOW_STORE)


def test_every_operand_is_a_reference_for_validation() -> None:
    heads = [ref.head for ref in iter_references(compile_value("${a.x ?? b.y[${__index__}] ?? 0}"))]
    assert heads == ["a", "b", "__index__"]


@pytest.mark.parametrize("text", ["${'lit' ?? a}", "${a ?? 1 ?? b}", "${a ?? @}"])
def test_malformed_fallbacks_are_syntax_errors(text: str) -> None:
    with pytest.raises(TemplateSyntaxError):
        compile_value(text)


def test_templates_nested_past_the_limit_as_indexes_are_one_problem_not_a_crash() -> None:
    from pflow_trace.ir.templates import MAX_TEMPLATE_NESTING

    def nested(levels: int, fallback: str = "") -> str:
        return "${a.v[" * levels + "0" + "]}" * levels + fallback

    assert isinstance(parse_string(nested(MAX_TEMPLATE_NESTING + 1)), Reference)
    for text in (nested(5000), "${b ?? " + nested(5000)[2:]):
        with pytest.raises(TemplateSyntaxError, match="nested more than"):
            parse_string(text)


def test_a_fallback_literal_nested_past_the_recursion_limit_is_invalid_not_a_crash() -> None:
    depth = 200_000
    with pytest.raises(TemplateSyntaxError, match="invalid template"):
        parse_string("${a ?? " + "[" * depth + "]" * depth + "}")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "True"),
        (False, "False"),
        (None, ""),
        (0.0, "0"),
        (2.5, "2.5"),
        ({"a": [1]}, '{"a": [1]}'),
    ],
)
def test_values_inside_text_read_as_pflow_renders_them(value: Any, text: str) -> None:
    assert to_text(value) == text


@pytest.mark.parametrize(
    ("literal", "value"),
    [("true", True), ("false", False), ("null", None), ("42", 42), ('"x"', "x"), ("[]", [])],
)
def test_a_keyword_after_the_fallback_is_a_literal_not_a_name(literal: str, value: Any) -> None:
    store = {"a": {}, "true": 1, "false": 1, "null": 1}
    reference = parse_string("${a.b ?? " + literal + "}")
    assert resolve(reference, store) == value


def test_json_text_holding_an_array_is_a_list_of_items() -> None:
    assert json_list_or_value(' [1, {"a": 2}]\n') == [1, {"a": 2}]
    assert json_list_or_value('{"a": 1}') == '{"a": 1}'
    assert json_list_or_value("[not json") == "[not json"
