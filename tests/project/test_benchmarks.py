"""The benchmarks must keep working: ``benchmarks/run.py --quick`` runs them all at tiny sizes.

Nothing here judges a time: figures on a shared machine are for reports, not assertions.
What is checked is that every benchmark ran and reported the fields its target is about, each
a well-formed figure (a finite number; positive where a time or a ratio of times cannot be
anything else). Whether a figure meets its target is the benchmark's business.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def is_figure(value: object) -> bool:
    """A reported figure: a finite number (not a bool, not a string)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_positive_figure(value: object) -> bool:
    return is_figure(value) and value > 0  # type: ignore[operator]


@pytest.mark.slow
def test_every_benchmark_runs_quick_and_reports_its_figures(tmp_path: Path) -> None:
    output = tmp_path / "quick.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(output.read_text())
    assert report["quick"] is True
    by_name = {entry["benchmark"]: entry for entry in report["results"]}
    assert set(by_name) == {
        "per_item",
        "parallel",
        "show",
        "trace_file",
        "snapshots",
        "startup",
        "report",
        "executors",
        "checkpoint",
    }

    per_item = by_name["per_item"]
    assert set(per_item["per_item_us"]) == {
        "plain_loop",
        "runtime_untraced",
        "runtime_traced",
        "runtime_traced_otlp",
        "bare_sdk_spans",
    }
    assert all(is_positive_figure(us) for us in per_item["per_item_us"].values())
    assert is_positive_figure(per_item["ratios"]["traced_vs_untraced"])
    assert is_positive_figure(per_item["ratios"]["otlp_vs_untraced_plus_sdk"])
    assert per_item["export_warnings"] == []  # every span reached the loopback receiver

    for case in by_name["parallel"]["cases"]:
        # In-flight items are read from the trace's own timings and can never exceed the lanes.
        assert 0 < case["max_in_flight"] <= case["max_concurrent"]
        assert is_positive_figure(case["efficiency"])

    show = by_name["show"]
    assert show["items"] == 10_000
    for key in ("json_load_s", "show_s", "ratio", "target_ratio", "met"):
        assert key in show
    assert set(show["ratios"]) == {"time", "cpu", "memory"}
    assert all(is_positive_figure(value) for value in show["ratios"].values())

    assert is_positive_figure(by_name["trace_file"]["bytes_per_item_excluding_results"])
    assert by_name["startup"]["heavy_imports"] == {"--version": [], "show": []}
    page = by_name["report"]
    assert is_positive_figure(page["ratios"]["time"]) and is_positive_figure(page["ratios"]["size"])
    assert "skipped" in page["browser"] or is_figure(page["browser"]["waterfall_drawn_ms"])
    executors = by_name["executors"]
    for kind in ("cpu_bound", "trivial"):
        assert {(c["executor"], c["max_concurrent"]) for c in executors[kind]} == {
            ("threads", 2),
            ("processes", 2),
            ("dask", 2),
            ("dask", 8),
        }
        for case in executors[kind]:
            for figure in ("wall_ms", "speedup_vs_threads", "mean_item_ms"):
                assert is_positive_figure(case[figure]), (kind, case)
            assert is_figure(case["overhead_per_item_us"]), (kind, case)
    checkpoint = by_name["checkpoint"]
    assert set(checkpoint["per_item_us"]) == {"traced_no_checkpoint", "traced_with_checkpoint"}
    assert checkpoint["size"]["checkpoint_bytes"] > 0 and checkpoint["size"]["items"] > 0
    for entry in report["results"]:
        assert entry["benchmark"] in result.stdout


def run_benchmark(tmp_path: Path, script: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path)},
    )


@pytest.mark.slow
def test_the_peer_benchmark_reports_ours_alone_when_pflow_cli_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-pflow"
    result = run_benchmark(tmp_path, "bench_vs_pflow.py", "--quick", "--pflow", str(missing))
    assert result.returncode == 0, result.stderr
    assert f"is not available ({missing} does not exist); reporting pflow-trace alone" in (
        result.stderr
    )
    report = json.loads(result.stdout)
    assert report["pflow_cli"] is None and report["pflow_cli_problem"]
    assert set(report["tools"]) == {"pflow-trace"}
    assert report["tools"]["pflow-trace"]["marginal_us_per_item"] is not None


