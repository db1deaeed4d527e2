"""`envirollm judge`, `judge-pair`, `judge-check` against scripted judges."""

from __future__ import annotations

import argparse
import json

import pytest

from envirollm_core.cli import main
from envirollm_core.cli.quality import judge_config
from envirollm_core.errors import UsageError
from envirollm_core.settings import Settings, save_settings
from tests.fakes.judge import sound_grade, user_text


def test_judge_prints_the_score_as_json(scripted_judge, capsys):
    judge = scripted_judge(content="Rating: [[4]]")
    code = main(["judge", "--prompt", "2+2?", "--answer", "4", "--judge-url", judge.base_url,
                 "--judge-model", judge.model, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["quality_score"] == 75.0 and out["quality_method"].startswith("judge:judge-model@")


def test_judge_reads_the_answer_from_a_file(scripted_judge, tmp_path, capsys):
    judge = scripted_judge(content="Rating: [[2]]")
    path = tmp_path / "answer.txt"
    path.write_text("four")
    code = main(["judge", "--prompt", "2+2?", "--answer-file", str(path), "--judge-url", judge.base_url,
                 "--judge-model", judge.model, "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["quality_score"] == 25.0
    assert "four" in user_text(judge.graded_chats()[0])


def test_judge_with_an_unparseable_reply_exits_1_with_the_reason(scripted_judge, capsys):
    judge = scripted_judge(content="no idea")
    code = main(["judge", "--prompt", "2+2?", "--answer", "4", "--judge-url", judge.base_url, "--judge-model", judge.model])
    captured = capsys.readouterr()
    assert code == 1 and captured.out.startswith("unscored by judge:") and captured.err.strip()  # the reason


def test_judge_prints_its_result_on_stdout_and_notes_on_stderr(scripted_judge, capsys):
    judge = scripted_judge(content="Rating: [[4]]")
    code = main(["judge", "--prompt", "2+2?", "--answer", "4", "--judge-url", judge.base_url, "--judge-model", judge.model])
    captured = capsys.readouterr()
    assert code == 0 and captured.out.startswith("75 by judge:judge-model@") and "75" not in captured.err


def test_judge_bad_input_exits_2(capsys, tmp_path):
    assert main(["judge", "--prompt", "x"]) == 2
    assert main(["judge", "--prompt", "x", "--answer-file", str(tmp_path / "missing.txt")]) == 2
    assert main(["judge", "--prompt", "x", "--answer", "y", "--judge", "gpt"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("envirollm: error:") == 3


def test_judge_pair(scripted_judge, capsys):
    judge = scripted_judge(content='{"reasoning": "A is first", "winner": "A"}')
    code = main(["judge-pair", "--prompt", "Capital of Australia?", "--a", "Canberra", "--b", "Sydney",
                 "--judge-url", judge.base_url, "--judge-model", judge.model, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["winner"] == "tie" and out["verdicts"] == ["a", "b"]


def test_judge_check_passes_a_sound_judge(scripted_judge, capsys):
    judge = scripted_judge(passed_check=False, content=sound_grade)
    code = main(["judge-check", "--judge-url", judge.base_url, "--judge-model", judge.model, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {c["name"]: c["passed"] for c in out["canaries"]} == dict.fromkeys(
        ["right", "injection", "padded", "wrong", "empty"], True)


def test_judge_check_fails_a_judge_that_rates_everything_the_same(scripted_judge, capsys):
    judge = scripted_judge(passed_check=False, content="Rating: [[4]]")
    code = main(["judge-check", "--judge-url", judge.base_url, "--judge-model", judge.model, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert {c["name"]: c["passed"] for c in out["canaries"]} == {
        "right": True, "injection": False, "padded": False, "wrong": False, "empty": False}


def test_judge_check_without_a_judge_is_a_usage_error(no_ollama, capsys):
    assert main(["judge-check"]) == 2
    assert "no LLM judge to check" in capsys.readouterr().err


def test_a_judge_that_failed_its_check_is_passed_over_until_it_passes(scripted_judge, capsys):
    sound = {"now": False}
    judge = scripted_judge(passed_check=False, content=lambda request: sound_grade(request) if sound["now"] else "Rating: [[4]]")
    flags = ["--judge-url", judge.base_url, "--judge-model", judge.model, "--json"]
    assert main(["judge-check", *flags]) == 1
    capsys.readouterr()
    assert main(["judge", "--prompt", "2+2?", "--answer", "4", *flags]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["quality_method"] == "heuristic" and "failed its last judge-check" in out["quality_detail"]["note"]

    sound["now"] = True
    assert main(["judge-check", *flags]) == 0  # a failed judge can be checked again
    capsys.readouterr()
    from envirollm_core.quality import JudgeConfig, judge_runs
    from tests.fakes.judge import make_run

    run = make_run("The capital of Australia is Canberra.", prompt="What is the capital of Australia?")
    judge_runs([run], JudgeConfig(url=judge.base_url, model=judge.model))
    assert run.quality_method.startswith("judge:") and run.quality_detail["judge_check"].startswith("passed ")


def test_the_settings_page_lists_each_judges_last_check(scripted_judge, capsys):
    from streamlit.testing.v1 import AppTest

    judge = scripted_judge(passed_check=False, content="Rating: [[4]]")
    main(["judge-check", "--judge-url", judge.base_url, "--judge-model", judge.model, "--json"])
    from pathlib import Path

    app = AppTest.from_file(str(Path(__file__).parents[2] / "app_pages" / "settings.py"), default_timeout=60).run()
    assert not app.exception
    table = app.table[-1].value
    assert table["judge"].to_list() == [f"judge:{judge.model}@{judge.base_url.split('//')[1].split('/')[0]}"]
    assert table["last check"].to_list() == ["FAILED: not used, the heuristic is"]


# --- the judge flags -----------------------------------------------------------------------------------


def flags(judge_url=None, judge_model=None, judge_api_key=None, judge=None) -> argparse.Namespace:
    return argparse.Namespace(judge_url=judge_url, judge_model=judge_model, judge_api_key=judge_api_key, judge=judge,
                              judge_timeout=60.0, samples=1)


def test_judge_flags_name_the_judge():
    assert judge_config(flags(judge="none")).disabled
    explicit = judge_config(flags("http://127.0.0.1:8080/v1", "qwen", "key"))
    assert (explicit.url, explicit.model, explicit.api_key) == ("http://127.0.0.1:8080/v1", "qwen", "key")
    default = judge_config(flags())
    assert default.url is None and not default.disabled


def test_no_judge_flag_means_the_judge_saved_in_settings():
    save_settings(Settings(judge_url="http://127.0.0.1:7777/v1", judge_model="saved-judge"))
    saved = judge_config(flags())
    assert (saved.url, saved.model) == ("http://127.0.0.1:7777/v1", "saved-judge")
    assert judge_config(flags(judge="none")).disabled  # the flag still wins


def test_a_judge_model_alone_means_the_local_ollama(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:5555")
    assert judge_config(flags(judge_model="gemma3:1b")).url == "http://127.0.0.1:5555/v1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("http://127.0.0.1:1/v1", None, None, None), "needs --judge-model"),
        ((None, None, None, "gpt"), "takes only 'none'"),
        (("http://127.0.0.1:1/v1", "m", None, "none"), "cannot be combined"),
        (("ftp://x/v1", "m", None, None), r"not an http\(s\) URL"),
    ],
)
def test_bad_judge_flags_are_usage_errors(args, message):
    with pytest.raises(UsageError, match=message):
        judge_config(flags(*args))
