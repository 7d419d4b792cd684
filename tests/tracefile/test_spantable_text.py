"""Span rows are kept as JSON text: the text must be exactly what encoding the row would give."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from pflow_trace.tracefile.spantable import encode_row
from pflow_trace.tracefile.spool import Spool, TextBlocks
from pflow_trace.tracefile.writer import iter_json_chunks

ORIGIN = 1_700_000_000_000_000_000


def as_list(raw: tuple[Any, ...]) -> list[Any]:
    """The row as the list form the trace file has always held."""
    kind, span_id, parent, start, end, code, description, varying, events = raw
    return [
        kind,
        f"{span_id:016x}",
        f"{parent:016x}" if parent else None,
        start - ORIGIN,
        end - start,
        code,
        description,
        varying,
        [[name, at - ORIGIN, attrs] for name, at, attrs in events] if events else None,
    ]


ROWS = [
    (0, 0xFFFFFFFFFFFFFFFF, 0, ORIGIN, ORIGIN + 5, 0, None, None, None),
    (4, 0x1234, 0xFFFFFFFFFFFFFFFF, ORIGIN + 3, ORIGIN + 8, 1, None, None, None),  # the common row
    (5, 1, 2, ORIGIN - 7, ORIGIN + 8, 0, None, None, []),
    (3, 1, 0x00F067AA0BA902B7, ORIGIN + 10, ORIGIN + 99, 2, 'bad: "quoted" ünïcode\n', None, None),
    (
        1,
        0xABC,
        0xDEF,
        ORIGIN + 1,
        ORIGIN + 2,
        0,
        None,
        {"pflow.batch.index": 7, "pflow.batch.item_preview": "é ✓", "pflow.batch.worker": 0},
        [("retry", ORIGIN + 1, {"retry.attempt": 1, "retry.error": "boom"})],
    ),
    (2, 5, 6, ORIGIN, ORIGIN, 1, None, None, []),
]


@pytest.mark.parametrize("raw", ROWS)
def test_row_text_is_the_json_of_the_row(raw: tuple[Any, ...]) -> None:
    text = encode_row(raw, ORIGIN)
    expected = json.dumps(as_list(raw), ensure_ascii=False, default=str, allow_nan=False)
    assert text == expected
    assert json.loads(text) == as_list(raw)


def test_a_value_json_cannot_hold_is_still_written_as_valid_json() -> None:
    raw = (0, 1, 0, ORIGIN, ORIGIN, 0, None, {"pflow.batch.index": math.nan}, None)
    row = json.loads(encode_row(raw, ORIGIN))
    assert row[0] == 0 and row[7] is not None


def test_spooled_rows_are_written_as_one_array_and_decode_back(tmp_path: Any) -> None:
    rows = TextBlocks(Spool(tmp_path))
    for _ in range(700):  # many blocks
        rows.append_block(", ".join(encode_row(raw, ORIGIN) for raw in ROWS), len(ROWS))
    document = {"otel": {"spans": {"rows": rows}}, "nodes": []}
    written = json.loads("".join(iter_json_chunks(document)))
    assert written["otel"]["spans"]["rows"] == rows.decoded() == [as_list(r) for r in ROWS * 700]
