"""Qualities made by different methods are never compared silently: the core says so, once, for every reader."""

from __future__ import annotations

from envirollm_core import charts
from envirollm_core.analysis.quality_methods import mixed_methods_warning, scored_methods
from envirollm_core.analysis.recommend import pareto_frontier, recommend
from envirollm_core.analysis.stats import CONFIG_KEYS, group_stats
from tests.fakes.frames import frame


def _runs(make, second_method: str):
    return [
        *(make("small", quality_score=90.0, quality_method="heuristic", energy_per_token_wh=0.0004, decode_tps=40.0 + i,
               minutes=i)
          for i in range(3)),
        *(make("large", quality_score=60.0, quality_method=second_method, energy_per_token_wh=0.0009,
               decode_tps=20.0 + i, minutes=i)
          for i in range(3)),
        make("large", quality_score=None, quality_method="judge:unscored", energy_per_token_wh=0.0009, minutes=9),
    ]


def test_the_warning_names_the_methods_only_when_there_are_several():
    assert mixed_methods_warning(["heuristic", "heuristic", None]) is None
    assert mixed_methods_warning([]) is None
    warning = mixed_methods_warning(["verified", "heuristic", "verified"])
    assert warning is not None and "2 different methods (heuristic, verified)" in warning


def test_recommend_says_when_its_picks_compare_methods(make):
    (mixed,) = recommend(frame(_runs(make, "verified")))
    assert mixed.quality_methods == ("heuristic", "verified")  # an unscored run's method made no score
    assert mixed.quality_methods_mixed == mixed_methods_warning(["heuristic", "verified"])
    (alike,) = recommend(frame(_runs(make, "heuristic")))
    assert alike.quality_methods == ("heuristic",) and alike.quality_methods_mixed is None
    assert scored_methods(frame(_runs(make, "verified"))) == ["heuristic", "verified"]


def _subtitle(chart) -> str:
    title = chart.to_dict()["title"]
    return " ".join(title.get("subtitle", [])) if isinstance(title, dict) else ""


def test_charts_with_a_quality_axis_carry_the_warning(make):
    stats = group_stats(frame(_runs(make, "verified")), by=CONFIG_KEYS)
    warning = mixed_methods_warning(["heuristic", "verified"])
    figures = charts.result_charts(stats, pareto_frontier(stats), charts_batches(make), "quality_score")
    assert _subtitle(figures["Quality vs energy (Pareto)"]) == warning
    assert _subtitle(figures["Energy vs speed"]) == warning  # quality is its bubbles' size and colour
    assert _subtitle(figures["Trends over time"]) == warning
    assert _subtitle(figures["Per configuration (95 % intervals)"]) == warning
    assert _subtitle(charts.model_intervals(stats, "energy_per_token_wh")) == ""  # no quality on this one
    alike = group_stats(frame(_runs(make, "heuristic")), by=CONFIG_KEYS)
    assert _subtitle(charts.quality_vs_energy(alike, pareto_frontier(alike))) == ""


def charts_batches(make):
    from envirollm_core.analysis.trends import batch_trends

    return batch_trends(frame(_runs(make, "verified")), by=CONFIG_KEYS)
