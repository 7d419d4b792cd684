"""Bad input: one line naming the file and the problem, exit code 2; newer versions warn once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pflow_samples import PFLOW_JSONL_SAMPLE
from pflow_trace.cli.main import cli
from pflow_trace.cli.show import show
from pflow_trace.errors import EXIT_USAGE, TraceReadError
from pflow_trace.tracefile.readers import read_trace
from trace_factory import sequential_trace, write_trace


def _read_error(path: Path) -> str:
    with pytest.raises(TraceReadError) as caught:
        read_trace(path)
    message = caught.value.message
    assert "\n" not in message
    assert message.startswith(str(path))
    assert caught.value.exit_code == EXIT_USAGE
    return message


def _show_error(*args: str) -> str:
    """Run ``show`` alone: the error propagates (the main group is what prints it)."""
    result = CliRunner().invoke(show, list(args))
    assert isinstance(result.exception, TraceReadError), result.output
    return result.exception.message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    assert _read_error(path) == f"{path}: no such file"
    assert _show_error(str(path)) == f"{path}: no such file"


def test_not_json(tmp_path: Path) -> None:
    path = tmp_path / "notes.json"
    path.write_text("hello, this is not a trace\n", encoding="utf-8")
    assert "not JSON" in _read_error(path)


def test_binary_file_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "blob.json"
    path.write_bytes(b"\xff\xfe\x00\x01binary")
    assert "not JSON" in _read_error(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("", encoding="utf-8")
    assert "empty file" in _read_error(path)


@pytest.mark.parametrize("indent", [None, 2])
def test_truncated_json(tmp_path: Path, indent: int | None) -> None:
    text = json.dumps(sequential_trace(), indent=indent)
    path = tmp_path / "cut.json"
    path.write_text(text[: len(text) // 2], encoding="utf-8")
    assert "truncated JSON" in _read_error(path)


def test_truncated_jsonl_last_line(tmp_path: Path) -> None:
    text = PFLOW_JSONL_SAMPLE.read_text(encoding="utf-8")
    path = tmp_path / "cut.jsonl"
    path.write_text(text[: len(text) - 200], encoding="utf-8")
    message = _read_error(path)
    assert "truncated JSON" in message and "line 8" in message


def test_corrupt_jsonl_middle_line(tmp_path: Path) -> None:
    lines = PFLOW_JSONL_SAMPLE.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3][:40]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert "not JSON on line 4" in _read_error(path)


@pytest.mark.parametrize(
    "content",
    [
        "[1, 2, 3]",
        '"a string"',
        '{"hello": "world"}',
        '{"format_version": "1.2.0", "workflow_name": "x"}',
        '{"format_version": "one", "nodes": []}',
        '{"kind": "event", "node_id": "a"}\n{"kind": "event", "node_id": "b"}\n',
    ],
    ids=["array", "string", "object", "no-nodes", "bad-version", "jsonl-without-meta"],
)
def test_unknown_format(tmp_path: Path, content: str) -> None:
    path = tmp_path / "odd.json"
    path.write_text(content, encoding="utf-8")
    assert "unknown trace format" in _read_error(path)


def test_empty_directory(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a trace", encoding="utf-8")
    message = _show_error(str(empty))
    assert message.startswith(str(empty)) and "no trace files" in message


def test_default_directory_missing_or_empty(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    assert "no such directory" in _show_error("--trace-dir", str(missing))
    missing.mkdir()
    assert "no trace files" in _show_error("--trace-dir", str(missing))


def test_a_bad_file_in_a_directory_is_skipped_with_a_warning_naming_it(tmp_path: Path) -> None:
    write_trace(tmp_path / "runs" / "a.json", sequential_trace())
    bad = tmp_path / "runs" / "b.json"
    bad.write_text("{", encoding="utf-8")
    (tmp_path / "runs" / "config.json").write_text('{"not": "a trace"}', encoding="utf-8")
    result = CliRunner().invoke(show, [str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert f"warning: skipped: {bad}: truncated JSON" in result.stderr
    assert "config.json: unknown trace format" in result.stderr
    assert "workflow sequential" in result.stdout
    # Named on the command line, the same file is an error; a directory of no traces too.
    assert _show_error(str(bad)).startswith(f"{bad}: truncated JSON")
    bad_only = tmp_path / "bad_only"
    bad_only.mkdir()
    (bad_only / "x.json").write_text("[]", encoding="utf-8")
    assert _show_error(str(bad_only)).startswith("no trace could be read (1 file(s) skipped)")


def test_show_with_no_argument_survives_the_newest_trace_vanishing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another run cleaning up deletes a trace while ``show`` picks the newest: the file that
    vanished is passed over, not a FileNotFoundError traceback."""
    write_trace(tmp_path / "a.json", sequential_trace())
    gone = tmp_path / "b.json"
    write_trace(gone, sequential_trace())
    real_stat = Path.stat
    looks = {"count": 0}

    def stat_of_a_vanishing_file(self: Path, **kwargs: Any) -> os.stat_result:
        if self == gone:
            looks["count"] += 1
            if looks["count"] > 1:  # listed as a file, then deleted before its time is read
                gone.unlink(missing_ok=True)
                raise FileNotFoundError(str(self))
        return real_stat(self, **kwargs)

    monkeypatch.setattr(Path, "stat", stat_of_a_vanishing_file)
    result = CliRunner().invoke(show, ["--trace-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "a.json" in result.stdout


@pytest.mark.no_trace_validation  # a future format version is off our schema on purpose
def test_newer_format_version_reads_best_effort_with_one_warning(tmp_path: Path) -> None:
    trace = sequential_trace()
    trace["format_version"] = "1.9.0"
    trace["something_new"] = {"x": 1}
    path = write_trace(tmp_path / "future.json", trace)
    run = read_trace(path)
    assert len(run.warnings) == 1
    assert "1.9.0" in run.warnings[0] and str(path) in run.warnings[0]
    result = CliRunner().invoke(show, [str(path)])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("warning:") == 1
    assert "workflow sequential" in result.stdout


def test_newer_jsonl_version_warns_once(tmp_path: Path) -> None:
    lines = PFLOW_JSONL_SAMPLE.read_text(encoding="utf-8").splitlines()
    meta = json.loads(lines[0])
    meta.update(pflow_trace="jsonl/2", format_version="3.0.0")
    path = tmp_path / "future.jsonl"
    path.write_text("\n".join([json.dumps(meta), *lines[1:]]) + "\n", encoding="utf-8")
    run = read_trace(path)
    assert len(run.warnings) == 1 and "newer" in run.warnings[0]
    assert run.final_status == "degraded" and len(run.nodes) == 3


def test_main_group_prints_one_error_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "missing.json"
    result = CliRunner().invoke(cli, ["show", str(path)])
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == f"error: {path}: no such file\n"
    assert result.stdout == ""


def test_end_to_end_in_a_subprocess(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[", encoding="utf-8")
    command = [sys.executable, "-m", "pflow_trace", "show", str(bad)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert completed.returncode == EXIT_USAGE
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: truncated JSON")
    assert completed.stdout == ""
