"""One factory from a choice of server to the `Backend` that talks to it.

The CLI's benchmark commands, the load sweep and the app's background jobs
all say which server they mean with a `BackendChoice` and open its backend
here, so a server is talked to the same way whoever asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from envirollm_core.backends.base import DEFAULT_READ_TIMEOUT_S, DEFAULT_RUN_TIMEOUT_S, Backend
from envirollm_core.backends.server_metadata import LMSTUDIO_URL
from envirollm_core.errors import UsageError

if TYPE_CHECKING:  # llama-cpp's engine module, for the one kind that needs it
    from envirollm_core.backends.embedded import EmbeddedEngine

BackendKind = Literal["ollama", "lmstudio", "openai", "embedded"]
BACKEND_TITLES: dict[BackendKind, str] = {
    "ollama": "Ollama",
    "lmstudio": "LM Studio",
    "openai": "Custom OpenAI-compatible server",
    "embedded": "Embedded engine (SmolLM2-135M-Instruct, Gemma 3 270M base)",
}


@dataclass(frozen=True)
class BackendChoice:
    """Which server to talk to, and how long to wait for it.

    `url` None means the kind's default ($OLLAMA_HOST else http://localhost:11434 for Ollama, LM Studio's
    port for LM Studio); a custom server needs one; the embedded engine has its own. `api_key` is used for
    the requests only: kept out of the repr, never stored."""

    kind: BackendKind
    url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    run_timeout_s: float = DEFAULT_RUN_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.kind not in BACKEND_TITLES:
            raise UsageError(f"unknown backend {self.kind!r}; choose {', '.join(BACKEND_TITLES)}")
        if self.kind == "openai" and not (self.url or "").strip():
            raise UsageError("a custom OpenAI-compatible server needs its URL, e.g. http://localhost:8000/v1")

    @property
    def title(self) -> str:
        return BACKEND_TITLES[self.kind]


def open_backend(choice: BackendChoice, engine: EmbeddedEngine | None = None) -> Backend:
    """The backend for the choice; its caller closes it.

    Kind `embedded` talks to `engine`, which its caller has started and stops (a command's own engine, or
    the app's shared one): closing the backend closes its HTTP client only."""
    if choice.kind == "ollama":
        from envirollm_core.backends.ollama import OllamaBackend

        return OllamaBackend(choice.url, read_timeout_s=choice.read_timeout_s, run_timeout_s=choice.run_timeout_s)
    if choice.kind == "embedded":
        from envirollm_core.backends.embedded import embedded_backend

        if engine is None:
            raise TypeError("open_backend: the embedded backend talks to a running engine; pass it")
        return embedded_backend(engine, read_timeout_s=choice.read_timeout_s, run_timeout_s=choice.run_timeout_s)
    from envirollm_core.backends.openai_compat import OpenAIBackend

    if choice.kind == "lmstudio":
        return OpenAIBackend(choice.url or LMSTUDIO_URL, api_key=choice.api_key, read_timeout_s=choice.read_timeout_s,
                             run_timeout_s=choice.run_timeout_s, name="lmstudio")
    return OpenAIBackend(choice.url or "", api_key=choice.api_key, read_timeout_s=choice.read_timeout_s,
                         run_timeout_s=choice.run_timeout_s)
