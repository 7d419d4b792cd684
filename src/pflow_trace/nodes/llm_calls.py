"""What the ``llm`` node reads off the ``llm`` library: models, usage, finish reasons, failures.

Kept apart from the node so the node reads as the call and its retries. Nothing here imports
the ``llm`` library at module level: a workflow without an ``llm`` node never pays for it.
"""

from __future__ import annotations

import contextvars
import hashlib
import os
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from pflow_trace.observe.llm_usage import TOKEN_KEYS
from pflow_trace.observe.redaction import REDACTED, is_secret_key, normalise_key
from pflow_trace.text import one_line

#: How much of a provider's error message a failure quotes.
ERROR_EXCERPT_CHARS = 300
#: A provider asking for a longer pause than this is not waited for (the attempt fails).
MAX_RETRY_AFTER_S = 60.0
#: HTTP statuses worth another attempt: timeout, conflict, rate limit, and server errors.
_TRANSIENT_STATUSES = frozenset({408, 409, 429})
_TRANSIENT_WORDS = ("RateLimit", "Timeout", "Connection", "Overloaded", "Unavailable")
#: gen_ai.provider.name by the module a model class comes from (OpenTelemetry's names).
_PROVIDERS = {
    "llm.default_plugins.openai_models": "openai",
    "llm_anthropic": "anthropic",
    "llm_claude_3": "anthropic",
    "llm_gemini": "gcp.gemini",
    "llm_mistral": "mistral_ai",
    "llm_bedrock": "aws.bedrock",
    "llm_groq": "groq",
    "llm_deepseek": "deepseek",
}
#: Environment names that hold an API key besides the secret words (``..._KEY``).
_KEY_NAME = re.compile(r"(?:^|_)KEY$", re.IGNORECASE)
#: A value shorter than this is not treated as a key (it would redact ordinary text).
_MIN_KEY_CHARS = 8


class _ModelCache:
    """Models by name and ``llm`` user directory, resolved once per process.

    Resolving a name runs every plugin's registration hook (and re-reads
    ``extra-openai-models.yaml``); a batch of thousands of calls must not do that per item.
    """

    def __init__(self) -> None:
        self._models: dict[tuple[str | None, str | None], Any] = {}
        self._async_models: dict[tuple[str | None, str | None], Any] = {}
        self._lock = threading.Lock()

    def get(self, name: str | None) -> Any:
        key = (name, os.environ.get("LLM_USER_PATH"))
        with self._lock:
            model = self._models.get(key)
            if model is None:
                import llm

                model = llm.get_model(name) if name else llm.get_model(llm.get_default_model())
                _make_retries_visible(model)
                self._models[key] = model
            return model

    def get_async(self, name: str | None) -> Any:
        """The model's async implementation, or None when its plugin has none (its items
        then stay on threads). An unknown name raises ``llm.UnknownModelError``."""
        key = (name, os.environ.get("LLM_USER_PATH"))
        with self._lock:
            if key in self._async_models:
                return self._async_models[key]
        import llm

        self.get(name)  # an unknown model fails here, with the sync lookup's error
        try:
            model = llm.get_async_model(name) if name else llm.get_async_model()
        except llm.UnknownModelError:
            model = None
        if model is not None:
            _make_retries_visible(model)
        with self._lock:
            return self._async_models.setdefault(key, model)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            self._async_models.clear()


models = _ModelCache()


def load_plugins() -> None:
    """Import ``llm`` and load its plugins: the slow part of a first model lookup."""
    from llm.plugins import load_plugins as load

    load()


#: The timeout of the call running in this context, for the client the OpenAI plugin builds.
_call_timeout_s: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "pflow_trace_llm_call_timeout_s", default=None
)


