"""``.pflow.md`` entities into pflow's IR: inputs, steps (nodes and routing) and outputs.

Item values are YAML, parsed with PyYAML after every ``${...}`` is swapped for a placeholder
(a template's braces would otherwise read as a YAML flow mapping) and swapped back afterwards.
Routing follows pflow: steps run in document order unless ``- next:`` / ``- on-error:`` say
otherwise, and every step gets explicit edges (see :mod:`pflow_trace.ir.markdown_routing`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError

from pflow_trace.ir.file_refs import FILE_REFS_KEY, file_ref
from pflow_trace.ir.markdown import Document, Entity, Fence, Item, ParsedMarkdown, description
from pflow_trace.ir.prompt_cache import cache_block
from pflow_trace.ir.reading import read_at_most
from pflow_trace.ir.templates import _template_end
from pflow_trace.text import one_line

#: Node fields that sit beside ``params`` in the IR; every other item is a param.
NODE_FIELDS = ("type", "batch", "retry", "loop", "cache", "prompt_cache", "prewarm", "approval")
ROUTING = ("next", "on-error")
INPUT_FIELDS = ("type", "required", "default", "stdin", "description")
OUTPUT_FIELDS = ("source", "type", "stdout", "description")
#: Params that, like pflow, may name a file next to the workflow instead of holding the text
#: (``system`` is ours: pflow 0.16 reads ``command``, ``code``, ``prompt`` and ``stdin``).
FILE_PARAMS = ("command", "code", "prompt", "stdin", "system")
#: A value with a slash and one of these endings names a file, as in pflow.
FILE_SUFFIXES = (".md", ".txt", ".py", ".sh", ".yaml", ".yml", ".json")
#: As for the workflow file itself: a param file is read up to this size, never further.
MAX_FILE_PARAM_BYTES = 16 * 1024 * 1024
#: Tags that are a language, so a block tagged with one alone is missing its param name.
LANGUAGES = ("python", "py", "shell", "sh", "bash", "yaml", "yml", "json", "text", "markdown")
#: How much of a line a problem quotes.
QUOTE_CHARS = 80
END = "end"
ERROR_ACTION = "error"
_PLACEHOLDER = "__pflow_template_{}__"
_PLACEHOLDERS = re.compile(r"__pflow_template_(\d+)__")
#: A code block is searched for literal ``next`` targets only when it has text that could
#: assign ``next``, and only up to this size: Python's parser takes hundreds of bytes of memory
#: per byte of code. Bigger blocks list their targets with ``- next: a, b``.
MAX_ROUTING_PARSE_CHARS = 256 * 1024
_ASSIGNS_NEXT = re.compile(r"\bnext\s*[:=]")


def _protect(text: str) -> tuple[str, list[str]]:
    """Swap each ``${...}`` (nested ones included) for a YAML-safe placeholder."""
    templates: list[str] = []
    out: list[str] = []
    position = 0
    while True:
        start = text.find("${", position)
        end = _template_end(text, start + 1) if start >= 0 else -1
        if start < 0 or end < 0:
            out.append(text[position:])
            return "".join(out), templates
        out.append(text[position:start] + _PLACEHOLDER.format(len(templates)))
        templates.append(text[start:end])
        position = end


def _restore(value: Any, templates: list[str]) -> Any:
    if isinstance(value, str):
        if not templates or "__pflow_template_" not in value:
            return value
        return _PLACEHOLDERS.sub(lambda match: _template_text(match, templates), value)
    if isinstance(value, dict):
        return {_restore(k, templates): _restore(v, templates) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(item, templates) for item in value]
    return value


def _template_text(match: re.Match[str], templates: list[str]) -> str:
    index = int(match.group(1))
    return templates[index] if index < len(templates) else match.group(0)


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases (``*name``).

    An alias shares a value, and every later walk copies it: nested aliases ("billion laughs")
    grow without end, and an alias inside its own anchor loops forever. Workflows never need one.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.get_event()
            raise ComposerError(
                None,
                None,
                f"YAML aliases (*{event.anchor}) are not supported in workflows; "
                "write the value out",
                event.start_mark,
            )
        return super().compose_node(parent, index)


def _parse_yaml(text: str) -> Any:
    """libyaml's parser where it is installed and no alias can occur (an alias needs a ``*``);
    otherwise, and to word a problem, PyYAML's own parser refusing aliases."""
    if yaml.__with_libyaml__ and "*" not in text:
        try:
            return yaml.load(text, Loader=yaml.CSafeLoader)
        except yaml.YAMLError:
            pass  # parsed again below, so the problem reads the same with or without libyaml
    return yaml.load(text, Loader=_NoAliasLoader)


