"""Entry point of the embedded engine's child process.

Runs llama-cpp-python's server in this process and exits as soon as the
parent is gone (re-parented), so the engine never outlives EnviroLLM even
when EnviroLLM is killed with SIGKILL.

It also streams tokens without stopping the decoder between them
(`_decode_ahead_publisher`): llama-cpp-python's own publisher asks a worker
thread for one token at a time and, between two tokens, waits for the event
loop to wake, encode, queue and check the client, then for a worker thread to
wake again. On two cores every such pause stalls llama.cpp's threads, which
meet at a barrier per layer (bench/RESULTS.md, "engine").
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


def _decode_ahead_publisher():
    """llama-cpp-python's `get_event_publisher`, same contract, with one thread decoding the whole answer.

    The decoding thread encodes each chunk and hands it over without waiting (a deque, and a wake-up of the
    event loop); the loop sends what has arrived and checks the client between sends. A client that leaves,
    or a newer request when `interrupt_requests` is on, stops the decoder at its next token, as before."""
    import asyncio
    import contextlib
    import json
    from collections import deque

    import anyio
    from llama_cpp.server import app as server_app

    end = object()

    async def get_event_publisher(request, inner_send_chan, body, body_model, llama_call, kwargs):
        settings = next(server_app.get_server_settings())
        interrupt_requests = settings.interrupt_requests if settings else False
        async with contextlib.asynccontextmanager(server_app.get_llama_proxy)() as llama_proxy:
            llama = server_app.prepare_request_resources(body, llama_proxy, body_model, kwargs)
            loop = asyncio.get_running_loop()
            arrived = asyncio.Event()
            pieces: deque = deque()
            stop = threading.Event()

            def decode() -> None:
                try:
                    for chunk in llama_call(llama, **kwargs):
                        pieces.append(json.dumps(chunk))
                        loop.call_soon_threadsafe(arrived.set)
                        if stop.is_set():
                            return
                        if interrupt_requests and server_app.llama_outer_lock.locked():
                            break  # a newer request waits: end this stream with [DONE], as the server does
                    pieces.append(end)
                except BaseException as exc:  # the loop re-raises it where the server's own publisher would
                    pieces.append(exc)
                finally:
                    loop.call_soon_threadsafe(arrived.set)

            async def send() -> None:
                while True:
                    await arrived.wait()
                    arrived.clear()
                    while pieces:
                        piece = pieces.popleft()
                        if piece is end:
                            await inner_send_chan.send(dict(data="[DONE]"))
                            return
                        if isinstance(piece, BaseException):
                            raise piece
                        await inner_send_chan.send(dict(data=piece))
                    if await request.is_disconnected():
                        return

            async with inner_send_chan, anyio.create_task_group() as group:
                group.start_soon(anyio.to_thread.run_sync, decode)
                try:
                    await send()
                finally:
                    stop.set()  # the task group then waits for the decoder, which holds the model

    server_app.get_event_publisher = get_event_publisher


def main() -> None:
    args = sys.argv[1:]
    parent_pid = int(args[args.index("--parent-pid") + 1])
    server_args = args[args.index("--") + 1 :]
    if os.getppid() != parent_pid:
        return
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()
    if "--server-publisher" not in args[: args.index("--")]:
        _decode_ahead_publisher()
    sys.argv = ["llama_cpp.server", *server_args]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
