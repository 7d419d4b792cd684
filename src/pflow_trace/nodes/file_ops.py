"""The ``copy-file``, ``move-file`` and ``delete-file`` nodes, with pflow's params and outputs
(pflow-cli 0.16).

Paths expand ``~`` and are reported absolute and normalised. Copy and move create missing
directories and refuse to replace an existing file unless ``overwrite`` is true. Deleting needs
``confirm_delete`` to be the boolean ``true``, given through the node's ``inputs`` (pflow keeps
it out of plain params so a deletion cannot come from node config alone); a file already gone
counts as deleted, so a rerun succeeds. A refusal (an existing destination, no confirmation,
a directory) is not retriable: another attempt of a ``retry`` block would meet it again. Each
output is the sentence pflow writes
(``Successfully copied 'a' to 'b'``), and every failure is one line naming the path.
"""

from __future__ import annotations

import errno
import os
import shutil
from typing import Any, ClassVar

from pflow_trace.nodes.base import RUNTIME_KEYS, NodeFailure, WorkflowNode


def _normalised(path: str) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(path)))


def _failure(action: str, source: str, dest: str, exc: OSError) -> NodeFailure:
    """One line for what went wrong in the file system, the way pflow words the usual ones."""
    if isinstance(exc, FileNotFoundError) and not os.path.exists(source):
        return NodeFailure(f"source file '{source}' does not exist")
    if isinstance(exc, PermissionError):
        return NodeFailure(f"permission denied when {action} '{source}' to '{dest}'")
    if exc.errno == errno.ENOSPC:
        return NodeFailure(f"no space left on device when {action} to '{dest}'")
    return NodeFailure(f"could not {action.removesuffix('ing')} '{source}' to '{dest}': {exc}")


_TRANSFER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "source_path": {"type": "string", "minLength": 1},
        "dest_path": {"type": "string", "minLength": 1},
        "overwrite": {"type": "boolean"},
    },
    "required": ["source_path", "dest_path"],
    "patternProperties": RUNTIME_KEYS,
    "additionalProperties": False,
}


def _checked_transfer(params: dict[str, Any], verb: str) -> tuple[str, str]:
    """Source and destination, normalised, once the move or copy is known to be allowed.

    The destination's directories are created here, as pflow does before it copies.
    """
    source, dest = _normalised(params["source_path"]), _normalised(params["dest_path"])
    if not os.path.exists(source):
        raise NodeFailure(f"source file '{source}' does not exist")
    if not os.path.isfile(source):
        raise NodeFailure(
            f"source path '{source}' is not a file: {verb} takes files only", retriable=False
        )
    if os.path.exists(dest) and not params.get("overwrite", False):
        raise NodeFailure(
            f"destination file '{dest}' already exists; set overwrite: true to replace it",
            retriable=False,
        )
    try:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
    except OSError as exc:
        raise _failure(f"{verb.removesuffix('e')}ing", source, dest, exc) from None
    return source, dest


class CopyFileNode(WorkflowNode):
    """Copies one file, keeping its metadata (``shutil.copy2``)."""

    type_name: ClassVar[str] = "copy-file"
    output_keys: ClassVar[frozenset[str] | None] = frozenset({"copied"})
    params_schema: ClassVar[dict[str, Any] | None] = _TRANSFER_SCHEMA

    def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        source, dest = _checked_transfer(params, "copy")
        try:
            shutil.copy2(source, dest)
        except OSError as exc:
            raise _failure("copying", source, dest, exc) from None
        return {"copied": f"Successfully copied '{source}' to '{dest}'"}


class MoveFileNode(WorkflowNode):
    """Moves one file: a rename, or across file systems a copy then a delete of the source.

    When the copy worked but the source cannot be deleted, the move still succeeds and says
    so in ``warning`` (as pflow does): the data is safe at the destination.
    """

    type_name: ClassVar[str] = "move-file"
    output_keys: ClassVar[frozenset[str] | None] = frozenset({"moved", "warning"})
    params_schema: ClassVar[dict[str, Any] | None] = _TRANSFER_SCHEMA

    def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        source, dest = _checked_transfer(params, "move")
        try:
            os.replace(source, dest)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise _failure("moving", source, dest, exc) from None
            return self._across_devices(source, dest)
        return {"moved": f"Successfully moved '{source}' to '{dest}'"}

    @staticmethod
    def _across_devices(source: str, dest: str) -> dict[str, Any]:
        try:
            shutil.copy2(source, dest)
        except OSError as exc:
            raise _failure("moving", source, dest, exc) from None
        try:
            os.remove(source)
        except OSError as exc:
            warning = f"warning: file copied but source deletion failed: {exc}"
            moved = f"Successfully moved '{source}' to '{dest}' ({warning})"
            return {"moved": moved, "warning": warning}
        return {"moved": f"Successfully moved '{source}' to '{dest}' (cross-device)"}


class DeleteFileNode(WorkflowNode):
    """Deletes one file, only when ``inputs.confirm_delete`` is the boolean ``true``."""

    type_name: ClassVar[str] = "delete-file"
    output_keys: ClassVar[frozenset[str] | None] = frozenset({"deleted"})
    params_schema: ClassVar[dict[str, Any] | None] = {
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "minLength": 1},
            "inputs": {
                "type": "object",
                "properties": {"confirm_delete": {}},
                "additionalProperties": False,
            },
        },
        "required": ["file_path"],
        "patternProperties": RUNTIME_KEYS,
        "additionalProperties": False,
    }

    def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        path = _normalised(params["file_path"])
        inputs = params.get("inputs") or {}
        if "confirm_delete" not in inputs:
            raise NodeFailure(
                f"deletion of '{path}' not confirmed: give 'inputs: confirm_delete: "
                "${confirm_delete}' from a boolean workflow input",
                retriable=False,
            )
        _check_confirmed(path, inputs["confirm_delete"])
        if not os.path.lexists(path):
            return {"deleted": f"Successfully deleted '{path}' (file did not exist)"}
        if os.path.isdir(path):
            raise NodeFailure(
                f"path '{path}' is not a file: delete-file takes files only", retriable=False
            )
        try:
            os.remove(path)
        except FileNotFoundError:
            return {"deleted": f"Successfully deleted '{path}' (deleted by another process)"}
        except PermissionError:
            raise NodeFailure(f"permission denied when deleting '{path}'") from None
        except OSError as exc:
            raise NodeFailure(f"could not delete '{path}': {exc.strerror or exc}") from None
        return {"deleted": f"Successfully deleted '{path}'"}


def _check_confirmed(path: str, confirm: Any) -> None:
    """Only the boolean ``true`` authorises: the string ``"true"`` of a string input does not."""
    if confirm is True:
        return
    if confirm is False:
        raise NodeFailure(
            f"deletion of '{path}' not confirmed: 'confirm_delete' is false; "
            "pass confirm_delete=true to delete",
            retriable=False,
        )
    raise NodeFailure(
        f"deletion of '{path}' not confirmed: 'confirm_delete' must be the boolean true, got "
        f"{type(confirm).__name__} {confirm!r}; declare the confirm_delete input with "
        "'- type: boolean'",
        retriable=False,
    )
