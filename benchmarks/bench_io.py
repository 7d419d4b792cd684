"""I/O-bound batches: ``http`` and ``llm`` items against a local server that answers in 10 ms.

The server runs in its own process (HTTP/1.1 keep-alive, a thread per connection) and
answers every request after ``delay_ms``: plain JSON for the ``http`` node, an OpenAI chat
completion for the ``llm`` node (through the ``llm`` library's OpenAI plugin, the model
registered in a temporary ``extra-openai-models.yaml``). It counts the TCP connections it
accepts, so each case reports how many a run opened.

Efficiency = ideal wall (``ceil(items / max_concurrent) * delay``) / real wall, for the run
with everything on (the node's duration from the trace file, exporter none) and untraced
(``run_workflow`` timed whole), interleaved, best of three (``--rounds``).
``cpu_ms_per_item`` is this process's CPU time per item (the server's is not counted);
``cpu_bound_efficiency`` = ideal / that CPU time in all: with one interpreter lock, the
efficiency cannot pass it. The server is one Python process too: ``server_bound_efficiency``
= ideal / the server's CPU time for the run, a ceiling no client can pass either.

Each case runs on async lanes and on threads (``TraceOptions(async_lanes=False)``), so the
threads figure is the baseline of the same run (``llm`` on async lanes goes through the ``llm``
library's async OpenAI model, one client per model kept for the batch's event loop).
Targets: efficiency >= 0.85 for 2,000 x 10 ms at 100 in flight, >= 0.7 for 10,000 x 100 ms
at 500 (``http`` only: threads and processes stay capped at 100 in validation, the
threads figure at 500 is a comparison the Python API allows). Only this module's public
workflow shapes are used, so the same script measures an older checkout (put its ``src``
first on ``PYTHONPATH``; ``--lanes threads`` there).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common import positive_int

#: (items, max_concurrent, delay ms, node types, the lanes each runs on).
CASES_FULL = (
    (2000, 100, 10, ("http", "llm"), ("async", "threads")),
    (10000, 500, 100, ("http",), ("async", "threads")),
)
CASES_QUICK = ((200, 20, 10, ("http", "llm"), ("async", "threads")),)
TARGET_EFFICIENCY = 0.85
#: The ``http`` 10,000 x 100 ms case at 500 in flight (issue #28).
TARGET_WIDE_EFFICIENCY = 0.7

#: The server: prints its port, then serves until killed. /stats answers the connection count.
SERVER = r"""
import http.server, json, sys, threading, time
delay_s = float(sys.argv[1])
lock = threading.Lock()
connections = [0]
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def setup(self):
        super().setup()
        with lock:
            connections[0] += 1
    def log_message(self, *args):
        pass
    def _answer(self, payload):
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path == "/stats":
            self._answer({"connections": connections[0], "cpu_s": time.process_time()})
            return
        time.sleep(delay_s)
        self._answer({"path": self.path, "ok": True})
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(delay_s)
        self._answer({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1800000000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "ok"}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
        })
class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@contextmanager
def answering_server(delay_ms: int) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(delay_ms / 1000)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield f"http://127.0.0.1:{process.stdout.readline().strip()}"
    finally:
        process.kill()
        process.wait()


