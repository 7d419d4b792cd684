"""The Ctrl-C tests work however pytest was started, also as a background job.

A shell starts a background job with SIGINT ignored and the disposition survives exec, so
without ``conftest.py``'s reset every CLI subprocess a test interrupts would ignore the
SIGINT (a whole run started with ``cmd &`` failed all nine Ctrl-C tests that way).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
PROBE = """
import subprocess
import sys

CHILD = "import signal, sys; sys.exit(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"


def test_a_child_process_can_be_interrupted():
    assert subprocess.run([sys.executable, "-c", CHILD]).returncode == 0
"""


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_a_run_started_with_sigint_ignored_gives_its_subprocesses_ctrl_c(tmp_path: Path) -> None:
    shutil.copy(TESTS / "conftest.py", tmp_path)
    (tmp_path / "test_probe.py").write_text(PROBE, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_probe.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=ignore_sigint,
    )
    assert result.returncode == 0, result.stdout + result.stderr
