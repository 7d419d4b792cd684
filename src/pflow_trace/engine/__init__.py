"""The tiny execution core: nodes with prep / exec / post, flows that follow actions.

It knows nothing of templates, namespaces, batches, files or tracing, and of retries only the
rule for the next attempt's wait; everything else composes around it as wrappers (see
:mod:`pflow_trace.runtime`).
"""

from pflow_trace.engine.core import BaseNode, Flow
from pflow_trace.engine.retry import RetryPolicy

__all__ = ["BaseNode", "Flow", "RetryPolicy"]
