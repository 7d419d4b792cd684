"""Draw a :class:`~pflow_trace.report.summary.ShowSummary` for people.

What is shown is decided once, by :func:`pflow_trace.report.layout.layout`; this module only
draws those blocks, two ways: ``rich`` tables with colour for a terminal, plain aligned text
otherwise (piped, redirected, tests).

``rich`` is imported only when a terminal drawing is asked for, to keep ``show | less`` and
``--json`` start-up cheap.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from pflow_trace.report.blocks import Block, Cell, Fields, Heading, Note, Table, cell_text
from pflow_trace.report.layout import layout
from pflow_trace.report.summary import ShowSummary
from pflow_trace.text import terminal_safe

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

#: Block style names -> rich styles.
_RICH_STYLES = {
    "ok": "green",
    "warn": "yellow",
    "bad": "bold red",
    "dim": "dim",
    "title": "bold",
    "batch": "cyan",
}


def render_text(
    summary: ShowSummary, *, terminal: bool = False, color: bool = True, width: int | None = None
) -> str:
    """Draw the summary: rich tables on a terminal, plain aligned text otherwise."""
    blocks = [_terminal_safe_block(block) for block in layout(summary)]
    if terminal:
        return _draw_rich(blocks, color=color, width=width)
    return _draw_plain(blocks)


def _safe_cell(cell: Cell) -> Cell:
    return terminal_safe(cell) if isinstance(cell, str) else (terminal_safe(cell[0]), cell[1])


def _terminal_safe_block(block: Block) -> Block:
    """The block with every text made safe to print: names, errors and items come from the
    trace, and a control character in one (a terminal escape, a line break) must not act on
    the terminal or forge a line of the page."""
    if isinstance(block, Heading):
        return Heading(terminal_safe(block.text), block.style)
    if isinstance(block, Fields):
        return Fields([(terminal_safe(key), _safe_cell(value)) for key, value in block.rows])
    if isinstance(block, Table):
        rows = [[_safe_cell(cell) for cell in row] for row in block.rows]
        return Table(block.columns, rows, block.title)
    return Note(terminal_safe(block.text), block.style)


# -- plain text ----------------------------------------------------------------------------------


def _draw_plain(blocks: list[Block]) -> str:
    """Blocks as aligned text with no escape codes; a blank line before headings and tables."""
    lines: list[str] = []
    previous: Block | None = None
    for block in blocks:
        if isinstance(block, Heading):
            if lines:
                lines.append("")
            lines.append(block.text)
        elif isinstance(block, Fields):
            key_width = max(len(key) for key, _ in block.rows)
            lines.extend(
                f"  {key.ljust(key_width)}  {cell_text(value)}" for key, value in block.rows
            )
        elif isinstance(block, Table):
            lines.append("")
            if block.title:
                lines.append(f"  {block.title}:")
            lines.extend(_plain_table(block))
        else:
            if previous is not None and isinstance(previous, Table):
                lines.append("")
            lines.append(f"  {block.text}")
        previous = block
    return "\n".join(lines) + "\n"


def _plain_table(table: Table) -> list[str]:
    """A table as lines, each column as wide as its widest cell, trailing spaces trimmed."""
    header = [name for name, _ in table.columns]
    rows = [[cell_text(cell) for cell in row] for row in table.rows]
    column_widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    out = []
    for row in [header, *rows]:
        cells = [
            value.rjust(column_widths[i])
            if table.columns[i][1] == "right"
            else value.ljust(column_widths[i])
            for i, value in enumerate(row)
        ]
        out.append(("  " + "  ".join(cells)).rstrip())
    return out


# -- rich ----------------------------------------------------------------------------------------


def _draw_rich(blocks: list[Block], *, color: bool, width: int | None) -> str:
    """Blocks as ``rich`` output captured to a string; ``width`` None lets rich pick it."""
    from rich.console import Console
    from rich.text import Text

    buffer = io.StringIO()
    console = Console(
        file=buffer,
        force_terminal=True,
        no_color=not color,
        color_system="standard" if color else None,
        highlight=False,
        width=width,
    )
    for position, block in enumerate(blocks):
        if isinstance(block, Heading):
            if position:
                console.print()
            console.print(Text(block.text, style=_RICH_STYLES.get(block.style, "bold")))
        elif isinstance(block, Fields):
            _print_rich_fields(console, block)
        elif isinstance(block, Table):
            console.print(_rich_table(block, color=color))
        else:
            console.print(Text("  " + block.text, style=_RICH_STYLES.get(block.style, "")))
    return buffer.getvalue()


def _print_rich_fields(console: Console, fields: Fields) -> None:
    """Key/value rows as a borderless grid, keys dimmed."""
    from rich.table import Table as RichTable
    from rich.text import Text

    grid = RichTable.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    for key, value in fields.rows:
        grid.add_row(Text("  " + key), _styled(value))
    console.print(grid)


def _rich_table(table: Table, *, color: bool) -> RichTable:
    """A block table as a rich table with a simple header rule and no outer edge."""
    from rich import box
    from rich.table import Table as RichTable

    drawn = RichTable(
        box=box.SIMPLE_HEAD,
        title=table.title,
        title_justify="left",
        title_style="bold" if color else "",
        show_edge=False,
        pad_edge=True,
    )
    for name, align in table.columns:
        drawn.add_column(name, justify="right" if align == "right" else "left")
    for row in table.rows:
        drawn.add_row(*(_styled(cell) for cell in row))
    return drawn


def _styled(cell: Cell) -> Text:
    """A cell as rich text in its style."""
    from rich.text import Text

    if isinstance(cell, str):
        return Text(cell)
    return Text(cell[0], style=_RICH_STYLES.get(cell[1], ""))
