"""The HTML report in a real browser: headless Chromium from the system, driven over CDP.

Playwright drives the system's ``chromium`` (``executable_path``); no browser is downloaded.
Every request the page makes is intercepted: the file itself is served, anything else is
recorded and refused, and a test fails if there was any. Console errors and uncaught
exceptions fail a test too. Without Chromium or Playwright these tests skip with one line.

``PFLOW_TRACE_README_SCREENSHOT=docs/report-screenshot.png`` makes the demo test also save
its screenshot there (that is how the README's picture is made).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import pflow_trace
import trace_factory as tf
from pflow_trace.observe.export_settings import resolve_export_settings
from pflow_trace.report.html import render_report
from pflow_trace.tracefile.readers import read_trace, read_trace_text

#: Pages in headless Chromium, one of them with 100,000 items.
pytestmark = pytest.mark.slow

SCREENSHOT_ENV = "PFLOW_TRACE_README_SCREENSHOT"
CHROMIUM_ENV = "PFLOW_TRACE_CHROMIUM"
ROOT = Path(__file__).resolve().parents[2]
JAEGER = "http://localhost:16686"
#: The page's status colours (report.css), as RGB.
RGB = {"ok": (0x3F, 0x9B, 0x5A), "failed": (0xD1, 0x45, 0x3B), "retried": (0xD9, 0xA4, 0x00)}


def _chromium() -> str | None:
    from_env = os.environ.get(CHROMIUM_ENV)
    if from_env:
        return from_env
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium found (install Debian's chromium or set PFLOW_TRACE_CHROMIUM)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright not installed (pip install -e '.[test]')"
    )
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@dataclass
class LoadedPage:
    page: Any
    url: str
    console_errors: list[str] = field(default_factory=list)
    other_requests: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.console_errors == []
        assert self.other_requests == []

    def dataset(self) -> dict[str, str]:
        return self.page.evaluate("({...document.getElementById('waterfall').dataset})")


def open_page(browser: Any, html_path: Path, width: int = 1280) -> LoadedPage:
    """Load the page with every request intercepted and every console error recorded."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    loaded = LoadedPage(page, html_path.resolve().as_uri())

    def route(request_route: Any) -> None:
        if request_route.request.url == loaded.url:
            request_route.continue_()
        else:
            loaded.other_requests.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and loaded.console_errors.append(m.text))
    page.on("pageerror", lambda error: loaded.console_errors.append(f"uncaught: {error}"))
    page.goto(loaded.url)
    page.wait_for_function("window.pflowReport !== undefined")
    return loaded


def write_report(tmp_path: Path, traces: list[dict[str, Any]], **options: Any) -> Path:
    runs = [
        read_trace(tf.write_trace(tmp_path / f"trace-{n}.json", trace))
        for n, trace in enumerate(traces)
    ]
    path = tmp_path / "report.html"
    path.write_text(render_report(runs, **options), encoding="utf-8")
    return path


def pixel(loaded: LoadedPage, box: dict[str, float]) -> tuple[int, int, int]:
    """The colour drawn at the centre of ``box`` (page coordinates), read from the canvas."""
    script = """([x, y]) => {
        const canvas = document.getElementById('waterfall');
        const rect = canvas.getBoundingClientRect(), ratio = canvas.width / rect.width;
        const data = canvas.getContext('2d').getImageData(
            Math.floor((x - rect.left) * ratio), Math.floor((y - rect.top) * ratio), 1, 1).data;
        return [data[0], data[1], data[2]];
    }"""
    centre = [box["x"] + box["w"] / 2, box["y"] + box["h"] / 2]
    return tuple(loaded.page.evaluate(script, centre))


def test_waterfall_draws_one_bar_per_item_in_its_status_colour(
    browser: Any, tmp_path: Path
) -> None:
    trace = tf.continue_with_failures_trace()
    records = trace["nodes"][0]["batch_items"]
    loaded = open_page(browser, write_report(tmp_path, [trace]))
    drawn = loaded.dataset()
    failed = sum(r["status"] == "failed" for r in records)
    assert int(drawn["drawnTotal"]) == len(records) == 16
    assert int(drawn["drawnFailed"]) == failed == 11
    assert int(drawn["drawnOk"]) == len(records) - failed
    legend = loaded.page.locator("#legend li[data-status=failed]").text_content()
    assert legend == "failed 11"
    for position, status in ((0, "ok"), (1, "failed")):
        box = loaded.page.evaluate(f"pflowReport.itemBox(1, {position})")
        assert pixel(loaded, box) == RGB[status]
    loaded.page.screenshot(path=str(tmp_path / "waterfall.png"), full_page=True)
    assert (tmp_path / "waterfall.png").stat().st_size > 10_000
    loaded.assert_clean()


