"""Reading a judge's reply without guessing.

A score is taken only where the reply marks it as one: a JSON field named for
a criterion or for the overall score, a `[[n]]` rating, or a labelled
`Score: n` / `Rating: n/5`. Bare numbers are never taken: the paper's judge
read "On a 0-100 scale: 85" as 0 by grabbing the first number. A value off the
1-5 scale, or two ratings that disagree, make the reply unparseable (None,
counted), never a score of 0.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Literal

from envirollm_core.quality.rubric import CRITERIA, SCALE_MAX, SCALE_MIN

OVERALL = "overall"
_OVERALL_KEYS = ("score", "rating", "overall", "overall_score", "final_score")
_NUMBER = r"(\d+(?:\.\d+)?)"
_BRACKETED = re.compile(r"\[\[\s*" + _NUMBER + r"\s*\]\]")
_LABELLED_BRACKETED = re.compile(
    r"\b(" + "|".join(CRITERIA) + r")\b[^\[\]\n]{0,20}\[\[\s*" + _NUMBER + r"\s*\]\]", re.IGNORECASE
)
# "Score: 4", "Rating = 4/5", "accuracy: 3 out of 5", and `"accuracy": 4` of a JSON reply cut off
# before its closing brace; the label must touch the number.
_LABELLED_PLAIN = re.compile(
    r"\b(" + "|".join((*CRITERIA, "score", "rating", "overall")) + r")\b[\"']?\s*(?:is|:|=|-)\s*\**\s*"
    + _NUMBER + r"(?:\s*(?:/|out of)\s*(\d+))?",
    re.IGNORECASE,
)
_WINNER_BRACKETED = re.compile(r"\[\[\s*(A|B|C|tie)\s*\]\]", re.IGNORECASE)

Winner = Literal["A", "B", "tie"]


@dataclass(frozen=True)
class ParsedVerdict:
    """Raw 1-5 scores by criterion (or `overall` alone), or the reason there are none."""

    scores: dict[str, float] = field(default_factory=dict)
    reasoning: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.scores)

    @property
    def mean_raw(self) -> float | None:
        return sum(self.scores.values()) / len(self.scores) if self.ok else None


def _on_scale(value: object) -> float | None:
    """A 1-5 number from a JSON value or numeric string ("4", "4/5"); None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        match = re.fullmatch(r"\s*" + _NUMBER + r"\s*(?:/\s*(\d+))?\s*", value)
        if not match or (match.group(2) and int(match.group(2)) != SCALE_MAX):
            return None
        value = float(match.group(1))
    if isinstance(value, (int, float)) and SCALE_MIN <= value <= SCALE_MAX:
        return float(value)
    return None


def json_objects(text: str) -> list[dict]:
    """Every JSON object embedded in the text (code fences and prose around it are fine)."""
    decoder = json.JSONDecoder(strict=False)  # small models put raw newlines inside strings
    found: list[dict] = []
    position = text.find("{")
    while position != -1:
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            position = text.find("{", position + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        position = text.find("{", end)
    return found


def _from_json(obj: dict) -> ParsedVerdict | None:
    keys = {str(k).lower(): v for k, v in obj.items()}
    for nested in [v for v in keys.values() if isinstance(v, dict)]:  # {"scores": {"accuracy": 4, ...}}
        keys.update({str(k).lower(): v for k, v in nested.items() if str(k).lower() not in keys})
    reasoning = str(keys.get("reasoning") or keys.get("explanation") or "")
    present = {name: keys[name] for name in CRITERIA if name in keys}
    if not present:
        overall_key = next((k for k in _OVERALL_KEYS if k in keys), None)
        if overall_key is None:
            return None
        present = {OVERALL: keys[overall_key]}
    scores: dict[str, float] = {}
    for name, value in present.items():
        score = _on_scale(value)
        if score is None:
            return ParsedVerdict(reasoning=reasoning, error=f"{name}={value!r} is not on the {SCALE_MIN}-{SCALE_MAX} scale")
        scores[name] = score
    return ParsedVerdict(scores=scores, reasoning=reasoning)


def _collect(pairs: list[tuple[str, str, str | None]]) -> ParsedVerdict:
    """Scores from (label, number, denominator) matches; a label rated twice differently is ambiguous."""
    scores: dict[str, float] = {}
    for label, number, denominator in pairs:
        name = label.lower()
        name = OVERALL if name not in CRITERIA else name
        if denominator is not None and int(denominator) != SCALE_MAX:
            return ParsedVerdict(error=f"{name} rated {number}/{denominator}, not on the 1-5 scale")
        score = _on_scale(number)
        if score is None:
            return ParsedVerdict(error=f"{name} rated {number}, not on the {SCALE_MIN}-{SCALE_MAX} scale")
        if name in scores and scores[name] != score:
            return ParsedVerdict(error=f"{name} rated twice with different values")
        scores[name] = score
    if OVERALL in scores and len(scores) > 1:
        del scores[OVERALL]  # the criteria are the rubric; an extra overall line adds nothing
    return ParsedVerdict(scores=scores)


def parse_verdict(text: str | None) -> ParsedVerdict:
    """Raw scores from a judge's reply in any of the three output modes."""
    text = text or ""
    if not text.strip():
        return ParsedVerdict(error="the judge replied with nothing")
    for obj in json_objects(text):
        verdict = _from_json(obj)
        if verdict is not None:
            return verdict
    labelled = [(m.group(1), m.group(2), None) for m in _LABELLED_BRACKETED.finditer(text)]
    if labelled:
        return _collect(labelled)
    bracketed = _BRACKETED.findall(text)
    if bracketed:
        return _collect([(OVERALL, number, None) for number in bracketed])
    plain = [(m.group(1), m.group(2), m.group(3)) for m in _LABELLED_PLAIN.finditer(text)]
    if plain:
        return _collect(plain)
    return ParsedVerdict(error=f"no rating found in the judge's reply: {_snippet(text)}")


def parse_winner(text: str | None) -> tuple[Winner | None, str]:
    """The pairwise verdict ("A", "B", "tie") from a judge's reply, or None and why."""
    text = text or ""
    for obj in json_objects(text):
        keys = {str(k).lower(): v for k, v in obj.items()}
        if "winner" in keys:
            value = str(keys["winner"]).strip().lower()
            winner = {"a": "A", "b": "B", "tie": "tie", "c": "tie"}.get(value)
            return (winner, "") if winner else (None, f"winner={keys['winner']!r} is not A, B or tie")
    labels = {m.upper() for m in _WINNER_BRACKETED.findall(text)}
    labels = {"tie" if label in ("C", "TIE") else label for label in labels}
    if len(labels) == 1:
        return labels.pop(), ""  # type: ignore[return-value]
    if len(labels) > 1:
        return None, "the judge gave more than one verdict"
    return None, f"no verdict found in the judge's reply: {_snippet(text)}"


def _snippet(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[:limit] + "...")
