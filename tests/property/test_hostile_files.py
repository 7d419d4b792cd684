"""Hostile files end in one error line and exit 2, in bounded memory (end to end).

Each command runs in its own process, which reports its peak resident memory on exit, so the
bound is measured, not assumed. Before the fixes, a 64 MB garbage trace took several times its
size to reject, ``run /dev/zero`` read until ``MemoryError``, and deep nesting was a
``RecursionError`` traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from subprocess_env import clean_env

#: Runs the CLI, then prints the process's peak resident set size to stderr. ``VmHWM`` and not
#: ``ru_maxrss``: the latter keeps the high-water mark of the forked test process before exec.
_MEASURED_CLI = (
    "import atexit, re, sys\n"
    "def report():\n"
    "    status = open('/proc/self/status').read()\n"
    "    kb = re.search(r'VmHWM:\\s+(\\d+)', status).group(1)\n"
    "    sys.stderr.write('\\npeak_rss_kb=' + kb + '\\n')\n"
    "atexit.register(report)\n"
    "from pflow_trace.cli.entry import main\n"
    "main(sys.argv[1:])\n"
)
pytestmark = [
    pytest.mark.skipif(
        not Path("/proc/self/status").exists(), reason="peak memory is read from /proc"
    ),
    pytest.mark.slow,  # CLI processes on hostile files, their peak memory measured
]
GARBAGE_MB = 64


def run_measured(*arguments: str) -> tuple[int, str, int]:
    """(exit code, stderr without the measurement, peak RSS in MB) of one CLI process."""
    completed = subprocess.run(
        [sys.executable, "-c", _MEASURED_CLI, *arguments],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
    )
    stderr, _, measured = completed.stderr.rpartition("\npeak_rss_kb=")
    return completed.returncode, stderr.strip(), int(measured) // 1024


def assert_one_error_line(code: int, stderr: str) -> None:
    assert code == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr


@pytest.fixture(scope="module")
def garbage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """64 MB files that are no trace: a brace and then noise, raw bytes, a giant array."""
    folder = tmp_path_factory.mktemp("garbage")
    size = GARBAGE_MB << 20
    files = {
        "brace": b"{" + "é".encode() * (size // 2),
        "bytes": bytes(range(256)) * (size // 256),
        "array": b"[" + b"1," * (size // 2) + b"1]",
    }
    paths = {}
    for name, content in files.items():
        paths[name] = folder / f"{name}.json"
        paths[name].write_bytes(content)
    return paths


@pytest.mark.parametrize("kind", ["brace", "bytes", "array"])
@pytest.mark.parametrize("command", [["show"], ["export", "--format", "chrome", "-o", "-"]])
def test_a_large_garbage_trace_is_refused_without_reading_it_all(
    kind: str, command: list[str], garbage: dict[str, Path]
) -> None:
    code, stderr, peak_mb = run_measured(command[0], str(garbage[kind]), *command[1:])
    assert_one_error_line(code, stderr)
    assert str(garbage[kind]) in stderr
    # The interpreter and the command's imports take 20-60 MB; the file itself is 64 MB.
    assert peak_mb < GARBAGE_MB, f"{peak_mb} MB to reject a {GARBAGE_MB} MB file"


def test_run_of_an_endless_file_stops_at_the_size_limit() -> None:
    code, stderr, peak_mb = run_measured("run", "/dev/zero", "--no-trace-file")
    assert_one_error_line(code, stderr)
    assert "larger than 16 MB" in stderr
    assert peak_mb < 200


@pytest.mark.parametrize(
    "command",
    [["show"], ["show", "--json"], ["export", "--format", "chrome", "-o", "-"]],
)
def test_a_trace_nested_100000_deep_is_one_error(command: list[str], tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"format_version": "1.2.0", "nodes": ' + "[" * 100_000 + "]" * 100_000 + "}")
    code, stderr, _ = run_measured(command[0], str(path), *command[1:])
    assert_one_error_line(code, stderr)
    assert "nested too deeply" in stderr


def test_deep_workflow_and_input_are_one_error(tmp_path: Path) -> None:
    path = tmp_path / "wf.json"
    deep = "[" * 10_000 + "]" * 10_000
    path.write_text(
        '{"ir_version": "0.1.0", "nodes": [{"id": "a", "type": "echo", "params": {"v": '
        + deep
        + "}}]}"
    )
    for arguments in (["validate", str(path)], ["run", str(path)]):
        code, stderr, _ = run_measured(*arguments)
        assert code == 2 and "Traceback" not in stderr, stderr
        assert "nested" in stderr
    path.write_text(
        '{"ir_version": "0.1.0", "inputs": {"x": {"type": "array"}}, '
        '"nodes": [{"id": "a", "type": "echo", "params": {"v": "${x}"}}]}'
    )
    code, stderr, _ = run_measured("run", str(path), "x=" + "[" * 60_000 + "]" * 60_000)
    assert_one_error_line(code, stderr)
    assert "input 'x': nested too deeply" in stderr
