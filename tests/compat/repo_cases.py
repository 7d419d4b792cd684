"""pflow's own workflows (from its public repository), and how each is run offline.

``repo_workflows/`` holds the workflow files as pflow's repository has them (see its README for
the source commit of each). A case here names one of them, the inputs it is run with and the
files its working directory starts with. Before a run, both pflow-cli and pflow-trace get the
same *offline copy* of the workflow's folder, made by :func:`offline_copy`:

- a URL of a public API the workflow calls is replaced by the local server of
  ``compat_server.py`` (which serves the same paths: ``/users``, ...);
- every ``llm`` step is given the model ``gpt-4o-mini`` (in place of its own, or of the
  default each tool would choose, which differ: pflow picks by the API keys it finds, the
  ``llm`` library has its own default), which both tools reach through
  ``OPENAI_BASE_URL`` at that same local server: its answer is the prompt it got, as JSON;
- a scratch path under ``/tmp`` (or macOS's ``/private/tmp``) is moved into the run's working
  directory, so runs neither share nor leave files outside it.

Nothing else in the workflow changes. Workflows that cannot run offline are listed, with the
reason, in ``repo_workflows/README.md`` instead.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compat_cases import GOLDENS

HERE = Path(__file__).parent
REPO_WORKFLOWS = HERE / "repo_workflows"
REPO_GOLDENS = GOLDENS / "repo"
#: The model every llm step is given offline, and the key both tools send to the local server.
OFFLINE_MODEL = "gpt-4o-mini"
OFFLINE_KEY = "sk-offline-compat"
#: Public APIs the workflows call → the path prefix the local server answers them on.
PUBLIC_APIS = {"https://jsonplaceholder.typicode.com": ""}
#: Scratch paths the workflows use, longest first → moved under the working directory.
SCRATCH_PREFIXES = ("/private/tmp/pflow-", "/tmp/pflow-")
_MODEL_LINE = re.compile(r"^- model:.*\n", re.MULTILINE)
_LLM_TYPE_LINE = re.compile(r"^- type: llm\n", re.MULTILINE)


@dataclass(frozen=True)
class RepoCase:
    """One workflow of pflow's repository, run offline."""

    path: str  #: under ``repo_workflows/``
    inputs: dict[str, Any] = field(default_factory=dict)
    #: files the working directory starts with (relative path → text)
    files: dict[str, str] = field(default_factory=dict)
    #: the run takes seconds (its steps sleep): marked ``slow``
    slow: bool = False

    @property
    def name(self) -> str:
        return self.path.removesuffix(".pflow.md")


