"""The benchmarks must keep working: ``benchmarks/run.py --quick`` runs them all at tiny sizes.

Nothing here looks at a time: figures on a shared machine are for reports, not assertions.
What is checked is that every benchmark ran and reported the fields its target is about.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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
    }

    per_item = by_name["per_item"]
    assert set(per_item["per_item_us"]) == {
        "plain_loop",
        "runtime_untraced",
        "runtime_traced",
        "runtime_traced_otlp",
        "bare_sdk_spans",
    }
    assert per_item["ratios"]["traced_vs_untraced"] > 0
    assert per_item["ratios"]["otlp_vs_untraced_plus_sdk"] > 0
    assert per_item["export_warnings"] == []  # every span reached the loopback receiver

    for case in by_name["parallel"]["cases"]:
        # In-flight items are read from the trace's own timings and can never exceed the lanes.
        assert 0 < case["max_in_flight"] <= case["max_concurrent"]
        assert case["efficiency"] > 0

    assert by_name["trace_file"]["bytes_per_item_excluding_results"] > 0
    assert by_name["startup"]["heavy_imports"] == {"--version": [], "show": []}
    page = by_name["report"]
    assert page["ratios"]["time"] > 0 and 0 < page["ratios"]["size"] < 3
    assert "skipped" in page["browser"] or page["browser"]["waterfall_drawn_ms"] > 0
    executors = by_name["executors"]
    for kind in ("cpu_bound", "trivial"):
        assert {(c["executor"], c["max_concurrent"]) for c in executors[kind]} == {
            ("threads", 2),
            ("processes", 2),
            ("dask", 2),
            ("dask", 8),
        }
        for case in executors[kind]:
            assert case["wall_ms"] > 0 and case["speedup_vs_threads"] > 0
    for entry in report["results"]:
        assert entry["benchmark"] in result.stdout