def load_yaml(text: str) -> Any:
    """YAML with templates kept verbatim; raises ``ValueError`` with the parser's reason."""
    protected, templates = _protect(text)
    try:
        return _restore(_parse_yaml(protected), templates)
    except yaml.YAMLError as exc:
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(reason) from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ValueError("nested too deeply") from None


def _first_line(text: str) -> str:
    """An item's first line as a problem quotes it: cut short, so a huge line stays readable."""
    return one_line(text.split("\n", 1)[0], QUOTE_CHARS)


#: A one-line ``key: value`` item, read as pflow-cli 0.16 reads it (not as a YAML mapping).
_ONE_LINE_ITEM = re.compile(r"^(\S+?):(?:\s+(.*))?$")
_YAML_TRUE = frozenset({"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"})
_YAML_FALSE = frozenset({"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"})
_YAML_NULL = frozenset({"null", "Null", "NULL", "~"})
_INTEGER = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?(\d+\.\d*|\.\d+)([eE][+-]?\d+)?$")
_DOUBLE_QUOTED_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r", "0": "\0"}


def one_line_value(text: str) -> Any:
    """A one-line item's value as pflow reads it: the text itself, except quoted text, a
    ``{...}``/``[...]`` value (YAML flow style), null, YAML 1.1 booleans and plain numbers.
    So ``- prompt: Rate this: ${x}`` is the text after the key, colons and ``#`` included."""
    value = text.strip()
    if not value or value in _YAML_NULL:
        return None
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(
            r"\\(.)", lambda m: _DOUBLE_QUOTED_ESCAPES.get(m.group(1), m.group(0)), value[1:-1]
        )
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    if value[0] in "\"'":
        raise ValueError("the quoted text is never closed")
    if value[0] in "{[":
        return load_yaml(value)
    if value in _YAML_TRUE or value in _YAML_FALSE:
        return value in _YAML_TRUE
    if _INTEGER.match(value):
        return int(value)
    if _DECIMAL.match(value):
        return float(value)
    return value


def _item_value(text: str) -> Any:
    """``{key: value}`` for an item: one line read as pflow reads it, more lines as YAML."""
    one_line = _ONE_LINE_ITEM.match(text) if "\n" not in text.strip() else None
    if one_line is None:
        return load_yaml(text)
    return {one_line.group(1): one_line_value(one_line.group(2) or "")}


def _item_pair(doc: Document, item: Item) -> tuple[str, Any] | None:
    try:
        value = _item_value(item.text)
    except ValueError as exc:
        doc.problem(item.line, f"'- {_first_line(item.text)}' is not valid YAML: {exc}")
        return None
    if not isinstance(value, dict) or len(value) != 1:
        doc.problem(item.line, f"expected '- key: value', got '- {_first_line(item.text)}'")
        return None
    key, data = next(iter(value.items()))
    return str(key), data


def _fence_param(doc: Document, fence: Fence) -> tuple[str, Any] | None:
    """``python code`` → ("code", text); ``yaml batch`` → ("batch", parsed); ``prompt``.

    Only YAML blocks are parsed; a ``json body`` block is the body's text, as in pflow.
    """
    words = fence.info.split()
    if not words:
        doc.problem(fence.line, "code block has no tag (e.g. ```shell command```)")
        return None
    if len(words) == 1 and words[0].lower() in LANGUAGES:
        doc.problem(fence.line, f"code block '{words[0]}' names no param (e.g. ```python code```)")
        return None
    language, param = (words[0].lower(), words[1]) if len(words) > 1 else ("text", words[0])
    if language in ("yaml", "yml"):  # as in pflow, other blocks (json too) are text
        try:
            return param, load_yaml(fence.content)
        except ValueError as exc:
            doc.problem(fence.line, f"```{fence.info}``` is not valid {language}: {exc}")
            return None
    return param, fence.content


def entity_fields(doc: Document, entity: Entity) -> tuple[dict[str, Any], dict[str, int]]:
    """Every ``- key: value`` and code-block param of an entity, with the line of each."""
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    sources = [(item.line, _item_pair(doc, item)) for item in entity.items]
    sources += [(fence.line, _fence_param(doc, fence)) for fence in entity.fences]
    for line, pair in sources:
        if pair is None:
            continue
        key, value = pair
        if key in values:
            doc.problem(
                line, f"'{key}' is given twice in '### {entity.name}' (first on line {lines[key]})"
            )
            continue
        values[key], lines[key] = value, line
    return values, lines