@pytest.mark.slow
def test_the_peer_benchmark_compares_two_tools_side_by_side(tmp_path: Path) -> None:
    """A stand-in ``pflow`` (our own CLI behind pflow's arguments) exercises the comparison."""
    stand_in = tmp_path / "pflow"
    stand_in.write_text(
        f"#!/bin/sh\n# pflow --no-cache WORKFLOW count=N\nshift\n"
        f'exec "{sys.executable}" -m pflow_trace run --quiet --no-trace-file "$@"\n'
    )
    stand_in.chmod(0o755)
    result = run_benchmark(tmp_path, "bench_vs_pflow.py", "--quick", "--pflow", str(stand_in))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["pflow_cli_problem"] is None
    assert set(report["tools"]) == {"pflow-trace", "pflow-cli"}
    for tool in report["tools"].values():
        assert (
            set(tool["wall_s"]) == set(tool["peak_rss_mib"]) == set(tool["cpu_s"]) == {"50", "250"}
        )
        assert all(rss > 0 for rss in tool["peak_rss_mib"].values())
        assert all(is_positive_figure(cpu) for cpu in tool["cpu_s"].values())
    assert report["target"] == {"marginal_cpu_per_item": 10}
    ratios = report["pflow_cli_over_pflow_trace"]
    assert set(ratios) >= {"marginal_per_item", "wall_250", "peak_memory_250"}
    assert is_positive_figure(ratios["wall_250"])


@pytest.mark.slow
def test_the_scale_benchmark_runs_show_and_its_baselines(tmp_path: Path) -> None:
    result = run_benchmark(tmp_path, "bench_scale.py", "--items", "300")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["items"] == 300 and is_figure(report["trace_mib"])
    for part in ("run", "run_without_trace_file", "show", "json_load"):
        assert is_positive_figure(report[part]["wall_s"]), part
        assert is_positive_figure(report[part]["peak_rss_mib"]), part
    assert set(report["ratios"]) == {
        "show_vs_json_load",
        "run_vs_no_trace_file_wall",
        "run_vs_no_trace_file_rss",
    }


@pytest.mark.parametrize(
    ("script", "arguments", "message"),
    [
        ("bench_scale.py", ["--items", "0"], "argument --items: 0 is less than 1"),
        ("bench_scale.py", ["--items", "many"], "argument --items: 'many' is not a whole number"),
        ("bench_vs_pflow.py", ["--repeats", "0"], "argument --repeats: 0 is less than 1"),
    ],
)
def test_a_bad_count_is_one_line_and_exit_2(
    tmp_path: Path, script: str, arguments: list[str], message: str
) -> None:
    result = run_benchmark(tmp_path, script, *arguments)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith(message)
    assert "Traceback" not in result.stderr


@pytest.fixture
def benchmarks_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))


@pytest.mark.parametrize(
    ("value", "digits", "expected"),
    [
        (0.004_321, 3, 0.004_32),
        (0.000_012_34, 3, 0.000_012_3),
        (1234.5678, 4, 1235.0),
        (2.17449, 3, 2.17),
        (-18.34, 3, -18.3),
        (0.0, 3, 0.0),
    ],
)
def test_benchmark_figures_keep_significant_figures(
    benchmarks_on_path: None, value: float, digits: int, expected: float
) -> None:
    from common import significant

    assert significant(value, digits) == pytest.approx(expected, rel=1e-12)


def test_a_tiny_executor_speedup_is_reported_not_rounded_to_zero(benchmarks_on_path: None) -> None:
    """A busy machine once made Dask 250 x slower than threads: "x0.0" said nothing."""
    from bench_executors import case_figures

    case = case_figures("dask", 2, 200, wall_ms=12_345.6, busy_ms=160.0, threads_ms=49.3)
    assert case["speedup_vs_threads"] == pytest.approx(0.003_99, rel=1e-9)
    assert case["wall_ms"] == 12_350.0
    assert case["mean_item_ms"] == 0.8
    assert case["overhead_per_item_us"] == pytest.approx(61_300.0)
