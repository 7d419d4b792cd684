"""Text we did not write goes through every writer and reader without a traceback.

Lone surrogates (what Python makes of bytes that are not UTF-8: file names from
``os.listdir``, arguments, environment variables) and ``"\\ud800"``-style escapes land in a
workflow's name, a node's params, its input values, a ``code`` node's result and error, and
the path of the trace itself. Every example is run (text and JSON output), its trace file is
read back by ``show``, ``show --json``, ``report`` and every ``export`` format, and:

* nothing escapes as an exception and no traceback is printed;
* the trace file exists and is valid UTF-8, as is every file and JSON document written;
* each lone surrogate reads as the six characters ``\\udcff`` (the documented rule).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from generators import HOSTILE_TEXT
from hypothesis import given, settings
from hypothesis import strategies as st

from pflow_trace.cli.main import cli
from pflow_trace.replay import FILE_FORMATS

#: Text with lone surrogates among ordinary characters, and bytes that are not UTF-8 as
#: Python decodes them (``surrogateescape``).
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
NOT_OUR_TEXT = st.one_of(
    st.text(st.one_of(SURROGATES, st.characters(codec="utf-8")), min_size=1, max_size=8),
    st.binary(min_size=1, max_size=6).map(lambda raw: raw.decode("utf-8", "surrogateescape")),
    HOSTILE_TEXT,
)


def invoke(args: list[str]) -> Result:
    return CliRunner().invoke(cli, args, catch_exceptions=True)


def check(result: Result) -> None:
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"escaped: {result.exception!r}") from result.exception
    assert result.exit_code in {0, 1, 2}, (result.exit_code, result.output[-500:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    result.stdout.encode("utf-8")  # strict: no lone surrogate reached stdout


def no_lone_surrogate(text: str) -> None:
    text.encode("utf-8")


def workflow_with(text: str, as_bytes_name: str) -> dict[str, Any]:
    code = "result = {'text': text, 'name': name}\nraise ValueError('bad ' + text)"
    return {
        "ir_version": "0.1.0",
        "name": f"flow-{text}",
        "inputs": {"name": {"type": "string", "required": False, "default": as_bytes_name}},
        "nodes": [
            {"id": "echo", "type": "echo", "params": {"value": text, f"key{text}": 1}},
            {
                "id": "code",
                "type": "code",
                "params": {"code": code, "inputs": {"text": text, "name": "${name}"}},
            },
        ],
        "edges": [{"from": "echo", "to": "code"}],
    }


@settings(max_examples=60)
@given(text=NOT_OUR_TEXT, raw_name=st.binary(min_size=1, max_size=4))
def test_text_we_did_not_write_survives_every_writer_and_reader(
    text: str, raw_name: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("text")
    bytes_name = os.fsdecode(b"in-" + raw_name.replace(b"/", b"_").replace(b"\x00", b"_"))
    path = folder / "wf.json"
    path.write_text(json.dumps(workflow_with(text, bytes_name)), encoding="utf-8")
    trace_dir = Path(os.fsdecode(os.fsencode(folder) + b"/traces-\xff"))  # not UTF-8 either
    trace = trace_dir / "t.json"
    common = ["run", str(path), f"name={bytes_name}", "--trace-file", str(trace)]

    result = invoke([*common, "--output-format", "json"])
    check(result)
    payload = json.loads(result.stdout)
    assert payload["status"] in {"failed", "invalid"}
    if payload["status"] == "invalid":  # a name the workflow schema refuses: one clear error
        return
    assert trace.is_file()
    document = json.loads(trace.read_bytes().decode("utf-8"))
    if any(0xD800 <= ord(char) <= 0xDFFF for char in text + bytes_name):
        assert document["warnings"], "escaping is said where a person looks"
    check(invoke([*common, "--no-color"]))

    for command in (["show", str(trace)], ["show", "--json", str(trace)]):
        shown = invoke(command)
        check(shown)
        assert shown.exit_code == 0
    json.loads(invoke(["show", "--json", str(trace)]).stdout)
    report = folder / "r.html"
    check(invoke(["report", "-o", str(report), str(trace)]))
    report.read_bytes().decode("utf-8")
    check(invoke(["report", "-o", "-", str(trace)]))
    for file_format in FILE_FORMATS:
        out = folder / f"out-{file_format}.json"
        exported = invoke(["export", "--format", file_format, "-o", str(out), str(trace)])
        check(exported)
        assert exported.exit_code == 0
        json.loads(out.read_bytes().decode("utf-8"))
        to_stdout = invoke(["export", "--format", file_format, "-o", "-", str(trace)])
        check(to_stdout)
        no_lone_surrogate(json.dumps(json.loads(to_stdout.stdout), ensure_ascii=False))
