"""The blocks a ``show`` page is made of: headings, key/value fields, tables and notes.

They are the hand-over between :mod:`pflow_trace.report.layout`, which decides what is shown,
and :mod:`pflow_trace.report.terminal`, which draws it with ``rich`` or as plain text. Neither
side needs the other to describe a page, so both drawings show the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: A table cell or field value: text, or (text, style name). Style names: ok, warn, bad, dim,
#: title, batch.
Cell = str | tuple[str, str]


@dataclass(slots=True)
class Heading:
    """A title line; a blank line separates it from what came before."""

    text: str
    style: str = "title"


@dataclass(slots=True)
class Fields:
    """Key/value lines with the keys aligned."""

    rows: list[tuple[str, Cell]]


@dataclass(slots=True)
class Table:
    """Columns with a header row; each column aligned left or right."""

    #: (header, "left" | "right")
    columns: list[tuple[str, str]]
    rows: list[list[Cell]] = field(default_factory=list)
    title: str | None = None


@dataclass(slots=True)
class Note:
    """One indented sentence, such as what a trace cannot tell."""

    text: str
    style: str = "dim"


Block = Heading | Fields | Table | Note


def cell_text(cell: Cell) -> str:
    """The text of a cell, without its style."""
    return cell if isinstance(cell, str) else cell[0]
