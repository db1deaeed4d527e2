"""The CLI as a user runs it: in a subprocess (one or several at once), or through `main` in this process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "envirollm_core"]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """`envirollm ARGS` in a subprocess, as a user runs it (the test's ENVIROLLM_HOME is inherited)."""
    return subprocess.run([*CLI, *args], check=False, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def run_cli_all(commands: Sequence[Sequence[str | bytes]], env: dict[str, str] | None = None,
                envs: Sequence[dict[str, str]] | None = None, timeout: float = 240,
                cwd: Path | None = None) -> list[subprocess.CompletedProcess]:
    """Several CLI commands at once (each CLI start costs seconds of imports on a loaded 2-core machine);
    `envs` gives each command its own extra environment. Arguments may be bytes (not valid UTF-8, say).
    `cwd`: where files a command writes by default (an export's default name) land."""
    extra = envs or [{}] * len(commands)
    started = [
        subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, **(env or {}), **own}, cwd=cwd)
        for args, own in zip(commands, extra, strict=True)
    ]
    results = []
    for args, process in zip(commands, started, strict=True):
        stdout, stderr = process.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess([*CLI, *args], process.returncode, stdout, stderr))
    return results


def assert_one_line_usage_error(result: subprocess.CompletedProcess, *expected: str) -> None:
    """Exit 2, no traceback, and the last line on stderr is the error saying what was wrong: `envirollm: error:
    ...` from the core, or argparse's own `envirollm COMMAND: error: ...` (after its usage lines)."""
    assert result.returncode == 2, (result.args, result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines and re.match(r"envirollm( [\w-]+)?: error: ", lines[-1]), result.stderr[-2000:]
    for text in expected:
        assert text in lines[-1], (text, lines[-1])


def cli_in_process(capsys: pytest.CaptureFixture, *args: str) -> subprocess.CompletedProcess:
    """`envirollm ARGS` through the same `main` in this process: seconds faster than a new interpreter,
    for checks where the process itself (argv bytes, signals, exit) is not the point."""
    from envirollm_core.cli import main

    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["envirollm", *args], code, out, err)
