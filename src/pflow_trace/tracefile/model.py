"""The one in-memory model every trace format is read into.

Readers (``readers.py``) know the file formats; everything after them (statistics, summary,
rendering) sees only these classes, so a new format means a new reader and nothing else.
The classes use ``__slots__`` because a batch can hold 100,000 items: a slotted object costs
about a third of a dict, and ``show`` has to stay within twice the cost of ``json.load``.

Fields a format does not record are ``None``, never a guessed value: the summary says what
cannot be known instead of inventing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Item statuses as written by the runtime and by pflow.
ITEM_SUCCESS = "success"
ITEM_FAILED = "failed"
ITEM_SKIPPED = "skipped"
#: The item was running when the run was stopped (Ctrl-C, SIGTERM, SIGHUP).
ITEM_INTERRUPTED = "interrupted"


@dataclass(slots=True)
class BatchItem:
    """One item of a batch node, as recorded per item (``batch_items``).

    The numeric fields are type-checked by the reader (statistics compute with them);
    ``index``, ``item``, ``status`` and ``error`` are kept as written, since they are only
    compared or shown, and the summary turns them into text itself.
    """

    index: int | None
    #: The item itself (pflow) or its short preview (ours); turned into text only for display.
    item: Any
    status: str
    duration_ms: float | None
    error: str | None = None
    #: How many times the item ran; ``None`` when the format does not say.
    attempts: int | None = None
    #: Offset from the batch start; only our format records it.
    start_offset_ms: float | None = None
    #: The worker lane (0..max_concurrent-1) that ran the item; only our format records it.
    worker: int | None = None
    #: The item's ``batch.item`` span id (16 hex); only our format records it.
    span_id: str | None = None
    #: Where the item ran when it left the run's process (processes and dask executors):
    #: host name, process id and Dask worker address; ``None`` for items run on threads.
    host: str | None = None
    pid: int | None = None
    worker_address: str | None = None

    @property
    def place(self) -> str | None:
        """A label for the worker process: Dask address, else ``host pid``; None on threads."""
        if self.worker_address:
            return self.worker_address
        if self.host is not None or self.pid is not None:
            return f"{self.host or '?'} pid {self.pid if self.pid is not None else '?'}"
        return None

    #: The item's LLM call (``llm_usage``; pflow's ``llm_call``) as written; None for an item
    #: that made none. ``empty_response`` is set when the response was blank.
    llm_usage: dict[str, Any] | None = None
    #: Where the item's time went, in µs: (lane wait, attempts, retry waits, overhead); only
    #: our format records it, and not for an item no attempt reported on.
    time_us: tuple[int, int, int, int] | None = None
    #: The provider's latency the node reported (``http``, ``llm``), in µs; None when unknown.
    provider_us: int | None = None
    #: The item's ``batch.key`` (our format, batches with a key); None when it has none.
    key: str | None = None


@dataclass(slots=True)
class ReportedError:
    """One failed item as listed in the batch output's ``errors``: what pflow 1.2.0 keeps."""

    index: int | None
    item: Any
    message: str


@dataclass(slots=True)
class BatchInfo:
    """What a batch node reported about itself, plus its per-item records when there are any."""

    #: Totals from the batch output; ``None`` when the node never wrote its output
    #: (an interrupted or failed batch).
    count: int | None = None
    success_count: int | None = None
    error_count: int | None = None
    parallel: bool | None = None
    execution_mode: str | None = None
    max_concurrent: int | None = None
    max_retries: int | None = None
    retry_wait: float | None = None
    #: ``batch_metadata.timing`` as reported: total/avg/min/max item time in milliseconds.
    reported_timing_ms: dict[str, float] = field(default_factory=dict)
    #: The batch output's ``errors`` list; used when there are no per-item records.
    reported_errors: list[ReportedError] = field(default_factory=list)
    #: Per-item records, or ``None`` when the format keeps only ``batch_metadata``.
    items: list[BatchItem] | None = None


@dataclass(slots=True)
class LoopPass:
    """One pass of a ``loop`` node, as the trace records it."""

    iteration: int
    status: str
    duration_ms: float | None
    error: str | None = None


@dataclass(slots=True)
class LoopInfo:
    """A ``loop`` node's passes: how many ran and what ended the loop (``condition``,
    ``max_iterations`` or ``failed``), with the condition's keyword when recorded."""

    iterations: int
    stopped: str | None
    keyword: str | None
    passes: list[LoopPass] = field(default_factory=list)


@dataclass(slots=True)
class TraceNode:
    """One node execution in a run."""

    node_id: str
    node_type: str
    success: bool
    duration_ms: float | None
    #: ISO 8601 time the node finished, as written.
    timestamp: str | None = None
    #: Offset of the node's start from the run start; only our format records it.
    start_offset_ms: float | None = None
    error: str | None = None
    span_id: str | None = None
    #: False for a node that started but never reported an end (the run was cut off).
    finished: bool = True
    #: A ``loop`` node's LLM calls, one per pass that made one (ours only); empty otherwise.
    loop_calls: list[dict[str, Any]] = field(default_factory=list)
    #: A ``loop`` node's passes (ours only); None for a node without a loop.
    loop: LoopInfo | None = None
    batch: BatchInfo | None = None
    #: The LLM call of a node that is not a batch (``llm_usage``; pflow's ``llm_call``), as
    #: written; a batch node's calls are on its items.
    llm_usage: dict[str, Any] | None = None
    #: A node of a sub-workflow: the ``workflow`` steps that called it, outermost first (ours
    #: records it; empty at the top level and in pflow's traces).
    call_path: tuple[str, ...] = ()
    #: The span id of the calling step's record (``caller_span_id``); None at the top level.
    caller_span_id: str | None = None
    #: Each param read from a file, ``{"param", "path", "sha256", "bytes"}`` (ours records it).
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def qualified_id(self) -> str:
        """``caller/node`` for a sub-workflow's node (ids hold no ``/``), else the node id:
        what views that pool a node's executions (across runs) group by."""
        return "/".join((*self.call_path, self.node_id))


@dataclass(slots=True)
class TraceRun:
    """One run of one workflow, whatever file format it came from."""

    #: The file it was read from, as given.
    source: str
    #: ``pflow-trace`` (ours), ``pflow`` (pflow's JSON) or ``pflow-jsonl`` (pflow's JSON lines).
    format: str
    format_version: str | None
    workflow_name: str | None
    final_status: str | None
    start_time: str | None = None
    end_time: str | None = None
    duration_ms: float | None = None
    execution_id: str | None = None
    generator: str | None = None
    nodes_executed: int | None = None
    nodes_failed: int | None = None
    error: str | None = None
    failed_node: str | None = None
    #: OpenTelemetry trace id (32 hex) when the run was traced.
    trace_id: str | None = None
    #: Our format's ``otel`` object as written (ids, service, the recorded span table); kept
    #: by reference so ``export`` replays spans without reading the file a second time.
    otel: dict[str, Any] | None = None
    nodes: list[TraceNode] = field(default_factory=list)
    #: A resumed run's items (``resume``: items, reused, rerun, ok, failed); None otherwise.
    resume: dict[str, int] | None = None
    #: What a person reading the trace is told: problems the reader worked around (newer
    #: format version, missing end record) and the trace's own recorded warnings.
    warnings: list[str] = field(default_factory=list)
    #: Of those, the ones the trace recorded itself (the run's warnings, values its writer
    #: escaped): about the run, so a conversion of the file does not repeat them.
    recorded_warnings: list[str] = field(default_factory=list)
