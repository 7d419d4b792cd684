"""docs/spans.md and tracing/conventions.py name the same things, in both directions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pflow_trace.observe import conventions as conv

SPANS_DOC = Path(__file__).resolve().parents[2] / "docs" / "spans.md"
#: ``pflow.`` followed by a dotted lower-case name; a sentence's final full stop is not part of it.
PFLOW_NAME = re.compile(r"\bpflow\.[a-z0-9_]+(?:\.[a-z0-9_]+)*")
KNOWN_NAMES = {*conv.ALL_ATTRIBUTES, conv.EVENT_RETRY, conv.EVENT_LLM_RETRY, conv.EVENT_NODE_RETRY}


@pytest.fixture(scope="module")
def doc() -> str:
    return SPANS_DOC.read_text(encoding="utf-8")


def in_backticks(doc: str) -> set[str]:
    return set(re.findall(r"`([^`\n]+)`", doc))


@pytest.mark.parametrize("name", conv.ALL_ATTRIBUTES)
def test_every_attribute_is_documented(doc: str, name: str) -> None:
    assert name in in_backticks(doc), f"docs/spans.md does not document `{name}`"


def test_every_attribute_has_a_table_row_with_type_meaning_and_example(doc: str) -> None:
    rows = {
        cells[0].strip("` "): cells
        for line in doc.splitlines()
        if line.startswith(
            ("| `pflow.", "| `gen_ai.", "| `error.", "| `mcp.", "| `network.", "| `server.")
        )
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }
    for name in conv.ALL_ATTRIBUTES:
        assert name in rows, f"no table row for `{name}`"
        _, type_name, meaning, example = rows[name]
        assert type_name in ("string", "int", "bool", "double", "string[]"), name
        assert meaning and example, name


@pytest.mark.parametrize("layer", conv.LAYERS)
def test_every_layer_is_documented(doc: str, layer: str) -> None:
    assert layer in in_backticks(doc), f"docs/spans.md does not name the layer `{layer}`"


def test_the_retry_and_exception_events_are_documented(doc: str) -> None:
    names = in_backticks(doc)
    assert conv.EVENT_RETRY in names
    assert conv.EVENT_LLM_RETRY in names
    assert conv.EVENT_NODE_RETRY in names
    assert {"exception", "exception.type", "exception.message"} <= names


def test_every_pflow_name_in_the_docs_exists_in_conventions(doc: str) -> None:
    mentioned = set(PFLOW_NAME.findall(doc))
    assert mentioned, "the pattern found nothing: is the doc empty?"
    unknown = sorted(mentioned - KNOWN_NAMES)
    assert not unknown, f"docs/spans.md mentions names conventions.py does not define: {unknown}"


def test_documented_span_names_follow_the_conventions(doc: str) -> None:
    assert conv.span_name(conv.LAYER_BATCH_ITEM, "fetch") in doc
    assert conv.span_name(conv.LAYER_WORKFLOW, "fan-out") in doc
