"""Real processes for the tests: the CPU time of a tree (the truth to compare with), and cleaning up."""

from __future__ import annotations

import subprocess

import psutil


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children so far."""
    processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return sum(p.cpu_times().user + p.cpu_times().system for p in processes)


def kill_tree(process: subprocess.Popen) -> None:
    try:
        for child in psutil.Process(process.pid).children(recursive=True):
            child.kill()
    except psutil.Error:
        pass
    process.kill()
    process.wait()
