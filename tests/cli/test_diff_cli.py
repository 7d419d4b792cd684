"""``pflow-trace diff`` and ``history`` end to end: every format, the gate's exit code, bad input,
and A/A pairs of real runs that must not fail the default gate."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result

from pflow_trace import api
from pflow_trace.api import TraceOptions
from pflow_trace.cli.main import cli
from pflow_trace.errors import EXIT_REGRESSION, EXIT_USAGE
from pflow_trace.observe.export_settings import resolve_export_settings
from trace_factory import DEFAULT_START, batch, make_trace, plain, write_trace

ITEMS = 120


def durations(seed: int, scale: float = 1.0, count: int = ITEMS) -> list[float]:
    rng = random.Random(seed)
    return [round((5 + rng.random() * 2) * scale, 3) for _ in range(count)]


def run_trace(
    path: Path,
    item_ms: list[float],
    *,
    seed: int,
    failures: dict[int, str] | None = None,
    minutes: int = 0,
) -> Path:
    document = make_trace(
        [plain("prepare", 3.0), batch("work", item_ms, failures=failures or {})],
        seed=seed,
        start=DEFAULT_START + timedelta(minutes=minutes),
    )
    return write_trace(path, document)


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(arg) for arg in args])


@pytest.fixture
def slower(tmp_path: Path) -> tuple[Path, Path]:
    base = run_trace(tmp_path / "base.json", durations(1), seed=1)
    new = run_trace(
        tmp_path / "new.json", durations(2, scale=1.3), seed=2, failures={9: "HTTP 503"}
    )
    return base, new


@pytest.fixture(scope="module")
def diff_schema() -> dict[str, Any]:
    text = resources.files("pflow_trace.report").joinpath("schemas/diff.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def test_text_names_the_slowdown_and_the_new_failure(slower: tuple[Path, Path]) -> None:
    result = invoke("diff", *slower)
    assert result.exit_code == 0, result.output
    assert "node work (shell, batch of 120 -> 120 items, items matched by value)" in result.stdout
    p95_row = next(line for line in result.stdout.splitlines() if "item p95" in line)
    assert p95_row.rstrip().endswith("slower")
    assert "newly failing (1): item-9 (HTTP 503)" in result.stdout
    assert "regression(s) found" in result.stdout


def test_fail_on_exits_3_with_one_line(slower: tuple[Path, Path]) -> None:
    result = invoke("diff", *slower, "--fail-on", "p95:+10%")
    assert result.exit_code == EXIT_REGRESSION == 3
    assert result.stderr == "error: regression gate: p95:+10% by work\n"
    assert "gate FAILED" in result.stdout and "crossed: p95:+10% by work" in result.stdout


def test_a_rule_above_the_change_passes(slower: tuple[Path, Path]) -> None:
    result = invoke("diff", *slower, "--fail-on", "node=work:p95:+50%,errors:+0")
    assert result.exit_code == 0, result.output
    assert "gate passed" in result.stdout


def test_json_validates_against_its_schema(
    slower: tuple[Path, Path], diff_schema: dict[str, Any]
) -> None:
    result = invoke("diff", *slower, "--format", "json", "--fail-on", "default")
    assert result.exit_code == EXIT_REGRESSION
    document = json.loads(result.stdout)
    jsonschema.Draft202012Validator(diff_schema).validate(document)
    assert document["schema"] == "pflow-trace/diff" and document["gate_failed"] is True
    assert document["rules"] == ["p95:+10%", "errors:+0", "cost:+5%"]
    work = document["nodes"][1]
    p95 = next(m for m in work["metrics"] if m["metric"] == "p95_ms")
    assert p95["verdict"] == "slower" and p95["regression"] is True
    assert work["newly_failing"][0]["key"] == "item-9"


def test_json_of_unequal_runs_validates_and_says_so(
    tmp_path: Path, diff_schema: dict[str, Any]
) -> None:
    base = run_trace(tmp_path / "b.json", durations(1), seed=1)
    new = write_trace(
        tmp_path / "n.json",
        make_trace(
            [batch("work", durations(2, count=80)), plain("extra", 1.0)],
            seed=2,
            workflow_name="other",
        ),
    )
    result = invoke("diff", base, new, "--format", "json")
    document = json.loads(result.stdout)
    jsonschema.Draft202012Validator(diff_schema).validate(document)
    assert document["same_workflow"] is False
    assert document["nodes"][1]["same_item_count"] is False
    assert len(document["warnings"]) == 4  # workflows, item counts, two one-sided nodes
    text = invoke("diff", base, new).stdout
    assert "warning: different workflows: base is demo, new is other" in text


def test_markdown_is_fit_for_a_pull_request(slower: tuple[Path, Path]) -> None:
    result = invoke("diff", *slower, "--format", "markdown", "--fail-on", "p95:+10%")
    assert result.exit_code == EXIT_REGRESSION
    text = result.stdout
    assert text.startswith("### ❌ pflow-trace diff: gate FAILED")
    assert "| metric | base | new | change | CI | p | verdict |" in text
    assert "- work item p95 slower:" in text
    assert "No change called: prepare." in text


def test_markdown_escapes_what_would_break_a_table(tmp_path: Path) -> None:
    base = run_trace(tmp_path / "b.json", durations(1), seed=1)
    new = run_trace(tmp_path / "n.json", durations(2), seed=2, failures={3: "a|b <script>"})
    text = invoke("diff", base, new, "--format", "markdown").stdout
    assert "item-3 (a\\|b \\<script\\>)" in text


def test_several_traces_per_side_and_directories(tmp_path: Path) -> None:
    for number in range(2):
        run_trace(tmp_path / "base" / f"r{number}.json", durations(number), seed=number)
        run_trace(tmp_path / "new" / f"r{number}.json", durations(5 + number, 1.4), seed=5 + number)
    by_dir = invoke("diff", tmp_path / "base", tmp_path / "new", "--format", "json")
    by_option = invoke(
        "diff",
        *("--base", tmp_path / "base" / "r0.json", "--base", tmp_path / "base" / "r1.json"),
        *("--new", tmp_path / "new" / "r0.json", "--new", tmp_path / "new" / "r1.json"),
        "--format",
        "json",
    )
    assert json.loads(by_dir.stdout)["base"]["runs"] == 2
    assert json.loads(by_dir.stdout)["nodes"] == json.loads(by_option.stdout)["nodes"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["only-one.json"], "diff takes BASE and NEW (got 1 path(s))"),
        (["--base", "b.json"], "one side is empty: give at least one --new trace"),
        (["b.json", "n.json", "--fail-on", "p95>10%"], "--fail-on 'p95>10%': not a rule"),
        (["b.json", "n.json", "--fail-on", "speed:+10%"], "unknown metric 'speed'"),
        (["b.json", "n.json", "--fail-on", "p95:+10%,"], "an empty rule"),
        (["b.json", "n.json", "--fail-on", "node=nope:p95:+1%"], "no node 'nope' in these runs"),
        (["b.json", "notes.txt"], "new: "),
        (["b.json", "empty"], "new: "),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    run_trace(tmp_path / "b.json", durations(1), seed=1)
    run_trace(tmp_path / "n.json", durations(2), seed=2)
    (tmp_path / "notes.txt").write_text("not a trace\n")
    (tmp_path / "empty").mkdir()
    result = invoke("diff", *args)
    assert result.exit_code == EXIT_USAGE, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert message in result.stderr
    assert "Traceback" not in result.output


# -- real runs -------------------------------------------------------------------------------------


def echo_batch(delay_ms: float, fail_value: int | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"value": "${item}", "delay_ms": delay_ms}
    if fail_value is not None:
        params["fail_if"] = fail_value
    return {
        "ir_version": "0.1.0",
        "name": "sleepy",
        "nodes": [
            {
                "id": "nap",
                "type": "echo",
                "params": params,
                "batch": {"items": list(range(30)), "error_handling": "continue"},
            }
        ],
    }


def real_run(directory: Path, name: str, workflow: dict[str, Any]) -> Path:
    options = TraceOptions(
        export=resolve_export_settings("none", env={}),
        trace_file=str(directory / f"{name}.json"),
        join_env_trace_context=False,
    )
    outcome = api.run(api.validate_workflow(workflow), {}, options)
    assert outcome.trace_path is not None
    return outcome.trace_path


def test_a_a_pairs_do_not_fail_the_default_gate(tmp_path: Path) -> None:
    """Two runs of one workflow on one machine: whatever the noise, no default rule trips."""
    for pair in range(3):
        base = real_run(tmp_path, f"a{pair}", echo_batch(10))
        new = real_run(tmp_path, f"b{pair}", echo_batch(10))
        result = invoke("diff", base, new, "--fail-on", "default")
        assert result.exit_code == 0, result.output


def test_a_real_newly_failing_item_is_named(tmp_path: Path) -> None:
    base = real_run(tmp_path, "before", echo_batch(0))
    new = real_run(tmp_path, "after", echo_batch(0, fail_value=7))
    result = invoke("diff", base, new)
    assert "newly failing (1): 7 (echo failed on demand for value 7)" in result.stdout


# -- history ---------------------------------------------------------------------------------------


def test_history_draws_trends_and_names_where_a_change_started(tmp_path: Path) -> None:
    for number in range(5):
        scale = 1.5 if number >= 3 else 1.0
        run_trace(
            tmp_path / f"run{number}.json", durations(number, scale), seed=number, minutes=number
        )
    result = invoke("history", "demo", "--trace-dir", tmp_path)
    assert result.exit_code == 0, result.output
    p95 = next(line for line in result.stdout.splitlines() if "item p95" in line)
    assert "▁▁▁██" in p95
    assert f"slower from run 4 ({tmp_path / 'run3.json'})" in p95
    document = json.loads(invoke("history", "--trace-dir", tmp_path, "--format", "json").stdout)
    work = next(node for node in document["nodes"] if node["node_id"] == "work")
    assert [step["run"] for step in work["steps"] if step["metric"] == "p95_ms"] == [3]


def test_history_of_an_unknown_workflow_is_one_line(tmp_path: Path) -> None:
    run_trace(tmp_path / "r0.json", durations(0), seed=0)
    run_trace(tmp_path / "r1.json", durations(1), seed=1, minutes=1)
    result = invoke("history", "nope", "--trace-dir", tmp_path)
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == "error: history: no runs of workflow 'nope' (found: demo)\n"
    single = tmp_path / "single"
    run_trace(single / "r0.json", durations(0), seed=0)
    lonely = invoke("history", "--trace-dir", single)
    assert lonely.exit_code == EXIT_USAGE and "a trend needs two or more" in lonely.stderr


def test_names_from_a_trace_cannot_act_on_the_terminal(tmp_path: Path) -> None:
    hostile = "evil\x1b]0;owned\x07\nforged line"
    base = write_trace(tmp_path / "b.json", make_trace([plain(hostile, 1.0)], seed=1))
    new = write_trace(tmp_path / "n.json", make_trace([plain(hostile, 1.0)], seed=2))
    shown = {
        "text": r"evil\e]0;owned\x07\nforged line",
        "markdown": r"evil\\e\]0;owned\\x07\\nforged line",  # markdown escapes \ and ]
    }
    for output_format, expected in shown.items():
        result = invoke("diff", base, new, "--format", output_format)
        assert "\x1b" not in result.stdout and "\x07" not in result.stdout
        assert "\nforged line" not in result.stdout
        assert expected in result.stdout
