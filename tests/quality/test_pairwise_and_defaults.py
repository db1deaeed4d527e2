"""Pairwise mode (both orders, disagreement is a tie) and the default judge (Ollama's small model, else heuristic)."""

from __future__ import annotations

import pytest

from envirollm_core.quality import JudgeConfig, judge_runs, pairwise
from envirollm_core.backends.ollama import OllamaBackend
from envirollm_core.quality.defaults import default_ollama_judge, pick_judge_model
from envirollm_core.quality.rubric import fold_system, single_messages
from tests.fakes.judge import ScriptedJudge, user_text
from tests.fakes.judge import make_run, record_passed_check

PROMPT = "What is the capital of Australia?"
RIGHT, WRONG = "The capital of Australia is Canberra.", "The capital of Australia is Sydney."


def _answer_a(request) -> str:
    return user_text(request).split("<<ANSWER-A-")[1].split(">>", 1)[1].split("<</ANSWER-A-")[0]


def test_a_consistent_judge_picks_the_same_answer_in_both_orders(scripted_judge):
    judge = scripted_judge(content=lambda r: "[[A]]" if "Canberra" in _answer_a(r) else "[[B]]")
    result = pairwise(PROMPT, RIGHT, WRONG, JudgeConfig(judge.base_url, judge.model))
    assert result.winner == "a" and result.verdicts == ("a", "a")
    assert result.method.startswith("judge:judge-model@")
    shown_first = [_answer_a(r).strip() for r in judge.graded_chats()]
    assert shown_first == [RIGHT, WRONG]  # both orders were asked


def test_a_judge_that_always_prefers_the_first_position_gives_a_tie(scripted_judge):
    judge = scripted_judge(content='{"reasoning": "first is better", "winner": "A"}')
    result = pairwise(PROMPT, RIGHT, WRONG, JudgeConfig(judge.base_url, judge.model))
    assert result.winner == "tie" and result.verdicts == ("a", "b")
    assert "disagree" in result.detail["note"]


def test_a_tie_in_one_order_is_a_tie(scripted_judge):
    replies = iter(["[[A]]", "[[C]]"])
    judge = scripted_judge(content=lambda r: next(replies), formats=())
    assert pairwise(PROMPT, RIGHT, WRONG, JudgeConfig(judge.base_url, judge.model)).winner == "tie"


def test_an_unparseable_order_gives_no_winner(scripted_judge):
    replies = iter(["[[A]]", "hmm"])
    judge = scripted_judge(content=lambda r: next(replies))
    result = pairwise(PROMPT, RIGHT, WRONG, JudgeConfig(judge.base_url, judge.model))
    assert result.winner is None and "no verdict" in result.detail["error"]


def test_pairwise_with_a_judge_that_is_down_gives_no_winner_and_the_reason(closed_port):
    record_passed_check(f"http://127.0.0.1:{closed_port}/v1", "m")  # it passed once, and is down now
    result = pairwise(PROMPT, RIGHT, WRONG, JudgeConfig(f"http://127.0.0.1:{closed_port}/v1", "m", timeout_s=2))
    assert result.winner is None and "unreachable" in result.detail["error"]


def test_pairwise_without_a_judge_uses_the_heuristic(no_ollama):
    result = pairwise("Explain photosynthesis.", "Plants make sugar from light, water and carbon dioxide, "
                      "releasing oxygen. Chlorophyll in their leaves captures the light energy.", "",
                      JudgeConfig(None, None, disabled=True))
    assert result.winner == "a" and result.method == "heuristic"


# --- the default judge --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("installed", "graded", "expected"),
    [
        (["llama3:70b", "gemma3:1b", "qwen2.5:3b-instruct-q4_K_M"], [], ("qwen2.5:3b-instruct-q4_K_M", False)),
        (["llama3.2:latest", "gemma3:1b"], [], ("llama3.2:latest", False)),
        (["gemma3:1b", "llama3.2:1b"], ["gemma3:1b"], ("llama3.2:1b", False)),  # not its own judge if avoidable
        (["gemma3:1b"], ["gemma3:1b"], ("gemma3:1b", True)),
        (["llama3:70b", "mixtral:8x7b", "qwen3:1.7b"], [], None),  # nothing small and instruct: heuristic
        ([], [], None),
    ],
)
def test_pick_judge_model(installed, graded, expected):
    assert pick_judge_model(installed, graded) == expected


def test_no_judge_named_and_no_ollama_gives_the_labelled_heuristic(no_ollama):
    run = make_run()
    cost = judge_runs([run], JudgeConfig(None, None))
    assert run.quality_method == "heuristic" and cost.method == "heuristic"
    assert 0 <= run.quality_score <= 100
    assert "no small instruct model found in Ollama" in run.quality_detail["note"]
    assert set(run.quality_detail["features"]) == {"completeness", "vocabulary_diversity", "length", "structure"}


def test_judge_none_gives_the_heuristic_without_asking_ollama(fake_ollama):
    server = fake_ollama(["gemma3:1b"])
    run = make_run()
    judge_runs([run], JudgeConfig(None, None, disabled=True))
    assert run.quality_method == "heuristic" and server.requests == []


def test_no_judge_named_uses_the_small_model_ollama_has(fake_ollama):
    chat = ScriptedJudge(content="Rating: [[4]]")
    server = fake_ollama(["llama3:70b", "gemma3:1b"], chat=chat)
    record_passed_check(f"{server.url}/v1", "gemma3:1b")
    run = make_run(model="llama3:70b")
    judge_runs([run], JudgeConfig(None, None))
    assert run.quality_method == f"judge:gemma3:1b@127.0.0.1:{server.port}"
    assert run.quality_score == 75.0
    assert chat.graded_chats()[0].body["model"] == "gemma3:1b"


def test_a_self_judged_run_says_so(fake_ollama):
    chat = ScriptedJudge(content="Rating: [[4]]")
    server = fake_ollama(["gemma3:1b"], chat=chat)
    record_passed_check(f"{server.url}/v1", "gemma3:1b")
    run = make_run(model="gemma3:1b")
    judge_runs([run], JudgeConfig(None, None))
    assert "also one of the graded models" in run.quality_detail["note"]


# --- messages -----------------------------------------------------------------------------------------


def test_fold_system_puts_the_rules_first_in_one_user_turn():
    messages = single_messages(PROMPT, RIGHT, None, "json_object", token="abc123")
    folded = fold_system(messages)
    assert [m["role"] for m in folded] == ["user"]
    assert folded[0]["content"].startswith(messages[0]["content"])
    assert folded[0]["content"].endswith(messages[1]["content"])


def test_markers_are_fresh_per_call():
    first = single_messages(PROMPT, RIGHT, None, "text")[1]["content"]
    second = single_messages(PROMPT, RIGHT, None, "text")[1]["content"]
    marker = lambda text: next(line for line in text.splitlines() if line.startswith("<<ANSWER-"))  # noqa: E731
    assert marker(first) != marker(second)


def test_the_default_judge_is_found_through_the_one_ollama_listing(no_ollama, monkeypatch):
    monkeypatch.setattr(OllamaBackend, "list_models", lambda self: ["llama3:70b", "gemma3:1b"])
    choice = default_ollama_judge(["llama3:70b"])
    assert (choice.model, choice.self_judged) == ("gemma3:1b", False)


def test_no_default_judge_when_ollama_is_down(no_ollama, http_clients):
    assert default_ollama_judge() is None
    assert all(client.is_closed for client in http_clients)
