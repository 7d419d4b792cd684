"""The one decision about attempts: whether another one is made, and how long to wait first.

Every retry in pflow-trace asks a :class:`RetryPolicy`: a batch item's attempts on a thread,
on a worker process or on Dask (through :mod:`pflow_trace.runtime.item_life`), an attempt lost
with a dead worker (the driver), and the ``llm`` node's own attempts at a provider. Policies
differ only in their numbers; the rule is written once, here, so the places that retry cannot
drift apart. Sleeping is left to the caller: only it knows whether a signal may stop the wait.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_attempts`` attempts in all, waiting ``wait_s`` before the second, then
    ``wait_s * backoff`` before the third, and so on.

    ``asked_s`` is a wait the failure itself asks for (a provider's ``Retry-After``): the pause
    is the longer of the two, and a failure that asks for more than ``max_asked_s`` gets no
    further attempt (waiting that long would stall the batch; failing says why).
    ``max_wait_s`` caps a planned wait that grows with ``backoff`` (pflow's node-level
    exponential backoff stops growing at 60 s).
    """

    max_attempts: int = 1
    wait_s: float = 0.0
    backoff: float = 1.0
    max_asked_s: float | None = None
    max_wait_s: float | None = None

    def pause_s(self, attempt: int, asked_s: float | None = None) -> float | None:
        """After failed attempt number ``attempt`` (1-based): seconds to wait before the next
        one, or None when no attempt is left or the failure asks for too long a wait."""
        if attempt >= self.max_attempts:
            return None
        if asked_s is not None and self.max_asked_s is not None and asked_s > self.max_asked_s:
            return None
        planned_s = self.wait_s * self.backoff ** (attempt - 1) if self.wait_s else 0.0
        if self.max_wait_s is not None:
            planned_s = min(planned_s, self.max_wait_s)
        return max(planned_s, asked_s or 0.0)
