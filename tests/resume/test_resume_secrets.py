"""Secrets in checkpointed values: the checkpoint holds them (it is private, mode 0600), and
a resumed run that reuses them lets none reach its trace, its output, ``show`` or any export."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from pflow_trace.observe.redaction import REDACTED
from pflow_trace.replay import FILE_FORMATS
from pflow_trace.tracefile.checkpoint import checkpoint_path
from subprocess_env import clean_env

SENSITIVE_STRING = "S1-resume-sensitive-8123"
NODE_TOKEN = "node-token-from-get-token-5512"
SECRETS = [SENSITIVE_STRING, NODE_TOKEN]


def secrets_workflow(tmp_path: Path) -> dict[str, Any]:
    flag = tmp_path / "flag"
    work = (
        "import os\n"
        f"if x == 1 and os.path.exists({str(flag)!r}):\n"
        "    raise ValueError('flag is up')\n"
        "result = {'said': f'{x} with {secret} and {token}', 'api_key': token}"
    )
    return {
        "ir_version": "0.1.0",
        "name": "secret-resume",
        "inputs": {"api_secret": {"type": "string", "sensitive": True}},
        "nodes": [
            {
                "id": "get_token",
                "type": "code",
                "params": {"code": f"result = {NODE_TOKEN!r}"},
            },
            {
                "id": "work",
                "type": "code",
                "params": {
                    "code": work,
                    "inputs": {
                        "x": "${item}",
                        "secret": "${api_secret}",
                        "token": "${get_token.result}",
                    },
                },
                "batch": {"items": [0, 1, 2], "error_handling": "continue"},
            },
        ],
        "outputs": {"said": "${work.results}"},
    }


def pflow(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pflow_trace", *map(str, args)],
        capture_output=True,
        env=clean_env(),
        timeout=120,
    )


def test_reused_secrets_reach_no_output(tmp_path: Path) -> None:
    source = tmp_path / "wf.json"
    source.write_text(json.dumps(secrets_workflow(tmp_path)), encoding="utf-8")
    first = tmp_path / "first.trace.json"
    (tmp_path / "flag").touch()
    ran = pflow("run", source, f"api_secret={SENSITIVE_STRING}", "--trace-file", first)
    assert ran.returncode == 0, ran.stderr
    (tmp_path / "flag").unlink()
    checkpoint = checkpoint_path(first).read_bytes()
    assert all(secret.encode() in checkpoint for secret in SECRETS)  # full values, privately
    assert stat.S_IMODE(checkpoint_path(first).stat().st_mode) == 0o600

    outputs: dict[str, bytes] = {}
    second = tmp_path / "second.trace.json"
    text = pflow("resume", first, "--trace-file", second, "--exporter", "console")
    assert text.returncode == 0, text.stderr
    outputs["resume text"] = text.stdout + text.stderr
    as_json = pflow("run", source, f"api_secret={SENSITIVE_STRING}", "--resume", first,
                    "--trace-file", second, "--output-format", "json")  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr
    outputs["run --resume json"] = as_json.stdout + as_json.stderr
    outputs["resumed trace"] = second.read_bytes()
    for arguments in (["show", second], ["show", "--json", second]):
        shown = pflow(*arguments)
        assert shown.returncode == 0, shown.stderr
        outputs[str(arguments[0])] = shown.stdout + shown.stderr
    for file_format in FILE_FORMATS:
        target = tmp_path / f"export.{file_format}.json"
        exported = pflow("export", second, "--format", file_format, "-o", target)
        assert exported.returncode == 0, exported.stderr
        outputs[f"export {file_format}"] = target.read_bytes() + exported.stdout

    for where, data in outputs.items():
        for secret in SECRETS:
            assert secret.encode() not in data, f"{secret} leaked into {where}"
        assert checkpoint_path(first).name.encode() not in data, where
    result = json.loads(as_json.stdout)
    assert [row["result"]["said"] for row in result["outputs"]["said"]] == [
        f"{x} with {REDACTED} and {REDACTED}" for x in range(3)
    ]
    document = json.loads(second.read_bytes())
    assert document["resume"]["reused"] == 2
