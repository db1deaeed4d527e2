"""Finding the LLM servers a person runs, and measuring a process with its children.

A server is recognised by the program it runs: the executable's name, or for
a Python program the module after `-m` or the script it runs, plus the
arguments that make it a server (`ollama serve`, `vllm serve`). Arguments are
never searched at large, so `vim llama-server.log`, `make llama-server`,
`code ~/ollama` or a browser on ollama.com are not servers. A server's child
processes (Ollama's runner, the helper processes of LM Studio) belong to it.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import psutil

from envirollm_core.errors import UsageError
from envirollm_core.telemetry.nvml import NvmlSession, gpu_mem_by_pid_mb
from envirollm_core.units import BYTES_PER_MIB

CHILDREN_REFRESH_S = 1.0  # at most this often...
CHILDREN_REFRESH_BUDGET = 0.001  # ...and at most 0.1 % of a core: finding children scans every process
DEFAULT_DETECT_SAMPLE_S = 0.25

_PYTHON = re.compile(r"^python(?:w)?(?:\d+(?:\.\d+)*)?$")


@dataclass(frozen=True)
class ProcessStats:
    """A process with its children, right now; `cpu_percent` is of one core, summed over the tree."""

    pid: int
    process_name: str
    cmdline: tuple[str, ...]
    children: tuple[int, ...]
    cpu_percent: float | None
    rss_mb: float
    threads: int
    gpu_mem_mb: float | None  # None: no NVIDIA GPU to ask, or NVML does not say


@dataclass(frozen=True)
class LlmServer:
    """A running LLM server; `name` is its kind (`ollama`, `llama-cpp-python`, `vllm`...)."""

    name: str
    pid: int
    process_name: str
    cmdline: tuple[str, ...]
    children: tuple[int, ...]
    cpu_percent: float | None
    rss_mb: float
    threads: int
    gpu_mem_mb: float | None


def _program(cmdline: Sequence[str], process_name: str) -> tuple[str, list[str], str]:
    """(program, its arguments, its path): for `python -m mod` the module, for `python x.py` the script."""
    if not cmdline:
        return process_name.lower(), [], ""
    head = _basename(cmdline[0]).removesuffix(".exe")
    if not _PYTHON.match(head):
        return head, list(cmdline[1:]), cmdline[0]
    args = list(cmdline[1:])
    while args:
        arg = args.pop(0)
        if arg == "-m" and args:
            return args[0].lower(), args[1:], ""
        if arg.startswith("-m") and len(arg) > 2:
            return arg[2:].lower(), args, ""
        if arg in ("-X", "-W", "-c", "-Q"):  # options that take a value
            if arg == "-c":
                return "", [], ""  # inline code: no program to recognise
            args = args[1:]
            continue
        if not arg.startswith("-"):
            return _basename(arg), args, arg
    return head, [], cmdline[0]


def _basename(path: str) -> str:
    """The last part of a POSIX or Windows path, lower case."""
    return re.split(r"[\\/]", path)[-1].lower()


def _first_arg(args: Sequence[str]) -> str:
    return args[0].lower() if args else ""


def classify_server(cmdline: Sequence[str], process_name: str = "", cwd: str | None = None) -> str | None:
    """The kind of LLM server this command line runs, or None."""
    program, args, path = _program(cmdline, process_name)
    stem = program.removesuffix(".py")
    first = _first_arg(args)
    place = f"{path} {cwd or ''}".lower()
    if stem == "ollama":
        return "ollama" if first in ("serve", "runner") else None
    if stem in ("ollama_llama_server", "ollama-runner"):
        return "ollama"
    if re.match(r"^lm[- _]?studio\b", stem) or stem in ("lms-server", "llmster"):
        return "lm-studio"
    if stem == "llama-server":
        return "llama.cpp"
    if stem in ("llama_cpp.server", "envirollm_core.backends.engine_child"):
        return "llama-cpp-python"  # the second is EnviroLLM's embedded engine, llama-cpp-python's server
    if stem.startswith("koboldcpp"):
        return "koboldcpp"
    if stem in ("server", "one_click") and program.endswith(".py") and "text-generation-webui" in place:
        return "text-generation-webui"
    if stem == "vllm":
        return "vllm" if first == "serve" else None
    if stem.startswith("vllm.entrypoints"):
        return "vllm"
    if stem in ("local-ai", "localai"):
        return "localai" if first in ("", "run") or first.startswith("-") else None
    if stem == "gpt4all" or (stem == "chat" and "gpt4all" in place):
        return "gpt4all"
    if stem in ("jan", "cortex-server"):
        return "jan"
    if stem in ("mlx_lm.server", "mlx_lm.server.py") or (stem == "mlx_lm" and first == "server"):
        return "mlx-lm"
    if stem.startswith("sglang.launch_server") or (stem == "sglang" and first == "serve"):
        return "sglang"
    return None


class ProcessTree:
    """One process and its descendants, sampled again and again.

    CPU % is the tree's CPU time over the time between two samples (like
    `top`), so the first sample has none. Children are looked up again every
    second, or less often where that scan of every process is slow (a machine
    with many processes), never every tick.
    """

    def __init__(self, pid: int) -> None:
        try:
            self.root = psutil.Process(pid)
            self.process_name = self.root.name()
            self.cmdline = tuple(_safe(self.root.cmdline, ()))
            self.root.memory_info()  # what `sample` reads: refused now rather than on every tick
        except psutil.NoSuchProcess:
            raise UsageError(f"no process with pid {pid} is running") from None
        except psutil.AccessDenied:
            raise UsageError(f"not allowed to watch process {pid}: run as its user or as root") from None
        self.pid = pid
        self._members: dict[int, psutil.Process] = {pid: self.root}
        self._cpu_s: dict[int, float] = {}
        self._last_time_s: float | None = None
        self._children_due = 0.0

    def _refresh_children(self, now: float) -> None:
        if now < self._children_due:
            return
        cpu_start = time.process_time()
        try:
            children = self.root.children(recursive=True)
        except psutil.Error:
            return
        finally:
            cost_s = time.process_time() - cpu_start
            self._children_due = now + max(CHILDREN_REFRESH_S, cost_s / CHILDREN_REFRESH_BUDGET)
        known = self._members
        self._members = {self.pid: self.root}
        for child in children:
            self._members[child.pid] = known.get(child.pid, child)  # keep the object: it knows its start time

    def sample(self, gpu_mem_by_pid: dict[int, float | None] | None) -> ProcessStats | None:
        """The tree now; None once the root process has exited."""
        now = time.monotonic()
        self._refresh_children(now)
        rss_bytes, threads, cpu_s = 0, 0, {}
        for pid, process in list(self._members.items()):
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    rss_bytes += process.memory_info().rss
                    threads += process.num_threads()
                cpu_s[pid] = times.user + times.system
            except psutil.Error:  # exited, or a zombie: no longer part of the tree
                if pid == self.pid:
                    return None
                del self._members[pid]
        cpu_percent = None
        if self._last_time_s is not None and now > self._last_time_s:
            used = sum(cpu - self._cpu_s[pid] for pid, cpu in cpu_s.items() if pid in self._cpu_s)
            cpu_percent = max(used, 0.0) / (now - self._last_time_s) * 100
        self._cpu_s, self._last_time_s = cpu_s, now
        return ProcessStats(
            pid=self.pid,
            process_name=self.process_name,
            cmdline=self.cmdline,
            children=tuple(pid for pid in self._members if pid != self.pid),
            cpu_percent=cpu_percent,
            rss_mb=rss_bytes / BYTES_PER_MIB,
            threads=threads,
            gpu_mem_mb=_tree_gpu_mem(self._members, gpu_mem_by_pid),
        )


def _tree_gpu_mem(pids: Iterable[int], gpu_mem_by_pid: dict[int, float | None] | None) -> float | None:
    """The tree's GPU memory: 0 only when every GPU's processes were listed and none of the tree's is there;
    None when NVML could not list them, or lists one of the tree's processes without its memory."""
    if gpu_mem_by_pid is None:
        return None
    used = [gpu_mem_by_pid[pid] for pid in pids if pid in gpu_mem_by_pid]
    return None if None in used else sum(used, 0.0)


