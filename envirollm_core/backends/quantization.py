"""Quantization labels: from server metadata, GGUF metadata, or the model's name.

Labels are normalized to one spelling so runs group together whatever the
source: GGUF types in lower case (`q4_k_m`, `q8_0`, `iq2_xxs`), floats as
`fp16`/`bf16`/`fp32`/`fp8`, and the other families as their usual names
(`awq`, `gptq`, `exl2`, `nf4`, `4bit`, `int8`, `w4a16`, `mxfp4`).
"""

from __future__ import annotations

import re
from pathlib import Path

from envirollm_core.backends.gguf import GGUFError, read_gguf_metadata

# llama.cpp's `llama_ftype` (GGUF `general.file_type`), as llama-cpp-python 0.3.36 exposes it.
GGUF_FILE_TYPES = {
    0: "fp32", 1: "fp16", 2: "q4_0", 3: "q4_1", 7: "q8_0", 8: "q5_0", 9: "q5_1", 10: "q2_k",
    11: "q3_k_s", 12: "q3_k_m", 13: "q3_k_l", 14: "q4_k_s", 15: "q4_k_m", 16: "q5_k_s", 17: "q5_k_m",
    18: "q6_k", 19: "iq2_xxs", 20: "iq2_xs", 21: "q2_k_s", 22: "iq3_xs", 23: "iq3_xxs", 24: "iq1_s",
    25: "iq4_nl", 26: "iq3_s", 27: "iq3_m", 28: "iq2_s", 29: "iq2_m", 30: "iq4_xs", 31: "iq1_m",
    32: "bf16", 36: "tq1_0", 37: "tq2_0", 38: "mxfp4", 39: "nvfp4", 40: "q1_0", 41: "q2_0",
}

_FLOATS = {"f16": "fp16", "fp16": "fp16", "float16": "fp16", "half": "fp16", "bf16": "bf16", "bfloat16": "bf16",
           "f32": "fp32", "fp32": "fp32", "float32": "fp32", "fp8": "fp8", "f8": "fp8"}

# Longest spellings first: the regex takes the first alternative that matches at a position.
_QUANT = re.compile(
    r"(?<![a-z0-9])("
    r"iq\d_(?:xxs|xs|nl|s|m)"
    r"|q\d_k_[sml]|q\d_k|q\d_[01]|tq\d_0"
    r"|mxfp4|nvfp4|bfloat16|float16|float32|bf16|fp16|fp32|fp8|f16|f32|f8"
    r"|awq|gptq|exl2|nf4|hqq|int[248]|w\d{1,2}a\d{1,2}|\d{1,2}-?bits?"
    r"|q[2-8]"
    r")(?![a-z0-9])"
)


def normalize_quantization(label: str) -> str | None:
    """One spelling for a quantization label a server or a name gives (`Q4_K_M` -> `q4_k_m`, `F16` -> `fp16`)."""
    text = label.strip().lower().replace("-", "_")
    if not text or text in ("unknown", "none", "n/a"):
        return None
    if text in _FLOATS:
        return _FLOATS[text]
    match = _QUANT.search(text.replace("_bit", "bit"))
    if match is None:
        return text
    return _canonical(match.group(1))


def quantization_from_name(model_name: str) -> str | None:
    """The quantization a model's name states (`llama3:8b-instruct-q4_K_M`, `Llama-2-7B-AWQ`), else None."""
    match = _QUANT.search(model_name.lower())
    return _canonical(match.group(1)) if match else None


def quantization_from_gguf(path: Path) -> str | None:
    """The quantization a GGUF file's `general.file_type` states, else None (unreadable file included)."""
    try:
        file_type = read_gguf_metadata(path).get("general.file_type")
    except GGUFError:
        return None
    return GGUF_FILE_TYPES.get(file_type) if isinstance(file_type, int) else None


def _canonical(token: str) -> str:
    if token in _FLOATS:
        return _FLOATS[token]
    bits = re.fullmatch(r"(\d{1,2})-?bits?", token)
    return f"{bits.group(1)}bit" if bits else token


def resolve_quantization(
    server_label: str | None = None, gguf_path: Path | None = None, model_name: str | None = None
) -> tuple[str | None, str | None]:
    """(label, source): the server's metadata first, then the GGUF file, then the model's name."""
    if server_label and (label := normalize_quantization(server_label)):
        return label, "server"
    if gguf_path is not None and (label := quantization_from_gguf(gguf_path)):
        return label, "gguf"
    if model_name and (label := quantization_from_name(model_name)):
        return label, "name"
    return None, None
