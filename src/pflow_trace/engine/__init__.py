"""The tiny execution core: nodes with prep / exec / post, flows that follow actions.

It knows nothing of templates, namespaces, batches, retries, files or tracing; everything else
composes around it as wrappers (see :mod:`pflow_trace.runtime`).
"""

from pflow_trace.engine.core import BaseNode, Flow

__all__ = ["BaseNode", "Flow"]
