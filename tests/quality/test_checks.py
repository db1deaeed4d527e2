"""Verified quality: checks executed against answers, the verified suite, and the order quality is chosen in."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from envirollm_core.benchmark.presets import get_preset, select_prompts
from envirollm_core.benchmark.suites import load_suite, suite_prompts, suite_task
from envirollm_core.errors import UsageError
from envirollm_core.quality import JudgeConfig, judge_runs
from envirollm_core.quality.checks import extract_code, final_number, is_checkable, run_check
from envirollm_core.analysis.pass_rates import pass_rates, wilson_interval
from tests.fakes.judge import make_run

CLI = [sys.executable, "-m", "envirollm_core"]


@pytest.mark.parametrize(("answer", "number"), [
    ("The answer is 42.", 42.0), ("17 + 25 = 42", 42.0), ("It weighs 1,500 grams", 1500.0), ("-3.5 degrees", -3.5),
    ("**63**", 63.0), ("no number here", None),
])
def test_the_final_number_is_read_tolerantly(answer, number):
    assert final_number(answer) == number


def test_number_exact_and_contains_checks():
    assert run_check({"type": "number", "expected": 212}, "100 °C is 212 °F.").score == 100.0
    assert run_check({"type": "number", "expected": 212}, "It is 100.").score == 0.0
    assert run_check({"type": "exact", "accept": ["Paris"]}, "The capital of France is Paris.").score == 100.0
    assert run_check({"type": "exact", "accept": ["Mars"]}, "Marsupials live in Australia.").score == 0.0
    partly = run_check(get_preset("data-analysis").check, "Total 84,250 EUR; April rose most.")
    assert partly.score == pytest.approx(66.7) and [o.passed for o in partly.outcomes] == [True, True, False]


def test_instruction_rules_each_count():
    check = {"type": "instructions", "rules": [
        {"rule": "bullets", "n": 3}, {"rule": "avoid", "words": ["red"]}, {"rule": "max-words", "n": 10},
        {"rule": "lowercase"}, {"rule": "ends-with", "phrase": "the end"},
    ]}
    result = run_check(check, "- blue\n- green\n- yellow\nthe end")
    assert result.score == 100.0
    result = run_check(check, "- Red\n- blue\nThat is all I can say about colours today, my friend.")
    assert [o.passed for o in result.outcomes] == [False, False, False, False, False]
    keys = {"type": "instructions", "rules": [{"rule": "json-keys", "keys": ["name", "age"]}]}
    assert run_check(keys, 'Here:\n```json\n{"name": "Ada", "age": 36}\n```').score == 100.0
    assert run_check(keys, '{"name": "Ada"}').outcomes[0].detail == "missing age"


def test_the_code_preset_is_executed_not_judged():
    preset = get_preset("code-generation")
    right = run_check(preset.check, f"Here it is:\n\n```python\n{preset.reference}\n```\nIt is O(n^2).")
    assert right.score == 100.0 and right.passed == 4
    wrong = run_check(preset.check, "```python\ndef bubble_sort(items):\n    return items\n```")
    assert wrong.score == 50.0  # the empty and the one-element list come back sorted, the others do not
    assert "expected" in wrong.outcomes[0].detail


def test_code_is_found_without_fences():
    answer = "Sure! Here is the function:\ndef add(a, b):\n    return a + b\n\nThis adds two numbers."
    assert extract_code(answer, "add") == "def add(a, b):\n    return a + b\n"


def test_the_verified_suite_has_forty_checkable_tasks_in_three_families():
    tasks = load_suite("verified")
    assert len(tasks) >= 40 and len({t.name for t in tasks}) == len(tasks)
    assert {t.family for t in tasks} == {"exact-answer", "instructions", "code"}
    assert all(is_checkable(t.check) for t in tasks)
    assert [p.preset for p in select_prompts(suite="verified")] == [t.name for t in tasks]
    assert suite_task("verified/code-add").family == "code" and suite_task("nope/x") is None
    with pytest.raises(UsageError, match="unknown suite 'nope'; suites: verified"):
        suite_prompts("nope")


def test_every_code_task_of_the_suite_is_solvable():
    solutions = {
        "add": "def add(a, b): return a + b", "is_even": "def is_even(n): return n % 2 == 0",
        "reverse_string": "def reverse_string(s): return s[::-1]", "largest": "def largest(xs): return max(xs)",
        "factorial": "import math\ndef factorial(n): return math.factorial(n)",
        "count_vowels": "def count_vowels(s): return sum(c in 'aeiouAEIOU' for c in s)",
        "total": "def total(xs): return sum(xs)",
        "fizzbuzz": "def fizzbuzz(n): return 'FizzBuzz' if n % 15 == 0 else 'Fizz' if n % 3 == 0 else 'Buzz' if n % 5 == 0 else str(n)",
        "is_palindrome": "def is_palindrome(s): return s == s[::-1]", "squares": "def squares(xs): return [x * x for x in xs]",
    }
    for task in (t for t in load_suite("verified") if t.family == "code"):
        assert run_check(task.check, solutions[task.check["function"]]).score == 100.0, task.name


def test_quality_is_chosen_check_first_then_the_heuristic():
    code = make_run(get_preset("code-generation").reference, prompt=get_preset("code-generation").prompt)
    code.preset = "code-generation"
    suite = make_run("17 + 25 = 42", prompt=suite_task("verified/arith-add").prompt)
    suite.preset = "verified/arith-add"
    plain = make_run("The capital of Australia is Canberra.", prompt="What is the capital of Australia?")
    cost = judge_runs([code, suite, plain], JudgeConfig(None, None, disabled=True))
    assert (code.quality_method, code.quality_score) == ("verified", 100.0)
    assert code.quality_detail["passed"] == 4 and len(code.quality_detail["checks"]) == 4
    assert (suite.quality_method, suite.quality_score) == ("verified", 100.0)
    assert plain.quality_method == "heuristic" and plain.quality_detail["rough"]
    assert cost.method == "heuristic"


def test_pass_rates_per_model_and_family_with_intervals():
    runs = []
    for model, answers in (("a", ["42", "42", "0"]), ("b", ["0", "0", "0"])):
        for answer in answers:
            run = make_run(answer, prompt="What is 17 + 25?", model=model)
            run.preset = "verified/arith-add"
            runs.append(run)
    judge_runs(runs, JudgeConfig(None, None, disabled=True))
    rows = {(r.model, r.family): r for r in pass_rates(runs)}
    assert (rows["a", "all"].passed, rows["a", "all"].runs) == (2, 3) and rows["b", "exact-answer"].passed == 0
    low, high = wilson_interval(2, 3)
    assert (rows["a", "all"].low, rows["a", "all"].high) == (low, high) and 0.2 < low < 2 / 3 < high < 1
    assert wilson_interval(0, 3)[0] == 0.0


def test_judge_cli_runs_a_presets_check(tmp_path):
    answer = tmp_path / "answer.md"
    answer.write_text("```python\n" + get_preset("code-generation").reference + "\n```\n")
    done = subprocess.run([*CLI, "judge", "--prompt", "sort", "--answer-file", str(answer), "--preset", "code-generation",
                           "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert (payload["quality_score"], payload["quality_method"]) == (100.0, "verified")
    assert [c["passed"] for c in payload["quality_detail"]["checks"]] == [True] * 4
    bad = subprocess.run([*CLI, "judge", "--prompt", "x", "--answer", "y", "--preset", "nope"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown preset 'nope'" in bad.stderr and "Traceback" not in bad.stderr
