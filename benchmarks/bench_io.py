"""I/O-bound batches: ``http`` and ``llm`` items against a local server that answers in 10 ms.

The server runs in its own process: one asyncio event loop serving HTTP/1.1 keep-alive
(a ``Protocol`` per connection that reads request heads only for the method, the path and a
``Content-Length``), answering every request after ``delay_ms`` with ``call_later`` from bytes
made once: plain JSON for the ``http`` node, an OpenAI chat completion for the ``llm`` node
(through the ``llm`` library's OpenAI plugin, the model registered in a temporary
``extra-openai-models.yaml``). It counts the TCP connections it accepts, so each case reports
how many a run opened. With two CPUs or more the server is pinned to one of its own and this
process to the others (``server_cpu``, ``client_cpus`` in the output), as issue #28 sets the
scene; a server that shared the client's CPU, or spent more per request than the client does,
would hide the client's cost behind its own.

Efficiency = ideal wall (``ceil(items / max_concurrent) * delay``) / real wall, for the run
with everything on (the node's duration from the trace file, exporter none) and untraced
(``run_workflow`` timed whole), interleaved, best of three (``--rounds``).
``cpu_ms_per_item`` is this process's CPU time per item (the server's is not counted);
``cpu_bound_efficiency`` = ideal / that CPU time in all: with one interpreter lock, the
efficiency cannot pass it. The server is one Python process too: ``server_bound_efficiency``
= ideal / the server's CPU time for the run, a ceiling no client can pass either (about 3 for
the ``http`` cases on a quiet machine: the server is not what limits them).

Each case runs on async lanes and on threads (``TraceOptions(async_lanes=False)``), so the
threads figure is the baseline of the same run (``llm`` on async lanes goes through the ``llm``
library's async OpenAI model, one client per model kept for the batch's event loop). The
``llm`` case also measures ``openai_client_alone``: the same calls through the ``openai``
package's async client with nothing around it, the floor every ``llm`` batch stands on.
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

#: The server: pins itself to the CPU given (if any), prints its port, then serves until
#: killed. One asyncio event loop, one ``Protocol`` per connection: request heads are split at
#: the blank line and read only for the method, the path and a ``Content-Length``; each answer
#: is written by ``call_later`` after the delay, from bytes made once (the path goes into the
#: GET body by ``%``); ``/stats`` answers at once with the connection count and the CPU used.
SERVER = r"""
import asyncio, email.utils, json, os, sys, time
delay_s = float(sys.argv[1])
if len(sys.argv) > 2:
    os.sched_setaffinity(0, {int(sys.argv[2])})
connections = [0]
dated = [0, b""]
def head(length):
    now = int(time.time())
    if dated[0] != now:
        dated[:] = [now, email.utils.formatdate(now, usegmt=True).encode()]
    return (b"HTTP/1.1 200 OK\r\nServer: bench-io\r\nDate: %s\r\nContent-Type: application/json"
            b"\r\nContent-Length: %d\r\n\r\n" % (dated[1], length))
GET_BODY = b'{"path": "%s", "ok": true}'
CHAT = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1800000000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "ok"}}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}).encode()
class Answering(asyncio.Protocol):
    def connection_made(self, transport):
        connections[0] += 1
        self.transport, self.buffer, self.request = transport, b"", None
    def data_received(self, data):
        self.buffer += data
        while True:
            if self.request is None:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                lines = self.buffer[:end].split(b"\r\n")
                self.buffer = self.buffer[end + 4:]
                method, path, _ = lines[0].split(b" ", 2)
                length, close = 0, False
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection":
                        close = b"close" in value.lower()
                self.request = (method, path, length, close)
            method, path, length, close = self.request
            if len(self.buffer) < length:
                return
            self.buffer, self.request = self.buffer[length:], None
            self.answer(method, path, close)
    def answer(self, method, path, close):
        if path == b"/stats":
            body = json.dumps({"connections": connections[0],
                               "cpu_s": time.process_time()}).encode()
            self.send(head(len(body)) + body, close)
            return
        body = CHAT if method == b"POST" else GET_BODY % path
        loop.call_later(delay_s, self.send, head(len(body)) + body, close)
    def send(self, answer, close):
        if not self.transport.is_closing():
            self.transport.write(answer)
            if close:
                self.transport.close()
