"""Where spans go: the exporter choice, the OTLP endpoint and protocol, the service name.

Command-line options win, then the standard ``OTEL_*`` environment variables, then defaults.
Endpoint rules follow the OTLP exporter specification: a signal-specific endpoint
(``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is used as given; a base endpoint (``--otlp-endpoint``
or ``OTEL_EXPORTER_OTLP_ENDPOINT``) gets ``/v1/traces`` appended for HTTP.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

from pflow_trace.errors import UsageError
from pflow_trace.text import terminal_safe

ExporterName = Literal["none", "console", "otlp"]
Protocol = Literal["http/protobuf", "grpc"]

EXPORTERS: tuple[str, ...] = ("none", "console", "otlp")
#: How a large batch's spans are exported (``observe/trace_shape.py``, ``docs/spans.md``).
TRACE_SHAPES: tuple[str, ...] = ("inline", "linked", "auto")
DEFAULT_TRACE_SHAPE = "auto"
PROTOCOLS: tuple[str, ...] = ("http/protobuf", "grpc")
DEFAULT_SERVICE_NAME = "pflow-trace"
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
#: Seconds one export may take; a down backend costs at most about this much at exit.
DEFAULT_EXPORT_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class ExportSettings:
    exporter: ExporterName
    protocol: Protocol
    endpoint: str | None
    service_name: str
    timeout_s: float = DEFAULT_EXPORT_TIMEOUT_S
    trace_shape: str = DEFAULT_TRACE_SHAPE


def _http_traces_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


def _check_url(endpoint: str) -> None:
    """A ``UsageError`` for an endpoint no exporter can parse (``http://[::1``, a bad port),
    raised here, before the exporter's own parser turns it into a traceback."""
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        shown = terminal_safe(endpoint)
        raise UsageError(f"OTLP endpoint '{shown}' is not a URL ({exc})") from None
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise UsageError(f"OTLP endpoint '{terminal_safe(endpoint)}' names no host")


def _resource_service_name(env: Mapping[str, str]) -> str | None:
    """``service.name`` from ``OTEL_RESOURCE_ATTRIBUTES`` (``k=v,k=v``, values percent-encoded)."""
    for pair in (env.get("OTEL_RESOURCE_ATTRIBUTES") or "").split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip() == "service.name" and value.strip():
            return unquote(value.strip())
    return None


def resolve_export_settings(
    exporter: str | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    service_name: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_EXPORT_TIMEOUT_S,
    trace_shape: str | None = None,
) -> ExportSettings:
    env = os.environ if env is None else env
    trace_shape = trace_shape or DEFAULT_TRACE_SHAPE
    if trace_shape not in TRACE_SHAPES:
        raise UsageError(
            f"unknown trace shape '{terminal_safe(trace_shape)}' "
            f"(choose from {', '.join(TRACE_SHAPES)})"
        )
    traces_endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or None
    base_endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
    if exporter is None:
        exporter = "otlp" if (endpoint or traces_endpoint or base_endpoint) else "none"
    if exporter not in EXPORTERS:
        raise UsageError(f"unknown exporter '{exporter}' (choose from {', '.join(EXPORTERS)})")
    protocol = (
        protocol
        or env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol not in PROTOCOLS:
        raise UsageError(f"unknown OTLP protocol '{protocol}' (choose from {', '.join(PROTOCOLS)})")
    resolved: str | None = None
    if exporter == "otlp":
        if endpoint:
            resolved = _http_traces_url(endpoint) if protocol == "http/protobuf" else endpoint
        elif traces_endpoint:
            resolved = traces_endpoint
        elif base_endpoint:
            resolved = (
                _http_traces_url(base_endpoint) if protocol == "http/protobuf" else base_endpoint
            )
        elif protocol == "http/protobuf":
            resolved = _http_traces_url(DEFAULT_HTTP_ENDPOINT)
        else:
            resolved = DEFAULT_GRPC_ENDPOINT
        if "://" not in resolved:
            raise UsageError(f"OTLP endpoint '{resolved}' needs a scheme, e.g. http://{resolved}")
        _check_url(resolved)
    name = (
        service_name
        or env.get("OTEL_SERVICE_NAME")
        or _resource_service_name(env)
        or DEFAULT_SERVICE_NAME
    )
    return ExportSettings(exporter, protocol, resolved, name, timeout_s, trace_shape)  # type: ignore[arg-type]
