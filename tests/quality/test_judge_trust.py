"""Only a checked judge grades (issue 11, section 3): a judge never checked is checked on first use, once, and
grades only if it passed; one that fails, or cannot be checked, leaves the runs to the labelled heuristic."""

from __future__ import annotations

import json

from envirollm_core.cli import main
from envirollm_core.quality import JudgeConfig, judge_runs, pairwise
from envirollm_core.quality.canaries import CANARIES
from envirollm_core.quality.judge_checks import judge_checks_path, last_judge_check
from tests.fakes.judge import make_run, sound_grade


def _label(judge) -> str:
    return f"judge:{judge.model}@{judge.base_url.split('//')[1].split('/')[0]}"


def test_a_sound_judge_never_checked_is_checked_once_then_grades(scripted_judge):
    judge = scripted_judge(passed_check=False, content=sound_grade)
    run = make_run("The capital of Australia is Canberra.", prompt="What is the capital of Australia?")
    cost = judge_runs([run], JudgeConfig(url=judge.base_url, model=judge.model))
    check = last_judge_check(_label(judge))
    assert check is not None and check.passed and set(check.canaries) == {c.name for c in CANARIES}
    assert run.quality_method == _label(judge) and run.quality_score == 100.0
    assert run.quality_detail["judge_check"] == f"passed {check.checked_at}"
    assert len(judge.graded_chats()) == len(CANARIES) + 1  # the five canaries, then the run
    assert cost.duration_s > 0  # the check is timed with the grading, as part of the judge's cost

    judge_runs([make_run()], JudgeConfig(url=judge.base_url, model=judge.model))
    assert len(judge.graded_chats()) == len(CANARIES) + 2  # checked once, not once per batch


def test_a_judge_that_fails_its_first_check_never_grades(scripted_judge):
    judge = scripted_judge(passed_check=False, content="Rating: [[4]]")  # the same grade for every answer
    runs = [make_run(), make_run("Sydney.")]
    cost = judge_runs(runs, JudgeConfig(url=judge.base_url, model=judge.model))
    assert all(r.quality_method == "heuristic" for r in runs)
    note = runs[0].quality_detail["note"]
    assert "failed its last judge-check" in note and "envirollm judge-check" in note
    assert runs[0].quality_detail["rough"] == "form only, not truth"
    assert cost.method == "heuristic" and note in cost.note
    assert last_judge_check(_label(judge)).passed is False  # kept: the Settings page shows it
    asked = len(judge.graded_chats())
    judge_runs([make_run()], JudgeConfig(url=judge.base_url, model=judge.model))
    assert len(judge.graded_chats()) == asked  # a failed judge is not asked again until judge-check passes


def test_a_judge_that_cannot_be_checked_leaves_the_heuristic_and_keeps_no_check(closed_port):
    config = JudgeConfig(url=f"http://127.0.0.1:{closed_port}/v1", model="judge-model", timeout_s=2)
    run = make_run()
    judge_runs([run], config)
    assert run.quality_method == "heuristic" and run.quality_score is not None
    assert "could not be checked" in run.quality_detail["note"] and "unreachable" in run.quality_detail["note"]
    assert not judge_checks_path().exists()  # a judge that was down is tried again next time, not marked failed


def test_the_judge_command_and_pairwise_use_an_unchecked_judge_only_after_its_check(scripted_judge, capsys):
    judge = scripted_judge(passed_check=False, content="Rating: [[4]]")
    flags = ["--judge-url", judge.base_url, "--judge-model", judge.model, "--json"]
    assert main(["judge", "--prompt", "What is 2+2?", "--answer", "4", *flags]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["quality_method"] == "heuristic" and "failed its last judge-check" in out["quality_detail"]["note"]
    result = pairwise("What is 2+2?", "4", "5", JudgeConfig(url=judge.base_url, model=judge.model))
    assert result.method == "heuristic"
