"""What an OpenAI-compatible server is, and what it says about its models.

Servers that speak the OpenAI API also answer their own endpoints:
LM Studio's `/api/v0/models` (quantization, architecture, context length),
llama.cpp's `/props` (the GGUF path, its build, the context size) and vLLM's
`/version`. Each probe is short and a failure only means "not that kind":
metadata is a bonus, never a reason for a run to fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PROBE_TIMEOUT_S = 2.0
LMSTUDIO_URL = "http://localhost:1234/v1"  # LM Studio's default server address


@dataclass(frozen=True)
class ServerDescription:
    kind: str  # "lmstudio" | "llamacpp" | "vllm" | "openai" (unknown kind)
    version: str | None = None
    props: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelMetadata:
    quantization: str | None = None  # the server's own label, not normalized
    gguf_path: Path | None = None
    family: str | None = None
    parameter_size: str | None = None
    context_length: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


def server_root(base_url: str) -> str:
    """`http://host:1234/v1` -> `http://host:1234`: the servers' own endpoints live beside `/v1`."""
    return base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url


def _get_json(url: str, api_key: str | None) -> Any:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(url, headers=headers, timeout=PROBE_TIMEOUT_S)
        if response.status_code != 200:
            return None
        return response.json()
    except (httpx.HTTPError, ValueError):
        return None


def describe_openai_server(base_url: str, api_key: str | None = None) -> ServerDescription:
    root = server_root(base_url)
    lmstudio = _get_json(f"{root}/api/v0/models", api_key)
    if isinstance(lmstudio, dict) and isinstance(lmstudio.get("data"), list):
        return ServerDescription("lmstudio")
    props = _get_json(f"{root}/props", api_key)
    if isinstance(props, dict) and ("default_generation_settings" in props or "model_path" in props):
        return ServerDescription("llamacpp", version=_text(props.get("build_info")), props=props)
    version = _get_json(f"{root}/version", api_key)
    if isinstance(version, dict) and isinstance(version.get("version"), str):
        return ServerDescription("vllm", version=version["version"])
    return ServerDescription("openai")


def model_metadata(server: ServerDescription, base_url: str, api_key: str | None, model: str) -> ModelMetadata:
    root = server_root(base_url)
    if server.kind == "lmstudio":
        return _lmstudio_metadata(_get_json(f"{root}/api/v0/models/{model}", api_key))
    if server.kind == "llamacpp":
        return _llamacpp_metadata(server.props)
    if server.kind == "vllm":
        return _vllm_metadata(_get_json(f"{base_url}/models", api_key), model)
    return ModelMetadata()


def _lmstudio_metadata(entry: Any) -> ModelMetadata:
    if not isinstance(entry, dict):
        return ModelMetadata()
    return ModelMetadata(
        quantization=_text(entry.get("quantization")),
        family=_text(entry.get("arch")),
        context_length=_positive_int(entry.get("max_context_length")),
        details={k: entry[k] for k in ("type", "publisher", "arch", "compatibility_type", "state") if k in entry},
    )


def _llamacpp_metadata(props: dict[str, Any]) -> ModelMetadata:
    settings = props.get("default_generation_settings") or {}
    path = _text(props.get("model_path"))
    # The path is on the server's machine: read its GGUF header only when it is here too.
    gguf = Path(path) if path and Path(path).is_file() else None
    return ModelMetadata(
        gguf_path=gguf,
        context_length=_positive_int(settings.get("n_ctx") if isinstance(settings, dict) else None),
        details={"model_path": path} if path else {},
    )


def _vllm_metadata(models: Any, model: str) -> ModelMetadata:
    entries = models.get("data") if isinstance(models, dict) else None
    for entry in entries or ():
        if isinstance(entry, dict) and entry.get("id") == model:
            return ModelMetadata(
                context_length=_positive_int(entry.get("max_model_len")),
                details={k: entry[k] for k in ("root", "max_model_len") if k in entry},
            )
    return ModelMetadata()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
