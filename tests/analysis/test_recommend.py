import hypothesis.strategies as st
import polars as pl
import pytest
from hypothesis import given, settings

from envirollm_core.analysis.recommend import pareto_frontier, recommend
from envirollm_core.errors import UsageError

from tests.fakes.frames import frame, run


def configs(prompt="Explain X.", preset=None):
    """Three configurations with known means: cheap-and-poor, middle, costly-and-good (two runs each)."""
    table = {"small": (0.0003, 150.0, 60.0), "mid": (0.0005, 100.0, 80.0), "large": (0.0008, 50.0, 90.0)}
    return [
        run(model, prompt, preset=preset, energy_per_token_wh=energy, decode_tps=speed, quality_score=quality,
            energy_wh=energy * 500, completion_tokens=500)
        for model, (energy, speed, quality) in table.items()
        for _ in range(2)
    ]


def picks_of(group):
    return {pick.kind: pick.config.model for pick in group.picks}


def test_the_four_picks_and_the_frontier():
    (group,) = recommend(frame(configs()))
    assert picks_of(group) == {"best_overall": "small", "most_efficient": "mid", "fastest": "small",
                               "highest_quality": "large"}
    assert [config.model for config in group.pareto] == ["small", "mid", "large"]
    assert group.n_configs == 3 and group.label == "Explain X."


def test_the_quality_floor_moves_the_efficient_pick():
    (group,) = recommend(frame(configs()), quality_floor=85)
    assert picks_of(group)["most_efficient"] == "large"
    (group,) = recommend(frame(configs()), quality_floor=95)
    assert "most_efficient" not in picks_of(group)
    assert any("reaches quality 95" in note for note in group.notes)


def test_never_across_prompts():
    """A model that only ran an easy prompt is never recommended for another prompt."""
    runs = configs("Summarize this.") + [
        run("tiny", "Plan a trip.", energy_per_token_wh=0.00001, decode_tps=999.0, quality_score=99.0)
    ] + [run("mid", "Plan a trip.", energy_per_token_wh=0.0005, decode_tps=100.0, quality_score=80.0)]
    groups = {group.label: group for group in recommend(frame(runs))}
    assert set(groups) == {"Summarize this.", "Plan a trip."}
    assert "tiny" not in {pick.config.model for pick in groups["Summarize this."].picks}
    assert set(picks_of(groups["Plan a trip."]).values()) == {"tiny"}


def test_by_task_keeps_only_configurations_that_ran_every_prompt():
    runs = configs("Explain X.", preset="explanation") + configs("Explain Y.", preset="explanation")
    runs += [run("partial", "Explain X.", preset="explanation", energy_per_token_wh=0.00001, decode_tps=1e4,
                 quality_score=100.0)]
    (group,) = recommend(frame(runs), by="preset")
    assert group.group == "explanation" and group.n_configs == 3
    assert "partial" not in {pick.config.model for pick in group.picks}
    assert any("partial" in note and "1 of the task's 2 prompts" in note for note in group.notes)


def test_without_quality_scores_the_picks_say_so():
    runs = [run(model, energy_per_token_wh=energy, decode_tps=speed)
            for model, energy, speed in (("a", 0.0004, 90.0), ("b", 0.0002, 80.0))]
    (group,) = recommend(frame(runs))
    assert picks_of(group) == {"most_efficient": "b", "fastest": "a"}
    assert group.pareto == ()
    assert any("no run has a quality score" in note for note in group.notes)


def test_failed_runs_and_one_group_filter():
    runs = configs("A.") + configs("B.") + [run("broken", "A.", status="failed", error="timeout")]
    groups = recommend(frame(runs), group=runs[0].prompt_hash)
    assert len(groups) == 1 and "broken" not in {pick.config.model for pick in groups[0].picks}


def test_grouping_must_be_prompt_or_preset():
    with pytest.raises(UsageError):
        recommend(frame(configs()), by="model")


points = st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=25)


@settings(max_examples=200, deadline=None)
@given(points)
def test_the_frontier_is_exactly_the_undominated_points(pairs):
    stats = pl.DataFrame({"quality_score_mean": [float(q) for q, _ in pairs],
                          "energy_per_token_wh_mean": [float(e) for _, e in pairs]})
    frontier = {(row["quality_score_mean"], row["energy_per_token_wh_mean"])
                for row in pareto_frontier(stats).iter_rows(named=True)}

    def dominated(q, e):
        return any(q2 >= q and e2 <= e and (q2 > q or e2 < e) for q2, e2 in pairs)

    assert frontier == {(float(q), float(e)) for q, e in pairs if not dominated(q, e)}
