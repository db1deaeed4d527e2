"""The shipped task presets and prompt selection."""

from __future__ import annotations

import pytest

from envirollm_core.benchmark.presets import get_preset, load_presets, read_prompt_file, select_prompts
from envirollm_core.errors import UsageError
from envirollm_core.quality.references import preset_references

PAPER_TASKS = ["explanation", "code-generation", "summarization", "long-form-writing", "analytical-writing",
               "data-analysis", "creative-writing"]


def test_the_papers_seven_tasks_ship_with_prompts():
    presets = load_presets()
    assert list(presets) == PAPER_TASKS
    for preset in presets.values():
        assert len(preset.prompt.split()) >= 15, preset.name


def test_references_and_checks_reach_the_quality_module():
    references = preset_references()
    assert "def bubble_sort" in references["code-generation"]  # the reference answer
    assert "[1, 2, 5, 5, 6, 9]" in references["code-generation"]  # and the check's expected output
    assert "84,250" in references["data-analysis"]


def test_data_analysis_reference_is_arithmetically_right():
    revenue = [12000, 13500, 12600, 15750, 16000, 14400]
    changes = [round((b / a - 1) * 100, 2) for a, b in zip(revenue, revenue[1:])]
    reference = get_preset("data-analysis").reference
    assert f"{sum(revenue):,}" in reference
    for change in changes:
        assert f"{abs(change):g} %" in reference or f"{abs(change):.1f} %" in reference or f"{abs(change):.2f} %" in reference


def test_code_generation_check_cases_are_sorted_inputs():
    for case in get_preset("code-generation").check["cases"]:
        assert case["expected"] == sorted(case["args"][0])


@pytest.mark.parametrize("alias", ["code generation", "Code_Generation", "CODE-GENERATION", "Code generation"])
def test_preset_aliases(alias):
    assert get_preset(alias).name == "code-generation"


def test_short_names_find_the_writing_tasks():
    assert get_preset("long-form").name == "long-form-writing" and get_preset("creative").name == "creative-writing"


def test_unknown_preset_lists_the_presets():
    with pytest.raises(UsageError, match="unknown preset 'poetry'; presets: explanation, code-generation"):
        get_preset("poetry")


def test_selection(tmp_path):
    assert [p.preset for p in select_prompts()] == ["explanation"]
    assert [p.preset for p in select_prompts(presets=["all"])] == PAPER_TASKS
    custom = select_prompts(prompt="Why is the sky blue?")
    assert custom[0].text == "Why is the sky blue?" and custom[0].preset is None
    with pytest.raises(UsageError, match="--prompt is empty"):
        select_prompts(prompt="   ")


def test_prompt_file_with_several_prompts(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("First prompt\nover two lines.\n---\nSecond prompt.\r\n---\r\n\n", encoding="utf-8")
    assert [p.text for p in read_prompt_file(path)] == ["First prompt\nover two lines.", "Second prompt."]


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "prompt file not found"), (b"\xff\xfe\x00bad", "is not UTF-8"), (b"  \n---\n ", "holds no prompt")],
)
def test_bad_prompt_files(tmp_path, content, message):
    path = tmp_path / "prompts.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UsageError, match=message):
        read_prompt_file(path)
