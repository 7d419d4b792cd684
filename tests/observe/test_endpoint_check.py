"""An OTLP endpoint no exporter can parse is a usage error naming it, before any export."""

from __future__ import annotations

import re

import pytest

from pflow_trace.errors import UsageError
from pflow_trace.observe.export_settings import resolve_export_settings


@pytest.mark.parametrize(
    ("endpoint", "protocol", "expected"),
    [
        ("http://[::1", "grpc", "is not a URL (Invalid IPv6 URL)"),
        ("http://[::1", "http/protobuf", "is not a URL"),
        ("http://host:99999", "grpc", "is not a URL (Port out of range"),
        ("http://", "grpc", "names no host"),
    ],
)
def test_a_malformed_endpoint_is_one_usage_error(
    endpoint: str, protocol: str, expected: str
) -> None:
    with pytest.raises(UsageError, match=re.escape(expected)):
        resolve_export_settings("otlp", endpoint, protocol, env={})


def test_good_endpoints_pass() -> None:
    for endpoint in ("http://[::1]:4317", "https://collector.example:443", "http://localhost"):
        settings = resolve_export_settings("otlp", endpoint, "grpc", env={})
        assert settings.endpoint == endpoint
