"""copy-file, move-file and delete-file alone, and through a workflow run.

The output sentences are pflow-cli 0.16's, as printed by
``pflow --no-cache --output-format json files.pflow.md workdir=...`` (copy, copy with
overwrite, move into a new directory, delete with ``confirm_delete: true``); the compat case
``25-file-ops`` records the same run.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from pflow_trace.nodes.base import NodeFailure, WorkflowNode
from pflow_trace.nodes.file_ops import CopyFileNode, DeleteFileNode, MoveFileNode
from pflow_trace.nodes.registry import NodeRegistry


def run(node: WorkflowNode, params: dict[str, Any]) -> dict[str, Any]:
    node.set_params(params)
    shared: dict[str, Any] = {}
    node.run(shared)
    return shared


def failure(node: WorkflowNode, params: dict[str, Any]) -> str:
    node.set_params(params)
    with pytest.raises(NodeFailure) as info:
        node.run({})
    return info.value.message


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "a.txt"
    path.write_text("hello")
    return path


def test_the_registry_knows_the_three_types() -> None:
    assert {"copy-file", "move-file", "delete-file"} <= set(NodeRegistry().names())


def test_copy_creates_directories_and_says_what_it_copied(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "deeper" / "b.txt"
    out = run(CopyFileNode(), {"source_path": str(source), "dest_path": str(dest)})
    assert out == {"copied": f"Successfully copied '{source}' to '{dest}'"}
    assert dest.read_text() == "hello" and source.exists()


def test_copy_refuses_an_existing_destination_unless_overwrite(
    source: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "b.txt"
    dest.write_text("old")
    params = {"source_path": str(source), "dest_path": str(dest)}
    assert "already exists; set overwrite: true" in failure(CopyFileNode(), params)
    assert dest.read_text() == "old"
    run(CopyFileNode(), {**params, "overwrite": True})
    assert dest.read_text() == "hello"


def test_paths_are_normalised_and_expand_home(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    out = run(CopyFileNode(), {"source_path": "~/a.txt", "dest_path": "~/x/../c.txt"})
    assert out["copied"] == f"Successfully copied '{source}' to '{tmp_path / 'c.txt'}'"


def test_copy_of_a_missing_source_or_a_directory_fails_in_one_line(tmp_path: Path) -> None:
    missing = failure(
        CopyFileNode(), {"source_path": str(tmp_path / "no"), "dest_path": str(tmp_path / "b")}
    )
    assert missing == f"source file '{tmp_path / 'no'}' does not exist"
    directory = failure(
        CopyFileNode(), {"source_path": str(tmp_path), "dest_path": str(tmp_path / "b")}
    )
    assert "is not a file" in directory and "\n" not in directory


def test_move_renames_and_creates_directories(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "deep" / "er" / "c.txt"
    out = run(MoveFileNode(), {"source_path": str(source), "dest_path": str(dest)})
    assert out == {"moved": f"Successfully moved '{source}' to '{dest}'"}
    assert dest.read_text() == "hello" and not source.exists()


def test_move_refuses_an_existing_destination(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "b.txt"
    dest.write_text("old")
    message = failure(MoveFileNode(), {"source_path": str(source), "dest_path": str(dest)})
    assert "already exists" in message and source.exists() and dest.read_text() == "old"


def test_move_across_devices_copies_then_warns_when_the_source_stays(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rename that crosses file systems becomes copy + delete; a delete that fails is a
    warning, not a failure, because the data is safe at the destination (as in pflow)."""

    def cross_device(src: str, dst: str) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    def cannot_remove(path: str) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", cross_device)
    dest = tmp_path / "c.txt"
    out = run(MoveFileNode(), {"source_path": str(source), "dest_path": str(dest)})
    assert out["moved"].endswith("(cross-device)") and not source.exists()
    source.write_text("again")
    monkeypatch.setattr(os, "remove", cannot_remove)
    out = run(
        MoveFileNode(), {"source_path": str(source), "dest_path": str(dest), "overwrite": True}
    )
    assert out["warning"].startswith("warning: file copied but source deletion failed")
    assert dest.read_text() == "again"


def test_delete_needs_the_boolean_true(source: Path) -> None:
    path = str(source)
    assert "not confirmed" in failure(DeleteFileNode(), {"file_path": path})
    assert "'confirm_delete' is false" in failure(
        DeleteFileNode(), {"file_path": path, "inputs": {"confirm_delete": False}}
    )
    refused = failure(DeleteFileNode(), {"file_path": path, "inputs": {"confirm_delete": "true"}})
    assert "must be the boolean true, got str 'true'" in refused
    assert source.exists()
    out = run(DeleteFileNode(), {"file_path": path, "inputs": {"confirm_delete": True}})
    assert out == {"deleted": f"Successfully deleted '{source}'"}
    assert not source.exists()


def test_deleting_a_missing_file_succeeds_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "gone.txt"
    out = run(DeleteFileNode(), {"file_path": str(path), "inputs": {"confirm_delete": True}})
    assert out == {"deleted": f"Successfully deleted '{path}' (file did not exist)"}


def test_delete_refuses_a_directory(tmp_path: Path) -> None:
    message = failure(
        DeleteFileNode(), {"file_path": str(tmp_path), "inputs": {"confirm_delete": True}}
    )
    assert "is not a file" in message and tmp_path.is_dir()


def test_confirm_delete_as_a_plain_param_is_a_schema_problem(source: Path) -> None:
    message = failure(DeleteFileNode(), {"file_path": str(source), "confirm_delete": True})
    assert "confirm_delete" in message and source.exists()
