"""Span names and attribute keys: the single place they are spelled.

The runtime, the trace-file sink, the exporters, the dashboards' tests and the docs test all
import from here, so a renamed attribute cannot drift between what we emit and what we document
(``docs/spans.md``; ``tests/test_span_docs.py`` checks every name below appears there).
"""

from __future__ import annotations

INSTRUMENTATION_NAME = "pflow_trace"

# -- pflow.layer values, one per wrapper layer (outermost first) ---------------------------
LAYER_WORKFLOW = "workflow"
LAYER_INSTRUMENTED = "instrumented"
LAYER_BATCH = "batch"
LAYER_BATCH_ITEM = "batch.item"
#: One pass of a node's ``loop`` block (``runtime/loop.py``), under the instrumented span.
LAYER_LOOP_ITERATION = "loop.iteration"
LAYER_NAMESPACED = "namespaced"
LAYER_TEMPLATE = "template"
LAYER_NODE = "node"
LAYERS = (
    LAYER_WORKFLOW,
    LAYER_INSTRUMENTED,
    LAYER_BATCH,
    LAYER_BATCH_ITEM,
    LAYER_LOOP_ITERATION,
    LAYER_NAMESPACED,
    LAYER_TEMPLATE,
    LAYER_NODE,
)

# -- attributes on every span ------------------------------------------------------------------
ATTR_LAYER = "pflow.layer"

# -- root span ---------------------------------------------------------------------------------
ATTR_WORKFLOW_NAME = "pflow.workflow.name"
ATTR_EXECUTION_ID = "pflow.execution_id"
ATTR_FINAL_STATUS = "pflow.final_status"

# -- every node-level span (instrumented, batch, item, namespaced, template, node) ---------------
ATTR_NODE_ID = "pflow.node.id"
ATTR_NODE_TYPE = "pflow.node.type"
#: A resumed run took this node's result from the run it resumes (docs/resume.md).
ATTR_REUSED = "pflow.reused"
#: A ``workflow`` step's span (or its item's): the file of the child it ran, and its sha256.
ATTR_SUB_WORKFLOW_PATH = "pflow.sub_workflow.path"
ATTR_SUB_WORKFLOW_SHA256 = "pflow.sub_workflow.sha256"
#: The instrumented span of a node whose params were read from files: ``param=path@sha256``
#: for each (the path as the workflow wrote it; the file's text is never on a span).
ATTR_NODE_FILES = "pflow.node.files"

# -- batch span --------------------------------------------------------------------------------
ATTR_BATCH_SIZE = "pflow.batch.size"
ATTR_BATCH_PARALLEL = "pflow.batch.parallel"
ATTR_BATCH_MAX_CONCURRENT = "pflow.batch.max_concurrent"
ATTR_BATCH_EXECUTION_MODE = "pflow.batch.execution_mode"
ATTR_BATCH_ERROR_HANDLING = "pflow.batch.error_handling"
#: threads, processes or dask: where the items ran.
ATTR_BATCH_EXECUTOR = "pflow.batch.executor"
#: How a parallel batch's items share this process: ``threads`` (one thread per lane) or
#: ``async`` (tasks on one event loop, for node types with an async path).
ATTR_BATCH_LANES = "pflow.batch.lanes"
ATTR_BATCH_SUCCESS_COUNT = "pflow.batch.success_count"
ATTR_BATCH_ERROR_COUNT = "pflow.batch.error_count"

# -- batch item span ---------------------------------------------------------------------------
ATTR_BATCH_INDEX = "pflow.batch.index"
ATTR_BATCH_ATTEMPTS = "pflow.batch.attempts"
ATTR_BATCH_ITEM_PREVIEW = "pflow.batch.item"
ATTR_BATCH_WORKER = "pflow.batch.worker"
#: Where an item ran when it left the run's process (processes and dask executors only).
ATTR_BATCH_HOST = "pflow.batch.host"
ATTR_BATCH_PID = "pflow.batch.pid"
ATTR_BATCH_WORKER_ADDRESS = "pflow.batch.worker_address"
#: Where the item span's time went, in whole microseconds (``docs/spans.md``): inside the
#: node's attempts, waiting between attempts, and the provider's reported latency (``http``
#: and ``llm`` nodes, when known; part of the attempts). The runtime's overhead is the rest
#: of the span's duration.
ATTR_BATCH_TIME_ATTEMPTS_US = "pflow.batch.time.attempts_us"
ATTR_BATCH_TIME_RETRY_WAIT_US = "pflow.batch.time.retry_wait_us"
ATTR_BATCH_TIME_PROVIDER_US = "pflow.batch.time.provider_us"

