"""Suite-wide fixtures: no test writes to ``~/.pflow-trace``, and every trace it writes is valid.

Each test gets its own ``PFLOW_TRACE_DIR`` (so subprocesses inherit it too). When the test
ends, every trace file our runtime wrote during it is validated against the schema that ships
in the package (``pflow_trace/tracefile/schemas/trace.schema.json``); a departure fails the test
at teardown, naming the file and the JSON path of each problem. A trace is found two ways:

* it lies in the test's trace directory (every run without ``--trace-file``, in this process
  or a subprocess, writes there): these must be ours and valid;
* it lies in the test's ``tmp_path`` and looks like ours: named ``workflow-trace-*.json`` or
  ``*.trace.json``, or starting with our ``generator`` (``--trace-file`` in a subprocess).

Elsewhere, files that are not JSON, or are JSON without a ``generator`` starting with
"pflow-trace" (pflow's own traces, fixtures, workflows), are skipped. A test
that deliberately writes a broken trace of ours opts out with ``@pytest.mark.no_trace_validation``.
Tests that write traces somewhere else can validate them with the ``validate_trace`` fixture.

To keep teardown cheap, a very long ``batch_items`` list or span table is checked on its first
and last ``SAMPLE_EDGE`` entries (jsonschema needs ~0.2 ms per item record; a 100,000-item
trace would otherwise add 20 s to a test). Every other part is checked in full.
"""

from __future__ import annotations

import gc
import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pflow_trace.tracefile.schema import TraceSchemaError, validate_trace_document

OUR_GENERATOR = "pflow-trace"
_GENERATOR_MARK = b'"generator": "pflow-trace'
_HEAD_BYTES = 256
_TMP_PATH_PATTERNS = ("workflow-trace-*.json", "*.trace.json")
SAMPLE_EDGE = 1000

validated_trace_count = 0


def pytest_configure(config: pytest.Config) -> None:
    _let_ctrl_c_reach_subprocesses()
    config.addinivalue_line(
        "markers",
        "no_trace_validation: do not validate the trace files this test writes (for tests "
        "that write broken traces on purpose)",
    )


def _let_ctrl_c_reach_subprocesses() -> None:
    """The CLI processes the Ctrl-C tests interrupt must not start with SIGINT ignored.

    A shell starts a background job (``cmd &`` in a script, a CI runner's step) with SIGINT
    ignored, and an ignored signal stays ignored across exec, so every CLI subprocess would
    shrug off the SIGINT a test sends it. A handler, unlike "ignore", is reset to the default
    in a child at exec; Python's own handler here also makes Ctrl-C stop this run as usual.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if validated_trace_count:
        terminalreporter.write_line(
            f"trace files validated against the trace schema: {validated_trace_count}"
        )


def _load(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _is_ours(document: Any) -> bool:
    generator = document.get("generator") if isinstance(document, dict) else None
    return isinstance(generator, str) and generator.startswith(OUR_GENERATOR)


def _sampled(records: Any) -> Any:
    if isinstance(records, list) and len(records) > 2 * SAMPLE_EDGE:
        return records[:SAMPLE_EDGE] + records[-SAMPLE_EDGE:]
    return records


def _sample_long_lists(document: dict[str, Any]) -> dict[str, Any]:
    """A shallow copy whose long per-item and per-span lists keep only their two ends."""
    copy = dict(document)
    nodes = document.get("nodes")
    if isinstance(nodes, list):
        copy["nodes"] = [
            {**node, "batch_items": _sampled(node["batch_items"])}
            if isinstance(node, dict) and "batch_items" in node
            else node
            for node in nodes
        ]
    otel = document.get("otel")
    spans = otel.get("spans") if isinstance(otel, dict) else None
    if isinstance(spans, dict) and "rows" in spans:
        copy["otel"] = {**otel, "spans": {**spans, "rows": _sampled(spans["rows"])}}
    return copy


def validate_trace_file(path: Path, written_by_runtime: bool = False) -> dict[str, Any] | None:
    """Validate ``path`` when it is one of our traces; return the document (``None``: skipped)."""
    global validated_trace_count
    try:
        document = _load(path)
    except (OSError, ValueError):
        if written_by_runtime:
            raise AssertionError(f"{path}: the runtime wrote a file that is not JSON") from None
        return None
    if not _is_ours(document):
        if written_by_runtime:
            raise AssertionError(f"{path}: the runtime wrote a trace without our generator")
        return None
    validate_trace_document(_sample_long_lists(document), str(path))
    validated_trace_count += 1
    return document


def _looks_like_our_trace(path: Path) -> bool:
    if any(path.match(pattern) for pattern in _TMP_PATH_PATTERNS):
        return True
    try:
        with open(path, "rb") as handle:
            return _GENERATOR_MARK in handle.read(_HEAD_BYTES)
    except OSError:
        return False


def _candidates(trace_dir: Path, tmp_path: Path | None) -> Iterator[Path]:
    if trace_dir.is_dir():
        yield from trace_dir.rglob("*.json")
    if tmp_path is not None and tmp_path.is_dir():
        for path in tmp_path.rglob("*.json"):
            if path.is_file() and _looks_like_our_trace(path):
                yield path


@pytest.fixture(autouse=True)
def _checked_trace_dir(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Path]:
    """This test's ``PFLOW_TRACE_DIR``; every trace written during the test is validated after."""
    directory = tmp_path_factory.mktemp("traces", numbered=True)
    monkeypatch.setenv("PFLOW_TRACE_DIR", str(directory))
    yield directory
    if request.node.get_closest_marker("no_trace_validation") is not None:
        return
    tmp_path = (getattr(request.node, "funcargs", None) or {}).get("tmp_path")
    seen: set[Path] = set()
    problems: list[str] = []
    found = [(path, path.is_relative_to(directory)) for path in _candidates(directory, tmp_path)]
    for path, by_runtime in found:
        key = Path(os.path.abspath(path))
        if key in seen or not path.exists():
            continue
        seen.add(key)
        try:
            validate_trace_file(path, written_by_runtime=by_runtime)
        except (TraceSchemaError, AssertionError) as exc:
            problems.append(str(exc))
    if problems:
        pytest.fail("trace files that do not match the trace schema:\n" + "\n".join(problems))


