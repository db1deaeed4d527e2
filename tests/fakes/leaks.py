"""Nothing left behind: no thread, no child process, no energy window still open after the code under test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psutil
import pytest

from envirollm_core.errors import EnviroLLMError


@dataclass
class Leftovers:
    threads: list[threading.Thread] = field(default_factory=list)
    children: list[psutil.Process] = field(default_factory=list)


@contextmanager
def nothing_left_behind(grace_s: float = 5.0) -> Iterator[None]:
    """Fail if the block leaves a thread or a child process running (compared with before the block)."""
    threads_before = set(threading.enumerate())
    children_before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    deadline = time.monotonic() + grace_s
    while True:
        left = Leftovers(
            [t for t in threading.enumerate() if t not in threads_before and t.is_alive()],
            [p for p in psutil.Process().children(recursive=True) if p.pid not in children_before and _alive(p)],
        )
        if not (left.threads or left.children) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left.threads, f"threads left behind: {[t.name for t in left.threads]}"
    assert not left.children, f"child processes left behind: {[p.pid for p in left.children]}"


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class WindowLedger:
    """The real sampler, with a record of every energy window opened and closed through it."""

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler
        self.opened: list[str] = []
        self.closed: list[str] = []

    def begin_window(self, name: str, pids: Sequence[int] = ()) -> None:
        self.sampler.begin_window(name, pids=pids)
        self.opened.append(name)

    def end_window(self, name: str) -> Any:
        measurement = self.sampler.end_window(name)
        self.closed.append(name)
        return measurement

    def measure_idle(self, duration_s: float) -> Any:
        return self.sampler.measure_idle(duration_s)

    @property
    def description(self) -> str | None:
        return self.sampler.description

    def components(self) -> Any:
        return self.sampler.components()

    def settle(self, pending: Sequence[Any], tokens: Sequence[int | None]) -> Any:
        return self.sampler.settle(pending, tokens)

    def assert_all_closed(self) -> None:
        assert self.opened and sorted(self.opened) == sorted(self.closed)
        for name in self.opened:  # the sampler itself says so too
            with pytest.raises(EnviroLLMError, match="no energy window"):
                self.sampler.read_window(name)