async def main():
    server = await loop.create_server(Answering, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
loop = asyncio.new_event_loop()
loop.run_until_complete(main())
"""


def cpu_split() -> tuple[int | None, list[int]]:
    """(the CPU the server is pinned to, the CPUs left to this process): with two or more
    CPUs the server gets one of its own, as issue #28 measures it; with one, nothing is pinned."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, cpus
    return cpus[-1], cpus[:-1]


@contextmanager
def answering_server(delay_ms: int, cpu: int | None) -> Iterator[str]:
    pinned = [] if cpu is None else [str(cpu)]
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(delay_ms / 1000), *pinned],
        stdout=subprocess.PIPE,
        text=True,
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


def openai_client_alone(
    base: str, items: int, lanes: int, delay_ms: int, rounds: int
) -> dict[str, Any]:
    """The floor under any ``llm`` batch here: the same chat completions sent by the ``openai``
    package's async client alone (one client, its retries off, ``lanes`` calls in flight), with
    no runtime, no ``llm`` library and no trace; best of ``rounds``. What the client costs per
    call bounds the efficiency of everything built on it."""
    import asyncio

    import openai

    async def batch() -> None:
        client = openai.AsyncOpenAI(api_key="unused", base_url=base + "/v1", max_retries=0)
        slots = asyncio.Semaphore(lanes)

        async def call(index: int) -> None:
            async with slots:
                await client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"item {index}"}]
                )

        try:
            await asyncio.gather(*(call(index) for index in range(items)))
        finally:
            await client.close()

    asyncio.run(batch())  # warm: imports and the first connections
    best_ms, best_cpu_ms = math.inf, math.inf
    for _ in range(rounds):
        cpu, started = time.process_time(), time.perf_counter()
        asyncio.run(batch())
        wall_ms = (time.perf_counter() - started) * 1000
        if wall_ms < best_ms:
            best_ms, best_cpu_ms = wall_ms, (time.process_time() - cpu) * 1000
    ideal_ms = math.ceil(items / lanes) * delay_ms
    return {
        "wall_ms": round(best_ms, 1),
        "efficiency": round(ideal_ms / best_ms, 3),
        "cpu_ms_per_item": round(best_cpu_ms / items, 3),
        "cpu_bound_efficiency": round(ideal_ms / best_cpu_ms, 3),
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
    server_cpu, client_cpus = cpu_split()
    everywhere = os.sched_getaffinity(0)
    with tempfile.TemporaryDirectory() as directory:
        os.environ["LLM_USER_PATH"] = str(Path(directory) / "llm-user")
        for items, lanes, delay_ms, kinds, lane_kinds in CASES_QUICK if quick else CASES_FULL:
            with answering_server(delay_ms, server_cpu) as base:
                os.sched_setaffinity(0, client_cpus)
                try:
                    register_model(Path(directory) / "llm-user", base)
                    for kind in (kind for kind in kinds if kind in nodes):
                        for lanes_kind in lane_kinds:
                            if lanes_kind in only_lanes:
                                measured = measure(
                                    kind, base, (items, lanes, delay_ms), lanes_kind,
                                    Path(directory), rounds,
                                )  # fmt: skip
                                if kind == "llm" and lanes_kind == "async":
                                    measured["openai_client_alone"] = openai_client_alone(
                                        base, items, lanes, delay_ms, rounds
                                    )
                                print(json.dumps(measured), file=sys.stderr, flush=True)
                                cases.append(measured)
                finally:
                    os.sched_setaffinity(0, everywhere)
    return {
        "benchmark": "io",
        "server_cpu": server_cpu,
        "client_cpus": client_cpus,
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