def _input_spec(doc: Document, entity: Entity, lines: dict[str, int]) -> dict[str, Any]:
    fields, field_lines = entity_fields(doc, entity)
    for key in fields:
        if key not in INPUT_FIELDS:
            doc.problem(
                field_lines[key],
                f"input '{entity.name}' has no field '{key}' (fields: {', '.join(INPUT_FIELDS)})",
            )
    spec = {key: value for key, value in fields.items() if key in INPUT_FIELDS}
    if "description" not in spec and entity.prose:
        spec = {"description": description(entity.prose), **spec}
    lines[f"inputs.{entity.name}"] = entity.line
    for key, line in field_lines.items():
        lines[f"inputs.{entity.name}.{key}"] = line
    return spec


def _output_spec(doc: Document, entity: Entity, lines: dict[str, int]) -> dict[str, Any]:
    fields, field_lines = entity_fields(doc, entity)
    for key in fields:
        if key not in OUTPUT_FIELDS:
            doc.problem(
                field_lines[key],
                f"output '{entity.name}' has no field '{key}' (fields: {', '.join(OUTPUT_FIELDS)})",
            )
    if "source" not in fields:
        doc.problem(entity.line, f"output '{entity.name}' has no '- source: ${{node.key}}'")
    spec = {key: value for key, value in fields.items() if key in OUTPUT_FIELDS}
    if "description" not in spec and entity.prose:
        spec = {"description": description(entity.prose), **spec}
    lines[f"outputs.{entity.name}"] = field_lines.get("source", entity.line)
    return spec


def is_file_reference(value: Any) -> bool:
    """Whether a param's value names a file, by pflow's rule: one word (no blank, template or
    URL) that starts with ``./`` or ``../``, or has a slash and a known ending (``.sh``)."""
    if not isinstance(value, str) or not value or any(c in value for c in " \n\t"):
        return False
    if "${" in value or "://" in value:
        return False
    if value.startswith(("./", "../")):
        return True
    return "/" in value and value.lower().endswith(FILE_SUFFIXES)


def read_file_param(value: Any, base: Path) -> tuple[Any, str | None, bytes | None]:
    """``- command: ./scripts/run.sh``: (the file's text, byte for byte (a trailing newline
    kept), read relative to the workflow file, as pflow reads it; or the value and why not;
    and the bytes read, for the node's record of the file).

    A file that is missing, cannot be read as UTF-8 text or is bigger than a workflow may be is
    a problem; a value that does not name a file is kept as it is.
    """
    if not is_file_reference(value):
        return value, None, None
    candidate = base / value
    try:
        if not candidate.is_file():
            raise ValueError("no such file")
        data = read_at_most(candidate, MAX_FILE_PARAM_BYTES + 1)
        if len(data) > MAX_FILE_PARAM_BYTES:
            raise ValueError(f"larger than {MAX_FILE_PARAM_BYTES // (1024 * 1024)} MB")
        return data.decode("utf-8"), None, data
    except UnicodeDecodeError:
        return value, f"{value} is not UTF-8 text", None
    except (OSError, ValueError) as exc:
        return value, f"cannot read {value}: {getattr(exc, 'strerror', None) or exc}", None


def read_file_params(workflow: Any, base: Path) -> list[str]:
    """Every file a JSON workflow's node params name, read in place (pflow reads them for its
    IR too) and recorded on its node (:mod:`pflow_trace.ir.file_refs`); one problem per file
    that cannot be read, named by its JSON path."""
    problems: list[str] = []
    nodes = workflow.get("nodes") if isinstance(workflow, dict) else None
    for index, node in enumerate(nodes if isinstance(nodes, list) else []):
        params = node.get("params") if isinstance(node, dict) else None
        if not isinstance(params, dict):
            continue
        node.pop(FILE_REFS_KEY, None)
        refs = []
        for key in FILE_PARAMS:
            if key in params:
                written = params[key]
                params[key], problem, data = read_file_param(written, base)
                if problem:
                    problems.append(f"nodes[{index}].params.{key}: {problem}")
                if data is not None:
                    refs.append(file_ref(key, written, data))
        if refs:
            node[FILE_REFS_KEY] = refs
    return problems


def _file_param(
    doc: Document, line: int, key: str, value: Any, base: Path, refs: list[dict[str, Any]]
) -> Any:
    text, problem, data = read_file_param(value, base)
    if problem:
        doc.problem(line, problem)
    if data is not None:
        refs.append(file_ref(key, value, data))
    return text