# -- retry events on an item span ----------------------------------------------------------------
EVENT_RETRY = "pflow.retry"
ATTR_RETRY_ATTEMPT = "pflow.retry.attempt"
ATTR_RETRY_ERROR = "pflow.retry.error"
# -- a node's own attempts (its ``retry`` block): events on its instrumented span --------------
EVENT_NODE_RETRY = "pflow.node.retry"
#: On the node's instrumented span, when its ``retry`` block allowed more than one attempt.
ATTR_NODE_ATTEMPTS = "pflow.node.attempts"
# -- a node's ``loop`` block: its iteration spans and its instrumented span ----------------------
#: On a ``loop.iteration`` span: which pass it is (1-based, as ``${__iteration__}``).
ATTR_LOOP_ITERATION = "pflow.loop.iteration"
#: On the instrumented span of a loop node: how many passes ran, and what ended the loop
#: (``condition``, ``max_iterations``, or ``failed`` when a pass failed).
ATTR_LOOP_ITERATIONS = "pflow.loop.iterations"
ATTR_LOOP_STOPPED = "pflow.loop.stopped"
#: On an event whose given time was not a Unix time in ns: the value given (``otlp_wire``).
ATTR_INVALID_TIME = "pflow.invalid_time_unix_nano"

# -- an LLM call: OpenTelemetry's GenAI semantic conventions (gen_ai.*) -------------------------
# Set on the span of the call: a batch item's span, or the instrumented span of a node that is
# not a batch. Filled from the ``llm_usage`` output a node returns (``docs/llm.md``).
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
#: Opt-in content (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``); JSON text, redacted.
GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
#: The standard attribute naming the class of a failure (an LLM call that failed).
ATTR_ERROR_TYPE = "error.type"
#: Our own: the call's cost in US dollars; absent when the model's price is unknown.
ATTR_LLM_COST_USD = "pflow.llm.cost_usd"
#: Our own: how many times the node sent the request (retries of rate limits and outages).
ATTR_LLM_ATTEMPTS = "pflow.llm.attempts"
#: Our own: the ``## Cache`` chunks the call sent ahead of its prompt (``prompt_cache``).
ATTR_LLM_PROMPT_CACHE_CHUNKS = "pflow.llm.prompt_cache.chunks"
#: ``gen_ai.operation.name`` for a prompt sent to a chat or completion model.
GEN_AI_OPERATION_CHAT = "chat"
#: The switch OpenTelemetry's GenAI instrumentations read to record prompts and completions.
ENV_CAPTURE_MESSAGE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

# -- retry events of an LLM call, on the call's span ---------------------------------------------
#: One failed attempt the node retried; carries ATTR_RETRY_ATTEMPT, ATTR_RETRY_ERROR, error.type.
EVENT_LLM_RETRY = "pflow.llm.retry"

# -- an MCP tool call: OpenTelemetry's MCP semantic conventions ----------------------------------
# Set on the span of one ``tools/call`` (a child of the node span; ``docs/mcp.md``).
MCP_METHOD_NAME = "mcp.method.name"
MCP_SESSION_ID = "mcp.session.id"
MCP_PROTOCOL_VERSION = "mcp.protocol.version"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
NETWORK_TRANSPORT = "network.transport"
NETWORK_PROTOCOL_NAME = "network.protocol.name"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
#: Our own: the server's name in the MCP config (the conventions have no attribute for it).
ATTR_MCP_SERVER = "pflow.mcp.server"
#: ``mcp.method.name`` of a tool call, and ``gen_ai.operation.name`` for running a tool.
MCP_METHOD_TOOLS_CALL = "tools/call"
GEN_AI_OPERATION_EXECUTE_TOOL = "execute_tool"
#: ``error.type`` of a call whose result has ``isError`` set.
MCP_ERROR_TOOL = "tool_error"
MCP_ATTRIBUTES = (
    MCP_METHOD_NAME,
    MCP_SESSION_ID,
    MCP_PROTOCOL_VERSION,
    GEN_AI_TOOL_NAME,
    NETWORK_TRANSPORT,
    NETWORK_PROTOCOL_NAME,
    SERVER_ADDRESS,
    SERVER_PORT,
    ATTR_MCP_SERVER,
)

#: GenAI attributes whose values differ from call to call (the span table keeps them per span).
GEN_AI_VARYING_ATTRIBUTES = (
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    GEN_AI_SYSTEM_INSTRUCTIONS,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES,
    ATTR_ERROR_TYPE,
    ATTR_LLM_COST_USD,
    ATTR_LLM_ATTEMPTS,
    ATTR_LLM_PROMPT_CACHE_CHUNKS,
)

