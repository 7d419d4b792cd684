"""Per-item cost of the runtime and of tracing, five ways over the same sequential batch.

1. a plain Python loop running the same code-node snippet per item;
2. the runtime with tracing off (no-op tracer, no observers);
3. the runtime with everything on, as by default (all spans, span table and trace file;
   exporter none);
4. the same with an OTLP/HTTP exporter sending every span to a loopback receiver (a separate
   process that accepts and discards), the export flushed before the run returns;
5. the bare OpenTelemetry SDK creating the same spans with the same attributes.

Targets: the default path <= 2 x the untraced runtime (issue #28; 2.5 before it); with the OTLP
exporter <= 1.25 x (untraced runtime + bare SDK).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common import best_interleaved, ratio

SNIPPET = "result = x * 2"


def workflow(count: int) -> dict[str, Any]:
    return {
        "ir_version": "0.1.0",
        "name": "per-item",
        "nodes": [
            {
                "id": "work",
                "type": "code",
                "params": {"code": SNIPPET, "inputs": {"x": "${item}"}},
                "batch": {"items": list(range(count))},
            }
        ],
    }


def plain_loop(count: int) -> None:
    compiled = compile(SNIPPET, "<snippet>", "exec")
    for item in range(count):
        namespace = {"x": item}
        exec(compiled, namespace)


def bare_sdk(count: int) -> None:
    """Same span tree shape and attributes as a traced batch item, without the runtime."""
    from opentelemetry import context, trace
    from opentelemetry.sdk.trace import TracerProvider

    from pflow_trace.observe import conventions as conv

    tracer = TracerProvider().get_tracer("bench")
    base = {conv.ATTR_NODE_ID: "work", conv.ATTR_NODE_TYPE: "code"}
    layers = (conv.LAYER_NAMESPACED, conv.LAYER_TEMPLATE, conv.LAYER_NODE)
    with tracer.start_as_current_span("work batch", attributes={**base, conv.ATTR_LAYER: "batch"}):
        for index in range(count):
            item = tracer.start_span(
                "work batch.item",
                attributes={
                    **base,
                    conv.ATTR_LAYER: conv.LAYER_BATCH_ITEM,
                    conv.ATTR_BATCH_INDEX: index,
                    conv.ATTR_BATCH_WORKER: 0,
                    conv.ATTR_BATCH_ITEM_PREVIEW: str(index),
                },
            )
            tokens = [context.attach(trace.set_span_in_context(item))]
            spans = [item]
            for layer in layers:
                span = tracer.start_span(
                    f"work {layer}", attributes={**base, conv.ATTR_LAYER: layer}
                )
                tokens.append(context.attach(trace.set_span_in_context(span)))
                spans.append(span)
            item.set_attribute(conv.ATTR_BATCH_ATTEMPTS, 1)
            for span, token in zip(reversed(spans), reversed(tokens), strict=True):
                context.detach(token)
                span.end()


#: An OTLP/HTTP endpoint that accepts every export and keeps nothing (its own process, so its
#: work does not share our interpreter); prints its port, then serves until killed.
RECEIVER = """
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@contextmanager
def otlp_receiver() -> Iterator[str]:
    process = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield f"http://127.0.0.1:{process.stdout.readline().strip()}"
    finally:
        process.kill()
        process.wait()


def run(quick: bool = False) -> dict[str, Any]:
    from pflow_trace import api
    from pflow_trace.api import TraceOptions
    from pflow_trace.ir.validation import validate_workflow
    from pflow_trace.observe.export_settings import resolve_export_settings
    from pflow_trace.runtime.workflow_run import run_workflow

    count = 500 if quick else 20_000
    repeats = 1 if quick else 5
    wf = validate_workflow(workflow(count))
    warnings: list[str] = []

    def traced(options: TraceOptions) -> None:
        outcome = api.run(wf, {}, options)
        if outcome.export_warning:  # an export that failed would make the figure meaningless
            warnings.append(outcome.export_warning)

    with tempfile.TemporaryDirectory() as directory, otlp_receiver() as endpoint:
        default = TraceOptions(
            export=resolve_export_settings("none", env={}),
            trace_file=str(Path(directory) / "bench.json"),
        )
        otlp = TraceOptions(
            export=resolve_export_settings("otlp", endpoint=endpoint, env={}, timeout_s=10.0),
            trace_file=str(Path(directory) / "bench-otlp.json"),
        )
        seconds = best_interleaved(
            repeats,
            {
                "plain_loop": lambda: plain_loop(count),
                "runtime_untraced": lambda: run_workflow(wf, {}),
                "runtime_traced": lambda: traced(default),
                "runtime_traced_otlp": lambda: traced(otlp),
                "bare_sdk_spans": lambda: bare_sdk(count),
            },
        )
    per_item_us = {name: round(value / count * 1e6, 2) for name, value in seconds.items()}
    untraced = per_item_us["runtime_untraced"]
    budget = untraced + per_item_us["bare_sdk_spans"]
    ratios = {
        "untraced_vs_plain": ratio(untraced, per_item_us["plain_loop"]),
        "traced_vs_untraced": ratio(per_item_us["runtime_traced"], untraced),
        "traced_vs_untraced_plus_sdk": ratio(per_item_us["runtime_traced"], budget),
        "otlp_vs_untraced_plus_sdk": ratio(per_item_us["runtime_traced_otlp"], budget),
    }
    target = {"traced_vs_untraced": 2.0, "otlp_vs_untraced_plus_sdk": 1.25}
    return {
        "benchmark": "per_item",
        "items": count,
        "per_item_us": per_item_us,
        "ratios": ratios,
        "export_warnings": sorted(set(warnings)),
        "target": target,
        "met": not warnings and all(ratios[name] <= limit for name, limit in target.items()),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    arguments = parser.parse_args()
    json.dump(run(arguments.quick), sys.stdout, indent=2)
    print()
