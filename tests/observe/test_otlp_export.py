"""End to end: ``pflow-trace run`` in a subprocess exports its spans to a real OTLP receiver.

The receiver (:mod:`otlp_receiver`) listens on loopback and decodes every request with
``opentelemetry-proto``, for both HTTP/protobuf and gRPC. Also here: a backend that is down,
W3C trace context in and out (``TRACEPARENT``), lazy exporter imports, and the endpoint rules of
:func:`resolve_export_settings`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from otlp_receiver import GRPC, HTTP, OtlpReceiver, ReceivedSpan, closed_port
from pflow_trace.errors import UsageError
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.export_settings import resolve_export_settings
from subprocess_env import clean_env

PROTOCOLS = [HTTP, GRPC]

#: A plain node, a parallel batch of three and a shell node: 23 spans.
WORKFLOW = {
    "ir_version": "0.1.0",
    "name": "export-demo",
    "nodes": [
        {"id": "hello", "type": "echo", "params": {"value": "hi"}},
        {
            "id": "fan",
            "type": "echo",
            "params": {"value": "${item}"},
            "batch": {"items": [1, 2, 3], "parallel": True},
        },
        {"id": "sh", "type": "shell", "params": {"command": "printf '%s' \"$TRACEPARENT\""}},
    ],
}
EXPECTED_LAYER_COUNTS = {
    conv.LAYER_WORKFLOW: 1,
    conv.LAYER_INSTRUMENTED: 3,
    conv.LAYER_BATCH: 1,
    conv.LAYER_BATCH_ITEM: 3,
    conv.LAYER_NAMESPACED: 5,
    conv.LAYER_TEMPLATE: 5,
    conv.LAYER_NODE: 5,
}
EXPECTED_SPANS = sum(EXPECTED_LAYER_COUNTS.values())

#: The layer a span's parent must have, by the span's own layer.
PARENT_LAYERS = {
    conv.LAYER_INSTRUMENTED: {conv.LAYER_WORKFLOW},
    conv.LAYER_BATCH: {conv.LAYER_INSTRUMENTED},
    conv.LAYER_BATCH_ITEM: {conv.LAYER_BATCH},
    conv.LAYER_NAMESPACED: {conv.LAYER_INSTRUMENTED, conv.LAYER_BATCH_ITEM},
    conv.LAYER_TEMPLATE: {conv.LAYER_NAMESPACED},
    conv.LAYER_NODE: {conv.LAYER_TEMPLATE},
}

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"


# -- helpers ---------------------------------------------------------------------------------------


def write_workflow(directory: Path, workflow: dict[str, Any] | None = None) -> Path:
    path = directory / "workflow.json"
    path.write_text(json.dumps(workflow or WORKFLOW), encoding="utf-8")
    return path


def run_cli(
    directory: Path, *args: str, env: dict[str, str] | None = None, workflow: Path | None = None
) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "pflow_trace",
        "run",
        str(workflow or write_workflow(directory)),
        "--trace-file",
        str(directory / "trace.json"),
        *args,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, env=env or clean_env(), timeout=60, check=False
    )


def assert_complete_tree(spans: list[ReceivedSpan]) -> ReceivedSpan:
    """One trace, one root, every other span's parent present and of the right layer."""
    assert Counter(span.layer for span in spans) == EXPECTED_LAYER_COUNTS
    assert len({span.span_id for span in spans}) == len(spans)
    assert len({span.trace_id for span in spans}) == 1
    by_id = {span.span_id: span for span in spans}
    roots = [span for span in spans if span.layer == conv.LAYER_WORKFLOW]
    (root,) = roots
    for span in spans:
        if span is root:
            continue
        assert span.parent_span_id in by_id, f"{span.name} has a parent that was not exported"
        parent = by_id[span.parent_span_id]
        assert parent.layer in PARENT_LAYERS[span.layer], (span.name, parent.name)
        if parent is not root:
            assert parent.attributes[conv.ATTR_NODE_ID] == span.attributes[conv.ATTR_NODE_ID]
    return root


