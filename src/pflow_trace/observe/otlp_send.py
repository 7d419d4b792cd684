"""Sends spans encoded by :mod:`~pflow_trace.observe.otlp_wire` to an OTLP backend.

The stock OTLP exporters take SDK spans and encode them themselves, so bytes we have already
encoded cannot go through them (short of reaching into private attributes that change between
versions). Sending one request is small enough to do here: an HTTP ``POST`` of the protobuf
body (``requests``, as the stock HTTP exporter uses, so proxies and CA bundles behave the same),
or one gRPC unary call made through gRPC's public API with the bytes passed through as they are.

What the standard environment variables say is honoured, signal-specific first:
``OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`` (``name=value`` pairs, comma separated, percent-decoded;
header values are secrets and never appear in a message), ``..._COMPRESSION`` (``gzip`` or
``none``), and for TLS ``..._CERTIFICATE``, ``..._CLIENT_CERTIFICATE`` and ``..._CLIENT_KEY``.
As with the stock exporters we configure, our timeout wins over ``..._TIMEOUT``, and for gRPC
``http://`` means plain text. Anything else — another compression, or any of the Python SDK's
own ``OTEL_PYTHON_EXPORTER_OTLP_*`` settings such as a credential provider — makes
:func:`make_wire_exporter` return None, and the stock exporter is used instead.

Each export is one attempt (no retries): :class:`~pflow_trace.observe.otel.GuardedExporter`
gives it one chance under a deadline. A failure is raised as :class:`ExportFailed` with a
one-line reason.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from pflow_trace.observe.export_settings import ExportSettings
from pflow_trace.observe.otlp_wire import TraceRequestEncoder
from pflow_trace.text import terminal_safe
from pflow_trace.version import __version__

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

GRPC_EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
USER_AGENT = f"pflow-trace/{__version__}"
#: Settings only the stock exporters understand (credential providers, retry codes...).
_STOCK_ONLY_PREFIX = "OTEL_PYTHON_EXPORTER_OTLP_"
_NOT_RUNNING = "could not connect to the backend (is it running?)"


class ExportFailed(Exception):
    """An export the backend did not take; the message is one line, safe to print."""


def _setting(env: Mapping[str, str], name: str) -> str | None:
    """``OTEL_EXPORTER_OTLP_TRACES_<name>``, else ``OTEL_EXPORTER_OTLP_<name>``, else None."""
    return env.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or env.get(f"OTEL_EXPORTER_OTLP_{name}")


def _setting_name(env: Mapping[str, str], name: str) -> str:
    traces = f"OTEL_EXPORTER_OTLP_TRACES_{name}"
    return traces if env.get(traces) else f"OTEL_EXPORTER_OTLP_{name}"


def parse_headers(text: str, source: str) -> tuple[dict[str, str], str | None]:
    """Headers from ``name=value,name=value`` (percent-encoded; names lower-cased), and a
    description of the first entry that is not ``name=value`` — by position, never by value."""
    headers: dict[str, str] = {}
    for position, entry in enumerate(text.split(","), start=1):
        if not entry.strip():
            continue
        name, sep, value = entry.partition("=")
        name = unquote(name).strip().lower()
        if not sep or not name:
            return headers, f"entry {position} of {source} is not name=value"
        headers[name] = unquote(value).strip()
    return headers, None


class _Sender:
    """What the two transports share: headers, compression, and scrubbing secrets."""

    def __init__(self, endpoint: str, env: Mapping[str, str], timeout_s: float) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.gzip = (_setting(env, "COMPRESSION") or "").strip().lower() == "gzip"
        self.headers, self.problem = parse_headers(
            _setting(env, "HEADERS") or "", _setting_name(env, "HEADERS")
        )

    def check(self) -> None:
        if self.problem is not None:
            raise ExportFailed(self.problem)

    def safe_reason(self, exc: BaseException) -> str:
        """The exception as one line, unless it quotes a header value (then only its type)."""
        text = f"{type(exc).__name__}: {exc}"
        if any(value and value in text for value in self.headers.values()):
            return type(exc).__name__
        return terminal_safe(text)

    def shutdown(self) -> None:
        return None


class HttpSender(_Sender):
    """OTLP/HTTP: ``POST`` the body as ``application/x-protobuf`` (gzipped if asked)."""

    def __init__(self, endpoint: str, env: Mapping[str, str], timeout_s: float) -> None:
        super().__init__(endpoint, env, timeout_s)
        import requests

        self._requests = requests
        self._session = requests.Session()
        self._request_headers = {
            "content-type": "application/x-protobuf",
            "user-agent": USER_AGENT,
            **({"content-encoding": "gzip"} if self.gzip else {}),
            **self.headers,
        }
        self._verify: bool | str = _setting(env, "CERTIFICATE") or True
        client_certificate = _setting(env, "CLIENT_CERTIFICATE")
        client_key = _setting(env, "CLIENT_KEY")
        self._cert: Any = (
            (client_certificate, client_key)
            if client_certificate and client_key
            else client_certificate
        )

    def send(self, body: bytes) -> None:
        self.check()
        requests = self._requests
        try:
            response = self._session.post(
                self.endpoint,
                data=gzip.compress(body, compresslevel=6) if self.gzip else body,
                headers=self._request_headers,
                timeout=self.timeout_s,
                verify=self._verify,
                cert=self._cert,
                # A redirect is not followed: OTLP/HTTP success is a 2xx from the endpoint
                # named, and requests would re-send the spans (and headers) wherever told.
                allow_redirects=False,
            )
        except requests.exceptions.Timeout:
            raise ExportFailed(f"the backend did not answer within {self.timeout_s:g}s") from None
        except requests.exceptions.SSLError:
            raise ExportFailed(
                "the TLS connection failed (see OTEL_EXPORTER_OTLP_CERTIFICATE)"
            ) from None
        except requests.exceptions.ConnectionError:
            raise ExportFailed(_NOT_RUNNING) from None
        except Exception as exc:  # a bad certificate path, a header the library refuses...
            raise ExportFailed(self.safe_reason(exc)) from None
        if not 200 <= response.status_code < 300:
            phrase = terminal_safe(response.reason or "")[:80]
            reason = f"the backend answered HTTP {response.status_code} {phrase}".strip()
            if 300 <= response.status_code < 400:
                reason += " (a redirect; redirects are not followed, give the final endpoint)"
            raise ExportFailed(reason)

    def shutdown(self) -> None:
        self._session.close()


class GrpcSender(_Sender):
    """OTLP/gRPC: one unary ``TraceService/Export`` call carrying the encoded request."""

    def __init__(self, endpoint: str, env: Mapping[str, str], timeout_s: float) -> None:
        super().__init__(endpoint, env, timeout_s)
        import grpc

        self._grpc = grpc
        target = urlsplit(endpoint).netloc or endpoint
        options = [("grpc.primary_user_agent", USER_AGENT)]
        compression = grpc.Compression.Gzip if self.gzip else None
        if endpoint.startswith("http://"):
            self._channel = grpc.insecure_channel(target, options, compression)
        else:
            try:
                credentials = grpc.ssl_channel_credentials(
                    root_certificates=_read(_setting(env, "CERTIFICATE")),
                    private_key=_read(_setting(env, "CLIENT_KEY")),
                    certificate_chain=_read(_setting(env, "CLIENT_CERTIFICATE")),
                )
            except ExportFailed as exc:  # reported by the first export, as one line
                self.problem = self.problem or str(exc)
                credentials = grpc.ssl_channel_credentials()
            self._channel = grpc.secure_channel(target, credentials, options, compression)
        # No serializers: the request is already bytes and the reply is not needed.
        self._export = self._channel.unary_unary(GRPC_EXPORT_METHOD)
        self._metadata = tuple(self.headers.items()) or None

    def send(self, body: bytes) -> None:
        self.check()
        grpc = self._grpc
        try:
            self._export(body, timeout=self.timeout_s, metadata=self._metadata)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            if code is grpc.StatusCode.UNAVAILABLE:
                raise ExportFailed(_NOT_RUNNING) from None
            if code is grpc.StatusCode.DEADLINE_EXCEEDED:
                raise ExportFailed(
                    f"the backend did not answer within {self.timeout_s:g}s"
                ) from None
            name = code.name if code is not None else "unknown"
            raise ExportFailed(f"the backend answered gRPC status {name}") from None
        except Exception as exc:  # invalid metadata and the like
            raise ExportFailed(self.safe_reason(exc)) from None

    def shutdown(self) -> None:
        self._channel.close()


def _read(path: str | None) -> bytes | None:
    """A certificate or key file's bytes (an unreadable one fails the exports, by its path)."""
    if not path:
        return None
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise ExportFailed(f"cannot read {path}: {exc.strerror}") from None


