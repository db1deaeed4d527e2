"""Files that decode to far more than their size: the three of issue 18, made on the spot."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from envirollm_core.store.exchange import EXPORT_COLUMNS


def dictionary_parquet(path: Path, rows: int = 50_000_000, value: str = "x" * 64, chunk_rows: int = 1_000_000) -> Path:
    """One dictionary-encoded text column: `rows` rows of the same value, a file of about a hundred KB."""
    chunk = pa.table({"Model": pa.DictionaryArray.from_arrays(pa.array([0] * chunk_rows, pa.int32()), pa.array([value]))})
    with pq.ParquetWriter(path, chunk.schema, compression="zstd") as writer:
        for start in range(0, rows, chunk_rows):
            writer.write_table(chunk.slice(0, min(chunk_rows, rows - start)))
    return path


def wide_value_parquet(path: Path, rows: int = 2000, value_chars: int = 8 * 2**20) -> Path:
    """Few rows, under every row limit, each referring to one 8 MiB text: gigabytes once expanded."""
    columns = {name: pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array(["v" * value_chars]))
               if name == "response" else pa.array(["1"] * rows) for name in EXPORT_COLUMNS}
    pq.write_table(pa.table(columns), path, compression="zstd")
    return path


def big_csv(path: Path, megabytes: int = 45) -> Path:
    """An original-EnviroLLM CSV of `megabytes` MB: many small, valid runs."""
    header = "ID,Model,Timestamp,Status,Source,Energy (Wh),Energy/Token (Wh),Duration (s),Speed (tok/s),Quality Score,CPU %,Memory %,Power (W),Prompt,Response Preview\n"
    with open(path, "w", encoding="utf-8") as file:
        file.write(header)
        number = 0
        while file.tell() < megabytes * 10**6:
            file.write(f"r{number},m,2025-01-01T00:00:00,completed,ollama,0.1,0.001,1,10,50,5,5,60,"
                       f"prompt {number % 50},{'answer ' * 20}\n")
            number += 1
    return path


def deep_json(path: Path, depth: int = 1_000_000) -> Path:
    """A JSON list nested a million deep (2 MB)."""
    path.write_text("[" * depth + "]" * depth, encoding="utf-8")
    return path
