"""The ``llm`` node: one prompt to a model through the ``llm`` library, with its usage and cost.

Params and outputs follow pflow's ``llm`` node: ``prompt``, ``system``, ``images``
(``nodes/llm_images.py``), ``model``, ``temperature``, ``max_tokens`` in; ``response`` and
``llm_usage`` out (model, token counts by kind, ``cost_usd``), plus the call's finish reason,
response id and provider, which the runtime turns into OpenTelemetry's ``gen_ai.*`` span
attributes. Any model the ``llm`` library or one
of its plugins provides works (OpenAI is built in; ``llm-echo`` answers offline).

Rate limits, overloaded servers and lost connections are retried here, up to ``max_retries``
attempts (3, as pflow's node does), waiting ``retry_wait`` seconds doubled each time or what the
provider's ``Retry-After`` asks; every failed attempt is listed in ``llm_usage.retries`` and
becomes a span event. An attempt that gets no answer within ``timeout`` seconds (120) is one
such failure. Anything else (a bad key, an unknown model, a refused request) fails at
once. API keys come from the environment or the ``llm`` key store and are scrubbed from every
output. The node never touches spans itself: see ``docs/llm.md``.

A parallel batch whose model has an async implementation in its plugin (``async_available``)
runs on async lanes through ``exec_async``: the library's async model, awaited, with the same
call (:class:`_Call`: options, usage, failures, outputs) and retry loop as ``exec``.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from pflow_trace.engine import RetryPolicy
from pflow_trace.nodes import llm_calls
from pflow_trace.nodes.base import RUNTIME_KEYS, NodeFailure, WorkflowNode
from pflow_trace.nodes.llm_cache import cache_option, cached_system
from pflow_trace.nodes.llm_images import attachments_for
from pflow_trace.nodes.llm_pricing import price_table

DEFAULT_MAX_RETRIES = 3
DEFAULT_RETRY_WAIT_S = 1.0
#: Seconds an attempt waits for an answer (the OpenAI client's own default is ten minutes).
DEFAULT_TIMEOUT_S = 120.0


class LlmNode(WorkflowNode):
    """Sends ``prompt`` (and ``system``) to ``model``; outputs the text and what it cost."""

    type_name: ClassVar[str] = "llm"
    output_keys: ClassVar[frozenset[str] | None] = frozenset(
        {"response", "prompt", "system", "llm_usage"}
    )
    params_schema: ClassVar[dict[str, Any] | None] = {
        "type": "object",
        "properties": {
            "prompt": {"type": "string"},
            "system": {"type": ["string", "null"]},
            "images": {"type": ["string", "array", "null"], "items": {"type": "string"}},
            "model": {"type": ["string", "null"]},
            "temperature": {"type": ["number", "null"], "minimum": 0},
            "max_tokens": {"type": ["integer", "null"], "minimum": 1},
            "model_options": {"type": ["object", "null"]},
            "reasoning_effort": {"type": ["string", "null"]},
            "max_retries": {"type": "integer", "minimum": 1},
            "retry_wait": {"type": "number", "minimum": 0},
            "timeout": {"type": ["number", "null"], "exclusiveMinimum": 0},
        },
        "required": ["prompt"],
        "patternProperties": RUNTIME_KEYS,
        "additionalProperties": False,
    }

    def prepare(self) -> None:
        """Load the ``llm`` library, its plugins and a model named as plain text, once per
        process and before a batch's clock starts: that load takes seconds, and inside the
        first item of every lane it would read as slow items (and false parallelism). A model
        named by a template is resolved per item; a failure here is left to the item to report.
        """
        name = self.params.get("model")
        try:
            if isinstance(name, str) and "${" not in name:
                llm_calls.models.get(name)
            elif name is None:
                llm_calls.models.get(None)
            else:
                llm_calls.load_plugins()
        except Exception:  # the item's own call fails with the real message
            pass

    @classmethod
    def async_available(cls, params: dict[str, Any]) -> bool:
        """Whether a batch with these params runs on async lanes: its model, named as plain
        text (or the default model), has an async implementation in its ``llm`` plugin. A
        model named by a template cannot be known before its items run, so that batch stays
        on threads (as does a model that cannot be loaded: its items report why)."""
        name = params.get("model")
        if name is not None and (not isinstance(name, str) or "${" in name):
            return False
        try:
            return llm_calls.models.get_async(name) is not None
        except Exception:
            return False

    def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        call = _Call(_model(params.get("model")), params)
        policy, timeout_s = _retry_policy(params), _timeout_s(params)
        for attempt in range(1, policy.max_attempts + 1):
            started_ns = time.perf_counter_ns()
            try:
                response = llm_calls.request(call.model, *call.request_args(timeout_s))
            except Exception as exc:
                time.sleep(call.failed(attempt, exc, policy))
                continue
            return call.outputs(response, attempt, started_ns)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def exec_async(self, params: dict[str, Any]) -> dict[str, Any]:
        """:meth:`exec` as a task on async lanes, through the model's async implementation
        (``llm.get_async_model``): the same options, attempts, retries, timeout, outputs and
        redaction. A model with none (a template named a model that has only a sync one) is
        called as on threads, in a worker thread."""
        import asyncio

        _model(params.get("model"))  # an unknown model fails as on threads
        async_model = llm_calls.models.get_async(params.get("model"))
        if async_model is None:
            return await asyncio.to_thread(self.exec, params)
        call = _Call(async_model, params)
        policy, timeout_s = _retry_policy(params), _timeout_s(params)
        for attempt in range(1, policy.max_attempts + 1):
            started_ns = time.perf_counter_ns()
            try:
                response = await llm_calls.request_async(call.model, *call.request_args(timeout_s))
            except Exception as exc:
                await asyncio.sleep(call.failed(attempt, exc, policy))
                continue
            return call.outputs(response, attempt, started_ns)
        raise AssertionError("unreachable: the last attempt returns or raises")


def _retry_policy(params: dict[str, Any]) -> RetryPolicy:
    return RetryPolicy(
        int(params.get("max_retries", DEFAULT_MAX_RETRIES)),
        float(params.get("retry_wait", DEFAULT_RETRY_WAIT_S)),
        backoff=2.0,
        max_asked_s=llm_calls.MAX_RETRY_AFTER_S,
    )


def _timeout_s(params: dict[str, Any]) -> float:
    return float(params.get("timeout") or DEFAULT_TIMEOUT_S)


class _Call:
    """One item's call, whichever path sends it: what is sent, what each failed attempt
    records (and whether it is retried, by the node's :class:`RetryPolicy`), and the outputs.

    ``request_args`` are the attempt's arguments after the model; the answered attempt's own
    duration (request sent to answer read) is ``duration_ms``: the provider's latency, which
    the runtime records as the item's ``provider_us`` apart from the waits between attempts.
    """

    def __init__(self, model: Any, params: dict[str, Any]) -> None:
        self.model = model
        self.params = params
        self.options = _options(model, params)
        effort, effort_note = _reasoning_effort(model, params.get("reasoning_effort"))
        if effort is not None:
            self.options = {**self.options, "reasoning_effort": effort}
        self.secret = llm_calls.resolved_key(model)
        self.attachments, images = attachments_for(params.get("images"))
        usage: dict[str, Any] = {
            "model": model.model_id,
            "provider": llm_calls.provider_name(model),
        }
        if images:  # by reference (path, size, SHA-256, or URL), never the bytes
            usage["images"] = images
        self.system, cached = cached_system(params.get("system"), params.get("__prompt_cache__"))
        if cached is not None:
            usage["prompt_cache"] = cached
            if cached["chunks"]:
                self.options = {**self.options, **cache_option(model)}
        for name in ("temperature", "max_tokens", "reasoning_effort"):
            if params.get(name) is not None:
                usage[name] = params[name]
        if effort_note is not None:
            usage["reasoning_effort_not_sent"] = effort_note
        self.usage = usage
        self.retries: list[dict[str, Any]] = []

    def request_args(self, timeout_s: float) -> tuple[Any, ...]:
        return (self.params["prompt"], self.system, self.options, timeout_s, self.attachments)

    def failed(self, attempt: int, exc: Exception, policy: RetryPolicy) -> float:
        """The pause before the next attempt after this failure, which is listed; a failure
        not worth another attempt (or the last) raises the item's ``NodeFailure``."""
        error = llm_calls.describe_failure(exc, self.secret)
        failure = {
            "attempt": attempt,
            "error": error,
            "error_type": llm_calls.error_type(exc),
            "time_unix_nano": time.time_ns(),
        }
        pause_s = (
            policy.pause_s(attempt, llm_calls.retry_after_s(exc))
            if llm_calls.is_transient(exc)
            else None
        )
        if pause_s is None:
            failed = {**self.usage, "attempts": attempt, "error": error}
            failed["error_type"] = failure["error_type"]
            if self.retries:
                failed["retries"] = self.retries
            tried = f" after {attempt} attempts" if attempt > 1 else ""
            raise NodeFailure(
                f"llm: {self.model.model_id} failed{tried}: {error}",
                outputs={"llm_usage": failed},
            ) from None
        self.retries.append(failure)
        return pause_s

    def outputs(self, response: Any, attempt: int, started_ns: int) -> dict[str, Any]:
        """The node's outputs from the answered attempt (a plain ``llm`` ``Response``)."""
        took_ms = round((time.perf_counter_ns() - started_ns) / 1e6, 3)
        params, usage = self.params, self.usage
        usage.update(_response_usage(response, self.model.model_id, self.secret))
        usage["duration_ms"] = took_ms
        usage["attempts"] = attempt
        if self.retries:
            usage["retries"] = self.retries
        text = llm_calls.scrub(response.text(), self.secret)
        usage["empty_response"] = not text.strip()  # a "success" that said nothing
        # In pflow's order (a batch result's keys are compared byte for byte).
        outputs: dict[str, Any] = {"prompt": params["prompt"]}
        if params.get("system") is not None:
            outputs["system"] = params["system"]
        outputs["llm_usage"] = usage
        outputs["response"] = text
        return outputs


def _model(name: str | None) -> Any:
    """The ``llm`` model for ``name`` (the library's default model when none is given)."""
    import llm

    try:
        return llm_calls.models.get(name)
    except llm.UnknownModelError:
        shown = name or llm.get_default_model()
        raise NodeFailure(
            f"llm: unknown model '{shown}': no installed llm plugin provides it "
            "(`llm models list` shows the models there are)"
        ) from None


def _options(model: Any, params: dict[str, Any]) -> dict[str, Any]:
    """``temperature``, ``max_tokens`` and ``model_options``, checked against the model."""
    options: dict[str, Any] = dict(params.get("model_options") or {})
    for name in ("temperature", "max_tokens"):
        if params.get(name) is not None:
            options[name] = params[name]
    try:
        model.Options(**options)
    except Exception as exc:  # pydantic's ValidationError: an option the model does not take
        errors = getattr(exc, "errors", None)
        first = errors()[0] if callable(errors) and errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ())) or "options"
        reason = first.get("msg", str(exc))
        raise NodeFailure(
            f"llm: model '{model.model_id}' does not accept option '{where}': {reason}"
        ) from None
    return options