def _make_retries_visible(model: Any) -> None:
    """Turn off the OpenAI client's own retries for this model, so the node's are the only ones,
    and build that client once per key and timeout instead of once per call.

    The ``llm`` library's OpenAI plugin builds an ``openai`` client per call, and that client
    silently retries rate limits and server errors twice. A retry nobody sees cannot be a span
    event, so the node retries instead (and records each attempt); the client gets
    ``max_retries=0``, and the call's ``timeout`` (the library has no option for it; the
    client's own default is ten minutes). Building a client loads the certificate bundle and
    opens new connections (about 45 ms of interpreter time a call), so clients are kept
    (:class:`_ClientCache`); an async client is kept for the batch's event loop instead
    (:func:`_lanes_client`). Models of other plugins have no ``get_client`` and are left as
    they are.
    """
    get_client = getattr(model, "get_client", None)
    if get_client is None or getattr(model, "_pflow_trace_visible_retries", False):
        return
    clients = _ClientCache()

    def build(key: Any, *args: Any, **kwargs: Any) -> Any:
        client = get_client(key, *args, **kwargs)
        with_options = getattr(client, "with_options", None)
        if not callable(with_options):
            return client
        timeout_s = _call_timeout_s.get()
        if timeout_s is None:
            return with_options(max_retries=0)
        return with_options(max_retries=0, timeout=timeout_s)

    def get_client_without_retries(key: Any = None, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("async_") and not args and set(kwargs) == {"async_"}:
            return _lanes_client(model, key, lambda: build(key, *args, **kwargs))
        cache_key = _client_key(model, key, args, kwargs)
        if cache_key is None:
            return build(key, *args, **kwargs)
        return clients.get(cache_key, lambda: build(key, *args, **kwargs))

    model.get_client = get_client_without_retries
    model._pflow_trace_visible_retries = True


class _ClientCache:
    """One model's clients by (key, timeout): a client is thread-safe and keeps its
    connections, so every call with the same key and timeout shares it."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, float | None], Any] = {}
        self._lock = threading.Lock()

    def get(self, cache_key: tuple[str, float | None], build: Callable[[], Any]) -> Any:
        with self._lock:
            client = self._clients.get(cache_key)
            if client is None:
                client = self._clients[cache_key] = build()
            return client


def _lanes_client(model: Any, key: Any, build: Callable[[], Any]) -> Any:
    """An async client, kept for the batch whose async lanes run this call: it is bound to
    their event loop, so it is made once per model, key and timeout there and closed on that
    loop when the batch ends. Outside async lanes it serves one call."""
    from pflow_trace.nodes.base import current_async_lanes

    lanes = current_async_lanes.get()
    cache_key = _client_key(model, key, (), {})
    if lanes is None or cache_key is None:
        return build()
    name = f"llm:{id(model)}:{cache_key[0]}:{cache_key[1]}"
    client = lanes.clients.get(name)
    if client is None:
        client = lanes.clients[name] = build()
        close = getattr(client, "close", None)
        if callable(close):
            lanes.closers.append(close)
    return client


def _client_key(
    model: Any, key: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[str, float | None] | None:
    """What tells one model's clients apart: the key it sends (as a digest: the plain key is
    kept nowhere but in the client), the ``OPENAI_BASE_URL`` a client without a base of its
    own reads when it is built (a run after that variable changed reaches the new server), and
    the timeout. ``None`` when the client must be built
    afresh: a logging client the library builds when asked to show responses, or arguments
    this wrapper does not know (an async client is kept per event loop, :func:`_lanes_client`)."""
    if args or kwargs.get("async_") or set(kwargs) - {"async_"}:
        return None
    if os.environ.get("LLM_OPENAI_SHOW_RESPONSES"):
        return None
    try:
        sent = model.get_key(key) if getattr(model, "needs_key", None) else None
    except Exception:  # no key: building the client fails with the library's own message
        return None
    digest = hashlib.sha256(str(sent).encode()).hexdigest()
    base_url = os.environ.get("OPENAI_BASE_URL", "")
    return f"{digest}@{base_url}", _call_timeout_s.get()


class LlmTimeout(Exception):
    """No answer within the node's ``timeout``: transient (the name says ``Timeout``), retried."""


