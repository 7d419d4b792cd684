"""Sending encoded spans: what the environment asks for, failures as one line, secrets kept.

The spans a run exports, compared with its span table over every transport (and over the stock
exporter, the fallback), are in ``test_lean_tracer.py``; here are the settings that decide the
path, a backend that refuses, malformed headers and certificates, and that a header's value
never reaches a message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from otlp_receiver import GRPC, HTTP, OtlpReceiver, closed_port
from pflow_trace import api
from pflow_trace.api import TraceOptions
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.observe.export_settings import resolve_export_settings
from pflow_trace.observe.lean_export import ReadableSpanExporter
from pflow_trace.observe.otel import setup_tracing
from pflow_trace.observe.otlp_send import (
    GrpcSender,
    HttpSender,
    WireExporter,
    make_wire_exporter,
    parse_headers,
)

SECRET = "Bearer s3cr3t-token-99"
WORKFLOW = validate_workflow(
    {
        "ir_version": "0.1.0",
        "name": "send",
        "nodes": [
            {"id": "each", "type": "echo", "params": {"v": "${item}"}, "batch": {"items": [1, 2]}}
        ],
    }
)


def run_exporting(endpoint: str, tmp_path: Path, protocol: str = HTTP) -> api.TracedRun:
    options = TraceOptions(
        export=resolve_export_settings("otlp", endpoint, protocol, env={}),
        trace_file=str(tmp_path / "send.json"),
    )
    return api.run(WORKFLOW, {}, options)


def test_headers_are_name_value_pairs_percent_decoded_with_names_lower_cased() -> None:
    text = "Authorization=Bearer%20abc,x-Tenant = a=b ,, empty="
    assert parse_headers(text, "H") == (
        {"authorization": "Bearer abc", "x-tenant": "a=b", "empty": ""},
        None,
    )
    headers, problem = parse_headers(f"ok=1,{SECRET}", "OTEL_EXPORTER_OTLP_HEADERS")
    assert headers == {"ok": "1"}
    assert problem == "entry 2 of OTEL_EXPORTER_OTLP_HEADERS is not name=value"


@pytest.mark.parametrize(
    ("env", "chosen"),
    [
        ({}, "ours"),
        ({"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}, "ours"),
        ({"OTEL_EXPORTER_OTLP_COMPRESSION": "GZIP "}, "ours"),
        ({"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "none"}, "ours"),
        ({"OTEL_EXPORTER_OTLP_COMPRESSION": "deflate"}, "stock"),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "gzip",
                "OTEL_EXPORTER_OTLP_COMPRESSION": "?",
            },
            "ours",
        ),
        ({"OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER": "vault"}, "stock"),
        ({"OTEL_PYTHON_EXPORTER_OTLP_GRPC_CREDENTIAL_PROVIDER": "vault"}, "stock"),
    ],
)
@pytest.mark.parametrize("protocol", [HTTP, GRPC])
def test_settings_only_the_stock_exporter_knows_choose_it(
    env: dict[str, str], chosen: str, protocol: str
) -> None:
    settings = resolve_export_settings("otlp", "http://127.0.0.1:9", protocol, env={})
    exporter = make_wire_exporter(settings, resource=Any, scope=Any, env=env)  # type: ignore[arg-type]
    if chosen == "stock":
        assert exporter is None
        return
    assert isinstance(exporter, WireExporter)
    sender = exporter.sender
    assert isinstance(sender, GrpcSender if protocol == GRPC else HttpSender)
    assert sender.gzip == ("gzip" in str(env).lower())
    sender.shutdown()


def test_the_run_uses_the_stock_exporter_when_the_environment_asks_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = resolve_export_settings("otlp", "http://127.0.0.1:9", env={})
    ours = setup_tracing(settings)
    assert ours.guard is not None and isinstance(ours.guard.inner, WireExporter)
    ours.shutdown()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "deflate")
    stock = setup_tracing(settings)
    assert stock.guard is not None and isinstance(stock.guard.inner, ReadableSpanExporter)
    stock.shutdown()


def test_a_refusing_backend_is_one_line_with_its_status_and_without_the_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", f"authorization={SECRET}")
    with OtlpReceiver(HTTP, refuse_with=401) as receiver:
        outcome = run_exporting(receiver.endpoint, tmp_path)
        (sent,) = receiver.headers  # one chance: nothing is sent again after a failure
    assert sent["authorization"] == SECRET
    warning = outcome.export_warning or ""
    assert "the backend answered HTTP 401 Unauthorized" in warning
    assert warning.startswith(f"spans were not exported to {receiver.endpoint}/v1/traces: ")
    assert SECRET not in warning and "s3cr3t" not in warning


@pytest.mark.parametrize("protocol", [HTTP, GRPC])
def test_a_malformed_header_entry_is_named_by_position_never_by_value(
    protocol: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"tenant=a,{SECRET}")
    with OtlpReceiver(protocol) as receiver:
        outcome = run_exporting(receiver.endpoint, tmp_path, protocol)
        assert receiver.requests == []
    warning = outcome.export_warning or ""
    assert "entry 2 of OTEL_EXPORTER_OTLP_HEADERS is not name=value" in warning
    assert "s3cr3t" not in warning


@pytest.mark.parametrize(
    ("protocol", "reason"),
    [
        (HTTP, "invalid path: {path}"),
        (GRPC, "cannot read {path}: No such file or directory"),
    ],
)
def test_the_certificate_setting_is_used_and_a_missing_file_is_named(
    protocol: str, reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-such-ca.pem"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", str(missing))
    outcome = run_exporting(f"https://127.0.0.1:{closed_port()}", tmp_path, protocol)
    assert outcome.status == "success"
    assert reason.format(path=missing) in (outcome.export_warning or "")
