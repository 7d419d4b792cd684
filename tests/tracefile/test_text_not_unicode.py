"""The trace writer, the spool, the span rows and the readers with text that is not valid
Unicode (lone surrogates), and the removal of temporary files a killed writer left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from pflow_trace.text import escape_surrogates, escape_surrogates_in_json, json_text
from pflow_trace.tracefile.readers import read_trace
from pflow_trace.tracefile.spantable import SpanRecorder
from pflow_trace.tracefile.spool import Spool, TextBlocks, encode_elements
from pflow_trace.tracefile.writer import (
    STALE_TEMPORARY_AGE_S,
    remove_stale_temporaries,
    write_private_file,
    write_trace,
    writer_host,
)


def minimal_document(**extra: object) -> dict[str, object]:
    return {"format_version": "1.2.0", "workflow_name": "w", "nodes": [], **extra}


def test_the_rule_is_a_visible_escape_of_each_lone_surrogate() -> None:
    assert escape_surrogates("f\udcff.txt") == "f\\udcff.txt"
    assert escape_surrogates("a\ud800\udc00b") == "a\\ud800\\udc00b"
    assert escape_surrogates("plain é ✓") == "plain é ✓"
    text, count = escape_surrogates_in_json(
        json.dumps(["\udcff", "ok", {"k\ud800": 1}], ensure_ascii=False)
    )
    assert json.loads(text) == ["\\udcff", "ok", {"k\\ud800": 1}]
    assert count == 2


def test_write_trace_escapes_counts_and_warns(tmp_path: Path) -> None:
    document = minimal_document(workflow_name="w\ud800", error="bad \udcff\udcfe")
    path = write_trace(tmp_path / "t.json", document)
    raw = path.read_bytes().decode("utf-8")  # strict
    written = json.loads(raw)
    assert written["workflow_name"] == "w\\ud800"
    assert written["error"] == "bad \\udcff\\udcfe"
    assert written["warnings"] == [
        "2 values in this trace hold text that is not valid Unicode; escaped as \\uXXXX"
    ]
    assert list(written)[-1] == "warnings"  # written last, once the count is known
    assert document["warnings"] == written["warnings"]  # and on the document the run returns


def test_a_trace_without_such_text_has_no_warnings(tmp_path: Path) -> None:
    written = json.loads(write_trace(tmp_path / "t.json", minimal_document()).read_text())
    assert "warnings" not in written


def test_spooled_blocks_keep_surrogates_for_the_writer_to_escape(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    blocks = TextBlocks(spool)
    blocks.append_block(encode_elements([{"item": "x\udcff"}, {"item": "ok"}]), 2)
    assert isinstance(blocks.blocks[0], tuple)  # in the file, not kept in memory
    assert blocks.decoded() == [{"item": "x\udcff"}, {"item": "ok"}]
    path = write_trace(tmp_path / "t.json", minimal_document(nodes=[{"batch_items": blocks}]))
    written = json.loads(path.read_text("utf-8"))
    assert written["nodes"][0]["batch_items"][0]["item"] == "x\\udcff"
    assert written["warnings"][0].startswith("1 value in this trace holds")
    spool.close()


def test_span_rows_with_surrogates_reach_the_file(tmp_path: Path) -> None:
    recorder = SpanRecorder(Spool(tmp_path))
    recorder.start(1000)
    recorder.record(
        "node\udcff", {"pflow.node.id": "n\ud800"}, 1, 0, 1000, 2000, 2, "err \udcfe", None
    )
    table = recorder.table(1000)
    path = write_trace(tmp_path / "t.json", minimal_document(otel={"spans": table}))
    written = json.loads(path.read_text("utf-8"))
    assert written["otel"]["spans"]["kinds"][0]["name"] == "node\\udcff"
    assert written["otel"]["spans"]["rows"][0][6] == "err \\udcfe"


def test_html_chunks_are_escaped_as_text(tmp_path: Path) -> None:
    path = write_private_file(tmp_path / "r.html", ["<p>a\udcff</p>"], "-o", json_chunks=False)
    assert path.read_text("utf-8") == "<p>a\\udcff</p>"


def test_json_text_renders_what_json_cannot_hold() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

        __str__ = __repr__

    text = json_text({(1, 2): b"x", "n": float("nan"), 10**5000: 1, "b": Broken(), "s": "\udcff"})
    assert json.loads(text) == {
        "(1, 2)": "<binary: 1 bytes>",
        "n": "nan",
        "<integer of about 5001 digits>": 1,
        "b": "<Broken that cannot be shown>",
        "s": "\\udcff",
    }
    text.encode("utf-8")


def test_reader_escapes_lone_surrogate_escapes_but_not_pairs(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(
        '{"format_version": "1.2.0", "workflow_name": "\\ud83d\\ude00 \\udcff", "nodes": []}'
    )
    run = read_trace(path)
    assert run.workflow_name == "\U0001f600 \\udcff"
    assert len(run.warnings) == 1 and "1 value in this trace holds" in run.warnings[0]
    paired = tmp_path / "p.json"
    paired.write_text('{"format_version": "1.2.0", "workflow_name": "\\ud83d\\ude00", "nodes": []}')
    assert read_trace(paired).warnings == []


def test_reader_takes_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(b'{"format_version": "1.2.0", "workflow_name": "a\xffb", "nodes": []}')
    run = read_trace(path)
    assert run.workflow_name == "a\\udcffb"
    assert run.warnings and "not valid Unicode" in run.warnings[0]


def test_reader_shows_the_writers_warnings(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "t.json", minimal_document(workflow_name="\udcff"))
    run = read_trace(path)
    assert run.warnings == [
        f"{path}: 1 value in this trace holds text that is not valid Unicode; escaped as \\uXXXX"
    ]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    host = writer_host()
    dead = tmp_path / f".trace-{_dead_pid()}@{host}-abc123.tmp"
    live = tmp_path / f".trace-{os.getppid()}@{host}-def456.tmp"  # a running process
    elsewhere = tmp_path / f".trace-{_dead_pid()}@other.host-ghi789.tmp"  # young, other host
    old = tmp_path / ".trace-zz9_x.tmp"  # no pid (an older version's name), hours old
    young = tmp_path / ".trace-q1w2e3.tmp"  # no pid, just written: could be a live writer
    other = tmp_path / "notes.tmp"
    for path in (dead, live, elsewhere, old, young, other):
        path.write_text("{")
    past = time.time() - STALE_TEMPORARY_AGE_S - 60
    os.utime(old, (past, past))
    assert remove_stale_temporaries(tmp_path) == 2
    assert not dead.exists() and not old.exists()
    assert live.exists() and elsewhere.exists() and young.exists() and other.exists()


def test_writing_a_trace_tidies_its_directory(tmp_path: Path) -> None:
    left = tmp_path / f".trace-{_dead_pid()}@{writer_host()}-k1ll3d.tmp"
    left.write_text('{"half": ')
    os.chmod(left, 0o600)
    write_trace(tmp_path / "t.json", minimal_document())
    assert not left.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json"]


def test_a_writer_killed_mid_write_leaves_a_file_the_next_write_removes(tmp_path: Path) -> None:
    """``kill -9`` during the write: the temporary file stays, named by the dead writer."""
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from pflow_trace.tracefile.writer import write_private_file\n"
        "def chunks():\n"
        "    yield '{'\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "write_private_file(Path(sys.argv[1]), chunks(), '-o')\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "t.json")], check=False)
    (left,) = tmp_path.glob(".trace-*.tmp")
    assert oct(left.stat().st_mode & 0o777) == "0o600"
    write_trace(tmp_path / "t.json", minimal_document())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json"]
