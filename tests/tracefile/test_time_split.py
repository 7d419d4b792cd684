"""Where each batch item's time went: recorded per item and per batch, on spans, in ``show``.

Durations are steered with the echo node's ``delay_ms`` and ``fail_times``; assertions are on
how the recorded parts relate (they add up; a retry wait holds the configured pause), never on
how fast the machine is.
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from loopback import serving
from pflow_trace.cli.main import cli
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.facts import ItemOutcome
from pflow_trace.report.time_split import batch_time_split
from pflow_trace.runtime.item_life import provider_latency_ns
from pflow_trace.tracefile.model import BatchItem
from pflow_trace.tracefile.time_split import item_time_us, lane_waits_ns

RETRY_WAIT_S = 0.03
DELAY_MS = 15


def retrying_workflow() -> dict[str, Any]:
    """Four items on two lanes; each fails its first attempt and waits before the second."""
    return {
        "ir_version": "0.1.0",
        "name": "split",
        "nodes": [
            {
                "id": "each",
                "type": "echo",
                "batch": {
                    "items": [1, 2, 3, 4],
                    "parallel": True,
                    "max_concurrent": 2,
                    "max_retries": 2,
                    "retry_wait": RETRY_WAIT_S,
                },
                "params": {"value": "${item}", "delay_ms": DELAY_MS, "fail_times": 1},
            }
        ],
    }


def run_to_trace(tmp_path: Path, workflow: dict[str, Any]) -> dict[str, Any]:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(workflow), encoding="utf-8")
    trace = tmp_path / "run.trace.json"
    result = CliRunner().invoke(cli, ["run", str(path), "--trace-file", str(trace), "-q"])
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(trace.read_text(encoding="utf-8"))
    return document


def test_each_item_records_parts_that_add_up_to_its_wall(tmp_path: Path) -> None:
    document = run_to_trace(tmp_path, retrying_workflow())
    (node,) = document["nodes"]
    items = node["batch_items"]
    assert len(items) == 4
    for record in items:
        lane_wait, attempts, retry_wait, overhead = record["time_us"]
        assert record["attempts"] == 2
        assert attempts >= 2 * DELAY_MS * 1000  # two attempts, each sleeping delay_ms
        assert retry_wait >= RETRY_WAIT_S * 1e6 * 0.95  # one pause between them
        span_us = record["duration_ms"] * 1000
        assert abs(attempts + retry_wait + overhead - span_us) <= max(span_us * 0.01, 3)
        assert lane_wait >= 0
    # A lane's second item waited only from the end of its first, so lane waits are small.
    sums = node["batch_time_us"]
    assert sums["items"] == 4
    for position, part in enumerate(("lane_wait", "attempts", "retry_wait", "overhead")):
        assert sums[part] == sum(record["time_us"][position] for record in items)


def test_item_spans_carry_the_same_figures(tmp_path: Path) -> None:
    document = run_to_trace(tmp_path, retrying_workflow())
    table = document["otel"]["spans"]
    attributes_at = table["columns"].index("attributes")
    by_span = {row[1]: row[attributes_at] for row in table["rows"]}
    for record in document["nodes"][0]["batch_items"]:
        attributes = by_span[record["span_id"]]
        _, attempts, retry_wait, overhead = record["time_us"]
        assert attributes[conv.ATTR_BATCH_TIME_ATTEMPTS_US] == attempts
        assert attributes[conv.ATTR_BATCH_TIME_RETRY_WAIT_US] == retry_wait
        # The overhead is the rest of the span's duration, to the microsecond.
        span_us = record["duration_ms"] * 1000
        assert abs(span_us - attempts - retry_wait - overhead) <= 2 + 1e-6  # float ms * 1000


def test_show_prints_where_the_time_went_in_text_and_json(tmp_path: Path) -> None:
    run_to_trace(tmp_path, retrying_workflow())
    trace = tmp_path / "run.trace.json"
    text = CliRunner().invoke(cli, ["show", str(trace), "--no-color"])
    assert text.exit_code == 0, text.output
    assert "where the time went" in text.output
    assert "retry waits" in text.output
    shown = CliRunner().invoke(cli, ["show", str(trace), "--json"])
    split = json.loads(shown.stdout)["runs"][0]["nodes"][0]["batch"]["time_split"]
    assert split["items"] == 4
    assert split["retry_wait_ms"] >= 4 * RETRY_WAIT_S * 1000 * 0.95
    parts = ("lane_wait_ms", "attempts_ms", "retry_wait_ms", "overhead_ms")
    assert abs(sum(split[part] for part in parts) - split["wall_ms"]) < 0.01


def test_a_trace_without_splits_shows_none(tmp_path: Path) -> None:
    document = run_to_trace(tmp_path, retrying_workflow())
    node = document["nodes"][0]
    del node["batch_time_us"]
    for record in node["batch_items"]:
        del record["time_us"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(document), encoding="utf-8")
    shown = CliRunner().invoke(cli, ["show", str(old), "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["runs"][0]["nodes"][0]["batch"]["time_split"] is None
    text = CliRunner().invoke(cli, ["show", str(old), "--no-color"])
    assert "where the time went" not in text.output


def outcome(index: int, worker: int, start_ns: int, end_ns: int) -> ItemOutcome:
    return ItemOutcome(index, index, "success", 1, start_ns, end_ns, worker)


def test_lane_wait_runs_from_batch_start_or_the_lanes_previous_end() -> None:
    outcomes = [
        outcome(0, 0, 1_000, 5_000),
        outcome(1, 1, 3_000, 4_000),
        outcome(2, 0, 6_000, 9_000),  # lane 0 was free at 5_000
        outcome(3, 1, 4_000, 8_000),  # lane 1 was free at 4_000: no wait
    ]
    assert lane_waits_ns(outcomes, 1_000) == [0, 2_000, 1_000, 0]
    # By position in the sequence given, whatever order the items come in.
    assert lane_waits_ns(outcomes[::-1], 1_000) == [0, 1_000, 2_000, 0]


def test_overhead_is_the_rest_of_the_span_and_never_negative() -> None:
    item = outcome(0, 0, 0, 10_000_000)
    assert item_time_us(item, (7_000_000, 2_000_000), 500_000) == [500, 7000, 2000, 1000]
    assert item_time_us(item, (11_000_000, 0), 0)[3] == 0


def test_batch_split_sums_items_and_skips_those_without() -> None:
    items = [
        BatchItem(0, "a", "success", 3.0, time_us=(100, 2000, 500, 400), provider_us=1500),
        BatchItem(1, "b", "failed", 1.0, time_us=None),
        BatchItem(2, "c", "success", 2.0, time_us=(0, 1800, 0, 200)),
    ]
    split = batch_time_split(items)
    assert split is not None
    assert split.items == 2
    assert (split.lane_wait_ms, split.attempts_ms, split.retry_wait_ms, split.overhead_ms) == (
        0.1, 3.8, 0.5, 0.6,
    )  # fmt: skip
    assert split.provider_ms == 1.5 and split.provider_items == 1
    assert batch_time_split([BatchItem(0, "a", "success", 1.0)]) is None


def test_an_item_without_retries_has_no_retry_wait_attribute(tmp_path: Path) -> None:
    workflow = retrying_workflow()
    workflow["nodes"][0]["params"]["fail_times"] = 0
    document = run_to_trace(tmp_path, workflow)
    table = document["otel"]["spans"]
    attributes_at = table["columns"].index("attributes")
    by_span = {row[1]: row[attributes_at] for row in table["rows"]}
    for record in document["nodes"][0]["batch_items"]:
        attributes = by_span[record["span_id"]]
        assert record["time_us"][2] == 0
        assert conv.ATTR_BATCH_TIME_RETRY_WAIT_US not in attributes
        assert attributes[conv.ATTR_BATCH_TIME_ATTEMPTS_US] == record["time_us"][1]


def test_provider_latency_comes_from_http_response_time_or_llm_duration() -> None:
    assert provider_latency_ns({"response_time": 0.25, "status_code": 200}, None) == 250_000_000
    assert provider_latency_ns({"response": "hi"}, {"duration_ms": 120}) == 120_000_000
    assert provider_latency_ns({"response": "hi"}, {"input_tokens": 3}) is None
    assert provider_latency_ns({"response_time": "soon"}, None) is None
    assert provider_latency_ns(None, None) is None


def test_items_run_in_worker_processes_bring_their_split_back(tmp_path: Path) -> None:
    workflow = retrying_workflow()
    workflow["nodes"][0]["batch"]["executor"] = "processes"
    document = run_to_trace(tmp_path, workflow)
    items = document["nodes"][0]["batch_items"]
    assert all(record["pid"] for record in items)  # they ran elsewhere
    for record in items:
        _, attempts, retry_wait, overhead = record["time_us"]
        assert attempts >= 2 * DELAY_MS * 1000
        assert retry_wait >= RETRY_WAIT_S * 1e6 * 0.95
        span_us = record["duration_ms"] * 1000
        assert abs(attempts + retry_wait + overhead - span_us) <= max(span_us * 0.01, 3)


class SlowOk(BaseHTTPRequestHandler):
    """Answers every GET after 20 ms."""

    def do_GET(self) -> None:
        time.sleep(0.02)
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_http_items_record_the_providers_latency_inside_their_attempts(tmp_path: Path) -> None:
    with serving(SlowOk) as base:
        workflow = {
            "ir_version": "0.1.0",
            "name": "calls",
            "nodes": [
                {
                    "id": "get",
                    "type": "http",
                    "batch": {"items": [1, 2]},
                    "params": {"url": base + "/item/${item}"},
                }
            ],
        }
        document = run_to_trace(tmp_path, workflow)
    node = document["nodes"][0]
    for record in node["batch_items"]:
        assert 20_000 <= record["provider_us"] <= record["time_us"][1]
    assert node["batch_time_us"]["provider"] == sum(r["provider_us"] for r in node["batch_items"])
