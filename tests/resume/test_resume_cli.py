"""``pflow-trace resume`` and ``run --resume`` end to end: the command line, a ``.pflow.md``
workflow of shell steps, the refusals (one line, exit 2), and Ctrl-C mid-batch."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from resume_cases import executions, workflow

from pflow_trace.tracefile.checkpoint import checkpoint_path
from subprocess_env import clean_env

PATIENCE_S = 60


def cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pflow_trace", *map(str, args)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=PATIENCE_S,
        cwd=cwd,
    )


MARKDOWN = """# Resume me

Items fail while a flag file exists.

## Steps

### work

Logs each item; item 2 fails while the flag file exists.

- type: shell

```shell command
echo "work ${{item}}" >> '{log}'
if [ -e '{flag}' ] && [ ${{item}} -eq 2 ]; then exit 3; fi
echo "out ${{item}}"
```

```yaml batch
items: [1, 2, 3]
error_handling: continue
```

### count

Counts the characters of the results.

- type: shell

```shell command
echo count >> '{log}'; echo '${{work.results}}' | wc -c
```

## Outputs

### lines

The work step's results.

- source: ${{work.results}}
"""


def test_resume_a_pflow_md_workflow_of_shell_steps(tmp_path: Path) -> None:
    log, flag = tmp_path / "log", tmp_path / "flag"
    source = tmp_path / "wf.pflow.md"
    source.write_text(MARKDOWN.format(log=log, flag=flag), "utf-8")
    flag.touch()
    first = cli("run", source, "--trace-file", tmp_path / "first.trace.json", "-q")
    assert first.returncode == 0, first.stderr
    assert executions(log) == ["work 1", "work 2", "work 3", "count"]
    flag.unlink()

    second = cli("resume", tmp_path / "first.trace.json", "--trace-file",
                 tmp_path / "second.trace.json", "--output-format", "json")  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert executions(log) == ["work 2", "count"]
    result = json.loads(second.stdout)
    clean = cli("run", source, "--trace-file", tmp_path / "clean.trace.json",
                "--output-format", "json")  # fmt: skip
    assert result["status"] == "success"
    lines = [row["stdout"] for row in result["outputs"]["lines"]]
    assert lines == [row["stdout"] for row in json.loads(clean.stdout)["outputs"]["lines"]]

    shown = cli("show", tmp_path / "second.trace.json")
    assert "3 items: 2 reused, 1 re-run: 1 ok, 0 failed" in shown.stdout


def _first_run(tmp_path: Path) -> tuple[Path, Path]:
    source = tmp_path / "wf.json"
    source.write_text(json.dumps(workflow(tmp_path)), "utf-8")
    (tmp_path / "flag").touch()
    trace = tmp_path / "first.trace.json"
    assert cli("run", source, "--trace-file", trace, "-q").returncode == 0
    (tmp_path / "flag").unlink()
    executions(tmp_path / "log")
    return source, trace


def _one_error_line(finished: subprocess.CompletedProcess[str], says: str) -> None:
    assert finished.returncode == 2, finished.stderr
    assert finished.stderr.count("\n") == 1 and finished.stderr.startswith("error: ")
    assert says in finished.stderr and "Traceback" not in finished.stderr


@pytest.mark.parametrize(
    ("spoil", "says"),
    [
        ("missing", "the trace's checkpoint is missing"),
        ("corrupt", "the checkpoint is corrupt"),
        ("foreign", "the checkpoint is from another run"),
    ],
)
def test_a_checkpoint_that_will_not_do_is_one_line_and_exit_2(
    tmp_path: Path, spoil: str, says: str
) -> None:
    source, trace = _first_run(tmp_path)
    path = checkpoint_path(trace)
    if spoil == "missing":
        path.unlink()
    elif spoil == "corrupt":
        path.write_bytes(path.read_bytes()[:-10] + b"\x00garbage")
    else:
        other = tmp_path / "other.trace.json"
        assert cli("run", source, "--trace-file", other, "-q").returncode == 0
        checkpoint_path(other).replace(path)
        executions(tmp_path / "log")
    _one_error_line(cli("resume", trace), says)
    _one_error_line(cli("run", source, "--resume", trace), says)
    assert executions(tmp_path / "log") == []


def test_a_changed_workflow_or_input_is_refused_until_forced(tmp_path: Path) -> None:
    source, trace = _first_run(tmp_path)
    _one_error_line(cli("run", source, "scale=2", "--resume", trace), "the inputs differ")
    _one_error_line(cli("resume", trace, "scale=2"), "the inputs differ")
    changed = json.loads(source.read_text("utf-8"))
    changed["nodes"][2]["params"]["code"] += " + 1"
    source.write_text(json.dumps(changed), "utf-8")
    _one_error_line(cli("run", source, "--resume", trace), "the workflow changed")
    assert executions(tmp_path / "log") == []

    forced = cli("run", source, "--resume", trace, "--force", "--output-format", "json")
    assert forced.returncode == 0, forced.stderr
    assert sorted(executions(tmp_path / "log")) == ["total", "work 1", "work 4"]
    assert json.loads(forced.stdout)["outputs"]["total"] == 151


def test_bad_resume_flags_are_one_line(tmp_path: Path) -> None:
    source, trace = _first_run(tmp_path)
    _one_error_line(cli("run", source, "--failed-only"), "--failed-only is for resuming")
    _one_error_line(cli("resume", trace, "--items", "3,x"), "--items: expected indices")
    _one_error_line(cli("resume", trace, "--rerun", "nope"), "--rerun: no node 'nope'")
    _one_error_line(cli("resume", tmp_path / "wf.json"), "not a pflow-trace trace file")


def test_ctrl_c_mid_batch_then_resume_runs_only_what_never_finished(tmp_path: Path) -> None:
    log, marker = tmp_path / "log", tmp_path / "started"
    code = (
        "import time, pathlib\n"
        f"open({str(log)!r}, 'a').write(f'work {{x}}\\n')\n"
        f"if x == 3 and not pathlib.Path({str(marker)!r}).exists():\n"
        f"    pathlib.Path({str(marker)!r}).touch()\n"
        "    time.sleep(30)\n"
        "result = x * 2"
    )
    wf = {
        "ir_version": "0.1.0",
        "name": "stopped",
        "nodes": [
            {
                "id": "work",
                "type": "code",
                "params": {"code": code, "inputs": {"x": "${item}"}},
                "batch": {"items": list(range(8))},
            }
        ],
        "outputs": {"doubled": "${work.results}"},
    }
    source = tmp_path / "wf.json"
    source.write_text(json.dumps(wf), "utf-8")
    trace = tmp_path / "first.trace.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "pflow_trace", "run", str(source), "--trace-file", str(trace)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(PYTHONUNBUFFERED="1"),
    )
    deadline = time.monotonic() + PATIENCE_S
    while not marker.exists():
        assert process.poll() is None and time.monotonic() < deadline, "item 3 never started"
        time.sleep(0.01)
    time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=PATIENCE_S)
    assert process.returncode == 130, stderr
    assert executions(log) == [f"work {x}" for x in range(4)]

    resumed = cli("resume", trace, "--trace-file", tmp_path / "second.trace.json",
                  "--output-format", "json")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert executions(log) == [f"work {x}" for x in range(3, 8)]  # interrupted and never started
    rows = json.loads(resumed.stdout)["outputs"]["doubled"]
    assert [row["result"] for row in rows] == [x * 2 for x in range(8)]
