"""pflow-trace beside pflow-cli 0.16: the same sequential ``code`` batch, whole processes.

Both tools run the same ``.pflow.md`` workflow (a code step makes ``count`` numbers, a batched
code step doubles each) at 1,000 and 5,000 items, as a user would: a fresh process, stdin from
/dev/null, a temporary HOME, pflow with ``--no-cache``, pflow-trace with its defaults (trace
file on, no exporter). Reported per tool: whole-run wall time, CPU time (user + system, the
child and the children it waited for, from ``wait4``) and peak memory (the child's maximum
resident set) at each size, and the marginal cost per item, (t(5,000) - t(1,000)) / 4,000 in
wall and in CPU time, which leaves out start-up; then pflow-cli's figures over ours. The
target (issue #28) is on CPU: our marginal CPU per item at most a tenth of pflow-cli's; CPU is
also what a busy machine moves least.

pflow-cli is taken from ``--pflow`` or ``$PFLOW_CLI`` (a path to its ``pflow`` command), else
from a virtual environment of this benchmark's own under ``~/.cache/pflow-trace-bench/``,
created with pip (``pflow-cli==0.16.0``) on first use. When it cannot be installed, the reason
is printed and our figures are reported alone.

Rounds interleave the tools and sizes (best of ``--repeats``), so a slow spell of a shared
machine is spread over both. Not run by ``run.py``: it takes minutes and needs the network
the first time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import positive_int

PFLOW_VERSION = "0.16.0"
CACHED_VENV = Path.home() / ".cache" / "pflow-trace-bench" / f"pflow-cli-{PFLOW_VERSION}"
SIZES = (1_000, 5_000)
#: pflow-cli's marginal CPU per item over ours, at least (issue #28).
TARGET_CPU_RATIO = 10
QUICK_SIZES = (50, 250)

WORKFLOW = """# Per-item cost

A code step makes the numbers; a sequential batch of code steps doubles each one.

## Inputs

### count

How many items to run.

- type: integer
- required: true

## Steps

### numbers

Makes the items.

- type: code
- inputs:
    count: ${count}

```python code
count: int

result: list = list(range(count))
```

### double

Doubles one number per item.

- type: code
- batch:
    items: ${numbers.result}
- inputs:
    x: ${item}

```python code
x: int

result: int = x * 2
```

## Outputs

### done

How many items ran.

