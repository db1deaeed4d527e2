"""Entry point of the embedded engine's child process.

Runs llama-cpp-python's server in this process and exits as soon as the
parent is gone (re-parented), so the engine never outlives EnviroLLM even
when EnviroLLM is killed with SIGKILL.
"""

import os
import runpy
import sys
import threading
import time

PARENT_POLL_S = 0.5


def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_S)
    os._exit(0)


def main() -> None:
    args = sys.argv[1:]
    parent_pid = int(args[args.index("--parent-pid") + 1])
    server_args = args[args.index("--") + 1 :]
    if os.getppid() != parent_pid:
        return
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()
    sys.argv = ["llama_cpp.server", *server_args]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
