"""Checks a trace document against the JSON Schema of our trace format.

The schema (``schemas/trace.schema.json``, shipped in the package) is the contract for
``docs/trace-format.md``; the test suite validates every trace it writes against it, so the
file format cannot drift from the documentation unnoticed. One check a schema cannot express
is done here too: a batch node's own namespace in ``shared_after`` must hold the batch output
exactly as the runtime defines it (the schema cannot name a key that is a node id).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema

from pflow_trace.errors import TraceSchemaError
from pflow_trace.text import json_path

SCHEMA_RESOURCE = "schemas/trace.schema.json"


@lru_cache(maxsize=1)
def trace_schema() -> dict[str, Any]:
    """The schema as a dict (read once from the installed package)."""
    text = resources.files("pflow_trace.tracefile").joinpath(SCHEMA_RESOURCE).read_text("utf-8")
    return json.loads(text)


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    schema = trace_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@lru_cache(maxsize=1)
def _batch_output_validator() -> jsonschema.Draft202012Validator:
    schema = trace_schema()
    return jsonschema.Draft202012Validator(
        {"$defs": schema["$defs"], "$ref": "#/$defs/batch_output"}
    )


def _messages(
    validator: jsonschema.Draft202012Validator, instance: Any, prefix: tuple[Any, ...] = ()
) -> list[str]:
    errors = sorted(validator.iter_errors(instance), key=lambda error: list(map(str, error.path)))
    return [f"{json_path((*prefix, *error.absolute_path))}: {error.message}" for error in errors]


def trace_problems(document: Any) -> list[str]:
    """Every way ``document`` departs from our trace format, each prefixed by its JSON path."""
    problems = _messages(_validator(), document)
    nodes = document.get("nodes") if isinstance(document, dict) else None
    if not isinstance(nodes, list):
        return problems
    batch_validator = _batch_output_validator()
    for position, event in enumerate(nodes):
        if not isinstance(event, dict) or "batch_items" not in event:
            continue
        after = event.get("shared_after")
        node_id = event.get("node_id")
        if not isinstance(after, dict) or not isinstance(node_id, str):
            continue
        output = after.get(node_id)
        # Absent (the batch never resolved its items) or a string (a node id that names a
        # secret, redacted): nothing to check.
        if isinstance(output, dict):
            where = ("nodes", position, "shared_after", node_id)
            problems.extend(_messages(batch_validator, output, where))
    return problems


def validate_trace_document(document: Any, source: str = "trace") -> None:
    """Raise :class:`TraceSchemaError` listing every problem, or return quietly."""
    problems = trace_problems(document)
    if problems:
        raise TraceSchemaError(problems, source)
