"""``.pflow.md`` workflows: markdown read into blocks, then into pflow's IR (and so ours).

The format is pflow's (pflow-cli 0.16): an H1 title and prose, then ``## Inputs``, ``## Steps``
and ``## Outputs``, each holding ``### name`` entities. An entity has prose (its description),
``- key: value`` items whose values are YAML (indented lines continue an item), and fenced code
blocks tagged ``<lang> <param>`` (```` ```shell command ````, ```` ```yaml batch ````) or just
``prompt``. Steps run top to bottom unless ``- next:`` / ``- on-error:`` route them.

Every problem names the markdown line it is on, and all problems found are reported together.
The blocks are read here; :mod:`pflow_trace.ir.markdown_entities` turns them into the IR.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: A heading line's hashes and the rest of it; the title is trimmed in :func:`_heading_match`
#: (a regex trimming it too backtracks without end on a long run of spaces).
_HEADING = re.compile(r"^(#{1,6})\s(.*)$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*(.*)$")
SECTIONS = ("inputs", "steps", "outputs", "cache")
#: A byte-order mark some editors put at the start of a UTF-8 file; it is not part of the text.
BOM = "\ufeff"


class MarkdownProblems(Exception):
    """Collected while reading; raised once as a :class:`WorkflowValidationError`."""


@dataclass
class Item:
    """One ``- key: value`` item: its first line and its text with continuation lines."""

    line: int
    text: str


@dataclass
class Fence:
    """One fenced code block: where it starts, its tag and its content."""

    line: int
    info: str
    content: str


@dataclass
class Entity:
    """A ``### name`` heading and what follows it up to the next heading."""

    name: str
    line: int
    section: str
    prose: list[str] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    fences: list[Fence] = field(default_factory=list)


@dataclass
class Document:
    """The markdown's blocks: title, description prose and entities, with their lines."""

    title: str | None = None
    prose: list[str] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)
    section_lines: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    #: The ``## Cache`` section's ``- key: value`` items and ``cache`` fence (no entities).
    cache_items: list[Item] = field(default_factory=list)
    cache_fences: list[Fence] = field(default_factory=list)

    def problem(self, line: int, message: str) -> None:
        self.problems.append(f"line {line}: {message}")


@dataclass
class ParsedMarkdown:
    """The IR read from a ``.pflow.md`` file and the line each part of it came from."""

    workflow: dict[str, Any]
    #: JSON-path prefix (``nodes[2]``, ``nodes[2].params.command``, ``inputs.limit``) → line.
    lines: dict[str, int]
    #: What was wrong with the markdown itself (``line N: ...``), top to bottom.
    problems: list[str] = field(default_factory=list)

    def locate(self, problem: str) -> str:
        """Prefix a validation problem (``nodes[2].type: ...``) with its markdown line."""
        path = problem.split(":", 1)[0].strip()
        # The longest known prefix ending at a '.' or '[': one lookup per part of the path,
        # so locating every problem of a big workflow stays linear.
        ends = [index for index, char in enumerate(path) if char in ".["] + [len(path)]
        line = next(
            (self.lines[path[:end]] for end in reversed(ends) if path[:end] in self.lines), 1
        )
        return f"line {line}: {problem}"


def is_markdown(path: Path, text: str) -> bool:
    """By extension (``.md``), else by content: a markdown heading where JSON would start."""
    if path.suffix.lower() in (".md", ".markdown"):
        return True
    stripped = text.lstrip()
    return stripped.startswith("#")


def _read_fence(lines: list[str], start: int, marker: str, doc: Document) -> tuple[int, str]:
    """The content of the fence opened at ``start`` (0-based) and the index after it."""
    char, size = marker[0], len(marker)
    body: list[str] = []
    index = start + 1
    while index < len(lines):
        stripped = lines[index].strip()
        if stripped and set(stripped) == {char} and len(stripped) >= size:
            return index + 1, "\n".join(body)
        body.append(lines[index])
        index += 1
    doc.problem(start + 1, f"code block opened with {marker} is never closed")
    return index, "\n".join(body)


def _heading_match(line: str) -> tuple[int, str] | None:
    """A heading's level and title (closing ``#``s and spaces trimmed), or None."""
    match = _HEADING.match(line)
    if match is None:
        return None
    return len(match.group(1)), match.group(2).strip().rstrip("#").rstrip()


