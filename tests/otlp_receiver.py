"""A small OTLP trace receiver on loopback, for end-to-end tests of the exporter.

It speaks both transports the CLI can use, so a test sends real requests over a real socket and
reads back what a collector would have seen:

- ``http/protobuf``: ``POST /v1/traces`` with an ``application/x-protobuf`` body (optionally
  gzip- or deflate-compressed), answered with an empty ``ExportTraceServiceResponse``;
- ``grpc``: the ``opentelemetry.proto.collector.trace.v1.TraceService/Export`` method.

Every request is decoded with ``opentelemetry-proto`` and flattened into :class:`ReceivedSpan`
records (resource spans → scope spans → spans, each carrying its resource's attributes); the
headers (HTTP) or metadata (gRPC) of each request are kept too. An HTTP receiver can be told to
refuse every request with a status of its choosing. The receiver binds only loopback addresses,
on a port the OS picks.
"""

from __future__ import annotations

import gzip
import ipaddress
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

HTTP = "http/protobuf"
GRPC = "grpc"
TRACES_PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"

#: Protobuf status codes by name, as the SDK's ``StatusCode`` spells them.
STATUS_NAMES = {
    Status.STATUS_CODE_UNSET: "UNSET",
    Status.STATUS_CODE_OK: "OK",
    Status.STATUS_CODE_ERROR: "ERROR",
}


