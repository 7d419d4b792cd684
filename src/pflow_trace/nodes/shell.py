"""The ``shell`` node: run a command with ``/bin/sh -c`` and capture what it prints.

The child inherits the current W3C trace context as ``TRACEPARENT`` / ``TRACESTATE`` so a traced
program it starts can attach its own spans under the node's span.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import threading
from typing import Any, ClassVar

from opentelemetry import propagate, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pflow_trace.nodes.base import (
    RUNTIME_KEYS,
    NodeFailure,
    WorkCancelled,
    WorkflowNode,
    register_cancel,
    unregister_cancel,
)
from pflow_trace.nodes.failures import parse_json_or_fail
from pflow_trace.text import one_line

STDERR_EXCERPT_CHARS = 500
#: How much of the command a timeout message quotes.
COMMAND_EXCERPT_CHARS = 200
DEFAULT_TIMEOUT_S = 60.0
# After a kill, how long to wait for the pipes to drain before giving up on them.
_DRAIN_AFTER_KILL_S = 5.0


def trace_context_env() -> dict[str, str]:
    """``TRACEPARENT``/``TRACESTATE`` for the current span, or ``{}`` when there is none.

    Uses the globally configured propagator, falling back to W3C trace context when that one does
    not write ``traceparent`` (for example a B3-only setup). Never raises: tracing is a courtesy
    to the child and must not fail the command.
    """
    try:
        if not trace.get_current_span().get_span_context().is_valid:
            return {}
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        if "traceparent" not in carrier:
            TraceContextTextMapPropagator().inject(carrier)
    except Exception:
        return {}
    env: dict[str, str] = {}
    if carrier.get("traceparent"):
        env["TRACEPARENT"] = carrier["traceparent"]
    if carrier.get("tracestate"):
        env["TRACESTATE"] = carrier["tracestate"]
    return env


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill the command and everything it started (it runs in its own process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _cancel_group(proc: subprocess.Popen[str], cancelled: threading.Event) -> None:
    """The run was interrupted: say so first, so the node reports a cancel, not a crash."""
    cancelled.set()
    _kill_group(proc)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"command was killed by {name}"
    return f"command exited with code {code}"


class ShellNode(WorkflowNode):
    """Runs ``command`` through ``/bin/sh -c``; a non-zero exit or a timeout fails the node."""

    type_name: ClassVar[str] = "shell"
    params_schema: ClassVar[dict[str, Any] | None] = {
        "type": "object",
        "properties": {
            "command": {"type": "string", "minLength": 1},
            "stdin": {"type": "string"},
            "env": {"type": "object", "additionalProperties": {"type": "string"}},
            "cwd": {"type": "string", "minLength": 1},
            "timeout": {"type": ["number", "null"], "exclusiveMinimum": 0},
            "parse_json": {"type": "boolean"},
        },
        "required": ["command"],
        "patternProperties": RUNTIME_KEYS,
        "additionalProperties": False,
    }

    def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        command: str = params["command"]
        stdin: str | None = params.get("stdin")
        timeout: float | None = params.get("timeout", DEFAULT_TIMEOUT_S)
        # os.environ, then the trace context, then the user's env: an explicit TRACEPARENT wins.
        env = {**os.environ, **trace_context_env(), **(params.get("env") or {})}
        proc = self._start(command, stdin is not None, env, params.get("cwd"))
        stdout, stderr = self._communicate(proc, command, stdin, timeout)

        code = proc.returncode
        outputs: dict[str, Any] = {"stdout": stdout, "stderr": stderr, "exit_code": code}
        if code != 0:
            detail = one_line(stderr, STDERR_EXCERPT_CHARS, keep="tail")
            message = _describe_exit(code) + (f": {detail}" if detail else "")
            raise NodeFailure(message, outputs=outputs)
        if params.get("parse_json"):
            outputs["json"] = parse_json_or_fail(stdout, "stdout is not valid JSON", outputs)
        return outputs

    @staticmethod
    def _start(
        command: str, has_stdin: bool, env: dict[str, str], cwd: str | None
    ) -> subprocess.Popen[str]:
        """Start ``/bin/sh -c command``; a missing directory or shell is a one-line failure."""
        try:
            return subprocess.Popen(
                ["/bin/sh", "-c", command],
                stdin=subprocess.PIPE if has_stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=os.path.expanduser(cwd) if cwd else None,
                text=True,
                encoding="utf-8",
                errors="replace",
                # Own process group, so a timeout can kill grandchildren that hold the pipes.
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            where = f"working directory '{cwd}' does not exist" if cwd else str(exc)
            raise NodeFailure(f"cannot start command: {where}") from None
        except OSError as exc:
            where = f" in '{cwd}'" if cwd else ""
            raise NodeFailure(f"cannot start command{where}: {exc.strerror or exc}") from None

    def _communicate(
        self, proc: subprocess.Popen[str], command: str, stdin: str | None, timeout: float | None
    ) -> tuple[str, str]:
        """Feed stdin and collect stdout and stderr; kill the process group if it overruns.

        While the command runs it is registered for cancellation, so Ctrl-C on the main thread
        also stops a command running on a batch worker thread.
        """
        cancelled = threading.Event()
        register_cancel(id(proc), functools.partial(_cancel_group, proc, cancelled))
        try:
            output = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            stdout, stderr = self._drain(proc)
            if cancelled.is_set():
                raise WorkCancelled() from None
            quoted = one_line(command, COMMAND_EXCERPT_CHARS, keep="tail")
            raise NodeFailure(
                f"command timed out after {timeout:g}s: {quoted}",
                outputs={"stdout": stdout, "stderr": stderr, "exit_code": None},
            ) from None
        except BaseException:  # Ctrl-C or a runtime cancellation: leave no orphans behind
            _kill_group(proc)
            proc.wait()
            raise
        finally:
            unregister_cancel(id(proc))
        if cancelled.is_set():  # killed because the run was interrupted: not the command's fault
            raise WorkCancelled()
        return output

    @staticmethod
    def _drain(proc: subprocess.Popen[str]) -> tuple[str, str]:
        """Collect what a killed command printed; give up if something still holds the pipes."""
        try:
            stdout, stderr = proc.communicate(timeout=_DRAIN_AFTER_KILL_S)
        except subprocess.TimeoutExpired:
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            proc.wait()
            return "", ""
        return stdout or "", stderr or ""
