"""``pflow-trace report --jaeger-url``: every Jaeger link the page can show names a trace and a
span that Jaeger really holds.

The page builds its links in ``report.js`` (``jaegerLink``) from the data block it embeds: the
run's trace id for the header, and a node's or an item's span id for the details pane. This
test reads that data block the way the script does, so each link the page can draw is checked
against the trace Jaeger returned for the live run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pflow_trace.observe import conventions as conv
from pflow_trace.report.html import DATA_ELEMENT_ID

from .jaeger_api import JaegerApi, spans_by_id, tags_of
from .jaeger_runs import WORKFLOW, cli, run_workflow

_DATA_BLOCK = re.compile(
    rf'<script type="application/json" id="{DATA_ELEMENT_ID}">(.*?)</script>', re.DOTALL
)
_LINK_BUILDER = 'DATA.jaeger_url + "/trace/" + encodeURIComponent(traceId)'


def page_data(html: str) -> dict[str, Any]:
    [block] = _DATA_BLOCK.findall(html)
    return json.loads(block)


@dataclass(frozen=True)
class Link:
    """What one link names, and the span it must lead to (``span_id`` None: the whole run)."""

    trace_id: str
    span_id: str | None
    layer: str
    node_id: str | None = None
    index: int | None = None


def links(data: dict[str, Any]) -> list[Link]:
    """Every link the page can draw: the header's, each node's and each batch item's."""
    found: list[Link] = []
    for run, timeline in zip(data["summary"]["runs"], data["timelines"], strict=True):
        trace_id = run["trace_id"]
        found.append(Link(trace_id, None, conv.LAYER_WORKFLOW))
        for node in timeline["nodes"]:
            node_id = node["node_id"]
            found.append(Link(trace_id, node["span_id"], conv.LAYER_INSTRUMENTED, node_id))
            items = node.get("items") or {"index": [], "span_id": []}
            for index, span_id in zip(items["index"], items["span_id"], strict=True):
                found.append(Link(trace_id, span_id, conv.LAYER_BATCH_ITEM, node_id, index))
    return found


def test_every_report_link_names_a_span_jaeger_returns(jaeger: JaegerApi, tmp_path: Path) -> None:
    run = run_workflow(tmp_path, jaeger)
    spans = spans_by_id(jaeger.trace(run.trace_id, len(run.replay.spans)))
    report = tmp_path / "report.html"
    completed = cli(
        "report", str(run.trace_path), "--jaeger-url", jaeger.url + "/", "-o", str(report)
    )
    assert completed.returncode == 0, completed.stderr
    html = report.read_text(encoding="utf-8")
    assert _LINK_BUILDER in html  # the page still builds its links the way this test reads them
    data = page_data(html)
    assert data["jaeger_url"] == jaeger.url
    found = links(data)
    item_count = sum(len(node["batch"]["items"]) for node in WORKFLOW["nodes"] if "batch" in node)
    assert len(found) == 1 + len(WORKFLOW["nodes"]) + item_count
    for link in found:
        assert link.trace_id == run.trace_id
        if link.span_id is None:
            [root] = [span for span in spans.values() if not span["references"]]
            assert tags_of(root)[conv.ATTR_LAYER] == link.layer
            continue
        tags = tags_of(spans[link.span_id])
        assert tags[conv.ATTR_LAYER] == link.layer
        assert tags[conv.ATTR_NODE_ID] == link.node_id
        assert tags.get(conv.ATTR_BATCH_INDEX) == link.index
