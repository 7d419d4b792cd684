"""Validation never crashes whatever the shape of a workflow, and never grows out of proportion.

(a) Any JSON shape where the IR expects nodes, edges, inputs, outputs, batch or params, and any
markdown assembled from a workflow's pieces, ends in a valid workflow or our own error: never a
traceback. (b) Files shaped to be slow (long runs of spaces, aliases, blank lines, many steps,
many or deep templates, long headings) cost time and memory in proportion to their size: four
times the input may cost at most ten times as much (quadratic growth would be sixteen). The
figures are ratios of the same shape at two sizes, never absolute times, so a busy machine
slows both sides alike.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from generators import HOSTILE_TEXT, JSON_VALUES, NAMES
from hypothesis import given
from hypothesis import strategies as st

from pflow_trace.errors import PflowTraceError
from pflow_trace.ir.loading import load_and_validate
from pflow_trace.ir.validation import validate_workflow

# --- (a) any shape ------------------------------------------------------------------------------

TEMPLATES = st.sampled_from(
    ["${a.v}", "${item}", "${s.stdot}", "${b.reslts}", "${x ?? 1}", "${a[${b}]}", "${", "$${a}"]
)
ANY_VALUE = st.one_of(JSON_VALUES, TEMPLATES, HOSTILE_TEXT)
IDS = st.one_of(st.sampled_from(["a", "b", "s", "item"]), NAMES, ANY_VALUE)


@st.composite
def any_node(draw: st.DrawFn) -> Any:
    node: dict[str, Any] = {
        "id": draw(IDS),
        "type": draw(st.one_of(st.sampled_from(["echo", "shell", "code", "ech"]), ANY_VALUE)),
    }
    optional = {
        "params": st.one_of(st.dictionaries(st.text(max_size=6), ANY_VALUE, max_size=4), ANY_VALUE),
        "batch": st.one_of(
            st.fixed_dictionaries(
                {"items": st.one_of(TEMPLATES, ANY_VALUE)},
                optional={"as": IDS, "parallel": ANY_VALUE, "executor": ANY_VALUE},
            ),
            ANY_VALUE,
        ),
        "purpose": ANY_VALUE,
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            node[key] = draw(strategy)
    return draw(st.one_of(st.just(node), ANY_VALUE)) if draw(st.booleans()) else node


EDGES = st.one_of(
    st.lists(
        st.one_of(
            st.fixed_dictionaries({"from": IDS, "to": IDS}, optional={"action": ANY_VALUE}),
            ANY_VALUE,
        ),
        max_size=5,
    ),
    ANY_VALUE,
)


@st.composite
def any_workflow(draw: st.DrawFn) -> Any:
    workflow: dict[str, Any] = {
        "ir_version": draw(st.one_of(st.just("0.1.0"), ANY_VALUE)),
        "nodes": draw(st.one_of(st.lists(any_node(), max_size=5), ANY_VALUE)),
    }
    optional = {
        "edges": EDGES,
        "inputs": st.one_of(st.dictionaries(IDS.filter(lambda v: isinstance(v, str)), ANY_VALUE)),
        "outputs": st.one_of(st.dictionaries(st.text(max_size=6), ANY_VALUE), ANY_VALUE),
        "start_node": ANY_VALUE,
        "enable_namespacing": ANY_VALUE,
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            workflow[key] = draw(strategy)
    return draw(st.one_of(st.just(workflow), ANY_VALUE)) if draw(st.booleans()) else workflow


@given(workflow=any_workflow())
def test_validate_ends_in_a_workflow_or_our_error_whatever_the_shape(workflow: Any) -> None:
    try:
        validated = validate_workflow(workflow, "wf.json")
    except PflowTraceError as exc:
        assert exc.problems if hasattr(exc, "problems") else str(exc)
        return
    assert isinstance(validated, dict) and isinstance(validated["nodes"], list)


MARKDOWN_PIECES = st.sampled_from(
    [
        "# Title",
        "\ufeff# Title",
        "## Inputs",
        "## Steps",
        "## Outputs",
        "## Other",
        "### a",
        "### s",
        "### end",
        "#### deeper",
        "- type: echo",
        "- type: shell",
        "- type: code",
        "- type:",
        "- command: ls ${a.v}",
        "- v: ${s.stdot}",
        "- next: a, end",
        "- next: nowhere",
        "- on-error: s",
        "- source: ${a.v}",
        "- a: &x 1",
        "- b: *x",
        "- v: [[[",
        "- v: |",
        "    continued",
        "",
        "-",
        "```python code",
        'next = "a"',
        "```yaml batch",
        "items: [1, 2]",
        "```",
        "~~~",
        "prose ${x}",
        "- code: ./missing.py",
        "- code: ../",
    ]
)


@given(lines=st.lists(st.one_of(MARKDOWN_PIECES, HOSTILE_TEXT), max_size=30))
def test_any_markdown_of_workflow_pieces_ends_in_a_workflow_or_our_error(
    lines: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("md") / "wf.pflow.md"
    path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    try:
        load_and_validate(path)
    except PflowTraceError as exc:
        assert all("\n" not in problem for problem in getattr(exc, "problems", []))


# --- (b) files shaped to be slow --------------------------------------------------------------

STEPS = "# Slow\n\n## Steps\n\n"


def step(index: int, extra: str = "") -> str:
    return f"### s{index}\n\n- type: echo\n- v: {index}\n{extra}\n"


#: Each shape at size ``n``: its markdown or JSON text. Sizes are picked so that 1x runs in
#: tens of milliseconds.
SHAPES: dict[str, tuple[Callable[[int], str], str, int]] = {
    "spaces in a heading": (
        lambda n: "# T" + " " * n + "x\n\n## Steps\n\n" + step(0),
        "pflow.md",
        20_000,
    ),
    "spaces in an item": (lambda n: STEPS + step(0, "- w:" + " " * n + "x\n"), "pflow.md", 20_000),
    "aliases": (
        lambda n: STEPS + step(0, "\n```yaml w\na: &a [1]\n" + "b: *a\n" * n + "```\n"),
        "pflow.md",
        2_000,
    ),
    "blank lines in an item": (
        lambda n: STEPS + step(0, "- w: |\n    a\n" + "\n" * n + "    b\n"),
        "pflow.md",
        5_000,
    ),
    "templates in one value": (
        lambda n: (
            STEPS
            + step(0)
            + step(1, '- w: "' + " ".join(f"${{s0.v}}{i}" for i in range(n)) + '"\n')
        ),
        "pflow.md",
        500,
    ),
    "steps routed by next": (
        lambda n: STEPS + "".join(step(i, f"- next: s{i + 1}\n") for i in range(n)) + step(n),
        "pflow.md",
        20,
    ),
    "a long code block": (
        lambda n: STEPS + "### c\n\n- type: code\n\n```python code\n" + "x = 1\n" * n + "```\n",
        "pflow.md",
        5_000,
    ),
    "deep templates": (
        lambda n: STEPS + step(0) + step(1, "- w: " + "${s0.v[" * n + "0" + "]}" * n + "\n"),
        "pflow.md",
        2_000,
    ),
    "JSON nodes misspelling names": (
        lambda n: json.dumps(
            {
                "ir_version": "0.1.0",
                "nodes": [
                    {"id": f"n{i}", "type": "echo", "params": {"v": f"${{fecth{i}.v}}"}}
                    for i in range(n)
                ],
            }
        ),
        "json",
        150,
    ),
    "JSON nodes with edges": (
        lambda n: json.dumps(
            {
                "ir_version": "0.1.0",
                "nodes": [
                    {"id": f"n{i}", "type": "echo", "params": {"v": f"${{n{max(i - 1, 0)}.v}}"}}
                    for i in range(n)
                ],
                "edges": [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(n - 1)],
            }
        ),
        "json",
        20,
    ),
}


def validate_file(path: Path) -> None:
    try:
        load_and_validate(path)
    except PflowTraceError:
        pass


def cpu_seconds(path: Path, repeats: int = 3) -> float:
    """The least CPU time of a few validations (the least is the one least disturbed)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        validate_file(path)
        best = min(best, time.process_time() - start)
    return best