def any_value(value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as the Python value it was made from."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_dict(value.kvlist_value.values)
    return getattr(value, kind)


def attributes_dict(pairs: Any) -> dict[str, Any]:
    return {pair.key: any_value(pair.value) for pair in pairs}


def _hex(raw: bytes) -> str | None:
    return raw.hex() if raw and any(raw) else None


@dataclass(frozen=True)
class ReceivedEvent:
    name: str
    attributes: dict[str, Any]
    time_ns: int


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the backend saw it; ids are lower-case hex, as in the trace file."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: str
    status_message: str
    events: tuple[ReceivedEvent, ...]
    resource: dict[str, Any]
    scope: str

    @property
    def layer(self) -> Any:
        return self.attributes.get("pflow.layer")

    @classmethod
    def from_proto(cls, span: Span, resource: dict[str, Any], scope: str) -> ReceivedSpan:
        return cls(
            name=span.name,
            trace_id=span.trace_id.hex(),
            span_id=span.span_id.hex(),
            parent_span_id=_hex(span.parent_span_id),
            start_ns=span.start_time_unix_nano,
            end_ns=span.end_time_unix_nano,
            attributes=attributes_dict(span.attributes),
            status_code=STATUS_NAMES.get(span.status.code, str(span.status.code)),
            status_message=span.status.message,
            events=tuple(
                ReceivedEvent(event.name, attributes_dict(event.attributes), event.time_unix_nano)
                for event in span.events
            ),
            resource=resource,
            scope=scope,
        )


def flatten(request: trace_service_pb2.ExportTraceServiceRequest) -> list[ReceivedSpan]:
    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = attributes_dict(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.name
            spans.extend(
                ReceivedSpan.from_proto(span, resource, scope) for span in scope_spans.spans
            )
    return spans


@dataclass
class _Collected:
    """What the receiver has seen; shared by the transport threads."""

    requests: list[trace_service_pb2.ExportTraceServiceRequest] = field(default_factory=list)
    #: Each request's HTTP headers or gRPC metadata, names lower-cased (refused ones too).
    headers: list[dict[str, str]] = field(default_factory=list)
    spans: list[ReceivedSpan] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def add(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest | None,
        headers: dict[str, str],
    ) -> None:
        """A request that arrived (``request`` None: refused, and only its headers kept)."""
        with self.lock:
            self.headers.append(headers)
            if request is None:
                return
            self.requests.append(request)
            self.spans.extend(flatten(request))
            self.lock.notify_all()


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


class _HttpHandler(BaseHTTPRequestHandler):
    server: _HttpServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        if self.server.refuse_with is not None:
            self.server.collected.add(None, headers)
            self._reply(self.server.refuse_with, b"refused", "text/plain")
            return
        if self.path != TRACES_PATH:
            self._reply(404, b"not found", "text/plain")
            return
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != PROTOBUF:
            self._reply(415, b"expected application/x-protobuf", "text/plain")
            return
        request = trace_service_pb2.ExportTraceServiceRequest()
        try:
            request.ParseFromString(_decompress(body, self.headers.get("Content-Encoding") or ""))
        except Exception:
            self._reply(400, b"undecodable request", "text/plain")
            return
        self.server.collected.add(request, headers)
        response = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self._reply(200, response, PROTOBUF)

    def _reply(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        return None


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], collected: _Collected, refuse_with: int | None
    ) -> None:
        super().__init__(address, _HttpHandler)
        self.collected = collected
        self.refuse_with = refuse_with


def _require_loopback(host: str) -> None:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the test receiver binds loopback addresses only, not {host}")


class OtlpReceiver:
    """A running receiver; use it as a context manager.

    >>> with OtlpReceiver("grpc") as receiver:  # doctest: +SKIP
    ...     run_cli("--otlp-endpoint", receiver.endpoint)
    ...     spans = receiver.wait_for_spans(12)
    """

    def __init__(
        self, protocol: str = HTTP, host: str = "127.0.0.1", refuse_with: int | None = None
    ) -> None:
        if protocol not in (HTTP, GRPC):
            raise ValueError(f"unknown protocol {protocol!r}")
        if refuse_with is not None and protocol != HTTP:
            raise ValueError("only the HTTP receiver refuses requests")
        _require_loopback(host)
        self.protocol = protocol
        self.host = host
        #: An HTTP status to answer every request with, keeping nothing (None: accept).
        self.refuse_with = refuse_with
        self.port = 0
        self._collected = _Collected()
        self._http: _HttpServer | None = None
        self._http_thread: threading.Thread | None = None
        self._grpc: Any = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> OtlpReceiver:
        if self.protocol == HTTP:
            self._http = _HttpServer((self.host, 0), self._collected, self.refuse_with)
            self.port = self._http.server_address[1]
            self._http_thread = threading.Thread(
                target=self._http.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="otlp-http-receiver",
                daemon=True,
            )
            self._http_thread.start()
        else:
            self._grpc = self._start_grpc()
        return self

    def _start_grpc(self) -> Any:
        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        collected = self._collected

        class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                metadata = {item.key: item.value for item in context.invocation_metadata()}
                collected.add(request, metadata)
                return trace_service_pb2.ExportTraceServiceResponse()

        server = grpc.server(ThreadPoolExecutor(max_workers=4, thread_name_prefix="otlp-grpc"))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), server)
        self.port = server.add_insecure_port(f"{self.host}:0")
        if not self.port:
            raise OSError(f"could not bind a gRPC port on {self.host}")
        server.start()
        return server

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._grpc is not None:
            self._grpc.stop(grace=None).wait(5)
            self._grpc = None

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what arrived --------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The base endpoint to give the exporter (the HTTP exporter appends ``/v1/traces``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._collected.lock:
            return list(self._collected.spans)

    @property
    def requests(self) -> list[trace_service_pb2.ExportTraceServiceRequest]:
        with self._collected.lock:
            return list(self._collected.requests)

    @property
    def headers(self) -> list[dict[str, str]]:
        """Each request's headers (HTTP) or metadata (gRPC), in the order they arrived."""
        with self._collected.lock:
            return list(self._collected.headers)

    def wait_for_spans(self, count: int, timeout_s: float = 5.0) -> list[ReceivedSpan]:
        """Every span received once at least ``count`` have arrived (or the timeout passed)."""
        deadline = time.monotonic() + timeout_s
        with self._collected.lock:
            while len(self._collected.spans) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._collected.lock.wait(remaining)
            return list(self._collected.spans)


@contextmanager
def otlp_receiver(protocol: str = HTTP) -> Iterator[OtlpReceiver]:
    with OtlpReceiver(protocol) as receiver:
        yield receiver


def closed_port(host: str = "127.0.0.1") -> int:
    """A loopback port nothing listens on: bound once by us, then released."""
    _require_loopback(host)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def trickling_endpoint(byte_interval_s: float = 0.5) -> Iterator[str]:
    """An HTTP endpoint on loopback that accepts every request, then answers one byte every
    ``byte_interval_s`` seconds: each read succeeds, so only a deadline on the whole request
    stops a client from waiting minutes. Yields the base URL.
    """
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"
    stop = threading.Event()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.1)

    def trickle(connection: socket.socket) -> None:
        with connection:
            try:
                connection.recv(1 << 20)
                for byte in answer:
                    if stop.wait(byte_interval_s):
                        return
                    connection.sendall(bytes([byte]))
            except OSError:
                return

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=trickle, args=(connection,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        acceptor.join(5)
        server.close()


__all__ = [
    "GRPC",
    "HTTP",
    "OtlpReceiver",
    "ReceivedEvent",
    "ReceivedSpan",
    "closed_port",
    "flatten",
    "otlp_receiver",
    "trickling_endpoint",
]
