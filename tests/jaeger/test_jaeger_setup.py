"""The Jaeger setup itself: it listens on loopback only, on the ports start.sh printed, and the
benchmark that measures it runs.

The running Jaeger's sockets are read from ``/proc`` (its pid is in the file start.sh names in
``PFLOW_TRACE_JAEGER_PIDFILE``): every listening socket of the process must be bound to
127.0.0.1, and the ports the tests were given must be among them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from subprocess_env import clean_env

from .jaeger_api import JaegerApi

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "dashboards" / "jaeger" / "config.yaml"
BENCHMARK = ROOT / "benchmarks" / "bench_jaeger.py"
LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp
_ENDPOINT = re.compile(r'^\s*endpoint:\s*"?([^":]+):', re.MULTILINE)


def test_every_endpoint_in_the_config_is_loopback() -> None:
    hosts = _ENDPOINT.findall(CONFIG.read_text(encoding="utf-8"))
    assert len(hosts) == 5  # query HTTP and gRPC, health check, OTLP gRPC and HTTP
    assert set(hosts) == {"127.0.0.1"}


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _listening(pid: int) -> list[tuple[str, int]]:
    """(address as /proc writes it, port) of every TCP socket ``pid`` listens on."""
    inodes = _socket_inodes(pid)
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == LISTEN and inode in inodes:
                address, port = local.split(":")
                found.append((address, int(port, 16)))
    return found


def test_jaeger_listens_on_loopback_only(jaeger: JaegerApi) -> None:
    pid_file = os.environ.get("PFLOW_TRACE_JAEGER_PIDFILE")
    if not pid_file or not Path(pid_file).is_file():
        pytest.skip("Jaeger was not started by dashboards/jaeger/start.sh (no pid file)")
    pid = int(Path(pid_file).read_text().strip())
    listening = _listening(pid)
    assert {address for address, _ in listening} == {"0100007F"}  # 127.0.0.1, little-endian
    ports = {port for _, port in listening}
    for url in (jaeger.url, jaeger.otlp_http, jaeger.otlp_grpc):
        assert urlsplit(url).port in ports
    assert len(ports) == 5


def test_the_benchmark_without_jaeger_says_how_to_start_it() -> None:
    completed = subprocess.run(
        [sys.executable, str(BENCHMARK), "--items", "5"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        "error: PFLOW_TRACE_JAEGER_URL, PFLOW_TRACE_JAEGER_OTLP_HTTP, PFLOW_TRACE_JAEGER_PIDFILE"
        ' not set; start Jaeger with: eval "$(bash dashboards/jaeger/start.sh)"'
    ]


def test_the_benchmark_counts_every_span_in_jaeger(jaeger: JaegerApi) -> None:
    settings = {
        key: value for key, value in os.environ.items() if key.startswith("PFLOW_TRACE_JAEGER_")
    }
    if "PFLOW_TRACE_JAEGER_PIDFILE" not in settings:
        pytest.skip("Jaeger was not started by dashboards/jaeger/start.sh (no pid file)")
    completed = subprocess.run(
        [sys.executable, str(BENCHMARK), "--items", "20", "--repeats", "1"],
        capture_output=True,
        text=True,
        env=clean_env(**settings),
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout[completed.stdout.index("{") :])
    assert report["spans_recorded"] == report["spans_in_run_trace"] == 4 * 20 + 3
    assert report["chunk_traces"] == 0  # 20 items stay inline under the auto shape
    assert report["get_trace_bytes"] > 0
    assert report["jaeger_mib_stored"]["VmRSS"] > 0