#: pflow's ``reasoning_effort`` levels (any case).
REASONING_EFFORTS = ("xhigh", "high", "medium", "low", "minimal", "none")


def _reasoning_effort(model: Any, requested: Any) -> tuple[str | None, str | None]:
    """(the level to send as the model's ``reasoning_effort`` option, or None; the one-line
    note saying why a requested level is not sent).

    As in pflow, an unknown level fails the node and a model without the option runs without
    it; the note says so, in the node's ``llm_usage``, rather than leaving it unsaid.
    """
    if requested is None or requested == "":
        return None, None
    effort = str(requested).lower()
    if effort not in REASONING_EFFORTS:
        raise NodeFailure(
            f"llm: invalid reasoning_effort {requested!r}; one of: {', '.join(REASONING_EFFORTS)}",
            retriable=False,
        )
    if effort == "none":  # pflow sends no option for it: the model's own default applies
        return None, "reasoning_effort 'none' is not sent; the model's default applies"
    fields = getattr(model.Options, "model_fields", {})
    if "reasoning_effort" not in fields:
        return None, f"model '{model.model_id}' does not take reasoning_effort; not sent"
    try:
        model.Options(reasoning_effort=effort)
    except Exception:  # pydantic's ValidationError: a level this model's option lacks
        return None, f"model '{model.model_id}' does not take reasoning_effort {effort!r}; not sent"
    return effort, None


def _response_usage(response: Any, model_id: str, secret: str | None) -> dict[str, Any]:
    """Token counts, finish reason, response id and model, and the cost of one response.

    The three texts are the provider's to choose; one that echoes the key loses it here.
    """
    details = llm_calls.response_details(response.json())
    finish_reason, response_id, response_model = (
        llm_calls.scrub(text, secret) if text is not None else None for text in details
    )
    usage: dict[str, Any] = llm_calls.token_usage(response.usage())
    usage["finish_reason"] = finish_reason
    usage["response_id"] = response_id
    usage["response_model"] = response_model or getattr(response, "resolved_model", None)
    priced = price_table().lookup(model_id, usage["response_model"])
    usage["cost_usd"] = (
        priced[1].cost_usd(usage) if priced and usage["input_tokens"] is not None else None
    )
    return usage