def _safe(getter, default):
    try:
        return getter()
    except psutil.Error:
        return default


def process_tree_stats(pid: int, sample_s: float = DEFAULT_DETECT_SAMPLE_S) -> ProcessStats:
    """A process and its children over `sample_s` seconds (CPU % needs two looks)."""
    tree = ProcessTree(pid)
    with _gpu_memory() as gpu_mem:
        tree.sample(gpu_mem())
        time.sleep(sample_s)
        stats = tree.sample(gpu_mem())
    if stats is None:
        raise UsageError(f"process {pid} exited while it was measured")
    return stats


def detect_llm_servers(sample_s: float = DEFAULT_DETECT_SAMPLE_S) -> list[LlmServer]:
    """Every LLM server running now, each with its children folded in, by pid."""
    found: dict[int, str] = {}
    parents: dict[int, int] = {}
    for process in psutil.process_iter(["pid", "ppid", "name", "cmdline"]):
        info = process.info
        parents[info["pid"]] = info["ppid"] or 0
        if info["pid"] == os.getpid():
            continue
        kind = classify_server(info["cmdline"] or (), info["name"] or "", _cwd_if_needed(process, info["cmdline"]))
        if kind is not None:
            found[info["pid"]] = kind
    roots = {pid: kind for pid, kind in found.items() if not _has_ancestor_in(pid, found, parents)}
    trees: dict[int, ProcessTree] = {}
    for pid in roots:
        try:
            trees[pid] = ProcessTree(pid)
        except UsageError:  # exited or not ours to watch since the scan
            continue
    servers = []
    with _gpu_memory() as gpu_mem:
        for tree in trees.values():
            tree.sample(gpu_mem())
        if trees:  # CPU use is measured over `sample_s`; with no server there is nothing to wait for
            time.sleep(sample_s)
        usage = gpu_mem()
        for pid, tree in sorted(trees.items()):
            stats = tree.sample(usage)
            if stats is not None:
                servers.append(LlmServer(roots[pid], stats.pid, stats.process_name, stats.cmdline, stats.children,
                                         stats.cpu_percent, stats.rss_mb, stats.threads, stats.gpu_mem_mb))
    return servers


def _cwd_if_needed(process: psutil.Process, cmdline: Sequence[str] | None) -> str | None:
    """text-generation-webui runs `python server.py` from its folder: only then is the cwd worth a look."""
    if not cmdline or not any(arg.endswith(("server.py", "one_click.py")) for arg in cmdline[:4]):
        return None
    return _safe(process.cwd, None)


def _has_ancestor_in(pid: int, found: dict[int, str], parents: dict[int, int]) -> bool:
    seen = {pid}
    parent = parents.get(pid, 0)
    while parent and parent not in seen:
        if parent in found:
            return True
        seen.add(parent)
        parent = parents.get(parent, 0)
    return False


@contextlib.contextmanager
def _gpu_memory() -> Iterator[Callable[[], dict[int, float | None] | None]]:
    """NVML open for short looks at per-process GPU memory (None without an NVIDIA GPU)."""
    with NvmlSession() as nvml:
        yield (lambda: gpu_mem_by_pid_mb(nvml.gpus)) if nvml.gpus else (lambda: None)
