"""Each judge's last `judge-check` result, kept in `$ENVIROLLM_HOME/judge_checks.json`.

Only a judge that passed its last check grades (issue 11: an executed check, else a judge that passed
`judge-check`, else the rough heuristic). A judge never checked is checked on first use, once, with the same
canaries as `envirollm judge-check`, and the result is kept as if the user had run it; a judge that failed, or
could not be checked (down, slow), is passed over for the heuristic, and the note says why and what to run.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from envirollm_core.paths import envirollm_home

if TYPE_CHECKING:
    from envirollm_core.quality.judge import JudgeEndpoint


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
    record = _new_record(label, canaries)
    _keep(record)
    return record


def _new_record(label: str, canaries: dict[str, bool | None]) -> JudgeCheckRecord:
    return JudgeCheckRecord(label, all(v is True for v in canaries.values()),
                            datetime.now(timezone.utc).isoformat(timespec="seconds"), dict(canaries))


def _keep(record: JudgeCheckRecord) -> None:
    label = record.judge
    records = {**load_judge_checks(), label: record}
    path = judge_checks_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps({k: asdict(v) for k, v in records.items()}, indent=2), encoding="utf-8")
    os.replace(temporary, path)


def judge_may_grade(endpoint: JudgeEndpoint) -> tuple[bool, str]:
    """Whether this judge may grade, and if not, why (one line naming the command that fixes it).

    A judge with no check kept is checked now: five canary answers graded (`run_canaries`), the outcome kept
    like a manual `judge-check`, so it is asked once, not once per batch. A check the judge could not answer at
    all (down, timed out, refused) is not kept: the next use tries again."""
    check = last_judge_check(endpoint.label)
    if check is None:
        from envirollm_core.quality.canaries import run_canaries  # it grades with the judge module, which imports this

        outcomes = run_canaries(endpoint)
        if all(o.passed is None for o in outcomes):
            error = next((e for o in outcomes for e in o.errors), "none of its replies could be read")
            return False, (f"{endpoint.label} could not be checked before grading ({error}): the rough heuristic is "
                           f"used instead; run `envirollm judge-check` once the judge answers")
        check = _new_record(endpoint.label, {o.name: o.passed for o in outcomes})
        try:
            _keep(check)
        except OSError:
            pass  # not kept: the judge is checked again next time, and this outcome still decides now
    if not check.passed:
        return False, (f"{endpoint.label} failed its last judge-check ({check.checked_at}): the rough heuristic "
                       "is used instead; run `envirollm judge-check` again once the judge is fixed")
    return True, ""
