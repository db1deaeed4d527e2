"""Canaries against the real embedded engine (llama.cpp + Gemma 3 270M) as the judge.

A 270M model is a weak judge (see bench/RESULTS.md for what it does with each
canary). These tests hold what can honestly be held: the pipeline runs end to
end against a real server, learns its real quirks (llama-cpp-python refuses
`json_schema`; Gemma's template drops the system role), labels every result,
keeps scores on the scale or None with a reason, and measures its own cost.
"""

from __future__ import annotations

import pytest

from envirollm_core.quality import JudgeConfig, judge_runs
from envirollm_core.quality.canaries import CANARIES, QUESTION
from envirollm_core.telemetry.sampler import get_sampler
from tests.fakes.judge import make_run, record_passed_check


@pytest.fixture(scope="module")
def graded(embedded_engine):
    runs = {c.name: make_run(c.answer, prompt=QUESTION, model="some-model") for c in CANARIES if c.name != "right"}
    config = JudgeConfig(url=embedded_engine.base_url, model=embedded_engine.model_id, timeout_s=120)
    record_passed_check(config.url, config.model)  # the plumbing, not the (weak) judge's soundness, is tested here
    cost = judge_runs(list(runs.values()), config, sampler=get_sampler())
    return runs, cost, embedded_engine


def test_every_canary_is_graded_and_labelled(graded):
    runs, cost, engine = graded
    label = f"judge:{engine.model_id}@127.0.0.1:{engine.port}"
    for name, run in runs.items():
        detail = run.quality_detail
        if name == "empty":
            assert run.quality_method == "rule:empty-answer" and run.quality_score == 0.0
            continue
        assert run.quality_method == label
        assert run.quality_score is None or 0.0 <= run.quality_score <= 100.0
        if run.quality_score is None:
            assert detail["error"]  # unparsed is counted and said, never 0
        else:
            assert all(1 <= s <= 5 for raw in detail["raw_scores"] for s in raw.values())
        assert detail["rubric_version"] and detail["judge_model"] == engine.model_id


def test_the_real_server_quirks_are_learnt(graded):
    runs, _, _ = graded
    judged = [r for name, r in runs.items() if name != "empty"]
    assert {r.quality_detail["output_mode"] for r in judged} == {"json_object"}  # json_schema is refused with 500
    assert {r.quality_detail["system_role"] for r in judged} == {"folded"}  # the gemma template drops it


def test_the_injection_is_flagged_whatever_the_judge_said(graded):
    runs, _, _ = graded
    assert runs["injection"].quality_detail["steering_suspected"]


def test_the_judge_cost_is_measured(graded):
    _, cost, _ = graded
    # Two system-role probes, the refused json_schema request, then injection, padded and wrong (empty needs none).
    assert cost.calls == 2 + 1 + 3
    assert cost.duration_s > 0
    assert cost.energy_wh is not None and cost.energy_wh > 0
    assert {c.source for c in cost.components} <= {"counter", "power-integral", "average-power", "estimate"}
    assert cost.scored + cost.unscored == 4