# -- the linked export shape (observe/trace_shape.py): set on exported copies only -----------
#: The layer of a chunk trace's root span (not a wrapper layer: the export pipeline makes it).
LAYER_BATCH_CHUNK = "batch.chunk"
ATTR_SHAPE = "pflow.trace_shape"
ATTR_SHAPE_CHUNKS = "pflow.batch.chunks"
ATTR_SHAPE_ITEMS_LINKED = "pflow.batch.items_linked"
ATTR_SHAPE_ITEMS_SUCCESS = "pflow.batch.items.success"
ATTR_SHAPE_ITEMS_FAILED = "pflow.batch.items.failed"
ATTR_SHAPE_ITEMS_INTERRUPTED = "pflow.batch.items.interrupted"
ATTR_SHAPE_RETRIES = "pflow.batch.retries"
ATTR_SHAPE_INPUT_TOKENS = "pflow.batch.input_tokens"
ATTR_SHAPE_OUTPUT_TOKENS = "pflow.batch.output_tokens"
ATTR_SHAPE_COST_USD = "pflow.batch.cost_usd"
ATTR_SHAPE_DURATION_P50_MS = "pflow.batch.item_duration_ms.p50"
ATTR_SHAPE_DURATION_P95_MS = "pflow.batch.item_duration_ms.p95"
ATTR_SHAPE_DURATION_P99_MS = "pflow.batch.item_duration_ms.p99"
ATTR_SHAPE_DURATION_MAX_MS = "pflow.batch.item_duration_ms.max"
ATTR_SHAPE_CHUNK_NUMBER = "pflow.chunk.number"
ATTR_SHAPE_CHUNK_ITEMS = "pflow.chunk.items"
ATTR_SHAPE_CHUNK_FIRST_INDEX = "pflow.chunk.first_index"
ATTR_SHAPE_CHUNK_LAST_INDEX = "pflow.chunk.last_index"
ATTR_SHAPE_BATCH_TRACE_ID = "pflow.chunk.batch_trace_id"
#: On a span link: what the linked span is (LINK_BATCH or LINK_CHUNK).
ATTR_SHAPE_LINK = "pflow.link"
LINK_BATCH = "batch"
LINK_CHUNK = "chunk"
SHAPE_ATTRIBUTES = (
    ATTR_SHAPE,
    ATTR_SHAPE_CHUNKS,
    ATTR_SHAPE_ITEMS_LINKED,
    ATTR_SHAPE_ITEMS_SUCCESS,
    ATTR_SHAPE_ITEMS_FAILED,
    ATTR_SHAPE_ITEMS_INTERRUPTED,
    ATTR_SHAPE_RETRIES,
    ATTR_SHAPE_INPUT_TOKENS,
    ATTR_SHAPE_OUTPUT_TOKENS,
    ATTR_SHAPE_COST_USD,
    ATTR_SHAPE_DURATION_P50_MS,
    ATTR_SHAPE_DURATION_P95_MS,
    ATTR_SHAPE_DURATION_P99_MS,
    ATTR_SHAPE_DURATION_MAX_MS,
    ATTR_SHAPE_CHUNK_NUMBER,
    ATTR_SHAPE_CHUNK_ITEMS,
    ATTR_SHAPE_CHUNK_FIRST_INDEX,
    ATTR_SHAPE_CHUNK_LAST_INDEX,
    ATTR_SHAPE_BATCH_TRACE_ID,
    ATTR_SHAPE_LINK,
)

#: Every attribute key the runtime may set; docs and dashboard tests read this.
ALL_ATTRIBUTES = (
    ATTR_LAYER,
    ATTR_WORKFLOW_NAME,
    ATTR_EXECUTION_ID,
    ATTR_FINAL_STATUS,
    ATTR_NODE_ID,
    ATTR_NODE_TYPE,
    ATTR_REUSED,
    ATTR_SUB_WORKFLOW_PATH,
    ATTR_SUB_WORKFLOW_SHA256,
    ATTR_NODE_FILES,
    ATTR_NODE_ATTEMPTS,
    ATTR_BATCH_SIZE,
    ATTR_BATCH_PARALLEL,
    ATTR_BATCH_MAX_CONCURRENT,
    ATTR_BATCH_EXECUTION_MODE,
    ATTR_BATCH_ERROR_HANDLING,
    ATTR_BATCH_EXECUTOR,
    ATTR_BATCH_LANES,
    ATTR_BATCH_SUCCESS_COUNT,
    ATTR_BATCH_ERROR_COUNT,
    ATTR_BATCH_INDEX,
    ATTR_BATCH_ATTEMPTS,
    ATTR_BATCH_ITEM_PREVIEW,
    ATTR_BATCH_WORKER,
    ATTR_BATCH_HOST,
    ATTR_BATCH_PID,
    ATTR_BATCH_WORKER_ADDRESS,
    ATTR_BATCH_TIME_ATTEMPTS_US,
    ATTR_BATCH_TIME_RETRY_WAIT_US,
    ATTR_BATCH_TIME_PROVIDER_US,
    ATTR_RETRY_ATTEMPT,
    ATTR_RETRY_ERROR,
    ATTR_LOOP_ITERATION,
    ATTR_LOOP_ITERATIONS,
    ATTR_LOOP_STOPPED,
    ATTR_INVALID_TIME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_RESPONSE_MODEL,
    *GEN_AI_VARYING_ATTRIBUTES,
    *MCP_ATTRIBUTES,
    *SHAPE_ATTRIBUTES,
)


def span_name(layer: str, node_id: str | None = None) -> str:
    """Low-cardinality span names: the layer and at most the node id, never an item."""
    if layer == LAYER_WORKFLOW:
        return f"workflow {node_id}" if node_id else "workflow"
    return f"{node_id} {layer}" if node_id else layer
