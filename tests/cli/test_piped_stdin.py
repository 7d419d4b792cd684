"""``cat data.json | pflow-trace run wf.pflow.md``: the CLI in a subprocess with piped input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from subprocess_env import clean_env

WORKFLOW = """# Piped

Reads its data from stdin.

## Inputs

### data

The piped data.

- type: {input_type}
- stdin: true

## Steps

### show

Hands the data back.

- type: echo
- value: ${{data}}

## Outputs

### value

What arrived.

- source: ${{show.value}}
"""


def run_piped(
    tmp_path: Path, stdin: bytes | None, *arguments: str, input_type: str = "object"
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "piped.pflow.md"
    path.write_text(WORKFLOW.format(input_type=input_type), encoding="utf-8")
    command = [sys.executable, "-m", "pflow_trace", "run", str(path), *arguments]
    command += ["--output-format", "json", "--trace-dir", str(tmp_path / "traces")]
    if stdin is None:  # not a pipe: /dev/null, as an unattended run has
        with open("/dev/null", "rb") as devnull:
            done = subprocess.run(
                command, stdin=devnull, capture_output=True, timeout=60, env=clean_env()
            )
    else:
        done = subprocess.run(
            command, input=stdin, capture_output=True, timeout=60, env=clean_env()
        )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def test_piped_json_fills_the_stdin_input(tmp_path: Path) -> None:
    done = run_piped(tmp_path, b'{"rows": [1, 2]}\n')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"] == {"value": {"rows": [1, 2]}}


def test_piped_text_reaches_a_string_input(tmp_path: Path) -> None:
    done = run_piped(tmp_path, b"line one\nline two\n", input_type="string")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"] == {"value": "line one\nline two"}


def test_a_value_on_the_command_line_wins_over_the_pipe(tmp_path: Path) -> None:
    done = run_piped(tmp_path, b'{"from": "pipe"}', 'data={"from": "cli"}')
    assert json.loads(done.stdout)["outputs"] == {"value": {"from": "cli"}}


def test_stdin_that_is_not_a_pipe_is_not_read(tmp_path: Path) -> None:
    done = run_piped(tmp_path, None)
    assert done.returncode == 2
    assert "missing required input 'data'" in done.stdout + done.stderr


def test_piped_bytes_that_are_not_utf8_are_one_clear_line(tmp_path: Path) -> None:
    done = run_piped(tmp_path, b"\xff\xfe", input_type="string")
    assert done.returncode == 2
    assert "piped stdin is not UTF-8 text" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
