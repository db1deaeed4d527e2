"""Pairwise mode: which of two answers to one prompt is better.

The judge sees the pair twice, once in each order; LLM judges favour a
position, so a verdict stands only when both orders agree, and any
disagreement is a tie. Without an LLM judge the heuristic compares the two,
with a margin under which it calls a tie.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from envirollm_core.quality.heuristic import HEURISTIC_VERSION, heuristic_score
from envirollm_core.quality.judge import (
    HEURISTIC_METHOD,
    JudgeConfig,
    JudgeEndpoint,
    JudgeUnavailable,
    ask_judge,
    resolve_judge,
)
from envirollm_core.quality.parsing import parse_winner
from envirollm_core.quality.rubric import PAIRWISE_SCHEMA, RUBRIC_VERSION, pairwise_messages

Outcome = Literal["a", "b", "tie"]
HEURISTIC_TIE_MARGIN = 5.0  # points on 0-100: closer than this, form alone cannot separate them


@dataclass(frozen=True)
class PairwiseResult:
    """`winner` is "a", "b" or "tie", or None when no verdict could be had (reason in `detail`)."""

    winner: Outcome | None
    method: str
    verdicts: tuple[Outcome | None, ...] = ()  # one per order asked, in the caller's labels
    detail: dict[str, Any] = field(default_factory=dict)
    calls: int = 0


def _combine(verdicts: tuple[Outcome | None, ...]) -> Outcome | None:
    if None in verdicts:
        return None
    return verdicts[0] if len(set(verdicts)) == 1 else "tie"


def _heuristic_pair(prompt: str, answer_a: str, answer_b: str, note: str) -> PairwiseResult:
    score_a, score_b = heuristic_score(prompt, answer_a).score, heuristic_score(prompt, answer_b).score
    if abs(score_a - score_b) < HEURISTIC_TIE_MARGIN:
        winner: Outcome = "tie"
    else:
        winner = "a" if score_a > score_b else "b"
    detail = {"heuristic_version": HEURISTIC_VERSION, "score_a": score_a, "score_b": score_b, "note": note}
    return PairwiseResult(winner=winner, method=HEURISTIC_METHOD, verdicts=(winner,), detail=detail)


def _judge_pair(
    prompt: str, answer_a: str, answer_b: str, endpoint: JudgeEndpoint, reference: str | None
) -> PairwiseResult:
    verdicts: list[Outcome | None] = []
    reasons: list[str] = []
    calls = 0
    # (first shown, second shown) and how the judge's "A"/"B" map back to the caller's a/b.
    orders = ((answer_a, answer_b, {"A": "a", "B": "b"}), (answer_b, answer_a, {"A": "b", "B": "a"}))
    for first, second, back in orders:
        try:
            reply = ask_judge(
                endpoint,
                lambda mode, first=first, second=second: pairwise_messages(prompt, first, second, reference, mode),
                PAIRWISE_SCHEMA,
                "pairwise",
                temperature=0.0,
                seed=None,
            )
        except JudgeUnavailable as exc:
            calls += exc.calls
            detail = {"rubric_version": RUBRIC_VERSION, "judge_model": endpoint.model, "error": exc.reason}
            return PairwiseResult(winner=None, method=endpoint.label, detail=detail, calls=calls)
        calls += reply.calls
        winner, reason = parse_winner(reply.text)
        verdicts.append(None if winner is None else ("tie" if winner == "tie" else back[winner]))
        reasons.append(reason)
    final = _combine(tuple(verdicts))
    detail: dict[str, Any] = {
        "rubric_version": RUBRIC_VERSION,
        "judge_model": endpoint.model,
        "judge_host": endpoint.host,
        "orders": ["a first", "b first"],
        "reference_used": reference is not None,
    }
    if final is None:
        detail["error"] = "; ".join(r for r in reasons if r)
    elif final == "tie" and len(set(verdicts)) > 1:
        detail["note"] = "the two orders disagree: a tie"
    return PairwiseResult(winner=final, method=endpoint.label, verdicts=tuple(verdicts), detail=detail, calls=calls)


def pairwise(
    prompt: str, answer_a: str, answer_b: str, config: JudgeConfig, reference: str | None = None
) -> PairwiseResult:
    """Compare two answers to one prompt; with an LLM judge both orders are asked, and disagreement is a tie."""
    endpoint, note = resolve_judge(config)
    if endpoint is None:
        return _heuristic_pair(prompt, answer_a, answer_b, note)
    return _judge_pair(prompt, answer_a, answer_b, endpoint, reference)
