"""The ``code`` node's exceptions and output streams: every way out goes through the node.

A ``BaseException`` from user code is a one-line node failure unless it is the runtime's own
stop; ``sys.stdout``, ``sys.stderr`` and ``logging`` are captured per call (per thread under
parallel lanes) into the ``stdout`` and ``stderr`` outputs, which the run redacts.
"""

from __future__ import annotations

import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pflow_trace import api
from pflow_trace.api import TraceOptions
from pflow_trace.errors import RunInterrupted
from pflow_trace.ir.validation import validate_workflow
from pflow_trace.nodes.base import NodeFailure, WorkCancelled, WorkflowNode
from pflow_trace.nodes.code import CodeNode
from pflow_trace.nodes.output_capture import captured_output, proxies_held
from pflow_trace.observe.export_settings import resolve_export_settings

SECRET = "pin-secret-88231"


def plain_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """Logging as a script has it: no root handler.

    Called in the test's body: pytest adds its own capturing handler after fixtures run.
    """
    monkeypatch.setattr(logging.root, "handlers", [])


def run_code(code: str, **inputs: Any) -> dict[str, Any]:
    node = CodeNode()
    node.set_params({"code": code, "inputs": inputs})
    shared: dict[str, Any] = {}
    node.run(shared)
    return shared


def code_failure(code: str, **inputs: Any) -> NodeFailure:
    node = CodeNode()
    node.set_params({"code": code, "inputs": inputs})
    with pytest.raises(NodeFailure) as info:
        node.run({})
    return info.value


# -- exceptions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (
            "import asyncio\nraise asyncio.CancelledError('gone ' + s)",
            f"CancelledError: gone {SECRET}",
        ),
        ("raise GeneratorExit('closed')", "GeneratorExit: closed"),
        ("class Mine(BaseException):\n    pass\nraise Mine('a\\n  b')", "Mine: a | b"),
        ("raise SystemExit(3)", "SystemExit: 3"),
        ("import sys\nsys.exit()", "SystemExit"),
    ],
)
def test_a_base_exception_from_user_code_is_a_one_line_failure(code: str, message: str) -> None:
    failure = code_failure(code, s=SECRET)
    assert failure.message == message
    assert failure.outputs["error_line"] is not None


def test_a_keyboard_interrupt_raised_by_the_code_on_a_worker_thread_is_a_failure() -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        failure = pool.submit(code_failure, "raise KeyboardInterrupt('mine')").result()
    assert failure.message == "KeyboardInterrupt: mine"


@pytest.mark.parametrize("stop", [WorkCancelled, RunInterrupted])
def test_the_runtimes_own_stops_pass_through(stop: type[BaseException]) -> None:
    node = CodeNode()
    node.set_params({"code": "raise stop()", "inputs": {"stop": stop}})
    with pytest.raises(stop):
        node.run({})


def test_any_node_types_base_exception_is_a_failure() -> None:
    """Not only the code node: a plug-in's CancelledError must not reach the terminal either."""
    import asyncio

    class Plugin(WorkflowNode):
        type_name = "plugin"

        def exec(self, params: dict[str, Any]) -> dict[str, Any]:
            raise asyncio.CancelledError("line one\nline two")

    with pytest.raises(NodeFailure, match=r"^CancelledError: line one \| line two$"):
        Plugin().run({})


# -- output streams ----------------------------------------------------------------------------