@pytest.fixture
def trace_dir(_checked_trace_dir: Path) -> Path:
    """The directory ``PFLOW_TRACE_DIR`` points at during this test."""
    return _checked_trace_dir


@pytest.fixture
def validate_trace() -> Callable[[Any], dict[str, Any]]:
    """Validate a trace (a path or an already-loaded document) and return the document."""

    def validate(trace: Any) -> dict[str, Any]:
        global validated_trace_count
        if isinstance(trace, (str, os.PathLike)):
            path = Path(trace)
            document = _load(path)
            validate_trace_document(document, str(path))
        else:
            document = trace
            validate_trace_document(document)
        validated_trace_count += 1
        return document

    return validate


@pytest.fixture(autouse=True, scope="session")
def _isolated_llm_user_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The ``llm`` library's user directory (keys, extra models, logs) is a scratch one.

    No test reads a developer's stored API keys or model aliases, or writes into them; tests
    that configure models (an OpenAI-compatible server on loopback) get their own directory
    with ``monkeypatch.setenv("LLM_USER_PATH", ...)``. Subprocesses inherit the variable.
    """
    path = tmp_path_factory.mktemp("llm-user-dir")
    previous = os.environ.get("LLM_USER_PATH")
    os.environ["LLM_USER_PATH"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("LLM_USER_PATH", None)
    else:
        os.environ["LLM_USER_PATH"] = previous


@pytest.fixture(autouse=True)
def _garbage_collected_on_the_main_thread() -> Iterator[None]:
    """Each test's garbage is collected on the main thread as the test ends.

    In two of five full runs, one process running the whole suite died with a segmentation
    fault inside a full garbage collection that a batch lane thread happened to start (in
    ``tests/tracefile/test_trace_file.py``, near the end). By then the process held garbage
    made by earlier tests on other threads: Playwright's greenlets, MCP sessions on their loop
    thread, event loops of async lanes. With a collection on the main thread after every test
    the whole suite passed. The object at fault is not identified yet; this keeps collections
    where that garbage was made.

    What survives the collection is then frozen (``gc.freeze``): no later collection, on any
    thread, examines it again, so each test's collection costs what that test made rather
    than the whole heap the suite has built up (a full collection of that heap took about a
    quarter of a second by the end). The price: a frozen cycle that becomes garbage later is
    never reclaimed, which a process that lives for one suite can afford.
    """
    yield
    gc.collect()
    gc.freeze()