def request(
    model: Any,
    prompt: str,
    system: str | None,
    options: dict[str, Any],
    timeout_s: float,
    attachments: list[Any] | None = None,
) -> Any:
    """One attempt: the prompt sent and its answer read, within ``timeout_s`` seconds.

    A model whose client the node builds (the OpenAI plugin and every OpenAI-compatible
    server) gets the timeout on its client, which gives up and closes the connection. Any
    other plugin's call runs on a helper thread the node stops waiting for: the call cannot be
    stopped from outside, but the item is not held up by it.
    """

    def attempt() -> Any:
        response = model.prompt(
            prompt, system=system, attachments=attachments or None, stream=False, options=options
        )
        response.text()  # the request happens here; failures surface here
        return response

    if getattr(model, "_pflow_trace_visible_retries", False):
        token = _call_timeout_s.set(timeout_s)
        try:
            return attempt()
        finally:
            _call_timeout_s.reset(token)
    return bounded(attempt, timeout_s)


async def request_async(
    model: Any,
    prompt: str,
    system: str | None,
    options: dict[str, Any],
    timeout_s: float,
    attachments: list[Any] | None = None,
) -> Any:
    """:func:`request` through the model's async implementation, as a task on async lanes:
    the answered response, converted to the library's plain ``Response`` (its text, JSON and
    usage already read), so both paths read it alike. The OpenAI plugin's client gets the
    timeout as on threads; any other plugin's call is cancelled when it runs out."""
    import asyncio

    async def attempt() -> Any:
        response = model.prompt(
            prompt, system=system, attachments=attachments or None, stream=False, options=options
        )
        await response.text()  # the request happens here; failures surface here
        return await response.to_sync_response()

    if getattr(model, "_pflow_trace_visible_retries", False):
        token = _call_timeout_s.set(timeout_s)
        try:
            return await attempt()
        finally:
            _call_timeout_s.reset(token)
    try:
        async with asyncio.timeout(timeout_s):
            return await attempt()
    except TimeoutError:
        raise LlmTimeout(f"no answer within {timeout_s:g} s") from None


def bounded(call: Callable[[], Any], timeout_s: float) -> Any:
    """``call()`` on a daemon thread; :class:`LlmTimeout` when it has not returned in time."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # handed to the waiting thread, raised there
            outcome.append((False, exc))

    worker = threading.Thread(target=run, name="pflow-trace-llm-call", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if not outcome:
        raise LlmTimeout(f"no answer within {timeout_s:g} s")
    succeeded, value = outcome[0]
    if not succeeded:
        raise value
    return value


def provider_name(model: Any) -> str:
    """``gen_ai.provider.name`` for a model: OpenTelemetry's value where one exists."""
    module = type(model).__module__
    for prefix, name in _PROVIDERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return name
    root = module.split(".")[0]
    return root.removeprefix("llm_") or root


def resolved_key(model: Any) -> str | None:
    """The API key the model will send, to scrub it from anything the node returns."""
    if getattr(model, "needs_key", None) is None:
        return None
    try:
        key = model.get_key()
    except Exception:  # no key: the call itself fails with the library's own message
        return None
    return key if isinstance(key, str) and key else None


def scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, REDACTED) if secret and secret in text else text


