"""Reference answers and checks for reference-guided grading.

A caller may pass references by prompt hash; presets in `data/presets.json`
that carry a `reference` (an answer) or a `check` (what a right answer must
do, e.g. for code or SQL) are found by the run's preset name.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from envirollm_core.paths import DATA_DIR
from envirollm_core.results import RunResult

PRESETS_PATH = DATA_DIR / "presets.json"


def _as_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _preset_items(data: Any) -> list[dict]:
    if isinstance(data, dict) and isinstance(data.get("presets"), (list, dict)):
        data = data["presets"]
    if isinstance(data, dict):
        return [{"name": name, **value} for name, value in data.items() if isinstance(value, dict)]
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


@functools.cache
def preset_references(path: Path = PRESETS_PATH) -> dict[str, str]:
    """Preset name -> its reference answer and/or check, as text for the judge."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    found: dict[str, str] = {}
    for item in _preset_items(data):
        name = item.get("name") or item.get("id")
        parts = [
            f"{label}: {text}"
            for label, text in (("Reference answer", _as_text(item.get("reference"))), ("Check", _as_text(item.get("check"))))
            if text
        ]
        if name and parts:
            found[str(name)] = "\n".join(parts)
    return found


def reference_for(run: RunResult, references: Mapping[str, str] | None = None) -> str | None:
    """The reference for a run: the caller's (by prompt hash) first, else its preset's."""
    if references and references.get(run.prompt_hash):
        return references[run.prompt_hash]
    return preset_references().get(run.preset) if run.preset else None
