"""The HTML report: one self-contained page drawn from the same summary ``show`` prints.

The third renderer of :class:`~pflow_trace.report.summary.ShowSummary` (after the terminal and
``--json``): the page embeds ``summary.to_dict()`` verbatim — the document ``show --json``
prints — and adds only the waterfall's per-item positions from
:mod:`pflow_trace.report.timeline` and, for several runs of one workflow, the ``diff`` and
``history`` documents (:mod:`pflow_trace.report.compare`). The browser draws; Python computes
nothing twice.

Self-contained and inert by construction:

* the CSS and JavaScript (``assets/``) are inlined; nothing is fetched, and a
  Content-Security-Policy allows only those two blocks (by hash) and no connections at all;
* every value from the trace travels as JSON inside ``<script type="application/json">`` with
  ``<``, ``>``, ``&`` and U+2028/U+2029 written as ``\\uXXXX``, so a ``</script>`` in a name
  cannot end the block; the script shows text with ``textContent`` and canvas ``fillText``
  only, never as markup.

Items are embedded column by column (see ``ItemColumns``), a few bytes per item, which keeps
the page well under three times the size of the trace it came from.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from functools import cache
from html import escape
from importlib.resources import files
from typing import Any

from pflow_trace.report.batch_stats import DEFAULT_TOP
from pflow_trace.report.compare import compare_runs
from pflow_trace.report.stats import build_summary
from pflow_trace.report.timeline import ITEM_CLASSES, ItemColumns, RunTimeline, build_timeline
from pflow_trace.tracefile.model import TraceRun
from pflow_trace.version import __version__

#: What the page's data block is called, for the script and for tests.
DATA_ELEMENT_ID = "pflow-report-data"
#: Bumped when the embedded document changes incompatibly (the page and data ship together,
#: so this is for anyone who scrapes the block).
DATA_VERSION = 1

_JSON_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def render_report(
    runs: Sequence[TraceRun], jaeger_url: str | None = None, top: int = DEFAULT_TOP
) -> str:
    """The whole page for ``runs`` (one run, or several to compare) as HTML text."""
    summary = build_summary(runs, top=top)
    timelines = [
        build_timeline(run, run_summary)
        for run, run_summary in zip(runs, summary.runs, strict=True)
    ]
    document = {
        "version": DATA_VERSION,
        "generator": f"pflow-trace {__version__}",
        "jaeger_url": jaeger_url.rstrip("/") if jaeger_url else None,
        "item_classes": list(ITEM_CLASSES),
        "summary": summary.to_dict(),
        "timelines": [_timeline_dict(timeline) for timeline in timelines],
        "comparisons": [comparison.to_dict() for comparison in compare_runs(runs)],
    }
    names = {run.workflow_name or "(unnamed)" for run in summary.runs}
    title = f"pflow-trace report: {', '.join(sorted(names))}"
    return page(title, script_json(document))


def script_json(document: Any) -> str:
    """JSON that is safe inside a ``<script>`` element (see the module docstring)."""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.translate(_JSON_ESCAPES)


def page(title: str, data_json: str) -> str:
    """The HTML around the data: inline style and script, allowed by hash and nothing else."""
    css, js, body = _asset("report.css"), _asset("report.js"), _asset("report-body.html")
    policy = (
        "default-src 'none'; "
        f"style-src '{_sha256(css)}'; script-src '{_sha256(js)}'; "
        "img-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'"
    )
    return "".join(
        (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            '<meta name="referrer" content="no-referrer">\n',
            f"<title>{escape(title)}</title>\n<style>{css}</style>\n</head>\n<body>\n",
            body,
            f'<script type="application/json" id="{DATA_ELEMENT_ID}">{data_json}</script>\n',
            f"<script>{js}</script>\n</body>\n</html>\n",
        )
    )


def _timeline_dict(timeline: RunTimeline) -> dict[str, Any]:
    """A timeline as plain data; item columns by reference (``asdict`` would copy each list)."""
    return {
        "source": timeline.source,
        "trace_id": timeline.trace_id,
        "duration_ms": timeline.duration_ms,
        "nodes": [
            {
                "order": node.order,
                "node_id": node.node_id,
                "node_type": node.node_type,
                "status": node.status,
                "start_ms": node.start_ms,
                "duration_ms": node.duration_ms,
                "start_estimated": node.start_estimated,
                "span_id": node.span_id,
                "items": _items_dict(node.items) if node.items is not None else None,
            }
            for node in timeline.nodes
        ],
    }


def _items_dict(items: ItemColumns) -> dict[str, Any]:
    return {
        name: getattr(items, name)
        for name in ItemColumns.__slots__  # type: ignore[attr-defined]
        if name != "retry_ms"
    } | {"retry_ms": {str(at): marks for at, marks in items.retry_ms.items()}}


@cache
def _asset(name: str) -> str:
    """An inline asset shipped as package data (``report/assets/``)."""
    return files("pflow_trace.report").joinpath("assets", name).read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    """A CSP source expression allowing exactly this inline block."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")
