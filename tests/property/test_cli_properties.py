"""Whatever it is given, the command line answers with an exit code, never a traceback.

Generated workflows (valid and mutated), trace files (ours and pflow's, valid and corrupted) and
command-line inputs go through ``validate``, ``run``, ``show`` and ``export`` in process (click's
``CliRunner``: a subprocess per example would cost a second each). For every example:

* the exit code is 0, 1 or 2;
* nothing escapes as an exception, and no traceback is printed;
* where JSON was asked for (``--json``, ``--output-format json``, ``-o -``), stdout is one
  strict JSON document (no bare NaN);
* nothing a terminal would act on (an escape character) reaches the text output.

Memory is checked on the hostile files of ``test_hostile_memory.py``, in subprocesses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from generators import (
    DEPTHS,
    HOSTILE_TEXT,
    HOSTILE_VALUES,
    JSON_VALUES,
    deep,
    dumps,
    mutated_text,
    workflows,
)
from hypothesis import given
from hypothesis import strategies as st

from pflow_samples import PFLOW_JSON_SAMPLE, PFLOW_JSONL_SAMPLE
from pflow_trace.cli.main import cli
from trace_factory import batch, make_trace, plain

#: Hypothesis: a hundred examples per property, each through several CLI commands.
pytestmark = pytest.mark.slow

EXIT_CODES = {0, 1, 2}


def invoke(args: list[str]) -> Result:
    return CliRunner().invoke(cli, args, catch_exceptions=True)


def strict_json(text: str) -> Any:
    def reject(constant: str) -> Any:
        raise ValueError(f"bare {constant} in JSON output")

    return json.loads(text, parse_constant=reject)


def check(result: Result, *, json_out: bool = False, text_out: bool = False) -> None:
    """The properties every command keeps, whatever its input."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"escaped: {result.exception!r}") from result.exception
    assert result.exit_code in EXIT_CODES, (result.exit_code, result.output[-500:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    if json_out and result.stdout.strip():
        strict_json(result.stdout)
    if text_out:
        assert "\x1b" not in result.stdout, result.stdout
    if result.exit_code == 2:
        assert result.stderr.strip(), "exit 2 says why"


# -- workflows ---------------------------------------------------------------------------------


@given(workflow=workflows(), data=st.data())
def test_validate_and_run_any_workflow(
    workflow: dict[str, Any], data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("wf")
    path = folder / "wf.json"
    path.write_text(data.draw(mutated_text(workflow)), encoding="utf-8")
    check(invoke(["validate", str(path)]), text_out=True)
    trace = folder / "trace.json"
    common = ["run", str(path), "--exporter", "none", "--trace-file", str(trace)]
    result = invoke([*common, "--output-format", "json"])
    check(result, json_out=True)
    assert result.stdout.strip(), "run --output-format json always prints its object"
    document = strict_json(result.stdout)
    assert document["status"] in {"success", "degraded", "failed", "invalid"}
    if document["status"] != "invalid":  # the trace it wrote reads back, also as text
        check(invoke(["show", str(trace)]), text_out=True)
        check(invoke(["show", "--json", str(trace)]), json_out=True)
    check(invoke([*common, "--no-color"]), text_out=True)


@given(value=HOSTILE_VALUES, name=HOSTILE_TEXT)
def test_run_with_any_input_value(
    value: Any, name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("in")
    path = folder / "wf.json"
    workflow = {
        "ir_version": "0.1.0",
        "inputs": {"x": {"type": "array", "required": False}},
        "nodes": [{"id": "a", "type": "echo", "params": {"value": "${x}"}}],
    }
    path.write_text(json.dumps(workflow), encoding="utf-8")
    for assignment in (f"x={dumps(value)}", f"{name}=1", name):
        result = invoke(
            [
                "run",
                str(path),
                assignment,
                "--exporter",
                "none",
                "--no-trace-file",
                "--output-format",
                "json",
            ]
        )
        check(result, json_out=True)


@given(depth=DEPTHS, where=st.sampled_from(["params", "inputs", "root"]))
def test_deep_workflows_are_one_error(
    depth: int, where: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    nested = dumps(deep(depth))
    if where == "params":
        text = '{"ir_version":"0.1.0","nodes":[{"id":"a","type":"echo","params":{"v":%s}}]}'
    elif where == "inputs":
        text = (
            '{"ir_version":"0.1.0","inputs":{"x":{"default":%s}},'
            '"nodes":[{"id":"a","type":"echo","params":{"v":"${x}"}}]}'
        )
    else:
        text = "%s"
    path = tmp_path_factory.mktemp("deep") / "wf.json"
    path.write_text(text % nested, encoding="utf-8")
    result = invoke(["validate", str(path)])
    check(result)
    # The limit counts from the document's root: the params value sits 4 levels down.
    assert result.exit_code == (2 if depth > 95 or where == "root" else 0)


# -- trace files -------------------------------------------------------------------------------


@st.composite
def our_traces(draw: st.DrawFn) -> dict[str, Any]:
    """A trace of ours from the factory: plain and batch nodes, failures with hostile text."""
    specs: list[Any] = []
    for position in range(draw(st.integers(1, 3))):
        node_id = f"n{position}"
        if draw(st.booleans()):
            count = draw(st.integers(0, 6))
            failures = (
                {
                    index: draw(HOSTILE_TEXT) or "boom"
                    for index in draw(st.sets(st.integers(0, max(0, count - 1)), max_size=count))
                }
                if count
                else {}
            )
            specs.append(
                batch(
                    node_id,
                    [float(draw(st.integers(1, 50))) for _ in range(count)],
                    parallel=draw(st.booleans()),
                    max_concurrent=draw(st.integers(1, 4)),
                    failures=failures,
                )
            )
        else:
            failed = draw(st.booleans())
            specs.append(
                plain(
                    node_id, 5.0, success=not failed, error=draw(HOSTILE_TEXT) if failed else None
                )
            )
    return make_trace(specs, workflow_name=draw(HOSTILE_TEXT) or "w", seed=draw(st.integers(1, 9)))


TRACE_COMMANDS = [
    (["show"], "text"),
    (["show", "--json"], "json"),
    (["export", "--format", "chrome", "-o", "-"], "json"),
    (["export", "--format", "jaeger-json", "-o", "-"], "json"),
    (["export", "--format", "otlp-json", "-o", "-"], "json"),
]


def check_trace_commands(path: Path) -> None:
    for args, kind in TRACE_COMMANDS:
        result = invoke([*args[:1], str(path), *args[1:]])
        check(result, json_out=kind == "json" and result.exit_code == 0, text_out=kind == "text")


@given(trace=our_traces(), data=st.data())
def test_any_trace_of_ours(
    trace: dict[str, Any], data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("ours") / "trace.json"
    path.write_text(data.draw(mutated_text(trace)), encoding="utf-8")
    check_trace_commands(path)


@given(data=st.data())
def test_any_pflow_json_trace(
    data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    text = PFLOW_JSON_SAMPLE.read_text(encoding="utf-8")
    path = tmp_path_factory.mktemp("pflow") / "trace.json"
    path.write_text(data.draw(mutated_text(json.loads(text), text)), encoding="utf-8")
    check_trace_commands(path)


@given(data=st.data())
def test_any_pflow_jsonl_trace(
    data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    lines = PFLOW_JSONL_SAMPLE.read_text(encoding="utf-8").splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    lines[index] = data.draw(mutated_text(json.loads(lines[index]), lines[index]))
    path = tmp_path_factory.mktemp("pflowl") / "trace.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    check_trace_commands(path)


@given(value=JSON_VALUES)
def test_any_json_document_as_a_trace(value: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("any") / "trace.json"
    path.write_text(json.dumps(value), encoding="utf-8")
    check_trace_commands(path)


# -- command-line arguments --------------------------------------------------------------------

ARGUMENT_WORDS = st.sampled_from(
    [
        "--json",
        "--top",
        "-1",
        "0",
        "--to",
        "otlp",
        "--format",
        "chrome",
        "-o",
        "-",
        "--endpoint",
        "http://[::1",
        "http://127.0.0.1:9",
        "--protocol",
        "grpc",
        "--timeout",
        "0.01",
        "-q",
        "--output-format",
        "json",
        "--otlp-endpoint",
        "--no-color",
        "--trace-dir",
        "x=1",
        "NaN",
    ]
)


@given(
    command=st.sampled_from(["run", "validate", "show", "export"]),
    # A real command line cannot hold a NUL (argv entries are C strings).
    words=st.lists(
        st.one_of(ARGUMENT_WORDS, HOSTILE_TEXT.map(lambda w: w.replace("\x00", ""))), max_size=6
    ),
)
def test_any_arguments(
    command: str, words: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("args")
    workflow = folder / "wf.json"
    workflow.write_text(
        json.dumps({"ir_version": "0.1.0", "nodes": [{"id": "a", "type": "echo"}]}), "utf-8"
    )
    trace = folder / "t.json"
    trace.write_text(json.dumps(make_trace([plain("a", 1.0)])), "utf-8")
    target = str(workflow if command in ("run", "validate") else trace)
    if "--endpoint" in words or "--otlp-endpoint" in words or "otlp" in words:
        words = [word for word in words if word != "http://127.0.0.1:9"]  # no slow retries
    result = invoke(
        [command, target, *words, "--trace-dir", str(folder / "traces")]
        if command == "run"
        else [command, target, *words]
    )
    check(result)
