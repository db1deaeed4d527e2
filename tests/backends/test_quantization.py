"""Quantization from server metadata, GGUF headers and model names."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envirollm_core.backends.embedded import GEMMA3, SMOLLM2, model_path
from envirollm_core.backends.gguf import GGUFError, read_gguf_metadata
from envirollm_core.backends.quantization import (
    normalize_quantization,
    quantization_from_gguf,
    quantization_from_name,
    resolve_quantization,
)
from tests.fakes.gguf_file import write_gguf


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("llama3:8b-instruct-q4_K_M", "q4_k_m"),
        ("llama-3-8b-instruct.Q8_0.gguf", "q8_0"),
        ("mistral-7b-instruct-v0.2.Q5_K_S.gguf", "q5_k_s"),
        ("Qwen2.5-7B-Instruct-IQ2_XXS.gguf", "iq2_xxs"),
        ("deepseek-r1:1.5b-qwen-distill-q8_0", "q8_0"),
        ("TheBloke/Llama-2-7B-AWQ", "awq"),
        ("Meta-Llama-3-8B-Instruct-GPTQ", "gptq"),
        ("mlx-community/Mistral-7B-Instruct-v0.3-4bit", "4bit"),
        ("some-model-8-bit", "8bit"),
        ("llama-3.1-8b-instruct-w4a16", "w4a16"),
        ("gemma-2-9b-it-fp16", "fp16"),
        ("gemma-2-9b-it-F16", "fp16"),
        ("qwen2.5-bf16", "bf16"),
        ("gpt-oss-20b-MXFP4", "mxfp4"),
        ("phi3:mini", None),
        ("qwen2.5:7b", None),
        ("llama3:8b", None),
        ("gemma3:1b", None),
        ("awqward-model", None),  # a word that starts with a label is not one
    ],
)
def test_quantization_from_name(name, label):
    assert quantization_from_name(name) == label


@pytest.mark.parametrize(
    ("label", "normal"),
    [("Q4_K_M", "q4_k_m"), ("F16", "fp16"), ("BF16", "bf16"), ("Q4_0", "q4_0"), ("4bit", "4bit"),
     ("8-bit", "8bit"), ("unknown", None), ("", None), ("MLX 4bit", "4bit")],
)
def test_server_labels_are_normalized(label, normal):
    assert normalize_quantization(label) == normal


def test_gguf_header_is_read(tmp_path):
    meta = read_gguf_metadata(write_gguf(tmp_path / "m.gguf", 7, extra_array=100))
    assert meta["general.architecture"] == "llama" and meta["general.file_type"] == 7
    assert "tokenizer.ggml.tokens" not in meta  # long arrays are skipped, not kept
    assert quantization_from_gguf(tmp_path / "m.gguf") == "q8_0"


def test_the_embedded_models_ggufs_say_their_quantization():
    assert quantization_from_gguf(model_path(GEMMA3.model_id)) == "q4_k_m"
    assert read_gguf_metadata(model_path(GEMMA3.model_id))["general.architecture"] == "gemma3"
    assert quantization_from_gguf(model_path(SMOLLM2.model_id)) == "q4_1"


def test_not_a_gguf_file(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(GGUFError, match="not a GGUF file"):
        read_gguf_metadata(junk)
    assert quantization_from_gguf(junk) is None
    assert quantization_from_gguf(tmp_path / "missing.gguf") is None


@given(st.binary(max_size=200))
def test_any_bytes_after_the_magic_give_metadata_or_a_gguf_error(tail):
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".gguf") as handle:
        handle.write(b"GGUF" + tail)
        handle.flush()
        try:
            read_gguf_metadata(Path(handle.name))
        except GGUFError:
            pass


@given(st.text(max_size=80))
def test_name_parsing_never_raises(name):
    label = quantization_from_name(name)
    assert label is None or label == label.lower()


def test_resolution_order_is_server_then_gguf_then_name(tmp_path):
    gguf = write_gguf(tmp_path / "m.gguf", 1)
    assert resolve_quantization("Q4_K_M", gguf, "model-q8_0") == ("q4_k_m", "server")
    assert resolve_quantization(None, gguf, "model-q8_0") == ("fp16", "gguf")
    assert resolve_quantization("unknown", None, "model-q8_0") == ("q8_0", "name")
    assert resolve_quantization(None, tmp_path / "none.gguf", "phi3:mini") == (None, None)