CASES: list[RepoCase] = [
    RepoCase("examples/core/minimal.pflow.md"),
    RepoCase("examples/core/simple-pipeline.pflow.md", files={"input.txt": "line one\n"}),
    RepoCase("examples/core/conditional-branching.pflow.md"),
    RepoCase("examples/core/error-handling.pflow.md"),
    RepoCase("examples/core/proxy-mappings.pflow.md", files={"input.txt": "line one\n"}),
    RepoCase("examples/core/template-variables.pflow.md"),
    RepoCase("examples/core/stdin-echo.pflow.md", inputs={"data": "hello"}),
    RepoCase("examples/core/stdout-result.pflow.md", inputs={"greeting": "hi alice"}),
    RepoCase(
        "examples/core/stateful-loop-judge-round.pflow.md",
        inputs={"contenders": ["a", "b", "c", "d", "e"]},
    ),
    RepoCase("examples/batch-test.pflow.md"),
    RepoCase("examples/batch-test-parallel.pflow.md"),
    RepoCase("examples/simple-workflow.pflow.md"),
    RepoCase("examples/test-nested-index.pflow.md"),
    RepoCase("examples/test_llm_templates.pflow.md", inputs={"topic": "tracing"}),
    RepoCase("examples/output_validation_demo.pflow.md", files={"input.txt": "line one\n"}),
    RepoCase("examples/error-handling/coalesce-mixed-absent-failed.pflow.md"),
    RepoCase("examples/error-handling/failed-node-direct-reference.pflow.md"),
    RepoCase("examples/error-handling/non-retriable-file-error.pflow.md"),
    RepoCase("examples/error-handling/retry-with-backoff.pflow.md"),
    RepoCase("examples/error-handling/source-line-heavy-offsets.pflow.md"),
    RepoCase("examples/error-handling/source-line-multi-output.pflow.md"),
    RepoCase("examples/error-handling/typo-on-failed-node.pflow.md"),
    RepoCase("examples/error-handling/loop-recovery.pflow.md"),
    RepoCase("examples/file-references/batch-file-ref.pflow.md"),
    RepoCase("examples/file-references/code-file-ref.pflow.md", inputs={"input": "hello world"}),
    RepoCase("examples/file-references/command-file-ref.pflow.md"),
    RepoCase("examples/file-references/prompt-file-ref.pflow.md", inputs={"input": "x = 1"}),
    RepoCase("examples/file-references/no-file-refs.pflow.md"),
    RepoCase("examples/bundling/simple.pflow.md"),
    RepoCase("examples/bundling/command-ref.pflow.md"),
    RepoCase("examples/bundling/prompt-ref.pflow.md"),
    RepoCase("examples/bundling/sub-echo.pflow.md", inputs={"text": "hello sub"}),
    RepoCase("examples/invalid/bare-code-block.pflow.md"),
    RepoCase("examples/invalid/code-annotation-type-mismatch.pflow.md"),
    RepoCase("examples/invalid/code-missing-result-annotation.pflow.md"),
    RepoCase("examples/invalid/duplicate-ids.pflow.md"),
    RepoCase("examples/invalid/duplicate-param.pflow.md"),
    RepoCase("examples/invalid/missing-description.pflow.md"),
    RepoCase("examples/invalid/missing-steps.pflow.md"),
    RepoCase("examples/invalid/missing-type.pflow.md"),
    RepoCase("examples/invalid/unclosed-fence.pflow.md"),
    RepoCase("examples/invalid/yaml-syntax-error.pflow.md"),
    RepoCase("examples/advanced/content-pipeline.pflow.md"),
    RepoCase("examples/advanced/file-migration.pflow.md"),
    RepoCase("examples/advanced/github-workflow.pflow.md"),
    RepoCase("examples/nested/to-uppercase.pflow.md", inputs={"text": "make me loud"}),
    RepoCase("examples/nested/process-text.pflow.md"),
    RepoCase(
        "examples/nested/deep-research/score-section.pflow.md",
        inputs={"text": "Some text.", "criteria": "clarity"},
    ),
    RepoCase(
        "examples/nested/deep-research/review-aspect.pflow.md",
        inputs={"summary": "A summary.", "aspect": "accuracy"},
    ),
    RepoCase("scratchpads/streaming-baseline/streaming-test.pflow.md", slow=True),
    RepoCase(
        "scratchpads/finding-1-opus-spike/test-finding1-validator.pflow.md",
        inputs={"user_question": "Which chorus?"},
    ),
]


def case_by_name(name: str) -> RepoCase:
    return next(case for case in CASES if case.name == name)


def offline_text(text: str, base_url: str, workdir: Path) -> str:
    """The workflow's text with public APIs on the local server, every model offline and
    scratch paths in the working directory."""
    for public, prefix in PUBLIC_APIS.items():
        text = text.replace(public, base_url + prefix)
    for scratch in SCRATCH_PREFIXES:
        text = text.replace(scratch, f"{workdir}/pflow-")
    text = _MODEL_LINE.sub("", text)
    return _LLM_TYPE_LINE.sub(f"- type: llm\n- model: {OFFLINE_MODEL}\n", text)


def offline_copy(case: RepoCase, base_url: str, into: Path, workdir: Path) -> Path:
    """Copy the workflow's folder (its prompt and script files too) into ``into`` and rewrite
    the workflow itself offline; returns the copy's path."""
    source = REPO_WORKFLOWS / case.path
    folder = into / "workflow"
    shutil.copytree(source.parent, folder)
    copy = folder / source.name
    copy.write_text(
        offline_text(source.read_text(encoding="utf-8"), base_url, workdir), encoding="utf-8"
    )
    return copy


def prepare_workdir(case: RepoCase, workdir: Path) -> None:
    for relative, text in case.files.items():
        target = workdir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def offline_env(base_url: str) -> dict[str, str]:
    """What both tools are given so an llm step reaches the local server, never the network."""
    return {"OPENAI_BASE_URL": f"{base_url}/v1", "OPENAI_API_KEY": OFFLINE_KEY}