class WireExporter(SpanExporter):
    """An OTLP exporter that encodes with :class:`TraceRequestEncoder` and sends the bytes.

    Takes lean spans and SDK ``ReadableSpan``\\ s alike (the export queue hands it both).
    """

    def __init__(self, encoder: TraceRequestEncoder, sender: HttpSender | GrpcSender) -> None:
        self.encoder = encoder
        self.sender = sender

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.sender.send(self.encoder.encode(spans))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.sender.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def wire_export_supported(settings: ExportSettings, env: Mapping[str, str]) -> bool:
    """Whether this module covers everything the environment asks of the exporter."""
    if any(name.startswith(_STOCK_ONLY_PREFIX) for name in env):
        return False
    compression = (_setting(env, "COMPRESSION") or "none").strip().lower()
    return compression in ("none", "gzip") and settings.endpoint is not None


def make_wire_exporter(
    settings: ExportSettings,
    resource: Resource,
    scope: InstrumentationScope,
    env: Mapping[str, str],
) -> WireExporter | None:
    """Our OTLP exporter for ``settings``, or None when the stock one must be used."""
    if not wire_export_supported(settings, env):
        return None
    assert settings.endpoint is not None
    sender_type = GrpcSender if settings.protocol == "grpc" else HttpSender
    sender = sender_type(settings.endpoint, env, settings.timeout_s)
    return WireExporter(TraceRequestEncoder(resource, scope), sender)
