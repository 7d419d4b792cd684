"""The two traces pflow itself wrote, which tests read to prove we understand pflow's files.

They live in the repository (``tests/fixtures/``) so the suite passes in any fresh clone;
every test reaches them through these names and nothing else, and
``tests/project/test_self_contained.py`` checks that no test reads a path outside the
repository.

- ``PFLOW_JSON_SAMPLE``: pflow 0.8's JSON trace file (format 1.2.0) of a three-node run
  (``make_items``, a parallel shell batch ``work``, a sequential ``fail_some`` whose odd items
  fail); it keeps no per-item records.
- ``PFLOW_JSONL_SAMPLE``: pflow-cli 0.16's JSON Lines trace of the same workflow: a meta
  line, a start and an end event per node (batch nodes with ``batch_items``), run.complete.
"""

from __future__ import annotations

from pathlib import Path

FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"
PFLOW_JSON_SAMPLE = FIXTURES_DIR / "pflow-0.8-batch-trace-1.2.0.json"
PFLOW_JSONL_SAMPLE = FIXTURES_DIR / "pflow-cli-0.16-batch-trace.jsonl"
PFLOW_SAMPLES = (PFLOW_JSON_SAMPLE, PFLOW_JSONL_SAMPLE)
