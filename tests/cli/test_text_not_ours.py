"""End to end: text we did not write (not valid Unicode) and values JSON cannot hold.

A workflow whose name holds a lone surrogate lists a directory holding a file whose name is
not UTF-8, takes such a name as an input from the command line, and has a ``code`` node fail
with a lone surrogate in its error. ``run`` (text and JSON), ``show``, ``show --json``,
``report`` and every ``export`` format must finish without a traceback, write their files, and
show the rule: each lone surrogate as the six characters ``\\udcff``. Also here: the one-line
refusals of ``export -o`` and ``report`` options, and ``export --to otlp`` against a receiver
that answers a redirect.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from otlp_receiver import OtlpReceiver
from pflow_trace.replay import FILE_FORMATS
from subprocess_env import clean_env

NOT_UTF8_NAME = b"report-\xff.txt"
ESCAPED_NAME = "report-\\udcff.txt"


def pflow(*arguments: Any, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """The CLI in a subprocess; bytes arguments reach it as they are (not UTF-8 allowed)."""
    args = [a if isinstance(a, bytes) else os.fsencode(str(a)) for a in arguments]
    return subprocess.run(
        [os.fsencode(sys.executable), b"-m", b"pflow_trace", *args],
        capture_output=True,
        timeout=120,
        env=env or clean_env(PYTHONIOENCODING="utf-8"),
    )


def no_traceback(result: subprocess.CompletedProcess[bytes]) -> None:
    assert b"Traceback" not in result.stderr, result.stderr.decode("utf-8", "replace")
    assert b"Traceback" not in result.stdout


def surrogate_workflow(path: Path) -> Path:
    code = (
        "import os\n"
        "result = {'files': sorted(os.listdir(folder)), 'given': given, 'own': 'x\\ud800y'}"
    )
    workflow = {
        "ir_version": "0.1.0",
        "name": "names\ud800here",
        "inputs": {"folder": {"type": "string"}, "given": {"type": "string"}},
        "nodes": [
            {
                "id": "list",
                "type": "code",
                "params": {"code": code, "inputs": {"folder": "${folder}", "given": "${given}"}},
            },
            {"id": "fail", "type": "code", "params": {"code": "raise ValueError('bad \\udcfe')"}},
        ],
        "edges": [{"from": "list", "to": "fail"}],
    }
    path.write_text(json.dumps(workflow), encoding="utf-8")  # \ud800 as a JSON escape
    return path


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of the workflow (text mode and JSON mode), and its trace files."""
    root = tmp_path_factory.mktemp("text")
    folder = root / "data"
    folder.mkdir()
    with open(os.fsencode(folder) + b"/" + NOT_UTF8_NAME, "w") as handle:
        handle.write("x")
    workflow = surrogate_workflow(root / "wf.json")
    given = b"given=" + os.fsencode(folder) + b"/" + NOT_UTF8_NAME
    text_run = pflow("run", workflow, f"folder={folder}", given, "--trace-dir", root / "t1")
    json_run = pflow(
        "run", workflow, f"folder={folder}", given, "--trace-dir", root / "t2",
        "--output-format", "json",
    )  # fmt: skip
    return {"root": root, "text": text_run, "json": json_run}


def test_run_writes_the_trace_and_escapes_every_lone_surrogate(traced: dict[str, Any]) -> None:
    result = traced["text"]
    no_traceback(result)
    assert result.returncode == 1  # the second node fails, on purpose
    traces = list((traced["root"] / "t1").glob("*.json"))
    assert len(traces) == 1
    raw = traces[0].read_bytes()
    raw.decode("utf-8")  # strict: the file is valid UTF-8
    document = json.loads(raw)
    assert document["workflow_name"] == "names\\ud800here"
    listed = document["nodes"][0]["shared_after"]["list"]["result"]
    assert listed["files"] == [ESCAPED_NAME]
    assert listed["given"].endswith(ESCAPED_NAME)
    assert listed["own"] == "x\\ud800y"
    assert document["nodes"][1]["error"].endswith("bad \\udcfe")
    assert len(document["warnings"]) == 1
    assert "not valid Unicode; escaped as \\uXXXX" in document["warnings"][0]
    assert b"bad \\udcfe" in result.stdout  # the terminal shows the same escape
    warning = b"warning: " + document["warnings"][0].encode()
    assert warning in result.stderr  # run says so too, where its user looks


def test_run_json_output_is_one_utf8_document_with_the_escapes(traced: dict[str, Any]) -> None:
    result = traced["json"]
    no_traceback(result)
    payload = json.loads(result.stdout.decode("utf-8"))
    assert payload["nodes"]["list"]["result"]["files"] == [ESCAPED_NAME]
    assert payload["error"].endswith("bad \\udcfe")
    assert Path(payload["trace_file"]).is_file()


