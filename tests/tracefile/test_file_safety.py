"""Trace files and ``export -o`` files are private and cannot be aimed at something else.

Directories we create are 0700 and files 0600 whatever the umask; a symlink planted at the
destination is replaced, never written through; a destination that is a FIFO, a device, a
socket or a directory is refused with one line and exit 2 before the run starts (a workflow
that would leave a marker file proves nothing ran).
"""

from __future__ import annotations

import json
import os
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pflow_trace import api
from pflow_trace.api import TraceOptions
from pflow_trace.cli.main import cli
from pflow_trace.errors import UsageError
from pflow_trace.observe.export_settings import resolve_export_settings
from pflow_trace.tracefile.writer import write_private_file


def marker_workflow(marker: Path) -> dict[str, Any]:
    """A run that leaves ``marker`` behind if it starts at all."""
    return {
        "ir_version": "0.1.0",
        "name": "safety",
        "nodes": [
            {
                "id": "touch",
                "type": "write-file",
                "params": {"file_path": str(marker), "content": "x"},
            }
        ],
    }


def invoke(*arguments: Any) -> Result:
    result = CliRunner().invoke(cli, list(map(str, arguments)))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def assert_refused(result: Result, expected: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0], lines[0]


def run_into(tmp_path: Path, destination: Path) -> Result:
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(marker_workflow(tmp_path / "marker")), encoding="utf-8")
    return invoke("run", workflow, "--trace-file", destination)


@contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# -- refused destinations ----------------------------------------------------------------------


def test_a_fifo_is_refused_before_the_run(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert_refused(run_into(tmp_path, fifo), "is a FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert not (tmp_path / "marker").exists()


def test_a_directory_and_a_socket_are_refused(tmp_path: Path) -> None:
    directory = tmp_path / "dir"
    directory.mkdir()
    assert_refused(run_into(tmp_path, directory), "is a directory")
    with socket.socket(socket.AF_UNIX) as server:
        sock = tmp_path / "s.sock"
        server.bind(str(sock))
        assert_refused(run_into(tmp_path, sock), "is a socket")
    assert not (tmp_path / "marker").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a device node needs root")
def test_a_device_is_refused_and_left_alone(tmp_path: Path) -> None:
    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("this container may not create device nodes")
    assert_refused(run_into(tmp_path, device), "is a character device")
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert not (tmp_path / "marker").exists()


def test_a_destination_that_turns_into_a_fifo_is_not_replaced(tmp_path: Path) -> None:
    """Checked again right before the rename (the run may take hours): a FIFO made meanwhile
    stays a FIFO and the temporary file is removed."""
    fifo = tmp_path / "late"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match=r"--trace-file .* is a FIFO"):
        write_private_file(fifo, ["{}"], "--trace-file")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["late"]


# -- symlinks and modes --------------------------------------------------------------------------


def test_a_symlink_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    link = tmp_path / "trace.json"
    link.symlink_to(victim)
    result = run_into(tmp_path, link)
    assert result.exit_code == 0, result.output
    assert victim.read_text(encoding="utf-8") == "keep me"
    assert not link.is_symlink() and json.loads(link.read_text())["final_status"] == "success"
    assert mode(link) == 0o600


def test_trace_dirs_are_0700_and_files_0600_under_any_umask(tmp_path: Path) -> None:
    trace_dir = tmp_path / "a" / "b" / "traces"
    workflow = marker_workflow(tmp_path / "marker")
    options = TraceOptions(export=resolve_export_settings("none", env={}), trace_dir=str(trace_dir))
    with umask(0):
        outcome = api.run(workflow, {}, options)
    assert outcome.trace_path is not None and outcome.trace_path.parent == trace_dir
    assert [mode(path) for path in (tmp_path / "a", tmp_path / "a" / "b", trace_dir)] == [0o700] * 3
    assert mode(outcome.trace_path) == 0o600


def test_the_default_trace_dir_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("PFLOW_TRACE_DIR", raising=False)
    with umask(0o022):
        outcome = api.run(
            marker_workflow(tmp_path / "marker"),
            {},
            TraceOptions(export=resolve_export_settings("none", env={})),
        )
    assert outcome.trace_path is not None
    assert outcome.trace_path.parent == tmp_path / ".pflow-trace" / "traces"
    assert mode(tmp_path / ".pflow-trace") == mode(outcome.trace_path.parent) == 0o700


# -- export -o ---------------------------------------------------------------------------------


@pytest.fixture
def saved_trace(tmp_path: Path) -> Path:
    result = run_into(tmp_path, tmp_path / "saved.json")
    assert result.exit_code == 0, result.output
    return tmp_path / "saved.json"


def test_export_refuses_a_fifo_and_a_directory(tmp_path: Path, saved_trace: Path) -> None:
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    assert_refused(invoke("export", saved_trace, "--format", "chrome", "-o", fifo), "is a FIFO")
    assert_refused(
        invoke("export", saved_trace, "--format", "chrome", "-o", tmp_path), "is a directory"
    )
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_export_replaces_a_planted_symlink_with_a_private_file(
    tmp_path: Path, saved_trace: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    link = tmp_path / "out.json"
    link.symlink_to(victim)
    with umask(0):
        result = invoke("export", saved_trace, "--format", "jaeger-json", "-o", link)
    assert result.exit_code == 0, result.output
    assert victim.read_text(encoding="utf-8") == "keep me"
    assert not link.is_symlink() and "data" in json.loads(link.read_text())
    assert mode(link) == 0o600
