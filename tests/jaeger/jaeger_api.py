"""A small client for Jaeger's HTTP query API (the one its UI reads), for tests.

Only what the tests ask: ``/api/services``, ``/api/traces?service=...`` and
``/api/traces/<id>``. A trace is fetched until it holds the number of spans the test expects,
because a span reaches the query API only once its OTLP request has been stored; a trace that
never fills up fails with what Jaeger did return.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

#: How long to wait for a trace to fill up before giving up (not a speed check: a bound).
WAIT_SECONDS = 60.0
POLL_SECONDS = 0.1


class JaegerUnavailable(Exception):
    """Jaeger's query API did not answer."""


@dataclass(frozen=True)
class Fetched:
    """One response of the query API: the decoded document and its size on the wire."""

    document: dict[str, Any]
    size_bytes: int


@dataclass(frozen=True)
class JaegerApi:
    """Where Jaeger listens: the query API (and UI) and the two OTLP receivers."""

    url: str
    otlp_http: str
    otlp_grpc: str

    def fetch(self, path: str, **query: str) -> Fetched:
        """GET ``path`` from the query API; a 404 is an empty ``data`` list, as Jaeger means it."""
        address = self.url.rstrip("/") + path
        if query:
            address += "?" + urllib.parse.urlencode(query)
        try:
            with urllib.request.urlopen(address, timeout=30) as response:
                body = response.read()
        except urllib.error.HTTPError as refused:
            if refused.code == 404:
                return Fetched({"data": [], "errors": [{"code": 404}]}, 0)
            raise JaegerUnavailable(f"{address}: HTTP {refused.code}") from None
        except (urllib.error.URLError, OSError) as problem:
            raise JaegerUnavailable(f"{address}: {problem}") from None
        return Fetched(json.loads(body), len(body))

    def services(self) -> list[str]:
        return self.fetch("/api/services").document.get("data") or []

    def trace_ids_of(self, service: str) -> set[str]:
        """The ids of the traces that have a span from ``service`` (the UI's search)."""
        found = self.fetch("/api/traces", service=service, lookback="custom", limit="100")
        return {trace["traceID"] for trace in found.document.get("data") or []}

    def trace(self, trace_id: str, span_count: int) -> Fetched:
        """``/api/traces/<trace_id>`` once it holds ``span_count`` spans (fails after a bound)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            fetched = self.fetch(f"/api/traces/{trace_id}")
            held = sum(len(trace["spans"]) for trace in fetched.document.get("data") or [])
            if held >= span_count or time.monotonic() > deadline:
                assert held == span_count, f"Jaeger holds {held} spans of {trace_id}"
                return fetched
            time.sleep(POLL_SECONDS)


def spans_by_id(fetched: Fetched) -> dict[str, dict[str, Any]]:
    """The spans of the one trace in a ``/api/traces/<id>`` answer, by span id."""
    [trace] = fetched.document["data"]
    return {span["spanID"]: span for span in trace["spans"]}


def parent_of(span: dict[str, Any]) -> str | None:
    """The span id a Jaeger span is a ``CHILD_OF``, or ``None`` for a root."""
    parents = [ref["spanID"] for ref in span["references"] if ref["refType"] == "CHILD_OF"]
    assert len(parents) <= 1, span["references"]
    return parents[0] if parents else None


def tags_of(entry: dict[str, Any], field: str = "tags") -> dict[str, Any]:
    """A span's tags (or a log's ``fields``) as a plain ``{key: value}`` mapping."""
    return {tag["key"]: tag["value"] for tag in entry[field]}
