"""A scripted server that goes away and comes back at the same address."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

from tests.fakes.scripted_server import Route, ScriptedServer


@dataclass
class PinnedServer(ScriptedServer):
    """A scripted server bound to a port the caller picks, so that a restarted one answers at the same URL."""

    pinned_port: int = 0

    def start(self) -> PinnedServer:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.pinned_port))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        accept = threading.Thread(target=self._accept_loop, daemon=True)
        accept.start()
        self._threads.append(accept)
        return self


class RestartingServer:
    """One address, served by a fresh scripted server after each `restart()`; `down()` leaves it refusing."""

    def __init__(self, routes: dict[tuple[str, str], Route]) -> None:
        self.routes = routes
        self.current: ScriptedServer | None = PinnedServer(routes).start()
        self.port = self.current.port
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list = []

    def down(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.requests.extend(self.current.requests)
            self.current = None

    def restart(self) -> None:
        self.down()
        self.current = PinnedServer(self.routes, pinned_port=self.port).start()

    def stop(self) -> None:
        self.down()
