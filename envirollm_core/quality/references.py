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

from envirollm_core.paths import data_file
from envirollm_core.records import RunResult

PRESETS_PATH = data_file("presets.json")


def _as_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def check_text(check: Any) -> str | None:
    """A preset's machine-checkable test, in words a judge reads; unknown kinds as JSON."""
    if not isinstance(check, dict):
        return _as_text(check)
    kind = check.get("type")
    if kind == "python-function" and check.get("function"):
        name = check["function"]
        cases = "; ".join(
            f"{name}({', '.join(json.dumps(a) for a in case.get('args', []))}) returns {json.dumps(case.get('expected'))}"
            for case in check.get("cases", [])
            if isinstance(case, dict)
        )
        return f"The answer must define a Python function `{name}` such that: {cases}."
    if kind == "contains" and isinstance(check.get("all"), list):
        items = "; ".join(" or ".join(str(item).split("|")) for item in check["all"])
        return f"The answer must state each of: {items}."
    return _as_text(check)


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
            for label, text in (("Reference answer", _as_text(item.get("reference"))), ("Check", check_text(item.get("check"))))
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