- source: ${double.count}
"""


def find_pflow(explicit: str | None) -> tuple[Path | None, str | None]:
    """pflow-cli's ``pflow`` command, or None and why it could not be had."""
    for candidate in (explicit, os.environ.get("PFLOW_CLI")):
        if candidate:
            path = Path(candidate)
            return (path, None) if path.exists() else (None, f"{path} does not exist")
    pflow = CACHED_VENV / "bin" / "pflow"
    if pflow.exists():
        return pflow, None
    print(f"installing pflow-cli {PFLOW_VERSION} into {CACHED_VENV} ...", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(CACHED_VENV)], check=True)
        pip = CACHED_VENV / "bin" / "pip"
        done = subprocess.run(
            [str(pip), "install", "-q", f"pflow-cli=={PFLOW_VERSION}"],
            capture_output=True,
            text=True,
            timeout=900,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"could not create the virtual environment: {exc}"
    if done.returncode != 0 or not pflow.exists():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"pip could not install pflow-cli=={PFLOW_VERSION}: {last}"
    return pflow, None


def measure(command: list[str], home: Path) -> tuple[float, float, float]:
    """Wall seconds, peak resident MiB and CPU seconds of one process (from wait4)."""
    env = {**os.environ, "HOME": str(home)}
    for name in ("TRACEPARENT", "TRACESTATE", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        env.pop(name, None)
    with open(os.devnull) as stdin, open(os.devnull, "w") as stdout:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=env
        )
        assert process.stderr is not None
        errors = process.stderr.read()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({process.returncode}): {errors[-500:]!r}")
    cpu_s = usage.ru_utime + usage.ru_stime
    return seconds, usage.ru_maxrss / 1024, cpu_s  # Linux reports KiB


def commands(pflow: Path | None, workflow: Path, count: int) -> dict[str, list[str]]:
    tools = {
        "pflow-trace": [
            sys.executable,
            "-m",
            "pflow_trace",
            "run",
            "--quiet",
            str(workflow),
            f"count={count}",
        ],
    }
    if pflow is not None:
        tools["pflow-cli"] = [str(pflow), "--no-cache", str(workflow), f"count={count}"]
    return tools


def summarise(best: dict[str, dict[int, list[float]]], sizes: tuple[int, int]) -> dict[str, Any]:
    small, large = sizes
    tools: dict[str, Any] = {}
    for tool, by_size in best.items():
        seconds = {size: by_size[size][0] for size in sizes}
        cpu = {size: by_size[size][2] for size in sizes}
        tools[tool] = {
            "wall_s": {str(size): round(seconds[size], 3) for size in sizes},
            "cpu_s": {str(size): round(cpu[size], 3) for size in sizes},
            "peak_rss_mib": {str(size): round(by_size[size][1], 1) for size in sizes},
            "marginal_us_per_item": round(
                (seconds[large] - seconds[small]) / (large - small) * 1e6, 1
            ),
            "marginal_cpu_us_per_item": round((cpu[large] - cpu[small]) / (large - small) * 1e6, 1),
        }
    ratios: dict[str, Any] = {}
    if "pflow-cli" in tools:
        theirs, ours = tools["pflow-cli"], tools["pflow-trace"]
        ratios = {
            "marginal_per_item": round(
                theirs["marginal_us_per_item"] / ours["marginal_us_per_item"], 2
            ),
            # None when our marginal CPU is not above zero (tiny sizes on a noisy machine).
            "marginal_cpu_per_item": round(
                theirs["marginal_cpu_us_per_item"] / ours["marginal_cpu_us_per_item"], 2
            )
            if ours["marginal_cpu_us_per_item"] > 0
            else None,
            **{
                f"wall_{size}": round(theirs["wall_s"][str(size)] / ours["wall_s"][str(size)], 2)
                for size in sizes
            },
            **{
                f"peak_memory_{size}": round(
                    theirs["peak_rss_mib"][str(size)] / ours["peak_rss_mib"][str(size)], 2
                )
                for size in sizes
            },
        }
    cpu_ratio = ratios.get("marginal_cpu_per_item")
    met = cpu_ratio >= TARGET_CPU_RATIO if cpu_ratio is not None else None
    return {
        "tools": tools,
        "pflow_cli_over_pflow_trace": ratios,
        "target": {"marginal_cpu_per_item": TARGET_CPU_RATIO},
        "met": met,
    }


def run(quick: bool = False, repeats: int = 3, pflow_path: str | None = None) -> dict[str, Any]:
    sizes = QUICK_SIZES if quick else SIZES
    pflow, problem = find_pflow(pflow_path)
    if problem is not None:
        print(
            f"pflow-cli {PFLOW_VERSION} is not available ({problem}); reporting pflow-trace alone.",
            file=sys.stderr,
        )
    best: dict[str, dict[int, list[float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        workflow = Path(scratch) / "per-item.pflow.md"
        workflow.write_text(WORKFLOW, encoding="utf-8")
        for _ in range(repeats):
            for size in sizes:
                for tool, command in commands(pflow, workflow, size).items():
                    home = Path(tempfile.mkdtemp(dir=scratch))
                    seconds, rss, cpu_s = measure(command, home)
                    current = best.setdefault(tool, {}).get(size)
                    if current is None:
                        best[tool][size] = [seconds, rss, cpu_s]
                    else:  # the best wall and the best CPU, each on its own
                        current[:] = [min(current[0], seconds), current[1], min(current[2], cpu_s)]
                        if seconds <= current[0]:
                            current[1] = rss
    return {
        "benchmark": "vs_pflow",
        "sizes": list(sizes),
        "repeats": repeats,
        "pflow_cli": str(pflow) if pflow else None,
        "pflow_cli_problem": problem,
        **summarise(best, sizes),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 and 250 items, one round")
    parser.add_argument(
        "--repeats", type=positive_int, default=3, help="rounds; best of them is kept"
    )
    parser.add_argument("--pflow", help="path to an installed pflow command")
    arguments = parser.parse_args()
    repeats = 1 if arguments.quick else arguments.repeats
    json.dump(run(arguments.quick, repeats, arguments.pflow), sys.stdout, indent=2)
    print()
