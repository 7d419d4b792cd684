"""The Namespaced layer: gives the node a fresh namespace and a namespaced view of the store."""

from __future__ import annotations

from typing import Any

from pflow_trace.observe import conventions as conv
from pflow_trace.runtime.layers import LayerWrapper
from pflow_trace.runtime.store import NamespacedStore


class NamespacedNode(LayerWrapper):
    """Each run starts ``shared[node_id]`` afresh, so a batch item or a loop sees no leftovers."""

    layer = conv.LAYER_NAMESPACED

    def _run(self, shared: Any) -> str | None:
        namespace: dict[str, Any] = {}
        shared[self.node_id] = namespace
        return self.run_inner_in_span(NamespacedStore(shared, namespace))

    async def _run_async(self, shared: Any) -> str | None:
        namespace: dict[str, Any] = {}
        shared[self.node_id] = namespace
        return await self.run_inner_in_span_async(NamespacedStore(shared, namespace))
