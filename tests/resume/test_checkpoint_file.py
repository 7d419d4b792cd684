"""The checkpoint file: its encoding, its mode, what it refuses to keep, and a checkpoint that
is missing, corrupt or another run's."""

from __future__ import annotations

import json
import math
import stat
from pathlib import Path
from typing import Any

import pytest
from resume_cases import executions, options, trace_document, workflow

import pflow_trace
from pflow_trace.errors import ResumeError
from pflow_trace.runtime.resume import ResumeRequest
from pflow_trace.tracefile.checkpoint import (
    Unencodable,
    checkpoint_path,
    decode_line,
    encoded_data,
    encoded_json,
)


@pytest.mark.parametrize(
    "value",
    [
        {"text": "é\u2028", "n": 3, "f": 1.5, "none": None, "flag": False, "list": [1, [2]]},
        b"\x00\xffbytes",
        (1, "two", (3,)),
        {1: "int key", (2, 3): "tuple key", b"k": "bytes key"},
        {"$bytes": "a dict that looks tagged"},
        [float("inf"), float("-inf")],
        "",
        0,
    ],
)
def test_values_come_back_exactly(value: Any) -> None:
    assert decode_line(encoded_json(value)) == value


@pytest.mark.parametrize(
    "value",
    [
        {"nodes": [{"id": "a", "batch": {"items": list(range(50))}}]},
        (1, "two"),
        {1: "int key"},
        {"$bytes": "a dict that looks tagged"},
        b"raw",
    ],
)
def test_encoded_data_is_plain_json_that_comes_back_exactly(value: Any) -> None:
    data = encoded_data(value)
    assert decode_line(json.dumps(data)) == value


def test_encoded_data_of_plain_json_is_the_value_itself() -> None:
    workflow = {"nodes": [{"id": "a", "batch": {"items": list(range(50))}}]}
    assert encoded_data(workflow) is workflow


def test_nan_comes_back_as_nan() -> None:
    assert math.isnan(decode_line(encoded_json(float("nan"))))


def test_values_json_cannot_hold_exactly_are_refused() -> None:
    with pytest.raises(Unencodable) as info:
        encoded_json({"a": [{1, 2}]})
    assert info.value.type_name == "set"


def test_the_checkpoint_is_private_beside_the_trace_and_named_only_by_id(tmp_path: Path) -> None:
    trace = tmp_path / "first.trace.json"
    outcome = pflow_trace.run(workflow(tmp_path), {}, options(trace))
    path = checkpoint_path(trace)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    recorded = trace_document(trace)["checkpoint"]
    assert set(recorded) == {"id", "sha256", "bytes"}
    assert recorded["bytes"] == path.stat().st_size
    assert path.name not in trace.read_text("utf-8")
    assert path.name not in json.dumps(outcome.outputs)
    header = json.loads(path.read_text("utf-8").splitlines()[0])
    assert header["id"] == recorded["id"] and header["checkpoint"] == 1


def test_an_existing_file_is_made_private_again(tmp_path: Path) -> None:
    trace = tmp_path / "first.trace.json"
    checkpoint_path(trace).write_text("old")
    checkpoint_path(trace).chmod(0o644)
    pflow_trace.run(workflow(tmp_path), {}, options(trace))
    assert stat.S_IMODE(checkpoint_path(trace).stat().st_mode) == 0o600


def _first_run(tmp_path: Path) -> tuple[dict[str, Any], ResumeRequest]:
    wf = workflow(tmp_path)
    (tmp_path / "flag").touch()
    pflow_trace.run(wf, {}, options(tmp_path / "first.trace.json"))
    (tmp_path / "flag").unlink()
    executions(tmp_path / "log")
    return wf, ResumeRequest(str(tmp_path / "first.trace.json"))


def _resume(tmp_path: Path, wf: dict[str, Any], request: ResumeRequest) -> Any:
    return pflow_trace.run(wf, {}, options(tmp_path / "second.trace.json", request))


def test_a_missing_checkpoint_is_refused(tmp_path: Path) -> None:
    wf, request = _first_run(tmp_path)
    checkpoint_path(tmp_path / "first.trace.json").unlink()
    with pytest.raises(ResumeError, match="the trace's checkpoint is missing"):
        _resume(tmp_path, wf, request)
    assert executions(tmp_path / "log") == []


def test_a_corrupt_checkpoint_is_refused(tmp_path: Path) -> None:
    wf, request = _first_run(tmp_path)
    path = checkpoint_path(tmp_path / "first.trace.json")
    text = path.read_text("utf-8")
    path.write_text(text.replace('"tenfold":20', '"tenfold":21'), "utf-8")
    with pytest.raises(ResumeError, match="corrupt or was changed"):
        _resume(tmp_path, wf, request)


def test_a_truncated_checkpoint_is_refused(tmp_path: Path) -> None:
    wf, request = _first_run(tmp_path)
    path = checkpoint_path(tmp_path / "first.trace.json")
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ResumeError, match="corrupt"):
        _resume(tmp_path, wf, request)


