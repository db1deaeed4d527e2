"""Reading judge replies: a score only where the reply marks one, never a bare number, never 0 for junk."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envirollm_core.quality.parsing import parse_verdict, parse_winner
from envirollm_core.quality.rubric import CRITERIA, raw_to_score

ALL_FOUR = {"accuracy": 4.0, "completeness": 3.0, "clarity": 5.0, "relevance": 4.0}


@pytest.mark.parametrize(
    ("reply", "scores"),
    [
        ('{"reasoning": "ok", "score": 4}', {"overall": 4.0}),
        ('{"reasoning": "ok", "accuracy": 4, "completeness": 3, "clarity": 5, "relevance": 4}', ALL_FOUR),
        ('Sure!\n```json\n{"Accuracy": "4", "Completeness": 3, "Clarity": 5, "Relevance": "4/5"}\n```', ALL_FOUR),
        ('{"reasoning": "x", "scores": {"accuracy": 4, "completeness": 3, "clarity": 5, "relevance": 4}}', ALL_FOUR),
        ('{"reasoning": "line one\nline two", "score": 2}', {"overall": 2.0}),  # raw newline, as small models write
        ("Rating: [[4]]", {"overall": 4.0}),
        ("The answer is fine. [[ 3.5 ]]", {"overall": 3.5}),
        ("Accuracy: [[4]]\nCompleteness: [[3]]\nClarity: [[5]]\nRelevance: [[4]]", ALL_FOUR),
        ("Accuracy: [[4]]\nCompleteness: [[3]]\nClarity: [[5]]\nRelevance: [[4]]\nOverall: [[4]]", ALL_FOUR),
        ("Score: 4/5", {"overall": 4.0}),
        ("My rating is 4 out of 5.", {"overall": 4.0}),
        ("I rate it [[4]]. Rating: [[4]]", {"overall": 4.0}),
        ('{"reasoning": "long...", "accuracy": 4, "completeness": 3, "clarity": 5, "relevance": 4, "no', ALL_FOUR),
    ],
)
def test_marked_scores_are_read(reply, scores):
    verdict = parse_verdict(reply)
    assert verdict.ok, verdict.error
    assert verdict.scores == scores


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("On a 0-100 scale: 85", "no rating"),  # the paper's judge read this as 0
        ("Score: 85", "not on the 1-5 scale"),
        ("Rating: 8/10", "not on the 1-5 scale"),
        ('{"score": 85}', "not on the 1-5 scale"),
        ('{"score": 0}', "not on the 1-5 scale"),
        ('{"score": true}', "not on the 1-5 scale"),
        ("[[3]] or maybe [[5]]", "twice with different values"),
        ("This answer has 3 good points and 2 bad ones.", "no rating"),
        ("", "replied with nothing"),
        ('{"reasoning": "no numbers here"}', "no rating"),
    ],
)
def test_unmarked_or_off_scale_replies_are_unparsed_not_zero(reply, why):
    verdict = parse_verdict(reply)
    assert not verdict.ok and verdict.mean_raw is None
    assert why in verdict.error


@given(st.text(max_size=400))
def test_any_reply_parses_to_nothing_or_to_the_scale(reply):
    verdict = parse_verdict(reply)
    if verdict.ok:
        assert all(1 <= s <= 5 for s in verdict.scores.values())
        assert 0 <= raw_to_score(verdict.mean_raw) <= 100
    else:
        assert verdict.error


@given(st.fixed_dictionaries({name: st.integers(1, 5) for name in CRITERIA}), st.text(max_size=80))
def test_json_verdicts_round_trip(scores, reasoning):
    verdict = parse_verdict("Here you go: " + json.dumps({"reasoning": reasoning, **scores}))
    assert verdict.scores == {k: float(v) for k, v in scores.items()}


def test_scale_mapping():
    assert [raw_to_score(x) for x in (1, 2, 3, 4, 5)] == [0, 25, 50, 75, 100]


@pytest.mark.parametrize(
    ("reply", "winner"),
    [
        ("[[A]]", "A"),
        ("B is better. [[B]]", "B"),
        ("They are equal: [[C]]", "tie"),
        ('{"reasoning": "x", "winner": "tie"}', "tie"),
        ('{"reasoning": "x", "winner": "b"}', "B"),
        ("[[A]] no wait [[B]]", None),
        ("A is better", None),
    ],
)
def test_pairwise_verdicts(reply, winner):
    assert parse_winner(reply)[0] == winner
