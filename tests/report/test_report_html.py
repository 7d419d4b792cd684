"""The HTML report's data: the summary ``show`` computes, item columns, and inert embedding.

What the browser does with the page is tested in ``test_report_browser.py``; here the page is
text, read back the way the browser reads it (the JSON block parsed, the inline blocks hashed).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

import pflow_trace
import trace_factory as tf
from pflow_samples import PFLOW_JSON_SAMPLE
from pflow_trace.observe.export_settings import resolve_export_settings
from pflow_trace.report.html import DATA_ELEMENT_ID, render_report, script_json
from pflow_trace.report.stats import build_summary
from pflow_trace.report.timeline import ITEM_CLASSES, build_timeline
from pflow_trace.tracefile.readers import read_trace

HOSTILE = '</script><script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


def _read(tmp_path: Path, name: str, trace: dict[str, Any]) -> Any:
    return read_trace(tf.write_trace(tmp_path / name, trace))


def embedded_data(html: str) -> dict[str, Any]:
    """The data block, parsed as the page's script parses it."""
    match = re.search(
        rf'<script type="application/json" id="{DATA_ELEMENT_ID}">(.*?)</script>', html, re.S
    )
    assert match, "no data block"
    return json.loads(match.group(1))


def test_the_page_embeds_exactly_the_show_json_document(tmp_path: Path) -> None:
    runs = [
        _read(tmp_path, "a.json", tf.continue_with_failures_trace()),
        _read(tmp_path, "b.json", tf.parallel_trace()),
    ]
    data = embedded_data(render_report(runs))
    assert data["summary"] == json.loads(build_summary(runs).to_json())
    assert data["item_classes"] == list(ITEM_CLASSES)


def test_item_columns_follow_the_item_records(tmp_path: Path) -> None:
    trace = tf.parallel_trace()
    run = _read(tmp_path, "p.json", trace)
    timeline = build_timeline(run, build_summary([run]).runs[0])
    node = timeline.nodes[1]
    records = trace["nodes"][1]["batch_items"]
    items = node.items
    assert items is not None
    assert items.index == [r["index"] for r in records]
    assert items.offset_ms == [r["start_offset_ms"] for r in records]
    assert items.lane == [r["worker"] for r in records]
    assert items.span_id == [r["span_id"] for r in records]
    assert items.lanes == 4 and items.unplaced == 0
    retried = [at for at, s in enumerate(items.status) if ITEM_CLASSES[s] == "retried"]
    assert retried == [3, 7]  # successes that took 2 and 3 attempts
    assert node.start_ms == trace["nodes"][1]["start_offset_ms"]
    assert node.start_estimated is False


def test_failed_items_share_error_messages(tmp_path: Path) -> None:
    run = _read(tmp_path, "c.json", tf.continue_with_failures_trace())
    items = build_timeline(run, build_summary([run]).runs[0]).nodes[0].items
    assert items is not None
    failed = [at for at, s in enumerate(items.status) if ITEM_CLASSES[s] == "failed"]
    assert failed == [1, 2, 4, 7, 9, 10, 11, 12, 13, 14, 15]
    assert items.errors.count("HTTP 503: service unavailable") == 1
    assert {items.errors[items.error[at]] for at in (1, 4, 7)} == {"HTTP 503: service unavailable"}
    assert items.error[0] == -1


@pytest.mark.no_trace_validation  # item 0 as a number, as pflow's records hold items
def test_a_falsy_item_and_a_multiline_item_keep_their_preview(tmp_path: Path) -> None:
    trace = tf.make_trace([tf.batch("b", [1.0, 1.0, 1.0], items=["", "0", "a\nb"])])
    trace["nodes"][0]["batch_items"][1]["item"] = 0
    run = _read(tmp_path, "f.json", trace)
    items = build_timeline(run, build_summary([run]).runs[0]).nodes[0].items
    assert items is not None
    assert items.preview == ["", "0", "a\\nb"]


def test_pflow_traces_without_item_records_get_node_bars_only() -> None:
    run = read_trace(PFLOW_JSON_SAMPLE)
    timeline = build_timeline(run, build_summary([run]).runs[0])
    assert all(node.items is None for node in timeline.nodes)
    assert all(node.start_estimated for node in timeline.nodes)
    assert all(node.start_ms is not None and node.start_ms >= 0 for node in timeline.nodes)
    embedded_data(render_report([run]))  # renders


def test_script_json_cannot_close_its_element() -> None:
    value = {"name": HOSTILE + "&amp;\u2028\u2029\x00\x1b"}
    text = script_json(value)
    for forbidden in ("<", ">", "&", "\u2028", "\u2029"):
        assert forbidden not in text
    assert json.loads(text) == value


