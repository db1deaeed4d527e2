"""Verified quality: a task's `check` executed against the answer, no judge asked.

Check kinds (a task's `check` object in `data/presets.json` or a suite file):
- `python-function`: the answer's code defines `function`; each case's `args`
  are passed to it in a sandboxed child (`sandbox.py`) and the value returned
  must equal `expected` (numbers within 1e-6 relative). HumanEval's pass@1 by
  execution, one check per case.
- `number`: the answer's final number equals `expected` within `tolerance`
  (relative, default 1 %). lm-evaluation-harness's exact match, tolerant of
  units, thousands separators and words around the number.
- `exact`: the answer names one of `accept` (case-insensitive, whole words).
- `contains`: the answer states every item of `all`, each a set of accepted
  spellings separated by `|`; one check per item.
- `instructions`: IFEval-style verifiable `rules`, one check per rule:
  `max-words`/`min-words` n, `bullets` n (exactly), `include`/`avoid` words,
  `json-keys` keys (the answer is a JSON object with them), `lowercase`,
  `ends-with`/`starts-with` phrase, `max-sentences` n.

Score = share of checks passed x 100, method `verified`; each check's outcome
is kept in `quality_detail["checks"]`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from envirollm_core.quality.sandbox import SandboxLimits, run_python_function
from envirollm_core.records import RunResult

VERIFIED_METHOD = "verified"
CHECKS_VERSION = "envirollm-checks-1"
DEFAULT_NUMBER_TOLERANCE = 0.01

_FENCED = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_NUMBER = re.compile(r"(?<![\w.])[-−]?\d{1,3}(?:[,\u202f ]\d{3})+(?:\.\d+)?(?![\d])|(?<![\w.])[-−]?\d+(?:\.\d+)?")
_WORDS = re.compile(r"[A-Za-z0-9']+")
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+\S", re.MULTILINE)
_CODE_LINE = re.compile(r"^(\s+\S|\s*$|def |class |import |from \S+ import |@|return\b|[A-Za-z_][\w.]* *=)")


@dataclass(frozen=True)
class CheckOutcome:
    check: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class CheckResult:
    score: float
    outcomes: tuple[CheckOutcome, ...]

    @property
    def passed(self) -> int:
        return sum(o.passed for o in self.outcomes)

    def detail(self, check: dict[str, Any]) -> dict[str, Any]:
        return {
            "checks_version": CHECKS_VERSION,
            "check_type": check.get("type"),
            "passed": self.passed,
            "total": len(self.outcomes),
            "checks": [asdict(o) for o in self.outcomes],
        }


def is_checkable(check: Any) -> bool:
    return isinstance(check, dict) and check.get("type") in _RUNNERS


def run_check(check: dict[str, Any], answer: str, limits: SandboxLimits = SandboxLimits()) -> CheckResult:
    """Execute one task's check against an answer."""
    kind = check.get("type")
    if kind not in _RUNNERS:
        raise ValueError(f"unknown check type {kind!r}; known: {', '.join(_RUNNERS)}")
    outcomes = tuple(_RUNNERS[kind](check, answer, limits))
    score = 100.0 * sum(o.passed for o in outcomes) / len(outcomes) if outcomes else 0.0
    return CheckResult(round(score, 1), outcomes)


def check_for(run: RunResult) -> dict[str, Any] | None:
    """The executable check of the task a run answered (a preset's or a suite task's), if it has one."""
    if not run.preset:
        return None
    from envirollm_core.benchmark.presets import load_presets
    from envirollm_core.benchmark.suites import suite_task

    preset = load_presets().get(run.preset)
    check = preset.check if preset is not None else None
    if check is None:
        task = suite_task(run.preset)
        check = task.check if task is not None else None
    return check if is_checkable(check) else None


# -- code ---------------------------------------------------------------------------------------