def the_one_warning(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr
    assert len(lines) == 1, f"expected exactly one warning line, got:\n{stderr}"
    assert lines[0].startswith("warning:")
    return lines[0]


# -- export to a live receiver ---------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_run_exports_every_span_with_its_parent(protocol: str, tmp_path: Path) -> None:
    env = clean_env(OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test,team=observability")
    with OtlpReceiver(protocol) as receiver:
        completed = run_cli(
            tmp_path,
            "--exporter",
            "otlp",
            "--otlp-protocol",
            protocol,
            "--otlp-endpoint",
            receiver.endpoint,
            "--service-name",
            "export-test",
            env=env,
        )
        spans = receiver.wait_for_spans(EXPECTED_SPANS)

    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    assert len(spans) == EXPECTED_SPANS
    root = assert_complete_tree(spans)
    assert root.parent_span_id is None
    assert root.attributes[conv.ATTR_WORKFLOW_NAME] == "export-demo"
    assert root.attributes[conv.ATTR_FINAL_STATUS] == "success"
    assert f"trace id: {root.trace_id}" in completed.stdout
    for span in spans:
        assert span.resource["service.name"] == "export-test"
        assert span.resource["deployment.environment"] == "test"
        assert span.resource["team"] == "observability"
        assert span.scope == conv.INSTRUMENTATION_NAME
    trace = json.loads((tmp_path / "trace.json").read_text(encoding="utf-8"))
    assert trace["otel"]["trace_id"] == root.trace_id
    assert trace["otel"]["span_id"] == root.span_id


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_otel_environment_variables_alone_turn_export_on(protocol: str, tmp_path: Path) -> None:
    with OtlpReceiver(protocol) as receiver:
        env = clean_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
            OTEL_SERVICE_NAME="from-env",
        )
        completed = run_cli(tmp_path, env=env)
        spans = receiver.wait_for_spans(EXPECTED_SPANS)

    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    assert_complete_tree(spans)
    assert {span.resource["service.name"] for span in spans} == {"from-env"}


def test_a_failed_run_still_exports_every_span_with_error_statuses(tmp_path: Path) -> None:
    workflow = {
        "ir_version": "0.1.0",
        "name": "fails",
        "nodes": [
            {
                "id": "each",
                "type": "echo",
                "params": {"value": "${item}", "fail_if": 2, "message": "two is bad"},
                "batch": {"items": [1, 2, 3]},
            }
        ],
    }
    with OtlpReceiver(HTTP) as receiver:
        completed = run_cli(
            tmp_path,
            "--exporter",
            "otlp",
            "--otlp-endpoint",
            receiver.endpoint,
            workflow=write_workflow(tmp_path, workflow),
        )
        spans = receiver.wait_for_spans(11)

    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    # root, instrumented, batch, then two items (fail_fast stops before the third) of four each
    assert len(spans) == 11
    errored = Counter(span.layer for span in spans if span.status_code == "ERROR")
    assert errored == {
        "workflow": 1,
        "instrumented": 1,
        "batch": 1,
        "batch.item": 1,
        "namespaced": 1,
        "template": 1,
        "node": 1,
    }
    (node,) = [s for s in spans if s.layer == "node" and s.status_code == "ERROR"]
    assert node.status_message == "two is bad"
    assert [(event.name, event.attributes["exception.message"]) for event in node.events] == [
        ("exception", "two is bad")
    ]


def test_ctrl_c_still_flushes_every_started_span(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    workflow = {
        "ir_version": "0.1.0",
        "name": "interrupted",
        "nodes": [
            {"id": "mark", "type": "shell", "params": {"command": f"touch '{marker}'"}},
            {"id": "wait", "type": "echo", "params": {"delay_ms": 20000}},
        ],
    }
    with OtlpReceiver(HTTP) as receiver:
        command = [
            sys.executable,
            "-m",
            "pflow_trace",
            "run",
            str(write_workflow(tmp_path, workflow)),
            "--no-trace-file",
            "--exporter",
            "otlp",
            "--otlp-endpoint",
            receiver.endpoint,
        ]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env()
        )
        try:
            deadline = time.monotonic() + 20
            while not marker.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert marker.exists(), "the run never reached its first node"
            time.sleep(0.3)  # well inside the 20 s sleep of the second node
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        spans = receiver.wait_for_spans(9)

    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    layers = Counter(span.layer for span in spans)
    assert layers == {"workflow": 1, "instrumented": 2, "namespaced": 2, "template": 2, "node": 2}
    (root,) = [span for span in spans if span.layer == conv.LAYER_WORKFLOW]
    assert root.attributes[conv.ATTR_FINAL_STATUS] == "interrupted"
    assert root.status_code == "ERROR"
    by_id = {span.span_id: span for span in spans}
    assert all(span.parent_span_id in by_id for span in spans if span is not root)


# -- backend down ----------------------------------------------------------------------------------


def timed_run(directory: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    completed = run_cli(directory, *args)
    return completed, time.monotonic() - started


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_down_backend_costs_one_warning_line_and_the_trace_file_is_kept(
    protocol: str, tmp_path: Path
) -> None:
    baseline, baseline_s = timed_run(tmp_path, "--exporter", "none")
    assert baseline.returncode == 0, baseline.stderr

    endpoint = f"http://127.0.0.1:{closed_port()}"
    completed, elapsed_s = timed_run(
        tmp_path, "--exporter", "otlp", "--otlp-protocol", protocol, "--otlp-endpoint", endpoint
    )

    assert completed.returncode == 0
    assert "status: success" in completed.stdout
    # What it cost is reported, not judged (a shared machine's timings are noise); run_cli's
    # subprocess timeout is the hang detector.
    extra_s = elapsed_s - baseline_s
    print(f"{protocol}: backend down added {extra_s:.2f}s ({elapsed_s:.2f}s vs {baseline_s:.2f}s)")
    warning = the_one_warning(completed.stderr)
    assert "not exported" in warning
    assert str(tmp_path / "trace.json") in warning
    assert (tmp_path / "trace.json").is_file()


# -- W3C trace context -----------------------------------------------------------------------------


def test_traceparent_joins_the_callers_trace_and_reaches_the_shell_node(tmp_path: Path) -> None:
    traceparent = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"
    workflow = {
        "ir_version": "0.1.0",
        "name": "joined",
        "nodes": [
            {
                "id": "sh",
                "type": "shell",
                "params": {"command": 'printf \'%s\\n%s\' "$TRACEPARENT" "$TRACESTATE"'},
            }
        ],
    }
    with OtlpReceiver(HTTP) as receiver:
        env = clean_env(TRACEPARENT=traceparent, TRACESTATE="vendor=opaque")
        completed = run_cli(
            tmp_path,
            "--exporter",
            "otlp",
            "--otlp-endpoint",
            receiver.endpoint,
            "--output-format",
            "json",
            env=env,
            workflow=write_workflow(tmp_path, workflow),
        )
        spans = receiver.wait_for_spans(5)

    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["trace_id"] == TRACE_ID
    (root,) = [span for span in spans if span.layer == conv.LAYER_WORKFLOW]
    assert root.trace_id == TRACE_ID
    assert root.parent_span_id == PARENT_SPAN_ID
    assert {span.trace_id for span in spans} == {TRACE_ID}
    trace = json.loads((tmp_path / "trace.json").read_text(encoding="utf-8"))
    assert trace["otel"]["trace_id"] == TRACE_ID
    assert trace["otel"]["parent_span_id"] == PARENT_SPAN_ID

    (node_span,) = [span for span in spans if span.layer == conv.LAYER_NODE]
    assert node_span.attributes[conv.ATTR_NODE_ID] == "sh"
    child_traceparent, child_tracestate = result["nodes"]["sh"]["stdout"].split("\n")
    assert child_traceparent == f"00-{TRACE_ID}-{node_span.span_id}-01"
    assert child_tracestate == "vendor=opaque"


def test_the_shell_child_sees_its_node_span_even_without_an_exporter(tmp_path: Path) -> None:
    completed = run_cli(tmp_path, "--exporter", "none", "--output-format", "json")

    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    version, trace_id, span_id, flags = result["nodes"]["sh"]["stdout"].split("-")
    assert (version, trace_id) == ("00", result["trace_id"])
    assert int(flags, 16) & 0x01  # sampled
    trace = json.loads((tmp_path / "trace.json").read_text(encoding="utf-8"))
    (shell_event,) = [event for event in trace["nodes"] if event["node_id"] == "sh"]
    # The trace file records the Instrumented span; the child's parent is the node span below it.
    assert span_id not in (shell_event["span_id"], trace["otel"]["span_id"])


# -- lazy imports ----------------------------------------------------------------------------------


def test_help_imports_neither_grpc_nor_the_otlp_exporters() -> None:
    probe = textwrap.dedent(
        """
        import sys
        from pflow_trace.cli.entry import main
        for argv in (["--help"], ["run", "--help"]):
            try:
                main(argv)
            except SystemExit:
                pass
        heavy = sorted(
            name for name in sys.modules
            if name == "grpc" or name.startswith(("grpc.", "opentelemetry.exporter"))
        )
        print(",".join(heavy), file=sys.stderr)
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=clean_env(), timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    assert "--exporter" in completed.stdout
    assert completed.stderr.strip() == ""


# -- endpoint resolution ---------------------------------------------------------------------------


def test_default_exporter_is_none_without_an_endpoint_and_otlp_with_one() -> None:
    assert resolve_export_settings(env={}).exporter == "none"
    assert (
        resolve_export_settings(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}).exporter
        == "otlp"
    )
    traces_only = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}
    assert resolve_export_settings(env=traces_only).exporter == "otlp"
    assert resolve_export_settings("none", env=traces_only).endpoint is None


@pytest.mark.parametrize(
    ("endpoint", "env", "expected"),
    [
        ("http://c:4318", {}, "http://c:4318/v1/traces"),
        ("http://c:4318/", {}, "http://c:4318/v1/traces"),
        ("http://c:4318/prefix", {}, "http://c:4318/prefix/v1/traces"),
        (None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "http://c:4318/v1/traces"),
        (None, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:9/custom"}, "http://c:9/custom"),
        (
            None,
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://base:4318",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4318/t",
            },
            "http://traces:4318/t",
        ),
        (
            "http://flag:4318",
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://env/t"},
            "http://flag:4318/v1/traces",
        ),
        (None, {}, "http://localhost:4318/v1/traces"),
    ],
)
def test_http_endpoint_resolution(endpoint: str | None, env: dict[str, str], expected: str) -> None:
    settings = resolve_export_settings("otlp", endpoint, env=env)
    assert settings.protocol == "http/protobuf"
    assert settings.endpoint == expected


def test_grpc_endpoints_are_used_as_given_and_protocol_comes_from_the_environment() -> None:
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}
    settings = resolve_export_settings(env=env)
    assert (settings.exporter, settings.protocol, settings.endpoint) == (
        "otlp",
        "grpc",
        "http://c:4317",
    )
    default = resolve_export_settings("otlp", env={"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert default.endpoint == "http://localhost:4317"
    flag_wins = resolve_export_settings("otlp", protocol="http/protobuf", env=env)
    assert (flag_wins.protocol, flag_wins.endpoint) == ("http/protobuf", "http://c:4317/v1/traces")


def test_service_name_comes_from_the_flag_then_the_environment_then_the_default() -> None:
    env = {"OTEL_SERVICE_NAME": "from-env"}
    assert resolve_export_settings(service_name="flag", env=env).service_name == "flag"
    assert resolve_export_settings(env=env).service_name == "from-env"
    assert resolve_export_settings(env={}).service_name == "pflow-trace"
    attributes = {"OTEL_RESOURCE_ATTRIBUTES": "team=a,service.name=from%20attributes"}
    assert resolve_export_settings(env=attributes).service_name == "from attributes"
    assert resolve_export_settings(env={**attributes, **env}).service_name == "from-env"


@pytest.mark.parametrize(
    "arguments",
    [
        {"exporter": "jaeger"},
        {"exporter": "otlp", "protocol": "http/json"},
        {"exporter": "otlp", "endpoint": "localhost:4318"},
    ],
)
def test_bad_settings_are_usage_errors(arguments: dict[str, str]) -> None:
    with pytest.raises(UsageError):
        resolve_export_settings(env={}, **arguments)