def test_clicking_an_item_shows_its_details_and_jaeger_link(browser: Any, tmp_path: Path) -> None:
    trace = tf.parallel_trace()
    record = trace["nodes"][1]["batch_items"][7]  # succeeded on its third attempt
    loaded = open_page(browser, write_report(tmp_path, [trace], jaeger_url=JAEGER))
    assert int(loaded.dataset()["drawnRetried"]) == 2
    box = loaded.page.evaluate("pflowReport.itemBox(2, 7)")
    assert pixel(loaded, box) == RGB["retried"]
    loaded.page.mouse.click(box["x"] + box["w"] / 2, box["y"] + box["h"] / 2)
    details = loaded.page.locator("#details-fields")
    assert details.get_attribute("data-index") == "7"
    fields = dict(
        zip(
            details.locator("dt").all_text_contents(),
            details.locator("dd").all_text_contents(),
            strict=True,
        )
    )
    assert fields["index"] == "7" and fields["item"] == record["item"]
    assert fields["attempts"] == "3" and fields["status"] == "retried"
    assert fields["span id"] == record["span_id"] and fields["lane"] == str(record["worker"])
    href = details.locator("a").get_attribute("href")
    assert href == f"{JAEGER}/trace/{trace['otel']['trace_id']}?uiFind={record['span_id']}"
    loaded.page.screenshot(path=str(tmp_path / "details.png"), full_page=True)
    loaded.assert_clean()


def test_zoom_and_pan_change_the_time_axis(browser: Any, tmp_path: Path) -> None:
    loaded = open_page(browser, write_report(tmp_path, [tf.continue_with_failures_trace()]))
    whole = loaded.page.evaluate("pflowReport.view()")
    loaded.page.click("#zoom-in")
    loaded.page.click("#zoom-in")
    zoomed = loaded.page.evaluate("pflowReport.view()")
    assert zoomed[1] - zoomed[0] == pytest.approx((whole[1] - whole[0]) / 4)
    assert int(loaded.dataset()["drawnTotal"]) < 16  # only the items in view are drawn
    canvas = loaded.page.locator("#waterfall").bounding_box()
    y = canvas["y"] + 40
    loaded.page.mouse.move(canvas["x"] + 700, y)
    loaded.page.mouse.down()
    loaded.page.mouse.move(canvas["x"] + 500, y, steps=5)
    loaded.page.mouse.up()
    panned = loaded.page.evaluate("pflowReport.view()")
    assert panned[0] > zoomed[0]
    assert panned[1] - panned[0] == pytest.approx(zoomed[1] - zoomed[0])
    loaded.page.click("#zoom-fit")
    assert int(loaded.dataset()["drawnTotal"]) == 16
    loaded.assert_clean()


def _items_ms(seed: int, scale: float, count: int = 200) -> list[float]:
    rng = random.Random(seed)
    return [round((5 + rng.random() * 2) * scale, 3) for _ in range(count)]


def _runs_of_w(scales: list[float]) -> list[dict[str, Any]]:
    """Runs of workflow ``w`` an hour apart: a plain node ``a`` and a 200-item batch ``b``
    whose item times are 5-7 ms times each scale."""
    return [
        tf.make_trace(
            [tf.plain("a", 10.0), tf.batch("b", _items_ms(at, scale))],
            workflow_name="w",
            seed=at + 1,
            start=tf.DEFAULT_START.replace(hour=12 + at),
        )
        for at, scale in enumerate(scales)
    ]