def test_another_runs_checkpoint_is_refused(tmp_path: Path) -> None:
    wf, request = _first_run(tmp_path)
    pflow_trace.run(wf, {}, options(tmp_path / "other.trace.json"))
    other = checkpoint_path(tmp_path / "other.trace.json")
    other.replace(checkpoint_path(tmp_path / "first.trace.json"))
    with pytest.raises(ResumeError, match="from another run"):
        _resume(tmp_path, wf, request)


def test_a_run_without_a_checkpoint_cannot_be_resumed(tmp_path: Path) -> None:
    wf = workflow(tmp_path)
    trace = tmp_path / "first.trace.json"
    pflow_trace.run(wf, {}, options(trace, checkpoint=False))
    assert not checkpoint_path(trace).exists()
    assert "checkpoint" not in trace_document(trace)
    with pytest.raises(ResumeError, match="kept no checkpoint"):
        _resume(tmp_path, wf, ResumeRequest(str(trace)))


def test_a_missing_trace_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ResumeError, match="no such trace file"):
        _resume(tmp_path, workflow(tmp_path), ResumeRequest(str(tmp_path / "nope.json")))


def _unencodable_workflow(tmp_path: Path) -> dict[str, Any]:
    wf = workflow(tmp_path)
    code = wf["nodes"][1]["params"]["code"]
    wf["nodes"][1]["params"]["code"] = code.replace(
        "result = {'tenfold': x * 10}", "result = {'tenfold': x * 10, 'odd': {x} if x == 2 else x}"
    )
    return wf


def test_results_that_cannot_be_encoded_are_not_kept_and_the_run_says_so(tmp_path: Path) -> None:
    wf = _unencodable_workflow(tmp_path)
    first = pflow_trace.run(wf, {}, options(tmp_path / "first.trace.json"))
    assert first.status == "success"
    assert first.checkpoint_notes == [
        "checkpoint: 1 value of 'work' not kept (set cannot be encoded); a resume runs them again"
    ]
    executions(tmp_path / "log")
    request = ResumeRequest(str(tmp_path / "first.trace.json"))
    _resume(tmp_path, wf, request)
    assert executions(tmp_path / "log") == ["work 2"]


def test_past_its_size_limit_the_checkpoint_keeps_nothing_more(tmp_path: Path) -> None:
    wf = workflow(tmp_path)
    first = pflow_trace.run(wf, {}, options(tmp_path / "first.trace.json", checkpoint_max_bytes=1))
    assert any("size limit of 1 bytes reached" in note for note in first.checkpoint_notes)
    executions(tmp_path / "log")
    _resume(tmp_path, wf, ResumeRequest(str(tmp_path / "first.trace.json")))
    assert len(executions(tmp_path / "log")) == 2 + 6  # nothing was kept: all runs again


def test_a_block_of_items_reads_back_exactly_and_drops_only_what_it_cannot_keep(
    tmp_path: Path,
) -> None:
    from pflow_trace.tracefile.checkpoint import CheckpointWriter, read_checkpoint

    values: list[Any] = [{"n": 1}, (2, b"\x00"), {3: "int key"}, {"bad": {4}}, float("inf")]
    writer = CheckpointWriter(tmp_path / "c.checkpoint", {"workflow": {}})
    for index, value in enumerate(values):
        writer.item_done("work", 1, index, 1.5, value)
    recorded = writer.close()
    checkpoint = read_checkpoint(tmp_path / "c.checkpoint", recorded)

    kept = checkpoint.items[("work", 1)]
    assert sorted(kept) == [0, 1, 2, 4]
    assert [kept[index][1] for index in (0, 1, 2, 4)] == [values[0], values[1], values[2], math.inf]
    assert kept[0][0] == 1.5
    assert writer.notes.lines(writer.max_bytes) == [
        "checkpoint: 1 value of 'work' not kept (set cannot be encoded); a resume runs them again"
    ]


def test_a_checkpoint_that_cannot_be_created_leaves_the_run_going(tmp_path: Path) -> None:
    trace = tmp_path / ("t" * 240 + ".json")  # the checkpoint's name passes the 255-byte limit
    outcome = pflow_trace.run(workflow(tmp_path), {}, options(trace))

    assert outcome.status == "success"
    assert outcome.checkpoint_notes == [
        "checkpoint: cannot be written (File name too long); this run cannot be resumed"
    ]
    assert "checkpoint" not in trace_document(trace)


def test_a_run_whose_trace_fails_leaves_the_old_trace_and_checkpoint_resumable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pflow_trace import api
    from pflow_trace.errors import TraceWriteError

    wf, request = _first_run(tmp_path)

    def disk_full(path: Path, document: Any) -> Path:
        raise TraceWriteError(f"cannot write the trace file {path}: No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(api, "write_trace", disk_full)
        again = pflow_trace.run(wf, {}, options(tmp_path / "first.trace.json"))
    assert again.trace_error is not None
    assert sorted(path.name for path in tmp_path.iterdir() if "checkpoint" in path.name) == [
        "first.trace.json.checkpoint"
    ]
    executions(tmp_path / "log")
    _resume(tmp_path, wf, request)
    assert sorted(executions(tmp_path / "log")) == ["total", "work 1", "work 4"]