def peak_bytes(path: Path) -> int:
    tracemalloc.start()
    try:
        validate_file(path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def written(folder: Path, shape: str, size: int) -> Path:
    build, suffix, _ = SHAPES[shape]
    path = folder / f"{shape.replace(' ', '-')}-{size}.{suffix}"
    path.write_text(build(size), encoding="utf-8")
    return path


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_slow_shape_costs_time_in_proportion_to_its_size(shape: str, tmp_path: Path) -> None:
    size = SHAPES[shape][2]
    small, large = written(tmp_path, shape, size), written(tmp_path, shape, 4 * size)
    validate_file(small)  # warm the caches (schema, registry) before measuring
    ratio = cpu_seconds(large) / max(cpu_seconds(small), 1e-3)
    assert ratio < 10, f"{shape}: 4x the input took {ratio:.1f}x the time"


@pytest.mark.parametrize("shape", ["JSON nodes with edges", "steps routed by next", "aliases"])
def test_a_slow_shape_costs_memory_in_proportion_to_its_size(shape: str, tmp_path: Path) -> None:
    size = SHAPES[shape][2] * 10
    small, large = written(tmp_path, shape, size), written(tmp_path, shape, 4 * size)
    validate_file(small)
    ratio = peak_bytes(large) / peak_bytes(small)
    assert ratio < 10, f"{shape}: 4x the input took {ratio:.1f}x the memory"


def test_a_billion_laughs_is_refused_before_it_grows(tmp_path: Path) -> None:
    levels = [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 12)]
    block = "l0: &l0 [lol, lol]\n" + "\n".join(levels)
    path = tmp_path / "laughs.pflow.md"
    path.write_text(STEPS + step(0, f"\n```yaml w\n{block}\n```\n"))
    with pytest.raises(PflowTraceError) as info:
        load_and_validate(path)
    assert "YAML aliases (*l0) are not supported" in str(info.value.problems)
    assert peak_bytes(path) < 10 * 1024 * 1024