def test_node_table_sorts_and_comparison_calls_only_what_the_diff_calls(
    browser: Any, tmp_path: Path
) -> None:
    loaded = open_page(browser, write_report(tmp_path, _runs_of_w([1.0, 1.3])))
    page = loaded.page
    page.locator("#node-table th", has_text="duration").click()  # numbers: largest first
    assert page.locator("#node-table tbody td:nth-child(2)").all_text_contents() == ["b", "a"]
    page.locator("#node-table th", has_text="duration").click()
    assert page.locator("#node-table tbody td:nth-child(2)").all_text_contents() == ["a", "b"]
    assert page.locator("#compare-section").is_visible()
    headers = page.locator("#comparisons table.comparison th").all_text_contents()
    assert headers[1].startswith("run 2 (newest)") and headers[2].startswith("run 1")
    row = page.locator("#comparisons table.comparison tr", has_text="b").last
    change = row.locator("td").last
    assert "item p95 slower" in change.text_content()
    assert "change-slower" in change.get_attribute("class")
    assert "200 items" in row.text_content()
    # ``a`` took 10 ms in both runs (one run a side: untested): never "slower"
    plain = page.locator("#comparisons table.comparison tr", has_text="a").last.locator("td").last
    assert plain.text_content() == "no change" and "change-none" in plain.get_attribute("class")
    assert "p=" in change.get_attribute("title")
    page.select_option("#run-select", "1")
    assert "exec-0002" in page.locator("#run-facts").text_content()
    loaded.assert_clean()


def test_noise_is_not_drawn_red(browser: Any, tmp_path: Path) -> None:
    loaded = open_page(browser, write_report(tmp_path, _runs_of_w([0.45, 0.5])))
    assert loaded.page.locator("#comparisons .change-slower").count() == 0
    loaded.assert_clean()


def test_history_chart_has_a_point_per_run_and_marks_where_a_change_started(
    browser: Any, tmp_path: Path
) -> None:
    loaded = open_page(browser, write_report(tmp_path, _runs_of_w([1.0, 1.0, 1.0, 1.3])))
    page = loaded.page
    charts = page.locator('#comparisons tr[data-node="b"] svg.history-chart')
    assert charts.count() == 2  # item p95 and error rate; no cost recorded
    p95 = page.locator('#comparisons tr[data-node="b"] svg[data-metric="item p95"]')
    assert p95.locator("circle.point").count() == 4 and p95.get_attribute("data-points") == "4"
    started = p95.locator("circle.change-start")
    assert started.count() == 1
    assert started.locator("title").text_content().startswith("run 4: ")
    wall = page.locator('#comparisons tr[data-node="a"] svg[data-metric="wall"]')
    assert wall.locator("circle.point").count() == 4
    loaded.assert_clean()


def test_hostile_content_renders_as_text(browser: Any, tmp_path: Path) -> None:
    hostile = (
        '</script><script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
        "\u2028<b>bold</b>\x00\x1b[31m"
    )
    trace = tf.make_trace(
        [
            tf.batch(
                hostile,
                [3.0, 4.0, 5.0],
                failures={1: hostile},
                items=[hostile, "javascript:window.__pwned=3", "\x07"],
                parallel=True,
            )
        ],
        workflow_name=hostile,
    )
    loaded = open_page(browser, write_report(tmp_path, [trace], jaeger_url=JAEGER))
    page = loaded.page
    box = page.evaluate("pflowReport.itemBox(1, 1)")
    page.mouse.click(box["x"] + box["w"] / 2, box["y"] + box["h"] / 2)
    page.locator("#node-table th").first.click()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#workflow-name").text_content() == hostile
    assert hostile in page.locator("#details-fields").text_content()
    assert page.locator("img, b, iframe, object, embed").count() == 0
    assert page.locator("script").count() == 2
    loaded.assert_clean()


def test_the_demo_run_in_a_browser(browser: Any, tmp_path: Path) -> None:
    """A real run of examples/demo.json, reported and photographed (the README's picture)."""
    options = pflow_trace.TraceOptions(trace_dir=tmp_path, export=resolve_export_settings("none"))
    outcome = pflow_trace.run(str(ROOT / "examples" / "demo.json"), None, options)
    assert outcome.trace_path is not None
    path = tmp_path / "demo.html"
    # Named as the CLI would name it from a ``traces/`` directory: the page shows the name.
    text = outcome.trace_path.read_text(encoding="utf-8")
    run = read_trace_text(f"traces/{outcome.trace_path.name}", text)
    path.write_text(render_report([run]), encoding="utf-8")
    loaded = open_page(browser, path, width=1200)
    assert int(loaded.dataset()["drawnTotal"]) == 12
    assert int(loaded.dataset()["drawnFailed"]) == 2
    box = loaded.page.evaluate("pflowReport.itemBox(2, 5)")  # fjord: HTTP 503
    loaded.page.mouse.click(box["x"] + box["w"] / 2, box["y"] + box["h"] / 2)
    assert "HTTP 503" in loaded.page.locator("#details-fields").text_content()
    shot = tmp_path / "demo.png"
    loaded.page.screenshot(path=str(shot), full_page=True)
    target = os.environ.get(SCREENSHOT_ENV)
    if target:
        shutil.copyfile(shot, ROOT / target if not Path(target).is_absolute() else target)
    loaded.assert_clean()


