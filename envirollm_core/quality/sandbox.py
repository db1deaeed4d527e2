"""Run code a model wrote, in a child process that can do little harm, within limits.

What isolates it (docs/QUALITY.md says the same, and what it does not):
- a separate process (`sandbox_child.py`), never the app's or the CLI's own,
  in a session of its own whose every process is killed when the check ends;
- limits: wall clock (here), CPU time, address space, file size, no new process;
- an empty temporary working directory, deleted afterwards;
- an environment with none of the user's variables (no API keys, no
  ENVIROLLM_HOME); Python started isolated (`-I -S`: no site-packages, no
  user site, no PYTHON* variables);
- an audit hook in the child that refuses processes, sockets, native code and
  any file outside its directory (reading the standard library excepted);
- where the machine allows unprivileged user namespaces: a network namespace
  with no interface but loopback, and a PID namespace (`unshare`).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHILD_SCRIPT = Path(__file__).with_name("sandbox_child.py")
# Empty environment but a PATH and a UTF-8 locale; HOME and TMPDIR point into the task's directory.
_BASE_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
_MAX_OUTPUT_BYTES = 1 << 20


@dataclass(frozen=True)
class SandboxLimits:
    wall_s: float = 10.0
    cpu_s: int = 5
    memory_mb: int = 512
    file_mb: int = 8


@dataclass(frozen=True)
class CaseOutcome:
    """What one call returned (`value`) or why it failed (`error`)."""

    ok: bool
    value: Any = None
    error: str | None = None


@functools.cache
def network_isolation() -> list[str]:
    """The `unshare` prefix that gives the child no network and its own PID namespace, when the machine allows it."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    prefix = [unshare, "--map-root-user", "--net", "--pid", "--fork", "--kill-child"]
    try:
        probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10, env=_BASE_ENV)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return prefix if probe.returncode == 0 else []


def run_python_function(
    code: str, function: str, cases: list[dict[str, Any]], limits: SandboxLimits = SandboxLimits()
) -> list[CaseOutcome]:
    """Define `code` and call `function` on each case's args in a sandboxed child; one outcome per case.

    Never raises for what the code does: a timeout, a crash or a refused action fails every case still open."""
    request = {"code": code, "function": function, "cases": cases,
               "cpu_s": limits.cpu_s, "memory_mb": limits.memory_mb, "file_mb": limits.file_mb}
    workdir = tempfile.mkdtemp(prefix="envirollm-sandbox-")
    try:
        stdout, failure = _run_child(json.dumps(request).encode(), workdir, limits)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if failure is None:
        try:
            outcomes = json.loads(stdout)
            if isinstance(outcomes, list) and len(outcomes) == len(cases):
                return [CaseOutcome(bool(o.get("ok")), o.get("value"), o.get("error")) for o in outcomes]
        except (ValueError, AttributeError):
            pass
        failure = "the sandboxed code ended without a result (it exited, or was killed by a limit)"
    return [CaseOutcome(False, error=failure) for _ in cases]


def _run_child(request: bytes, workdir: str, limits: SandboxLimits) -> tuple[bytes, str | None]:
    env = {**_BASE_ENV, "HOME": workdir, "TMPDIR": workdir}
    command = [*network_isolation(), sys.executable, "-I", "-S", "-B", str(CHILD_SCRIPT)]
    process = subprocess.Popen(
        command, cwd=workdir, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True,
    )
    try:
        stdout, _ = process.communicate(request, timeout=limits.wall_s)
        failure = None
    except subprocess.TimeoutExpired:
        stdout, failure = b"", f"the code ran longer than {limits.wall_s:g} s and was stopped"
    finally:
        _kill_session(process)
    if failure is None and process.returncode and process.returncode < 0:
        name = signal.Signals(-process.returncode).name
        reason = "its CPU time limit" if name == "SIGXCPU" else name
        failure = f"the code was killed ({reason})"
    return stdout[:_MAX_OUTPUT_BYTES], failure


def _kill_session(process: subprocess.Popen[bytes]) -> None:
    """Kill the child and everything it may have started (same session, same process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()
