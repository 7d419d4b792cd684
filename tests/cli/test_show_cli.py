"""The ``show`` command: which files it reads, and the text it draws on and off a terminal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from pflow_samples import PFLOW_JSON_SAMPLE, PFLOW_JSONL_SAMPLE
from pflow_trace.cli.show import show
from pflow_trace.report.layout import fmt_time
from pflow_trace.report.stats import build_summary
from pflow_trace.report.terminal import render_text
from pflow_trace.text import format_duration_ms
from pflow_trace.tracefile.locate import default_trace_dir, resolve_trace_paths
from pflow_trace.tracefile.readers import read_trace
from subprocess_env import run_on_a_terminal
from trace_factory import (
    batch,
    continue_with_failures_trace,
    make_trace,
    parallel_trace,
    sequential_trace,
    write_trace,
)

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def invoke(*args: str) -> str:
    result = CliRunner().invoke(show, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_plain_text_when_piped(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "par.json", parallel_trace())
    text = invoke(str(path))
    assert not ANSI.search(text)
    assert "─" not in text  # no table borders either
    assert text.startswith("workflow parallel\n")
    for label in ("status", "started", "duration", "nodes", "trace id"):
        assert re.search(rf"^  {label} +\S", text, re.MULTILINE), label
    assert "2 run, 0 failed" in text
    assert read_trace(path).trace_id in text
    assert "batch work" in text and "parallelism" in text and "of max_concurrent 4" in text


def test_node_table_columns_are_aligned(tmp_path: Path) -> None:
    text = invoke(str(write_trace(tmp_path / "seq.json", sequential_trace())))
    lines = text.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("#  node"))
    rows = lines[lines.index(header) + 1 : lines.index(header) + 4]
    duration_end = header.index("duration") + len("duration")
    for row in rows:
        assert row[duration_end - 3 : duration_end] == " ms"  # right-aligned under its header
    assert "batch" in rows[1] and "batch" not in rows[0]


def test_top_controls_the_slowest_items(tmp_path: Path) -> None:
    path = str(write_trace(tmp_path / "par.json", parallel_trace()))
    assert "slowest 5:" in invoke(path)
    one = invoke(path, "--top", "1")
    assert "slowest 1:" in one
    section = [line for line in one.split("slowest 1:")[1].splitlines() if line.strip()]
    assert section[0].split()[0] == "index"
    assert len(section) == 2  # the header and one item: nothing follows the last batch
    assert "slowest " not in invoke(path, "--top", "0").split("batch work")[1]
    result = CliRunner().invoke(show, [path, "--top", "-1"])
    assert result.exit_code == 2


def test_errors_are_grouped_by_shape_with_an_example(tmp_path: Path) -> None:
    text = invoke(str(write_trace(tmp_path / "c.json", continue_with_failures_trace())))
    # Six "odd failure N" messages are one group: its shape, then one real message.
    assert re.search(r"^ +6 +10  odd failure <n>\n +e\.g\. odd failure 10$", text, re.MULTILINE)
    assert re.search(r"^ +3 +1  HTTP 503: service unavailable$", text, re.MULTILINE)
    assert "odd failure 11" not in text


def test_error_groups_beyond_five_are_counted_as_more(tmp_path: Path) -> None:
    kinds = ["timeout", "refused", "HTTP error", "bad JSON", "no such key", "disk full", "other"]
    failures = {index: f"{kind} (item {index})" for index, kind in enumerate(kinds)}
    trace = make_trace([batch("work", [1.0] * len(kinds), failures=failures)])
    text = invoke(str(write_trace(tmp_path / "more.json", trace)))
    assert "timeout (item <n>)" not in text  # one message per shape: shown as it is
    assert re.search(r"^ +1 +0  timeout \(item 0\)$", text, re.MULTILINE)
    assert "+2 more" in text


def test_metadata_only_trace_says_what_is_not_known() -> None:
    text = invoke(str(PFLOW_JSON_SAMPLE))
    assert "as reported in batch_metadata" in text
    assert "not known: per-item records: absent" in text
    assert "p50 -, p95 -" in text


def test_no_argument_reads_the_newest_trace(trace_dir: Path) -> None:
    older = write_trace(trace_dir / "workflow-trace-a.json", sequential_trace())
    newer = write_trace(trace_dir / "workflow-trace-b.json", parallel_trace())
    os.utime(older, (2_000_000_000, 2_000_000_000))
    os.utime(newer, (1_000_000_000, 1_000_000_000))
    assert invoke().startswith("workflow sequential")
    os.utime(newer, (3_000_000_000, 3_000_000_000))
    assert invoke().startswith("workflow parallel")


def test_trace_dir_option_wins_over_the_environment(tmp_path: Path, trace_dir: Path) -> None:
    write_trace(trace_dir / "env.json", sequential_trace())
    other = tmp_path / "other"
    write_trace(other / "opt.json", parallel_trace())
    assert invoke("--trace-dir", str(other)).startswith("workflow parallel")
    assert invoke().startswith("workflow sequential")


def test_default_trace_dir_order(tmp_path: Path) -> None:
    assert default_trace_dir(tmp_path / "x", {"PFLOW_TRACE_DIR": "/env"}) == tmp_path / "x"
    assert default_trace_dir(None, {"PFLOW_TRACE_DIR": "/env"}) == Path("/env")
    assert default_trace_dir(None, {}) == Path.home() / ".pflow-trace" / "traces"


def test_directory_expands_to_its_trace_files(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_trace(runs / "b.json", parallel_trace())
    write_trace(runs / "a.json", sequential_trace())
    (runs / "c.jsonl").write_bytes(PFLOW_JSONL_SAMPLE.read_bytes())
    (runs / "notes.txt").write_text("ignored", encoding="utf-8")
    (runs / "nested").mkdir()
    write_trace(runs / "nested" / "d.json", sequential_trace())
    paths = resolve_trace_paths([runs])
    assert [path.name for path in paths] == ["a.json", "b.json", "c.jsonl"]


def test_several_runs_show_a_list_and_the_aggregate(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed in (1, 2, 3):
        write_trace(runs / f"seq-{seed}.json", sequential_trace(seed=seed))
    write_trace(runs / "par.json", parallel_trace())
    text = invoke(str(runs))
    assert text.startswith("4 runs\n")
    assert "workflow sequential across runs" in text
    assert "workflow parallel across runs" in text
    assert re.search(r"^  runs +3 \(success 3\)$", text, re.MULTILINE)
    assert re.search(r"^  summarise +shell +3 +0\.0%", text, re.MULTILINE)
    assert "item p95" in text


def test_rich_rendering_for_a_terminal(tmp_path: Path) -> None:
    summary = build_summary([read_trace(write_trace(tmp_path / "p.json", parallel_trace()))])
    coloured = render_text(summary, terminal=True, color=True, width=120)
    assert ANSI.search(coloured)
    assert "─" in coloured  # a rich table rule
    plain_terminal = render_text(summary, terminal=True, color=False, width=120)
    assert not ANSI.search(plain_terminal) and "─" in plain_terminal
    # The same facts as the plain rendering.
    for fact in ("workflow parallel", "3.90x effective", "97.5% of max_concurrent 4"):
        assert fact in ANSI.sub("", coloured)
        assert fact in render_text(summary)


def test_colour_only_on_a_terminal_end_to_end(tmp_path: Path) -> None:
    path = str(write_trace(tmp_path / "c.json", continue_with_failures_trace()))
    on_terminal = run_on_a_terminal("show", path)
    assert ANSI.search(on_terminal) and "─" in on_terminal
    no_color = run_on_a_terminal("show", path, "--no-color")
    assert not ANSI.search(no_color) and "─" in no_color
    no_color_env = run_on_a_terminal("show", path, env={"NO_COLOR": "1"})
    assert not ANSI.search(no_color_env) and "─" in no_color_env
    piped = subprocess.run(
        [sys.executable, "-m", "pflow_trace", "show", path],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert not ANSI.search(piped) and "─" not in piped and "workflow continue" in piped


def test_formatting_helpers() -> None:
    assert format_duration_ms(None) == "-"
    assert format_duration_ms(0.526) == "0.53 ms"
    assert format_duration_ms(207.27) == "207.3 ms"
    assert format_duration_ms(1234.0) == "1.23 s"
    assert format_duration_ms(123_400.0) == "2m 03.4s"
    assert fmt_time("2026-11-21T20:53:24.346151+00:00") == "2026-11-21 20:53:24.346 UTC"
    assert fmt_time("2026-11-21T20:53:24.346151") == "2026-11-21 20:53:24.346"
    assert fmt_time("2026-11-21T20:53:24.346151+02:00") == "2026-11-21 20:53:24.346 +0200"
    assert fmt_time("yesterday") == "yesterday"