def _read_item(lines: list[str], start: int) -> tuple[int, Item]:
    """A ``- key: value`` item and its indented continuation lines (blank lines inside kept).

    A run of blank lines is looked past once, so reading stays linear however long it is.
    """
    text = [lines[start][2:]]
    index = start + 1
    while index < len(lines):
        line = lines[index]
        if line[:1] in (" ", "\t") and line.strip():
            text.append(line)
        elif not line.strip():
            following = index + 1
            while following < len(lines) and not lines[following].strip():
                following += 1
            after = lines[following] if following < len(lines) else ""
            if after[:1] not in (" ", "\t") or _FENCE.match(after):
                break
            text.extend([""] * (following - index))
            index = following
            continue
        else:
            break
        index += 1
    return index, Item(start + 1, "\n".join(text))


def _heading(doc: Document, level: int, title: str, number: int, state: dict[str, Any]) -> None:
    """Track where we are: the H1, a ``##`` section, or a new ``###`` entity."""
    if level == 1:
        if doc.title is not None or state["section"]:
            doc.problem(number, "a second '# title' (a workflow has one H1, at the top)")
        doc.title = title
        state["entity"] = None
    elif level == 2:
        name = title.strip().lower()
        if name not in SECTIONS:
            doc.problem(
                number, f"unknown section '## {title}' (expected Inputs, Steps, Outputs, Cache)"
            )
        elif name in doc.section_lines:
            doc.problem(number, f"a second '## {title}' section")
        doc.section_lines.setdefault(name, number)
        state["section"], state["entity"] = name, None
    elif level == 3:
        if not state["section"]:
            doc.problem(number, f"'### {title}' is outside ## Inputs, ## Steps or ## Outputs")
        entity = Entity(title.strip(), number, state["section"] or "")
        doc.entities.append(entity)
        state["entity"] = entity
    else:
        # Deeper headings read as part of the entity's prose (pflow's sub-headings).
        _prose(doc, state, "#" * level + " " + title)


def _prose(doc: Document, state: dict[str, Any], text: str) -> None:
    entity: Entity | None = state["entity"]
    if entity is not None:
        entity.prose.append(text)
    elif not state["section"]:
        doc.prose.append(text)


def read_document(text: str) -> Document:
    """Split markdown into title, prose and entities, noting each problem with its line."""
    doc = Document()
    lines = text.splitlines()
    state: dict[str, Any] = {"section": None, "entity": None}
    index = 0
    while index < len(lines):
        line, number = lines[index], index + 1
        fence = _FENCE.match(line)
        if fence:
            end, content = _read_fence(lines, index, fence.group(1), doc)
            entity: Entity | None = state["entity"]
            if entity is not None:
                entity.fences.append(Fence(number, fence.group(2).strip(), content))
            elif state["section"] == "cache":
                doc.cache_fences.append(Fence(number, fence.group(2).strip(), content))
            elif state["section"]:
                doc.problem(number, "a code block outside a ### entity")
            index = end
            continue
        heading = _heading_match(line)
        if heading:
            _heading(doc, heading[0], heading[1], number, state)
        elif line.startswith("- ") or line.rstrip() == "-":
            index, item = _read_item(lines, index)
            if state["entity"] is not None:
                state["entity"].items.append(item)
            elif state["section"] == "cache":
                doc.cache_items.append(item)
            else:
                doc.problem(number, f"'{line.strip()}' is outside a ### entity")
            continue
        elif line.strip():
            _prose(doc, state, line.strip())
        elif state["entity"] is not None:
            state["entity"].prose.append("")
        index += 1
    return doc


def description(prose: list[str]) -> str:
    """Prose lines as text: lines of a paragraph joined by spaces, paragraphs by a blank line."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in [*prose, ""]:
        if line:
            current.append(line)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    return "\n\n".join(paragraphs)


def line_number(problem: str) -> int:
    """The N of a ``line N: ...`` problem, so problems can be listed top to bottom."""
    head = problem.split(":", 1)[0]
    return int(head[5:]) if head.startswith("line ") and head[5:].isdigit() else 0