def test_a_100000_item_batch_paints_and_redraws(browser: Any, tmp_path: Path) -> None:
    """Scale: every item drawn, the page under 3x the trace; paint times are reported."""
    trace_path = tf.write_trace(tmp_path / "large.json", tf.large_trace(100_000))
    path = tmp_path / "large.html"
    path.write_text(render_report([read_trace(trace_path)]), encoding="utf-8")
    size_ratio = path.stat().st_size / trace_path.stat().st_size
    assert size_ratio < 3
    loaded = open_page(browser, path)
    assert int(loaded.dataset()["drawnTotal"]) == 100_000
    timings = loaded.page.evaluate(
        """() => {
            const paint = performance.getEntriesByName('first-contentful-paint')[0];
            const drawn = performance.getEntriesByName('pflow-waterfall-drawn')[0];
            const started = performance.now();
            for (let k = 0; k < 5; k++) pflowReport.setView(0, pflowReport.view()[1] * 0.9);
            return {first_contentful_paint_ms: paint ? paint.startTime : null,
                    waterfall_drawn_ms: drawn.startTime,
                    redraw_ms: (performance.now() - started) / 5};
        }"""
    )
    timings["report_bytes_per_trace_byte"] = round(size_ratio, 3)
    (tmp_path / "paint.json").write_text(json.dumps(timings), encoding="utf-8")
    print(f"\n100,000 items in the browser: {timings}")
    loaded.assert_clean()


def test_an_llm_run_shows_its_tokens_and_cost_in_the_header(browser: Any, tmp_path: Path) -> None:
    """The bundled LLM example on the offline echo model: the header carries the run's usage."""
    options = pflow_trace.TraceOptions(trace_dir=tmp_path, export=resolve_export_settings("none"))
    outcome = pflow_trace.run(str(ROOT / "examples" / "llm-batch.json"), None, options)
    assert outcome.trace_path is not None
    summary = outcome.document["llm_summary"]
    path = tmp_path / "llm.html"
    path.write_text(render_report([read_trace(outcome.trace_path)]), encoding="utf-8")
    loaded = open_page(browser, path)
    facts = loaded.page.locator("#run-facts").text_content()
    assert f"{summary['calls']} calls, {summary['total_tokens']} tokens" in facts
    loaded.assert_clean()


def red_run_px(loaded: LoadedPage, box: dict[str, float], rgb: tuple[int, int, int]) -> int:
    """The longest run of ``rgb`` pixels along the middle row of ``box``, 20 px either side."""
    script = """([x0, x1, y, rgb]) => {
        const canvas = document.getElementById('waterfall');
        const rect = canvas.getBoundingClientRect(), ratio = canvas.width / rect.width;
        const left = Math.floor((x0 - rect.left) * ratio);
        const right = Math.ceil((x1 - rect.left) * ratio);
        const data = canvas.getContext('2d').getImageData(
            left, Math.floor((y - rect.top) * ratio), right - left, 1).data;
        let best = 0, run = 0;
        for (let at = 0; at < data.length; at += 4) {
            const same = data[at] === rgb[0] && data[at + 1] === rgb[1] && data[at + 2] === rgb[2];
            run = same ? run + 1 : 0;
            best = Math.max(best, run);
        }
        return best / ratio;
    }"""
    row = [box["x"] - 20, box["x"] + box["w"] + 20, box["y"] + box["h"] / 2, list(rgb)]
    return loaded.page.evaluate(script, row)


