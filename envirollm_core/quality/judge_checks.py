"""Each judge's last `judge-check` result, kept in `$ENVIROLLM_HOME/judge_checks.json`.

A judge that failed its last check is not used for quality: the heuristic is, and the note says why.
A judge never checked is used, and its verdicts say so (`judge_check: never run`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from envirollm_core.paths import envirollm_home


@dataclass(frozen=True)
class JudgeCheckRecord:
    judge: str  # the judge's label, `judge:MODEL@HOST`
    passed: bool
    checked_at: str  # ISO 8601, UTC
    canaries: dict[str, bool | None]  # canary name -> passed (None: unscored)


def judge_checks_path() -> Path:
    return envirollm_home() / "judge_checks.json"


def load_judge_checks() -> dict[str, JudgeCheckRecord]:
    """Every judge's last check, by label; an unreadable file counts as no check (it is rewritten on the next)."""
    try:
        raw = json.loads(judge_checks_path().read_text(encoding="utf-8"))
        return {label: JudgeCheckRecord(**record) for label, record in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def last_judge_check(label: str) -> JudgeCheckRecord | None:
    return load_judge_checks().get(label)


def record_judge_check(label: str, canaries: dict[str, bool | None]) -> JudgeCheckRecord:
    """Keep this check as the judge's last, replacing the one before (written whole, then renamed)."""
    record = JudgeCheckRecord(label, all(v is True for v in canaries.values()),
                              datetime.now(timezone.utc).isoformat(timespec="seconds"), dict(canaries))
    records = {**load_judge_checks(), label: record}
    path = judge_checks_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps({k: asdict(v) for k, v in records.items()}, indent=2), encoding="utf-8")
    os.replace(temporary, path)
    return record
