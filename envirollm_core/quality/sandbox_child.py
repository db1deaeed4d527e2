"""The sandboxed child that runs code a model wrote: never imported by EnviroLLM, only run as a script.

Started by `sandbox.py` as `python -I -S -B sandbox_child.py` in an empty
temporary directory with an empty environment. Reads one JSON request on stdin
({"code", "function", "cases", "cpu_s", "memory_mb", "file_mb"}), sets its own
resource limits, installs an audit hook that refuses what the code has no
business doing, runs the code and each case, and writes one JSON list on the
stdout it kept aside (the code's own prints go to /dev/null, so they cannot
pose as results). Standard library only: site-packages are not on the path.
"""

import json
import os
import resource
import signal
import sys
import sysconfig

# Modules whose use is a process, a socket or native code: refused on import.
_BLOCKED_MODULES = frozenset({
    "_posixsubprocess", "subprocess", "multiprocessing", "_multiprocessing", "concurrent", "pty",
    "socket", "_socket", "ssl", "_ssl", "asyncio", "ctypes", "_ctypes", "cffi", "mmap", "_xxsubinterpreters",
})
# Audit events that start processes, signal them, open sockets or load native code.
_BLOCKED_EVENTS = ("os.fork", "os.forkpty", "os.exec", "os.spawn", "os.posix_spawn", "os.system", "os.kill",
                   "os.killpg", "os.setuid", "subprocess.", "socket.", "ctypes.", "pty.", "os.startfile", "webbrowser.")
# Events that change the filesystem: allowed inside the working directory only.
_PATH_EVENTS = ("os.remove", "os.rename", "os.mkdir", "os.rmdir", "os.chmod", "os.chown", "os.symlink", "os.link",
                "os.truncate", "os.utime", "os.chdir", "os.listdir", "os.scandir", "shutil.rmtree", "shutil.copyfile")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def _limit(kind: int, value: int, hard: int | None = None) -> None:
    try:
        resource.setrlimit(kind, (value, value if hard is None else hard))
    except (ValueError, OSError):
        pass  # a hard limit already lower than ours stays as it is


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + os.sep)


def _make_hook(workdir: str, readable: tuple[str, ...]):
    def hook(event: str, args: tuple) -> None:
        if event == "import":
            if args[0].split(".")[0] in _BLOCKED_MODULES:
                raise ImportError(f"sandbox: module {args[0]} is not available")
        elif event == "open":
            path, mode, flags = args
            if isinstance(path, int) or path is None:
                return
            real = os.path.realpath(os.fsdecode(path))
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & _WRITE_FLAGS)
            if _inside(real, workdir) or (not writing and any(_inside(real, folder) for folder in readable)):
                return
            raise PermissionError(f"sandbox: {real} is outside the task's directory")
        elif event.startswith(_BLOCKED_EVENTS):
            raise PermissionError(f"sandbox: {event} is not allowed")
        elif event.startswith(_PATH_EVENTS):
            for value in args:
                if isinstance(value, (str, bytes, os.PathLike)):
                    real = os.path.realpath(os.fsdecode(value))
                    if not _inside(real, workdir):
                        raise PermissionError(f"sandbox: {real} is outside the task's directory")

    return hook


def _as_json(value: object) -> object:
    try:
        json.dumps(value, allow_nan=True)
        return value
    except (TypeError, ValueError):
        return repr(value)[:500]


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def main() -> None:
    request = json.loads(sys.stdin.read())
    results = os.fdopen(os.dup(1), "w", encoding="utf-8")
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    cpu_s = int(request["cpu_s"])

    def out_of_cpu(signum: int, frame: object) -> None:
        # The soft limit's SIGXCPU says why, whatever runs the child (unshare does not pass the signal on);
        # the hard limit a second later kills code that never returns to Python.
        results.write(json.dumps([{"ok": False, "error": f"the code used more than its {cpu_s} s of CPU time"}
                                  for _ in request["cases"]]))
        results.flush()
        os._exit(0)

    signal.signal(signal.SIGXCPU, out_of_cpu)
    _limit(resource.RLIMIT_CPU, cpu_s, cpu_s + 1)
    _limit(resource.RLIMIT_AS, int(request["memory_mb"]) << 20)
    _limit(resource.RLIMIT_FSIZE, int(request["file_mb"]) << 20)
    _limit(resource.RLIMIT_NPROC, 0)  # no new process (the kernel exempts root: the audit hook covers that)
    _limit(resource.RLIMIT_CORE, 0)
    workdir = os.path.realpath(os.getcwd())
    readable = tuple(os.path.realpath(p) for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]})
    import copy  # noqa: F401  (imported before the hook: the cases need it)
    import math  # noqa: F401

    sys.addaudithook(_make_hook(workdir, readable))
    namespace: dict = {"__name__": "__answer__", "__builtins__": __builtins__}
    outcomes: list[dict] = []
    try:
        exec(compile(request["code"], "<answer>", "exec"), namespace)
        function = namespace.get(request["function"])
        if not callable(function):
            raise NameError(f"the code defines no function {request['function']!r}")
    except BaseException as exc:  # noqa: BLE001 - whatever the code does, the result says so
        outcomes = [{"ok": False, "error": f"the code did not run: {_short(exc)}"} for _ in request["cases"]]
    else:
        for case in request["cases"]:
            try:
                value = function(*copy.deepcopy(case.get("args", [])), **copy.deepcopy(case.get("kwargs", {})))
                outcomes.append({"ok": True, "value": _as_json(value)})
            except BaseException as exc:  # noqa: BLE001
                outcomes.append({"ok": False, "error": _short(exc)})
    results.write(json.dumps(outcomes))
    results.flush()


if __name__ == "__main__":
    main()