def test_a_short_failed_item_among_long_successes_is_drawn_at_any_zoom(
    browser: Any, tmp_path: Path
) -> None:
    """One 0.5 ms failure among 10 s items is far under a pixel: it is drawn a few px wide,
    in red, above its neighbours, and a click on it selects it; a short retry too."""
    durations = [10_000.0] * 60
    durations[10] = durations[30] = 0.5
    trace = tf.make_trace(
        [tf.batch("fetch", durations, failures={30: "HTTP 500"}, attempts={10: 2})], seed=9
    )
    loaded = open_page(browser, write_report(tmp_path, [trace]))
    page = loaded.page
    min_px = page.evaluate("pflowReport.markMinWidth")
    assert min_px >= 3
    assert page.locator("#legend li[data-status=failed]").text_content() == "failed 1"
    assert int(loaded.dataset()["drawnFailed"]) == 1
    whole = page.evaluate("pflowReport.view()")
    for zoom_out in (1, 10):  # fitted, then ten times wider than the run
        page.evaluate(f"pflowReport.setView(0, {whole[1] * zoom_out})")
        failed = page.evaluate("pflowReport.itemBox(1, 30)")
        assert failed["w"] >= min_px
        assert pixel(loaded, failed) == RGB["failed"]
        assert red_run_px(loaded, failed, RGB["failed"]) >= min_px
        retried = page.evaluate("pflowReport.itemBox(1, 10)")
        assert red_run_px(loaded, retried, RGB["retried"]) >= min_px
    page.evaluate(f"pflowReport.setView(0, {whole[1]})")
    failed = page.evaluate("pflowReport.itemBox(1, 30)")
    page.mouse.click(failed["x"] + failed["w"] / 2, failed["y"] + failed["h"] / 2)
    assert page.locator("#details-fields").get_attribute("data-index") == "30"
    page.screenshot(path=str(tmp_path / "short-failure.png"), full_page=True)
    loaded.assert_clean()


#: The cost ramp's lightest and darkest steps (report.js ``RAMP``), as RGB.
RAMP_LIGHTEST, RAMP_DARKEST = (0xC6, 0xDB, 0xEF), (0x04, 0x1C, 0x42)


def test_items_can_be_coloured_by_cost_or_tokens_and_failures_stay_marked(
    browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The LLM example on the echo model (prices from the example's price file): colouring by
    cost puts the dearest item on the darkest step and leaves the failed item red."""
    monkeypatch.setenv("PFLOW_TRACE_PRICES", str(ROOT / "examples" / "data" / "llm-prices.json"))
    options = pflow_trace.TraceOptions(trace_dir=tmp_path, export=resolve_export_settings("none"))
    outcome = pflow_trace.run(str(ROOT / "examples" / "llm-batch.json"), None, options)
    assert outcome.trace_path is not None
    records = next(n for n in outcome.document["nodes"] if n["node_id"] == "summarise")[
        "batch_items"
    ]
    costs = {r["index"]: (r.get("llm_usage") or {}).get("cost_usd") for r in records}
    dearest = max((i for i in costs if costs[i] is not None), key=lambda i: costs[i])
    (failed,) = [r["index"] for r in records if r["status"] == "failed"]
    path = tmp_path / "llm.html"
    path.write_text(render_report([read_trace(outcome.trace_path)]), encoding="utf-8")
    loaded = open_page(browser, path)
    page = loaded.page
    position = {r["index"]: at for at, r in enumerate(records)}

    def item_pixel(index: int) -> tuple[int, int, int]:
        return pixel(loaded, page.evaluate(f"pflowReport.itemBox(1, {position[index]})"))

    assert item_pixel(dearest) == RGB["ok"]  # by status, as before
    page.select_option("#colour-by", "cost")
    assert page.evaluate("pflowReport.colourBy()") == "cost"
    assert item_pixel(dearest) == RAMP_DARKEST
    assert item_pixel(failed) == RGB["failed"]
    assert page.locator("#legend li[data-status=failed]").text_content() == "failed 1"
    assert page.locator("#legend li[data-measure=cost]").count() == 1
    cheaper = [item_pixel(i) for i in costs if costs[i] is not None and i != dearest]
    assert all(colour != RGB["ok"] for colour in cheaper)  # every success is on the ramp
    page.select_option("#colour-by", "tokens")
    assert item_pixel(failed) == RGB["failed"]
    box = page.evaluate(f"pflowReport.itemBox(1, {position[dearest]})")
    page.mouse.click(box["x"] + box["w"] / 2, box["y"] + box["h"] / 2)
    details = page.locator("#details-fields").text_content()
    assert "tokens" in details and f"${costs[dearest]:.6f}" in details
    page.select_option("#colour-by", "status")
    assert item_pixel(dearest) == RGB["ok"]
    loaded.assert_clean()


def test_the_cost_control_is_disabled_for_a_run_without_llm_calls(
    browser: Any, tmp_path: Path
) -> None:
    loaded = open_page(browser, write_report(tmp_path, [tf.parallel_trace()]))
    page = loaded.page
    assert page.locator("#colour-by option[value=cost]").is_disabled()
    page.evaluate("pflowReport.setColourBy('cost')")
    assert page.evaluate("pflowReport.colourBy()") == "status"
    loaded.assert_clean()
