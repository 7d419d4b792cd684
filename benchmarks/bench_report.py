"""Benchmark: ``pflow-trace report`` on a 100,000-item trace against ``show --json`` on it.

The issue's budget: writing the HTML page may cost at most twice what ``show --json`` costs on
the same trace, and the page must stay under three times the trace's size. Both sides run in
this process on the same file, best of five interleaved rounds, so the ratio needs no absolute
numbers. "show --json" is read + summary + JSON text; "report" is read + summary + timeline +
comparison + the page text (both without writing a file, which would only add the same disk
time to each side).

When a Chromium and Playwright are installed (as the browser tests use them), the page is also
loaded in headless Chromium and the time to first contentful paint, to the first full
waterfall drawing and of one redraw are reported; otherwise those are ``null`` with the reason.

The trace comes from ``tests/trace_factory.py``: a parallel batch of 100,000 items (10,000
with ``--quick``), no span table (the smallest trace for its items, so the hard case for the
size ratio).

    python benchmarks/bench_report.py [--quick] [--browser/--no-browser]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import best_interleaved, trace_factory

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "report.json"
TARGET_TIME_RATIO = 2.0
TARGET_SIZE_RATIO = 3.0
FULL_ITEMS = 100_000
QUICK_ITEMS = 10_000
ROUNDS = 5


def _show_json(path: Path) -> str:
    from pflow_trace.report.stats import build_summary
    from pflow_trace.tracefile.readers import read_trace

    return build_summary([read_trace(path)]).to_json()


def _report(path: Path) -> str:
    from pflow_trace.report.html import render_report
    from pflow_trace.tracefile.readers import read_trace

    return render_report([read_trace(path)])


def _browser_timings(page_path: Path) -> dict[str, Any]:
    """Paint times of the page in headless Chromium, or why they could not be measured."""
    executable = os.environ.get("PFLOW_TRACE_CHROMIUM") or shutil.which("chromium")
    if executable is None:
        return {"skipped": "no Chromium found"}
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"skipped": "playwright not installed"}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route(
                "**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort()
            )
            page.goto(page_path.resolve().as_uri())
            page.wait_for_function("window.pflowReport !== undefined")
            return page.evaluate(
                """() => {
                    const paint = performance.getEntriesByName('first-contentful-paint')[0];
                    const drawn = performance.getEntriesByName('pflow-waterfall-drawn')[0];
                    const view = pflowReport.view(), started = performance.now();
                    for (let k = 0; k < 10; k++) pflowReport.setView(view[0], view[1] * 0.95);
                    return {first_contentful_paint_ms: paint ? Math.round(paint.startTime) : null,
                            waterfall_drawn_ms: Math.round(drawn.startTime),
                            redraw_ms: Math.round((performance.now() - started) / 10 * 10) / 10};
                }"""
            )
        finally:
            browser.close()


def run(quick: bool = False, browser: bool = True) -> dict[str, Any]:
    """Generate the trace, time both sides, size the page, optionally load it in Chromium."""
    factory = trace_factory()
    items = QUICK_ITEMS if quick else FULL_ITEMS
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        path = factory.write_trace(Path(tmp) / "large.json", factory.large_trace(items))
        page_text = _report(path)  # warm up, and the page whose size is reported
        _show_json(path)
        best = best_interleaved(
            ROUNDS, {"show_json": lambda: _show_json(path), "report": lambda: _report(path)}
        )
        trace_bytes = path.stat().st_size
        page_path = Path(tmp) / "report.html"
        page_path.write_text(page_text, encoding="utf-8")
        page_bytes = page_path.stat().st_size
        timings = _browser_timings(page_path) if browser else {"skipped": "--no-browser"}
    time_ratio = best["report"] / best["show_json"]
    size_ratio = page_bytes / trace_bytes
    return {
        "benchmark": "report",
        "items": items,
        "trace_bytes": trace_bytes,
        "report_bytes": page_bytes,
        "show_json_s": round(best["show_json"], 4),
        "report_s": round(best["report"], 4),
        "ratios": {"time": round(time_ratio, 3), "size": round(size_ratio, 3)},
        "browser": timings,
        "target": {"time": TARGET_TIME_RATIO, "size": TARGET_SIZE_RATIO},
        "met": time_ratio <= TARGET_TIME_RATIO and size_ratio <= TARGET_SIZE_RATIO,
        "python": platform.python_version(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ITEMS:,} items")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium timings")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    results = run(quick=args.quick, browser=not args.no_browser)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    ratios = results["ratios"]
    print(
        f"report on {results['items']:,} items ({results['trace_bytes'] / 1e6:.1f} MB trace): "
        f"show --json {results['show_json_s'] * 1000:.0f} ms, report "
        f"{results['report_s'] * 1000:.0f} ms, time ratio {ratios['time']:.2f}, page "
        f"{results['report_bytes'] / 1e6:.1f} MB = {ratios['size']:.2f} x the trace; "
        f"browser {results['browser']}; results in {args.output}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
