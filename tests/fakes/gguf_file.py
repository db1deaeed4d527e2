"""A minimal GGUF file, written byte by byte as the GGUF spec lays it out."""

from __future__ import annotations

import struct
from pathlib import Path


def write_gguf(path: Path, file_type: int, extra_array: int = 0) -> Path:
    """A minimal GGUF v3 header: a string, a long string array (skipped) and `general.file_type`."""

    def string(text: str) -> bytes:
        data = text.encode()
        return struct.pack("<Q", len(data)) + data

    kvs = [string("general.architecture") + struct.pack("<I", 8) + string("llama")]
    if extra_array:
        items = b"".join(string(f"tok{i}") for i in range(extra_array))
        kvs.append(string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, extra_array) + items)
    kvs.append(string("general.file_type") + struct.pack("<II", 4, file_type))
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + b"".join(kvs))
    return path
