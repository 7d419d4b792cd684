"""pflow 0.16's ``loop``, ``images`` and ``## Cache`` through the command line, in a subprocess:
a bad shape is one line on stderr and exit 2, a good workflow runs and its trace file holds the
loop's passes and the call's cache record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from subprocess_env import clean_env

LOOP = """# Count up

Adds one until three.

## Steps

### count-up

Adds one to the carried total.

- type: code
- inputs:
    total: 0
- loop:
    carry:
      total: ${count-up.result.total}
    until: ${count-up.result.done}
EXTRA
```python code
total: int
result: dict = {"total": total + 1, "done": total + 1 >= 3}
```
"""

CACHE = """# Cached

Sends a cached rule.

## Inputs

### rule

The rule.

- type: string

## Cache

- ttl: {ttl}

```cache
Rule: ${{rule}}
```

## Steps

### ask

Asks with the rule cached.

- type: llm
- model: echo
- prompt_cache: [rule]
- prompt: Apply the cached rule.
"""


def pflow_trace(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pflow_trace", *arguments],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(HOME=str(tmp_path)),
        timeout=120,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            LOOP.replace("EXTRA", "    while: ${count-up.result.done}"),
            "exactly one of while or until",
        ),
        (LOOP.replace("EXTRA", "    max_iterations: 0"), "loop.max_iterations"),
        (CACHE.format(ttl="2h"), "cache.ttl: '2h' is not a TTL"),
    ],
)
def test_a_bad_shape_is_one_line_and_exit_2(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "wf.pflow.md").write_text(text)
    for command in ("validate", "run"):
        done = pflow_trace(tmp_path, command, "wf.pflow.md")
        assert done.returncode == 2, done.stderr
        assert message in done.stderr
        assert "Traceback" not in done.stderr


def test_a_loop_and_a_cached_call_run_and_are_in_the_trace(tmp_path: Path) -> None:
    (tmp_path / "loop.pflow.md").write_text(LOOP.replace("EXTRA", ""))
    done = pflow_trace(tmp_path, "run", "loop.pflow.md", "--trace-file", "loop.json")
    assert done.returncode == 0, done.stderr
    (node,) = json.loads((tmp_path / "loop.json").read_text())["nodes"]
    assert node["loop"]["iterations"] == 3 and node["loop"]["stopped"] == "condition"
    (tmp_path / "cache.pflow.md").write_text(CACHE.format(ttl="5m"))
    done = pflow_trace(
        tmp_path, "run", "cache.pflow.md", "rule=be kind", "--trace-file", "cache.json"
    )
    assert done.returncode == 0, done.stderr
    (node,) = json.loads((tmp_path / "cache.json").read_text())["nodes"]
    assert node["llm_usage"]["prompt_cache"]["chunks"] == ["rule"]
