"""The namespaced view of the shared store a node sees.

Writes land in the node's own namespace (``shared[node_id]``) so two nodes writing ``result``
never collide; keys shaped ``__name__`` are run-wide and go to the root. Reads look in the
namespace first, then the root, which is where inputs, other nodes' namespaces and a batch
item's alias live.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from pflow_trace.ir.templates import is_root_key


class NamespacedStore(MutableMapping[str, Any]):
    """A mapping over ``root`` whose writes go to ``namespace`` (except root keys)."""

    __slots__ = ("namespace", "root")

    def __init__(self, root: MutableMapping[str, Any], namespace: dict[str, Any]) -> None:
        self.root = root
        self.namespace = namespace

    def __getitem__(self, key: str) -> Any:
        namespace = self.namespace
        if key in namespace:
            return namespace[key]
        return self.root[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if is_root_key(key):
            self.root[key] = value
        else:
            self.namespace[key] = value

    def __delitem__(self, key: str) -> None:
        if key in self.namespace:
            del self.namespace[key]
        else:
            del self.root[key]

    def __contains__(self, key: object) -> bool:
        return key in self.namespace or key in self.root

    def __iter__(self) -> Iterator[str]:
        yield from self.namespace
        for key in self.root:
            if key not in self.namespace:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)