def test_every_stream_the_code_writes_to_is_captured(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain_logging(monkeypatch)
    code = (
        "import sys, logging\n"
        "print('p', s)\n"
        "sys.stdout.write('o ' + s + '\\n')\n"
        "print('e', s, file=sys.stderr)\n"
        "sys.stderr.write('w ' + s + '\\n')\n"
        "logging.getLogger('user').error('l %s', s)\n"
        "result = 1"
    )
    out = run_code(code, s=SECRET)
    assert out["stdout"] == f"p {SECRET}\no {SECRET}\n"
    assert out["stderr"].startswith(f"e {SECRET}\nw {SECRET}\n")
    assert f"l {SECRET}" in out["stderr"]
    printed = capfd.readouterr()
    assert SECRET not in printed.out + printed.err


def test_a_handler_made_before_on_the_real_stderr_is_captured_then_restored(
    capfd: pytest.CaptureFixture[str],
) -> None:
    logger = logging.getLogger("pflow-trace-test-handler")
    handler = logging.StreamHandler(sys.stderr)
    logger.addHandler(handler)
    try:
        out = run_code(
            "import logging\nlogging.getLogger('pflow-trace-test-handler').error(s)", s=SECRET
        )
        assert SECRET in out["stderr"]
        assert SECRET not in capfd.readouterr().err
        assert handler.stream is sys.stderr  # the handler writes where it did before
    finally:
        logger.removeHandler(handler)


def test_failure_keeps_what_was_written_before() -> None:
    failure = code_failure("import sys\nsys.stderr.write('about to fail')\nraise ValueError('x')")
    assert failure.outputs["stderr"] == "about to fail"


def test_the_streams_are_put_back_after_the_call() -> None:
    before = (sys.stdout, sys.stderr)
    run_code("print('x')")
    code_failure("raise GeneratorExit")
    assert (sys.stdout, sys.stderr) == before


def test_held_proxies_catch_each_call_and_point_a_handler_made_meanwhile(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A batch holds the proxies for all its items: a handler made on the real stream after
    they went in (between two items) is still caught by the next call, then restored."""
    before = (sys.stdout, sys.stderr)
    logger = logging.getLogger("pflow-trace-test-held")
    with proxies_held():
        real_stderr = sys.stderr._original  # type: ignore[attr-defined]
        first = run_code("print('one', s)", s=SECRET)
        handler = logging.StreamHandler(real_stderr)
        logger.addHandler(handler)
        try:
            second = run_code(
                "import logging\nlogging.getLogger('pflow-trace-test-held').error(s)", s=SECRET
            )
        finally:
            logger.removeHandler(handler)
    assert first["stdout"] == f"one {SECRET}\n"
    assert SECRET in second["stderr"]
    assert SECRET not in "".join(capfd.readouterr())
    assert (sys.stdout, sys.stderr) == before
    assert handler.stream is real_stderr


def test_a_batch_of_code_items_captures_each_item_and_puts_the_streams_back() -> None:
    before = (sys.stdout, sys.stderr)
    document = validate_workflow(
        {
            "ir_version": "0.1.0",
            "name": "code-batch-streams",
            "nodes": [
                {
                    "id": "work",
                    "type": "code",
                    "params": {"code": "print('item', x)\nresult = x", "inputs": {"x": "${item}"}},
                    "batch": {"items": [0, 1, 2]},
                }
            ],
        }
    )
    outcome = api.run(document, {}, TraceOptions(export=resolve_export_settings("none", env={})))
    results = outcome.result.shared["work"]["results"]
    assert [entry["stdout"] for entry in results] == ["item 0\n", "item 1\n", "item 2\n"]
    assert (sys.stdout, sys.stderr) == before


def test_parallel_calls_each_capture_only_their_own_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain_logging(monkeypatch)
    code = (
        "import sys, logging, time\n"
        "for i in range(20):\n"
        "    sys.stderr.write(f'{tag}\\n')\n"
        "    logging.getLogger('lanes').warning('%s', tag)\n"
        "    print(tag)\n"
        "    time.sleep(0.001)\n"
    )
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda tag: run_code(code, tag=tag), range(16)))
    for tag, out in enumerate(results):
        assert set(out["stdout"].split()) == {str(tag)}
        assert set(out["stderr"].split()) == {str(tag)}
        assert len(out["stderr"].split()) == 40


def test_other_threads_write_to_the_real_streams_while_a_capture_is_open(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with captured_output() as captured:
        thread = threading.Thread(target=lambda: print("from elsewhere"))
        thread.start()
        thread.join()
        print("mine")
    assert captured.stdout.getvalue() == "mine\n"
    assert capsys.readouterr().out == "from elsewhere\n"


# -- through a run -----------------------------------------------------------------------------


def test_a_sensitive_value_in_stderr_logging_and_a_cancelled_error_is_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain_logging(monkeypatch)
    document = validate_workflow(
        {
            "ir_version": "0.1.0",
            "name": "code-streams",
            "inputs": {"pin": {"type": "string", "sensitive": True}},
            "nodes": [
                {
                    "id": "talk",
                    "type": "code",
                    "params": {
                        "code": "import sys, logging\nsys.stderr.write(pin)\n"
                        "logging.warning('pin %s', pin)\nresult = 1",
                        "inputs": {"pin": "${pin}"},
                    },
                },
                {
                    "id": "stop",
                    "type": "code",
                    "params": {
                        "code": "import asyncio\nraise asyncio.CancelledError(pin)",
                        "inputs": {"pin": "${pin}"},
                    },
                },
            ],
        }
    )
    outcome = api.run(
        document,
        {"pin": SECRET},
        TraceOptions(
            export=resolve_export_settings("none", env={}),
            write_trace_file=False,
            join_env_trace_context=False,
        ),
    )
    assert outcome.status == "failed"
    recorded = repr(outcome.document)  # the trace; result.nodes is the live, unredacted store
    assert SECRET not in recorded
    assert "CancelledError: <redacted>" in recorded
    assert "WARNING:root:pin <redacted>" in recorded