def test_every_reader_and_export_format_takes_the_trace(
    traced: dict[str, Any], tmp_path: Path
) -> None:
    trace = next((traced["root"] / "t1").glob("*.json"))
    for command in (["show", trace], ["show", "--json", trace]):
        result = pflow(*command)
        no_traceback(result)
        assert result.returncode == 0
        assert b"not valid Unicode" in result.stderr  # the trace's warning, where one looks
        assert b"names\\" in result.stdout
    report = tmp_path / "r.html"
    result = pflow("report", "-o", report, trace)
    no_traceback(result)
    assert result.returncode == 0 and report.read_bytes().decode("utf-8")
    for file_format in FILE_FORMATS:
        out = tmp_path / f"out.{file_format}.json"
        result = pflow("export", "--format", file_format, "-o", out, trace)
        no_traceback(result)
        assert result.returncode == 0, result.stderr
        json.loads(out.read_bytes().decode("utf-8"))


def test_a_trace_written_elsewhere_with_lone_surrogates_and_bad_bytes_is_read(
    tmp_path: Path,
) -> None:
    trace = tmp_path / "other.json"
    trace.write_bytes(
        b'{"format_version": "1.2.0", "workflow_name": "w\\ud800", "nodes": [{"node_id": '
        b'"a", "node_type": "t", "success": false, "error": "bad \xff\xfe", '
        b'"duration_ms": 1.0}]}'
    )
    shown = pflow("show", "--json", trace)
    no_traceback(shown)
    assert shown.returncode == 0
    run = json.loads(shown.stdout)["runs"][0]
    assert run["workflow_name"] == "w\\ud800"
    assert b"2 values in this trace hold text that is not valid Unicode" in shown.stderr
    text = pflow("show", trace)
    no_traceback(text)
    assert b"bad \\udcff\\udcfe" in text.stdout
    report = pflow("report", "-o", tmp_path / "r.html", trace)
    no_traceback(report)
    assert report.returncode == 0


ODD_VALUES = (
    "import datetime, math\n"
    "class Broken:\n"
    "    def __repr__(self):\n"
    "        raise RuntimeError('no repr')\n"
    "    __str__ = __repr__\n"
    "result = {(1, 2): 'tuple key', b'k': 'bytes key', math.nan: 'nan key',\n"
    "          10 ** 5000: 'long key', 'when': datetime.date(2024, 1, 2), 'broken': Broken(),\n"
    "          'nan': math.nan, 'big': 10 ** 5000}"
)


def test_values_json_cannot_hold_render_in_json_output_and_the_trace(tmp_path: Path) -> None:
    workflow = tmp_path / "odd.json"
    workflow.write_text(
        json.dumps(
            {
                "ir_version": "0.1.0",
                "name": "odd",
                "nodes": [{"id": "c", "type": "code", "params": {"code": ODD_VALUES}}],
            }
        )
    )
    result = pflow("run", workflow, "--trace-dir", tmp_path / "t", "--output-format", "json")
    no_traceback(result)
    assert result.returncode == 0
    payload = json.loads(result.stdout)
    shown = payload["nodes"]["c"]["result"]
    assert shown["(1, 2)"] == "tuple key" and shown["b'k'"] == "bytes key"
    assert shown["nan"] == "nan"
    assert shown["<integer of about 5001 digits>"] == "long key"
    assert shown["broken"] == "<Broken that cannot be shown>"
    trace = json.loads(Path(payload["trace_file"]).read_text("utf-8"))
    kept = trace["nodes"][0]["shared_after"]["c"]["result"]
    assert kept["(1, 2)"] == "tuple key"
    assert kept["broken"] == "<Broken that cannot be shown>"


def test_export_refuses_to_write_over_the_trace_it_reads(tmp_path: Path) -> None:
    trace = tmp_path / "t.json"
    trace.write_text('{"format_version": "1.2.0", "nodes": []}')
    before = trace.read_bytes()
    result = pflow("export", "--format", "chrome", "-o", trace, trace)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: -o {trace} is the trace being exported; give another file".encode()
    ]
    assert trace.read_bytes() == before


def test_report_dash_o_dash_writes_to_stdout_like_export(tmp_path: Path) -> None:
    trace = tmp_path / "t.json"
    trace.write_text(
        '{"format_version": "1.2.0", "workflow_name": "w", "nodes": [{"node_id": "a", '
        '"node_type": "t", "success": true, "duration_ms": 1.0}]}'
    )
    result = subprocess.run(
        [sys.executable, "-m", "pflow_trace", "report", "-o", "-", str(trace)],
        capture_output=True,
        timeout=120,
        env=clean_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"<!DOCTYPE html>")
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize("url", ["http://[::1", "http://host:port"])
def test_report_jaeger_url_that_does_not_parse_is_one_line(tmp_path: Path, url: str) -> None:
    result = pflow("report", "--jaeger-url", url, "-o", tmp_path / "r.html", tmp_path)
    no_traceback(result)
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --jaeger-url")


