"""``pflow-trace report`` end to end: the CLI in a subprocess, writing real pages."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import trace_factory as tf
from pflow_samples import PFLOW_JSONL_SAMPLE
from pflow_trace.report.html import DATA_ELEMENT_ID
from subprocess_env import clean_env


def cli(*arguments: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pflow_trace", *arguments],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env(**env),
        timeout=120,
    )


def page_data(path: Path) -> dict:
    html = path.read_text(encoding="utf-8")
    block = re.search(rf'id="{DATA_ELEMENT_ID}">(.*?)</script>', html, re.S)
    assert block
    return json.loads(block.group(1))


def test_default_output_is_in_the_current_directory(tmp_path: Path) -> None:
    trace = tf.write_trace(tmp_path / "traces" / "run.json", tf.parallel_trace())
    result = cli("report", "--trace-dir", str(trace.parent), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "report: pflow-trace-report.html"
    data = page_data(tmp_path / "pflow-trace-report.html")
    assert data["summary"]["runs"][0]["workflow_name"] == "parallel"
    assert data["jaeger_url"] is None


def test_several_traces_and_a_jaeger_url(tmp_path: Path) -> None:
    a = tf.write_trace(tmp_path / "a.json", tf.parallel_trace(seed=2))
    b = tf.write_trace(tmp_path / "b.json", tf.parallel_trace(seed=9))
    out = tmp_path / "out" / "r.html"
    out.parent.mkdir()
    result = cli(
        "report",
        str(a),
        str(b),
        "-o",
        str(out),
        "--jaeger-url",
        "http://localhost:16686/",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    data = page_data(out)
    assert data["jaeger_url"] == "http://localhost:16686"
    assert len(data["summary"]["runs"]) == 2
    assert [c["workflow_name"] for c in data["comparisons"]] == ["parallel"]


def test_pflow_jsonl_sample_renders(tmp_path: Path) -> None:
    result = cli("report", str(PFLOW_JSONL_SAMPLE), "-o", "p.html", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert page_data(tmp_path / "p.html")["summary"]["runs"][0]["format"] == "pflow-jsonl"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["missing.json"], "error: missing.json: no such file"),
        (["bad.json"], "error: bad.json: "),
        (["empty"], "error: empty: no trace files"),
        (["good.json", "--jaeger-url", "javascript:alert(1)"], "error: --jaeger-url "),
        (["good.json", "-o", "good.json/r.html"], "error: -o good.json/r.html: Not a directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    tf.write_trace(tmp_path / "good.json", tf.sequential_trace())
    result = cli("report", *arguments, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "pflow-trace-report.html").exists()


def test_open_hands_the_page_to_the_web_browser(tmp_path: Path) -> None:
    """``--open`` goes through ``webbrowser``, which honours ``$BROWSER``: here a recorder."""
    recorder = tmp_path / "browser.py"
    recorder.write_text(
        "import sys, pathlib\npathlib.Path(sys.argv[2]).write_text(sys.argv[1])\n",
        encoding="utf-8",
    )
    opened = tmp_path / "opened.txt"
    trace = tf.write_trace(tmp_path / "t.json", tf.sequential_trace())
    browser = f"{sys.executable} {recorder} %s {opened}"
    result = cli("report", str(trace), "--open", cwd=tmp_path, BROWSER=browser)
    assert result.returncode == 0, result.stderr
    assert opened.read_text() == (tmp_path / "pflow-trace-report.html").resolve().as_uri()


def test_report_is_listed_in_help(tmp_path: Path) -> None:
    result = cli("--help", cwd=tmp_path)
    assert re.search(r"^\s+report\s+Write a self-contained HTML report", result.stdout, re.M)


def test_report_reads_traces_as_show_does_and_writes_a_private_file(tmp_path: Path) -> None:
    """A stray JSON file in the directory is skipped with a warning; the page is 0600."""
    traces = tmp_path / "traces"
    tf.write_trace(traces / "run.json", tf.parallel_trace())
    (traces / "settings.json").write_text('{"theme": "dark"}', encoding="utf-8")
    result = cli("report", str(traces), "-o", "out/page.html", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning: skipped:" in result.stderr and "settings.json" in result.stderr
    page = tmp_path / "out" / "page.html"
    assert page.stat().st_mode & 0o777 == 0o600
    assert page_data(page)["summary"]["runs"][0]["workflow_name"] == "parallel"


def test_report_refuses_a_fifo_before_reading_anything(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "pipe.html"
    os.mkfifo(fifo)
    trace = tf.write_trace(tmp_path / "run.json", tf.parallel_trace())
    result = cli("report", str(trace), "-o", str(fifo), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "FIFO" in result.stderr