def extract_code(answer: str, function: str) -> str:
    """The Python code of an answer: its fenced blocks (those defining `function` first), else the lines
    from the first `def` on that read as code."""
    blocks = [(lang.lower(), body) for lang, body in _FENCED.findall(answer)]
    python = [body for lang, body in blocks if lang in ("", "python", "py", "python3")]
    defining = [body for body in python if re.search(rf"\bdef\s+{re.escape(function)}\s*\(", body)]
    if defining:
        return "\n\n".join(dict.fromkeys([*[b for b in python if b not in defining and "def " not in b], *defining]))
    if python:
        return "\n\n".join(python)
    lines = answer.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"\s*(def|import|from)\s", line)), None)
    if start is None:
        return answer
    code: list[str] = []
    for line in lines[start:]:
        if not _CODE_LINE.match(line):
            break
        code.append(line)
    return "\n".join(code)


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return math.isclose(actual, expected, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(expected, list) and isinstance(actual, list):
        return len(actual) == len(expected) and all(_equal(a, e) for a, e in zip(actual, expected))
    if isinstance(expected, dict) and isinstance(actual, dict):
        return actual.keys() == expected.keys() and all(_equal(actual[k], expected[k]) for k in expected)
    return actual == expected


def _python_function(check: dict[str, Any], answer: str, limits: SandboxLimits) -> list[CheckOutcome]:
    name = check["function"]
    cases = check["cases"]
    results = run_python_function(extract_code(answer, name), name, cases, limits)
    outcomes = []
    for case, result in zip(cases, results):
        call = f"{name}({', '.join(json.dumps(a) for a in case.get('args', []))})"[:200]
        if not result.ok:
            outcomes.append(CheckOutcome(call, False, result.error or "failed"))
        elif _equal(result.value, case["expected"]):
            outcomes.append(CheckOutcome(call, True, f"returned {json.dumps(result.value)[:100]}"))
        else:
            outcomes.append(CheckOutcome(
                call, False, f"returned {json.dumps(result.value)[:100]}, expected {json.dumps(case['expected'])[:100]}"
            ))
    return outcomes


# -- answers ------------------------------------------------------------------------------------


def final_number(answer: str) -> float | None:
    """The last number an answer states ("1,250", "-3.5", "42 km"), None when it states none."""
    found = _NUMBER.findall(answer.replace("**", ""))
    if not found:
        return None
    text = re.sub(r"[,\u202f ]", "", found[-1]).replace("−", "-")
    return float(text)


def _number(check: dict[str, Any], answer: str, limits: SandboxLimits) -> list[CheckOutcome]:
    expected = float(check["expected"])
    tolerance = float(check.get("tolerance", DEFAULT_NUMBER_TOLERANCE))
    stated = final_number(answer)
    name = f"final number = {check['expected']}"
    if stated is None:
        return [CheckOutcome(name, False, "the answer states no number")]
    ok = math.isclose(stated, expected, rel_tol=tolerance, abs_tol=tolerance if expected == 0 else 0.0)
    return [CheckOutcome(name, ok, f"stated {stated:g}")]


def _names(answer: str, spelling: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(spelling.strip().lower())}(?!\w)", answer.lower()) is not None


def _exact(check: dict[str, Any], answer: str, limits: SandboxLimits) -> list[CheckOutcome]:
    accept = [str(a) for a in check["accept"]]
    hit = next((a for a in accept if _names(answer, a)), None)
    return [CheckOutcome(f"names {' or '.join(accept)}", hit is not None, f"found {hit!r}" if hit else "not found")]


def _contains(check: dict[str, Any], answer: str, limits: SandboxLimits) -> list[CheckOutcome]:
    outcomes = []
    for item in check["all"]:
        spellings = str(item).split("|")
        hit = next((s for s in spellings if s.strip().lower() in answer.lower()), None)
        outcomes.append(CheckOutcome(f"states {' or '.join(spellings)}", hit is not None,
                                     f"found {hit!r}" if hit else "not found"))
    return outcomes


def _json_object(answer: str) -> dict[str, Any] | None:
    blocks = [body for _, body in _FENCED.findall(answer)] or [answer]
    for text in blocks:
        text = text.strip()
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end < start:
            continue
        try:
            value = json.loads(text[start : end + 1])
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _rule(rule: dict[str, Any], answer: str) -> CheckOutcome:
    kind = rule["rule"]
    words = _WORDS.findall(answer)
    text = answer.strip()
    if kind in ("max-words", "min-words"):
        n = int(rule["n"])
        ok = len(words) <= n if kind == "max-words" else len(words) >= n
        return CheckOutcome(f"{'at most' if kind == 'max-words' else 'at least'} {n} words", ok, f"{len(words)} words")
    if kind == "bullets":
        count = len(_BULLET.findall(answer))
        return CheckOutcome(f"exactly {rule['n']} bullet points", count == int(rule["n"]), f"{count} bullet points")
    if kind in ("include", "avoid"):
        present = [w for w in rule["words"] if _names(answer, w)]
        if kind == "include":
            missing = [w for w in rule["words"] if w not in present]
            return CheckOutcome(f"includes {', '.join(rule['words'])}", not missing,
                                f"missing {', '.join(missing)}" if missing else "all present")
        return CheckOutcome(f"avoids {', '.join(rule['words'])}", not present,
                            f"uses {', '.join(present)}" if present else "none used")
    if kind == "json-keys":
        value = _json_object(answer)
        if value is None:
            return CheckOutcome(f"JSON object with keys {', '.join(rule['keys'])}", False, "no JSON object found")
        missing = [k for k in rule["keys"] if k not in value]
        return CheckOutcome(f"JSON object with keys {', '.join(rule['keys'])}", not missing,
                            f"missing {', '.join(missing)}" if missing else "all keys present")
    if kind == "lowercase":
        return CheckOutcome("all lowercase", bool(text) and text == text.lower(), "" if text == text.lower() else "has capitals")
    if kind == "ends-with":
        phrase = str(rule["phrase"])
        ok = text.rstrip(" \"'*").lower().endswith(phrase.lower())
        return CheckOutcome(f"ends with {phrase!r}", ok, f"ends {text[-40:]!r}")
    if kind == "starts-with":
        phrase = str(rule["phrase"])
        ok = text.lstrip(" \"'*#").lower().startswith(phrase.lower())
        return CheckOutcome(f"starts with {phrase!r}", ok, f"starts {text[:40]!r}")
    if kind == "max-sentences":
        count = len([s for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()])
        return CheckOutcome(f"at most {rule['n']} sentences", count <= int(rule["n"]), f"{count} sentences")
    raise ValueError(f"unknown instruction rule {kind!r}")


def _instructions(check: dict[str, Any], answer: str, limits: SandboxLimits) -> list[CheckOutcome]:
    return [_rule(rule, answer) for rule in check["rules"]]


_RUNNERS: dict[str, Callable[[dict[str, Any], str, SandboxLimits], list[CheckOutcome]]] = {
    "python-function": _python_function,
    "number": _number,
    "exact": _exact,
    "contains": _contains,
    "instructions": _instructions,
}