def test_export_to_otlp_fails_when_the_receiver_answers_a_redirect(tmp_path: Path) -> None:
    workflow = tmp_path / "wf.json"
    workflow.write_text(
        json.dumps(
            {
                "ir_version": "0.1.0",
                "name": "w",
                "nodes": [{"id": "a", "type": "echo", "params": {"x": 1}}],
            }
        )
    )
    trace = tmp_path / "t.json"
    assert pflow("run", workflow, "--trace-file", trace).returncode == 0
    with OtlpReceiver(refuse_with=307) as receiver:
        result = pflow("export", "--to", "otlp", "--endpoint", receiver.endpoint, trace)
    no_traceback(result)
    assert result.returncode != 0
    assert b"exported" not in result.stdout
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "HTTP 307" in lines[0] and "redirect" in lines[0]


def test_an_event_time_out_of_range_costs_only_that_value(tmp_path: Path) -> None:
    """Live OTLP, the trace file, the console, and the trace's replay all keep every span."""
    retries = [
        {"attempt": 1, "error": "x", "time_unix_nano": 10**30},
        {"attempt": 2, "error": "y", "time_unix_nano": -5},
    ]
    usage = {"model": "m", "input_tokens": 1, "output_tokens": 1, "retries": retries}
    workflow = tmp_path / "wf.json"
    workflow.write_text(
        json.dumps(
            {
                "ir_version": "0.1.0",
                "name": "w",
                "nodes": [{"id": "a", "type": "echo", "params": {"llm_usage": usage}}],
            }
        )
    )
    trace = tmp_path / "t.json"
    with OtlpReceiver() as receiver:
        live = pflow("run", workflow, "--trace-file", trace, "--otlp-endpoint", receiver.endpoint)
        no_traceback(live)
        assert live.returncode == 0, live.stderr
        expected = len(receiver.wait_for_spans(1))
        assert expected > 0 and b"warning" not in live.stderr
    console = pflow("run", workflow, "--no-trace-file", "--exporter", "console")
    no_traceback(console)
    assert console.returncode == 0 and b"pflow.invalid_time_unix_nano" in console.stderr
    with OtlpReceiver() as receiver:
        replayed = pflow("export", "--to", "otlp", "--endpoint", receiver.endpoint, trace)
        no_traceback(replayed)
        assert replayed.returncode == 0, replayed.stderr
        assert len(receiver.wait_for_spans(expected)) == expected
    assert b"2 span events had a time that is not a Unix time" in replayed.stderr


def test_live_otlp_keeps_every_span_holding_text_that_is_not_unicode(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    with open(os.fsencode(folder) + b"/" + NOT_UTF8_NAME, "w") as handle:
        handle.write("x")
    workflow = surrogate_workflow(tmp_path / "wf.json")
    given = b"given=" + os.fsencode(folder) + b"/" + NOT_UTF8_NAME
    with OtlpReceiver() as receiver:
        result = pflow(
            "run", workflow, f"folder={folder}", given, "--no-trace-file",
            "--otlp-endpoint", receiver.endpoint,
        )  # fmt: skip
        no_traceback(result)
        assert b"not exported" not in result.stderr, result.stderr
        spans = receiver.wait_for_spans(2)
    assert len(spans) >= 2
    text = json.dumps([(s.name, s.attributes, s.status_message) for s in spans])
    assert "names\\\\ud800here" in text and "bad \\\\udcfe" in text


PFLOW_MD_WITH_DATES = """# Dates

A YAML date as an input default, and a date and a binary key in params.

## Inputs

### when

A date.

- type: string
- required: false
- default: 2024-01-02

## Steps

### e

Echo them.

- type: echo
- when: ${when}
- day: 2024-05-06
- map: {2024-01-01: x, !!binary aGk=: y}
"""


def test_yaml_dates_and_binary_keys_render_in_json_output(tmp_path: Path) -> None:
    workflow = tmp_path / "d.pflow.md"
    workflow.write_text(PFLOW_MD_WITH_DATES)
    result = pflow("run", workflow, "--trace-dir", tmp_path / "t", "--output-format", "json")
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    echoed = json.loads(result.stdout)["nodes"]["e"]
    assert echoed == {
        "when": "2024-01-02",
        "day": "2024-05-06",
        "map": {"2024-01-01": "x", "b'hi'": "y"},
    }


def test_report_to_stdout_cannot_be_opened(tmp_path: Path) -> None:
    result = pflow("report", "-o", "-", "--open", tmp_path)
    no_traceback(result)
    assert result.returncode == 2
    assert (
        result.stderr.decode().strip()
        == "error: --open needs a file: -o - writes the page to stdout"
    )