def server_stats(base: str) -> tuple[int, float]:
    """Connections the server has accepted (this question's own one not counted), and the
    CPU seconds its process has used."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{base}/stats", timeout=10) as response:
        stats = json.load(response)
    return int(stats["connections"]) - 1, float(stats["cpu_s"])


def connections_during(base: str, action: Callable[[], Any]) -> tuple[int, float, Any]:
    """(connections ``action`` opened, the server's CPU ms meanwhile, what it returned)."""
    before, cpu_before_s = server_stats(base)
    done = action()
    after, cpu_after_s = server_stats(base)
    # Less the first question's connection.
    return after - before - 1, (cpu_after_s - cpu_before_s) * 1000, done


def workflow(kind: str, base: str, items: int, max_concurrent: int) -> dict[str, Any]:
    params: dict[str, Any] = (
        {"url": base + "/item/${item}"}
        if kind == "http"
        else {"prompt": "item ${item}", "model": "bench-local", "max_retries": 1}
    )
    return {
        "ir_version": "0.1.0",
        "name": f"io-{kind}",
        "nodes": [
            {
                "id": "call",
                "type": kind,
                "params": params,
                "batch": {
                    "items": list(range(items)),
                    "parallel": True,
                    "max_concurrent": max_concurrent,
                },
            }
        ],
    }


def register_model(user_dir: Path, base: str) -> None:
    """The server as an ``llm`` model, the way a user registers any OpenAI-compatible one."""
    user_dir.mkdir(parents=True, exist_ok=True)
    (user_dir / "extra-openai-models.yaml").write_text(
        f"- model_id: bench-local\n  model_name: gpt-4o-mini\n  api_base: {base}/v1\n"
    )


def untraced_runner(wf: dict[str, Any], on_async_lanes: bool) -> Callable[[], Any]:
    """A run with no tracing at all, on the lanes asked for (an older tree has only threads)."""
    from pflow_trace.runtime.workflow_run import run_workflow

    if on_async_lanes:
        return lambda: run_workflow(wf, {})
    from pflow_trace.runtime.context import RunContext
    from pflow_trace.runtime.executors.executor_set import ExecutorSet

    return lambda: run_workflow(wf, {}, run=RunContext(executors=ExecutorSet(async_lanes=False)))


def measure(
    kind: str,
    base: str,
    case: tuple[int, int, int],
    lanes_kind: str,
    directory: Path,
    rounds: int,
) -> Any:
    from pflow_trace import api
    from pflow_trace.api import TraceOptions
    from pflow_trace.ir.validation import validate_workflow
    from pflow_trace.observe.export_settings import resolve_export_settings

    items, lanes, delay_ms = case
    wf = validate_workflow(workflow(kind, base, items, lanes))
    extra = {} if lanes_kind == "async" else {"async_lanes": False}
    options = TraceOptions(
        export=resolve_export_settings("none", env={}),
        trace_file=str(directory / f"io-{kind}.json"),
        **extra,
    )
    untraced = untraced_runner(wf, lanes_kind == "async")
    # Warm: the llm library, its plugins and the model load once. Its connections are the
    # ones a first run opens (kept connections and clients are reused by the runs after it).
    first_connections, _, _ = connections_during(base, untraced)
    best: dict[str, Any] = {"traced_ms": math.inf, "untraced_ms": math.inf}
    for _ in range(rounds):  # untraced and traced rounds interleaved: a slow spell hits both
        for name, action in (
            ("untraced", untraced),
            ("traced", lambda: api.run(wf, {}, options)),
        ):
            cpu, started = time.process_time(), time.perf_counter()
            opened, server_cpu_ms, done = connections_during(base, action)
            wall_ms = (time.perf_counter() - started) * 1000
            cpu_ms = (time.process_time() - cpu) * 1000
            assert done.status == "success", done.error
            if name == "traced":  # the batch's own time, from the trace file
                wall_ms = done.document["nodes"][0]["duration_ms"]
            if wall_ms < best[f"{name}_ms"]:
                best[f"{name}_ms"], best[f"{name}_cpu_ms"] = wall_ms, cpu_ms
                best[f"{name}_connections"] = opened
                best[f"{name}_server_cpu_ms"] = server_cpu_ms
    ideal_ms = math.ceil(items / lanes) * delay_ms
    target = TARGET_EFFICIENCY if lanes <= 100 else TARGET_WIDE_EFFICIENCY
    return {
        "node": kind,
        "lanes": lanes_kind,
        "items": items,
        "max_concurrent": lanes,
        "delay_ms": delay_ms,
        "ideal_ms": ideal_ms,
        "first_run_connections": first_connections,
        **{
            name: {
                "wall_ms": round(best[f"{name}_ms"], 1),
                "efficiency": round(ideal_ms / best[f"{name}_ms"], 3),
                "cpu_ms_per_item": round(best[f"{name}_cpu_ms"] / items, 3),
                "cpu_bound_efficiency": round(ideal_ms / best[f"{name}_cpu_ms"], 3),
                "connections": best[f"{name}_connections"],
                "server_cpu_ms_per_item": round(best[f"{name}_server_cpu_ms"] / items, 3),
                "server_bound_efficiency": round(ideal_ms / best[f"{name}_server_cpu_ms"], 3),
            }
            for name in ("traced", "untraced")
        },
        "target_efficiency": target,
        "met": ideal_ms / best["traced_ms"] >= target,
    }


def run(
    quick: bool = False,
    nodes: tuple[str, ...] = ("http", "llm"),
    rounds: int = 3,
    only_lanes: tuple[str, ...] = ("async", "threads"),
) -> dict[str, Any]:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        os.environ.pop(name, None)
    cases = []
    with tempfile.TemporaryDirectory() as directory:
        os.environ["LLM_USER_PATH"] = str(Path(directory) / "llm-user")
        for items, lanes, delay_ms, kinds, lane_kinds in CASES_QUICK if quick else CASES_FULL:
            with answering_server(delay_ms) as base:
                register_model(Path(directory) / "llm-user", base)
                for kind in (kind for kind in kinds if kind in nodes):
                    for lanes_kind in lane_kinds:
                        if lanes_kind in only_lanes:
                            measured = measure(
                                kind, base, (items, lanes, delay_ms), lanes_kind,
                                Path(directory), rounds,
                            )  # fmt: skip
                            print(json.dumps(measured), file=sys.stderr, flush=True)
                            cases.append(measured)
    return {
        "benchmark": "io",
        "cases": cases,
        "target": {
            "efficiency": f">= {TARGET_EFFICIENCY} (traced) at 100 in flight, "
            f">= {TARGET_WIDE_EFFICIENCY} at 500"
        },
        "met": all(case["met"] for case in cases),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--node", choices=("http", "llm"), action="append")
    parser.add_argument("--rounds", type=positive_int, default=3, help="best of (default 3)")
    parser.add_argument("--lanes", choices=("async", "threads"), action="append")
    arguments = parser.parse_args()
    nodes = tuple(arguments.node or ("http", "llm"))
    only_lanes = tuple(arguments.lanes or ("async", "threads"))
    json.dump(run(arguments.quick, nodes, arguments.rounds, only_lanes), sys.stdout, indent=2)
    print()