def status_code(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt: a rate limit, an overloaded or failing server, a lost connection."""
    status = status_code(exc)
    if status is not None:
        return status in _TRANSIENT_STATUSES or status >= 500
    names = [cls.__name__ for cls in type(exc).__mro__]
    return any(word in name for name in names for word in _TRANSIENT_WORDS)


def retry_after_s(exc: BaseException) -> float | None:
    """The pause the provider asked for (``Retry-After`` in seconds), if it said one."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get("retry-after")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def error_type(exc: BaseException) -> str:
    """``error.type``: the HTTP status when there is one, else the exception's class name."""
    status = status_code(exc)
    return str(status) if status is not None else type(exc).__name__


def describe_failure(exc: BaseException, secret: str | None) -> str:
    """One line a person reads: what failed, with the provider's words, never the key."""
    text = one_line(str(exc), ERROR_EXCERPT_CHARS) or type(exc).__name__
    status = status_code(exc)
    where = f"HTTP {status}: " if status is not None else f"{type(exc).__name__}: "
    return scrub(where + text, secret)


# -- reading a response ----------------------------------------------------------------------


def _first(mapping: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = mapping.get(key)
        if value is not None:
            return value
    return None


def response_details(raw: Any) -> tuple[str | None, str | None, str | None]:
    """``(finish_reason, response id, response model)`` from the provider's raw JSON.

    OpenAI keeps the reason in ``choices[0]`` (or at the top when streamed), Anthropic as
    ``stop_reason``, Gemini in ``candidates[0].finishReason``; all are lower-cased.
    """
    if not isinstance(raw, Mapping):
        return None, None, None
    places: list[Mapping[str, Any]] = [raw]
    for listed in ("choices", "candidates"):
        entries = raw.get(listed)
        if isinstance(entries, list) and entries and isinstance(entries[0], Mapping):
            places.append(entries[0])
    reason = None
    for place in places:
        reason = _first(place, "finish_reason", "stop_reason", "finishReason")
        if reason is not None:
            break
    response_id = _first(raw, "id", "responseId")
    response_model = _first(raw, "model", "modelVersion")
    return (
        str(reason).lower() if reason is not None else None,
        str(response_id) if response_id is not None else None,
        str(response_model) if response_model is not None else None,
    )


def _detail(details: Mapping[str, Any], *path: str) -> int:
    value: Any = details
    for key in path:
        if not isinstance(value, Mapping):
            return 0
        value = value.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def token_usage(usage: Any) -> dict[str, int | None]:
    """The call's token counts by the rule in :mod:`pflow_trace.observe.llm_usage`.

    OpenAI and Gemini count cached input inside the input tokens; Anthropic reports it beside
    them (``cache_read_input_tokens``, ``cache_creation_input_tokens``), so it is added in.
    ``None`` counts mean the provider reported no usage.
    """
    input_tokens, output_tokens = usage.input, usage.output
    details: Mapping[str, Any] = usage.details or {}
    if input_tokens is None and output_tokens is None:
        return dict.fromkeys(TOKEN_KEYS)
    input_tokens, output_tokens = input_tokens or 0, output_tokens or 0
    read = _detail(details, "prompt_tokens_details", "cached_tokens") or _detail(
        details, "cachedContentTokenCount"
    )
    written = 0
    beside = _detail(details, "cache_read_input_tokens") + _detail(
        details, "cache_creation_input_tokens"
    )
    if beside:
        read = _detail(details, "cache_read_input_tokens")
        written = _detail(details, "cache_creation_input_tokens")
        input_tokens += read + written
    thinking = _detail(details, "completion_tokens_details", "reasoning_tokens") or _detail(
        details, "thoughtsTokenCount"
    )
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": written,
        "thinking_tokens": thinking,
    }


def known_api_keys() -> list[str]:
    """Every API key this process could send: the ``llm`` key store and key-like variables.

    The run adds them to its redaction (:meth:`~pflow_trace.observe.redaction.Redactor.
    learn_given`), so a key that turns up in a response, an error or a param is replaced
    wherever the run writes (trace, spans, terminal, JSON output). Keys for certain (the key
    store, ``*_API_KEY`` and ``LLM_*_KEY`` variables) count whatever their length: a short test
    key is still a key. Variables that only look secret (``*_TOKEN``, ``*_KEY``) count from
    :data:`_MIN_KEY_CHARS` characters, so a ``SOME_KEY=1`` does not hide every ``1``.
    """
    values = {
        value
        for name, value in os.environ.items()
        if value
        and (
            _is_api_key_name(name)
            or ((is_secret_key(name) or _KEY_NAME.search(name)) and len(value) >= _MIN_KEY_CHARS)
        )
    }
    try:
        import llm

        values.update(
            value for value in llm.load_keys().values() if isinstance(value, str) and value
        )
    except Exception:  # an unreadable key store: the environment's keys still count
        pass
    return sorted(values)


def _is_api_key_name(name: str) -> bool:
    """``OPENAI_API_KEY``, ``x-apikey``, ``LLM_GEMINI_KEY``: a variable that holds an API key."""
    upper = name.upper()
    return "apikey" in normalise_key(name) or (upper.startswith("LLM_") and upper.endswith("_KEY"))