def test_hostile_names_stay_inside_the_data_block(tmp_path: Path) -> None:
    trace = tf.make_trace(
        [tf.batch(HOSTILE, [1.0, 2.0], failures={1: HOSTILE}, items=[HOSTILE, "\x07bell"])],
        workflow_name=HOSTILE,
    )
    html = render_report([_read(tmp_path, "h.json", trace)])
    assert html.count("<script") == 2  # the data block and the page's own script
    assert "<img" not in html
    assert "&lt;/script&gt;" in html.split("</title>")[0]  # the title is escaped text
    data = embedded_data(html)
    assert data["summary"]["runs"][0]["workflow_name"] == HOSTILE


def test_inline_blocks_are_the_only_ones_the_policy_allows(tmp_path: Path) -> None:
    html = render_report([_read(tmp_path, "s.json", tf.sequential_trace())])
    policy = re.search(r'Content-Security-Policy" content="([^"]+)"', html).group(1)
    style = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    script = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(script) == 1

    def source(text: str) -> str:
        digest = hashlib.sha256(text.encode()).digest()
        return "'sha256-" + base64.b64encode(digest).decode() + "'"

    assert f"style-src {source(style)}" in policy
    assert f"script-src {source(script[0])}" in policy
    assert "default-src 'none'" in policy and "connect-src 'none'" in policy
    assert "http" not in html.split(f'id="{DATA_ELEMENT_ID}"')[0].replace("http-equiv", "")


def test_a_real_retried_item_is_split_at_its_retry_events(tmp_path: Path) -> None:
    """Integration: the runtime's span table gives each retried item its attempt boundaries."""
    workflow = {
        "ir_version": "0.1.0",
        "name": "retries",
        "nodes": [
            {
                "id": "flaky",
                "type": "echo",
                "params": {"value": "${item}", "delay_ms": 5, "fail_times": 2},
                "batch": {"items": [1, 2], "parallel": True, "max_retries": 3},
            }
        ],
    }
    options = pflow_trace.TraceOptions(trace_dir=tmp_path, export=resolve_export_settings("none"))
    outcome = pflow_trace.run(workflow, None, options)
    assert outcome.trace_path is not None
    run = read_trace(outcome.trace_path)
    items = build_timeline(run, build_summary([run]).runs[0]).nodes[0].items
    assert items is not None and items.attempts == [3, 3]
    assert [ITEM_CLASSES[s] for s in items.status] == ["retried", "retried"]
    for at in (0, 1):
        marks = items.retry_ms[at]
        assert len(marks) == 2 and 0 < marks[0] < marks[1] < items.duration_ms[at]


def test_readme_lists_the_command_and_shows_a_real_screenshot() -> None:
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "pflow-trace report [TRACE|DIR ...]" in readme
    assert "](docs/report-screenshot.png)" in readme
    assert "](docs/report.md)" in readme
    png = (root / "docs" / "report-screenshot.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000


def test_the_page_carries_each_items_time_split_and_the_batchs(tmp_path: Path) -> None:
    """The item details and the batch summary line read these; a trace without them has none."""
    workflow = {
        "ir_version": "0.1.0",
        "name": "split",
        "nodes": [
            {
                "id": "each",
                "type": "echo",
                "params": {"value": "${item}", "delay_ms": 2},
                "batch": {"items": [1, 2, 3], "parallel": True, "max_concurrent": 2},
            }
        ],
    }
    options = pflow_trace.TraceOptions(trace_dir=tmp_path, export=resolve_export_settings("none"))
    outcome = pflow_trace.run(workflow, None, options)
    assert outcome.trace_path is not None
    recorded = json.loads(Path(outcome.trace_path).read_text(encoding="utf-8"))
    data = embedded_data(render_report([read_trace(outcome.trace_path)]))
    (node,) = data["timelines"][0]["nodes"]
    assert node["items"]["time_us"] == [r["time_us"] for r in recorded["nodes"][0]["batch_items"]]
    assert node["items"]["provider_us"] == []  # the echo node reports no provider latency
    split = data["summary"]["runs"][0]["nodes"][0]["batch"]["time_split"]
    assert split["items"] == 3
    assert "where the time went" in render_report([read_trace(outcome.trace_path)])
    older = _read(tmp_path, "old.json", tf.parallel_trace())
    old_items = embedded_data(render_report([older]))["timelines"][0]["nodes"][1]["items"]
    assert old_items["time_us"] == []
