"""Read the key-value metadata at the head of a GGUF model file.

Only the header is read (the tensors are never touched), so this is quick
even for a 40 GB file. Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
(little-endian; magic `GGUF`, version, tensor count, key-value count, then
each key as a length-prefixed string, a value type and the value).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

from envirollm_core.errors import UsageError

# value type -> struct format for the fixed-size scalars
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_ARRAY_PREVIEW = 16  # long arrays (the tokenizer's 100k+ tokens) are skipped, not kept
_MAX_STRING_BYTES = 1 << 26  # a longer "string" means a corrupt header, not a 64 MB chat template


class GGUFError(UsageError):
    """The file is not a readable GGUF file."""


def read_gguf_metadata(path: Path) -> dict[str, Any]:
    """All scalar and string metadata of a GGUF file; arrays longer than a few items are left out."""
    try:
        with open(path, "rb") as handle:
            return _read_header(handle, path)
    except OSError as exc:
        raise GGUFError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (struct.error, UnicodeDecodeError, ValueError) as exc:
        raise GGUFError(f"{path} is not a valid GGUF file ({exc})") from None


def _read_header(handle: BinaryIO, path: Path) -> dict[str, Any]:
    if handle.read(4) != b"GGUF":
        raise GGUFError(f"{path} is not a GGUF file (no GGUF magic)")
    version = _unpack(handle, "<I")
    if version < 2:
        raise GGUFError(f"{path} is GGUF version {version}; only versions 2 and later are read")
    _unpack(handle, "<Q")  # tensor count
    kv_count = _unpack(handle, "<Q")
    metadata: dict[str, Any] = {"gguf.version": version}
    for _ in range(kv_count):
        key = _read_string(handle)
        value = _read_value(handle, _unpack(handle, "<I"))
        if value is not _SKIPPED:
            metadata[key] = value
    return metadata


_SKIPPED = object()


def _unpack(handle: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = handle.read(size)
    if len(data) != size:
        raise ValueError("the file ends inside its header")
    return struct.unpack(fmt, data)[0]


def _read_string(handle: BinaryIO) -> str:
    length = _unpack(handle, "<Q")
    if length > _MAX_STRING_BYTES:
        raise ValueError(f"a string of {length} bytes")
    data = handle.read(length)
    if len(data) != length:
        raise ValueError("the file ends inside a string")
    return data.decode("utf-8")


def _read_value(handle: BinaryIO, value_type: int) -> Any:
    if value_type in _SCALARS:
        return _unpack(handle, _SCALARS[value_type])
    if value_type == _STRING:
        return _read_string(handle)
    if value_type == _ARRAY:
        item_type, count = _unpack(handle, "<I"), _unpack(handle, "<Q")
        if count > _ARRAY_PREVIEW:
            _skip_array(handle, item_type, count)
            return _SKIPPED
        return [_read_value(handle, item_type) for _ in range(count)]
    raise ValueError(f"unknown value type {value_type}")


def _skip_array(handle: BinaryIO, item_type: int, count: int) -> None:
    if item_type in _SCALARS:
        handle.seek(struct.calcsize(_SCALARS[item_type]) * count, 1)
        return
    for _ in range(count):
        if item_type == _STRING:
            length = _unpack(handle, "<Q")
            if length > _MAX_STRING_BYTES:
                raise ValueError(f"a string of {length} bytes")
            handle.seek(length, 1)
        else:
            _read_value(handle, item_type)
