"""The ``shell`` node: run a command with ``/bin/sh -c`` and capture what it prints.

Its params and outputs are pflow's (pflow-cli 0.16): ``stdin`` takes any value (objects as
JSON), ``env`` values bind as text, ``ignore_errors`` keeps a non-zero exit from failing the
node, and stdout loses its trailing newlines unless ``strip_newline`` is false. Output that is
not UTF-8 is returned base64-encoded with ``*_is_binary`` set. The child inherits the current W3C
trace context as ``TRACEPARENT`` / ``TRACESTATE`` so a traced program it starts can attach its
own spans under the node's span.
"""

from __future__ import annotations

import base64
import functools
import json
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
from pflow_trace.text import one_line

STDERR_EXCERPT_CHARS = 500
#: How much of the command a timeout message quotes.
COMMAND_EXCERPT_CHARS = 200
DEFAULT_TIMEOUT_S = 30.0
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


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
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


def as_text(value: Any) -> str:
    """How pflow binds a value as text: strings as they are, objects and lists as JSON,
    ``None`` as empty, anything else through ``str`` (``True``, ``3``)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _decoded(raw: bytes) -> tuple[str, bool]:
    """UTF-8 text, or base64 of bytes that are not UTF-8 (and True to say so)."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), True


class ShellNode(WorkflowNode):
    """Runs ``command`` through ``/bin/sh -c``; a non-zero exit or a timeout fails the node."""

    type_name: ClassVar[str] = "shell"
    output_keys: ClassVar[frozenset[str] | None] = frozenset(
        {"stdout", "stdout_is_binary", "stderr", "stderr_is_binary", "exit_code", "command"}
    )
    params_schema: ClassVar[dict[str, Any] | None] = {
        "type": "object",
        "properties": {
            "command": {"type": "string", "minLength": 1},
            "stdin": {},
            "env": {"type": "object"},
            "cwd": {"type": "string", "minLength": 1},
            "timeout": {"type": ["number", "null"], "exclusiveMinimum": 0},
            "ignore_errors": {"type": "boolean"},
            "strip_newline": {"type": "boolean"},
        },
        "required": ["command"],
        "patternProperties": RUNTIME_KEYS,
        "additionalProperties": False,
    }

    def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        command: str = params["command"]
        stdin = None if params.get("stdin") is None else as_text(params["stdin"]).encode()
        timeout: float | None = params.get("timeout", DEFAULT_TIMEOUT_S)
        user_env = {str(name): as_text(value) for name, value in (params.get("env") or {}).items()}
        # os.environ, then the trace context, then the user's env: an explicit TRACEPARENT wins.
        env = {**os.environ, **trace_context_env(), **user_env}
        proc = self._start(command, stdin is not None, env, params.get("cwd"))
        raw_out, raw_err = self._communicate(proc, command, stdin, timeout)

        stdout, stdout_binary = _decoded(raw_out)
        stderr, stderr_binary = _decoded(raw_err)
        if params.get("strip_newline", True) and not stdout_binary:
            stdout = stdout.rstrip("\n")
        code = proc.returncode
        outputs: dict[str, Any] = {
            "stdout": stdout,
            "stdout_is_binary": stdout_binary,
            "stderr": stderr,
            "stderr_is_binary": stderr_binary,
            "exit_code": code,
            "command": command,
        }
        if code != 0 and not params.get("ignore_errors", False):
            detail = one_line(stderr, STDERR_EXCERPT_CHARS, keep="tail")
            message = _describe_exit(code) + (f": {detail}" if detail else "")
            raise NodeFailure(message, outputs=outputs, retriable=False)
        return outputs

    @staticmethod
    def _start(
        command: str, has_stdin: bool, env: dict[str, str], cwd: str | None
    ) -> subprocess.Popen[bytes]:
        """Start ``/bin/sh -c command``; a missing directory or shell is a one-line failure."""
        try:
            return subprocess.Popen(
                ["/bin/sh", "-c", command],
                stdin=subprocess.PIPE if has_stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=os.path.expanduser(cwd) if cwd else None,
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
        self,
        proc: subprocess.Popen[bytes],
        command: str,
        stdin: bytes | None,
        timeout: float | None,
    ) -> tuple[bytes, bytes]:
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
                outputs={
                    "stdout": stdout.decode("utf-8", "replace"),
                    "stderr": stderr.decode("utf-8", "replace"),
                    "exit_code": None,
                    "command": command,
                },
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
    def _drain(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
        """Collect what a killed command printed; give up if something still holds the pipes."""
        try:
            stdout, stderr = proc.communicate(timeout=_DRAIN_AFTER_KILL_S)
        except subprocess.TimeoutExpired:
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            proc.wait()
            return b"", b""
        return stdout or b"", stderr or b""