def _node(
    doc: Document, entity: Entity, index: int, base: Path, lines: dict[str, int]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One step as an IR node, and its routing items (``next``, ``on-error``)."""
    fields, field_lines = entity_fields(doc, entity)
    node: dict[str, Any] = {"id": entity.name, "type": fields.pop("type", None)}
    if node["type"] is None:
        doc.problem(entity.line, f"step '{entity.name}' has no '- type:'")
    if entity.prose:
        node["purpose"] = description(entity.prose)
    routing = {key: fields.pop(key) for key in ROUTING if key in fields}
    routing["_lines"] = {key: field_lines[key] for key in ROUTING if key in field_lines}
    params = {key: value for key, value in fields.items() if key not in NODE_FIELDS}
    refs: list[dict[str, Any]] = []
    node["params"] = {
        key: _file_param(doc, field_lines[key], key, v, base, refs) if key in FILE_PARAMS else v
        for key, v in params.items()
    }
    node.update({key: value for key, value in fields.items() if key in NODE_FIELDS})
    if refs:
        node[FILE_REFS_KEY] = refs
    prefix = f"nodes[{index}]"
    lines[prefix] = entity.line
    for key, line in field_lines.items():
        where = f"{prefix}.params.{key}" if key in params else f"{prefix}.{key}"
        lines[where] = line
    if node["type"] == "code" and isinstance(node["params"].get("code"), str):
        routing["_literal"] = literal_next_targets(node["params"]["code"])
    return node, routing


def literal_next_targets(code: str) -> list[str]:
    """The string literals a code node assigns to ``next``, in source order.

    Code with no text that could assign ``next``, or longer than
    :data:`MAX_ROUTING_PARSE_CHARS`, is not parsed (see there).
    """
    if len(code) > MAX_ROUTING_PARSE_CHARS or not _ASSIGNS_NEXT.search(code):
        return []
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    found: list[tuple[int, int, str]] = []
    for statement in ast.walk(tree):
        value = None
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            value = statement.value if statement.target.id == "next" else None
        elif isinstance(statement, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "next" for target in statement.targets
        ):
            value = statement.value
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            found.append((value.lineno, value.col_offset, value.value))
    targets: list[str] = []
    for _, _, target in sorted(found):
        if target not in targets:
            targets.append(target)
    return targets


_KINDS = {"inputs": "input", "steps": "step", "outputs": "output"}


def _require_description(doc: Document, entity: Entity) -> None:
    """pflow rejects an input, step or output with no prose under its heading: the prose is
    what a reader (and pflow's tooling) learns the entity's purpose from."""
    if any(line.strip() for line in entity.prose) or any(
        item.text.startswith("description:") for item in entity.items
    ):
        return
    doc.problem(
        entity.line,
        f"{_KINDS[entity.section]} '{entity.name}' has no description: "
        "write a sentence under its heading",
    )


def build_workflow(doc: Document, name: str, base: Path) -> ParsedMarkdown:
    """pflow's IR for the document (with ``ir_version``), plus the line of every part."""
    from pflow_trace.ir.markdown_routing import route_edges

    lines: dict[str, int] = {}
    workflow: dict[str, Any] = {"ir_version": "0.1.0", "name": name}
    if doc.title is None:
        doc.problem(1, "no '# title' line")
    text = description(doc.prose)
    if text:
        workflow["description"] = text
    by_section: dict[str, list[Entity]] = {
        section: [] for section in ("inputs", "steps", "outputs")
    }
    for entity in doc.entities:
        if entity.section == "cache":
            doc.problem(entity.line, f"'### {entity.name}': ## Cache holds items and a cache block")
        if entity.section in by_section:
            by_section[entity.section].append(entity)
            _require_description(doc, entity)
    if by_section["inputs"]:
        workflow["inputs"] = {e.name: _input_spec(doc, e, lines) for e in by_section["inputs"]}
    steps = [_node(doc, e, i, base, lines) for i, e in enumerate(by_section["steps"])]
    if not steps:
        doc.problem(
            doc.section_lines.get("steps", 1),
            "a workflow needs '## Steps' with at least one '### step'",
        )
    workflow["nodes"] = [node for node, _ in steps]
    edges = route_edges(
        doc,
        [(e, routing) for e, (_, routing) in zip(by_section["steps"], steps, strict=True)],
        lines,
    )
    if edges:
        workflow["edges"] = edges
    if by_section["outputs"]:
        workflow["outputs"] = {e.name: _output_spec(doc, e, lines) for e in by_section["outputs"]}
    for fence in doc.cache_fences:
        if fence.info != "cache":
            doc.problem(fence.line, f"a '{fence.info}' block in ## Cache (its block is 'cache')")
    cache = cache_block(
        [tuple(part.strip() for part in item.text.partition(":")[::2]) for item in doc.cache_items],
        [fence.content for fence in doc.cache_fences if fence.info == "cache"],
    )
    if cache is not None:
        workflow["cache"] = cache
        lines["cache"] = doc.section_lines.get("cache", 1)
    return ParsedMarkdown(workflow, lines)
