import random

import numpy as np
import pytest
from scipy import stats as scipy_stats

from envirollm_core.analysis.trends import batch_trends, compare_batches, holm_adjust, regressions, welch_p_value
from envirollm_core.errors import UsageError

from tests.fakes.frames import frame, run


def batch(name, minutes, *, energy, speed=100.0, n=8, seed=0, model="m", prompt="Explain X.", noise=0.03):
    rng = random.Random(seed)
    return [
        run(model, prompt, name, minutes=minutes + i, energy_per_token_wh=rng.gauss(energy, energy * noise),
            decode_tps=rng.gauss(speed, speed * noise), ttft_s=rng.gauss(0.2, 0.2 * noise),
            quality_score=rng.gauss(80.0, 80.0 * noise))
        for i in range(n)
    ]


def test_a_real_regression_is_found_with_its_size_and_confidence():
    runs = batch("monday", 0, energy=0.0005, seed=1) + batch("tuesday", 60, energy=0.00065, seed=2)
    changes = compare_batches(frame(runs))
    (found,) = regressions(changes)
    assert (found.metric, found.baseline_batch, found.latest_batch) == ("energy_per_token_wh", "monday", "tuesday")
    assert found.change_fraction == pytest.approx(0.3, abs=0.05)
    assert found.confidence > 0.99 and found.p_adjusted >= found.p_value
    assert {change.metric for change in changes} == {"energy_per_token_wh", "decode_tps", "ttft_s", "quality_score"}


def test_noise_alone_is_not_a_regression():
    """Twenty pairs of batches drawn from one distribution: Holm keeps false alarms away."""
    runs = []
    for k in range(20):
        runs += batch("old", 0, energy=0.0005, seed=100 + k, model=f"m{k}")
        runs += batch("new", 60, energy=0.0005, seed=200 + k, model=f"m{k}")
    assert regressions(compare_batches(frame(runs))) == []


def test_faster_decoding_is_an_improvement():
    runs = batch("old", 0, energy=0.0005, speed=100.0, seed=3) + batch("new", 60, energy=0.0005, speed=130.0, seed=4)
    (change,) = [c for c in compare_batches(frame(runs)) if c.metric == "decode_tps"]
    assert change.verdict == "improvement" and change.change_fraction > 0.2


def test_a_small_significant_change_is_not_reported():
    runs = batch("old", 0, energy=0.0005, seed=5, n=40, noise=0.001) + batch("new", 60, energy=0.000505, seed=6, n=40,
                                                                             noise=0.001)
    (change,) = [c for c in compare_batches(frame(runs)) if c.metric == "energy_per_token_wh"]
    assert change.p_value < 0.001 and change.verdict == "no significant change"


@pytest.mark.parametrize("n", [1, 2])
def test_fewer_than_three_runs_a_side_are_not_tested_but_the_change_is_shown(n):
    runs = batch("old", 0, energy=0.0005, n=n, seed=11) + batch("new", 60, energy=0.0009, n=n, seed=12)
    changes = compare_batches(frame(runs))
    assert {c.verdict for c in changes} == {"too few runs to test"}
    (energy,) = [c for c in changes if c.metric == "energy_per_token_wh"]
    assert energy.p_value is None and energy.p_adjusted is None and energy.change_fraction > 0.5
    assert regressions(changes) == []


def test_constant_groups_are_no_spread_not_p_zero():
    """Capped token counts or a heuristic score give the same value every run: no noise estimate, no test."""
    def constant(name, minutes, quality):
        return [run("m", "Explain X.", name, minutes=minutes + i, quality_score=quality, energy_per_token_wh=0.0005)
                for i in range(4)]

    changes = compare_batches(frame(constant("old", 0, 85.0) + constant("new", 60, 71.0)))
    (quality,) = [c for c in changes if c.metric == "quality_score"]
    assert quality.verdict == "no spread" and quality.p_value is None
    assert quality.change_fraction == pytest.approx(71 / 85 - 1)
    assert regressions(changes) == []


def test_different_max_tokens_are_two_configurations_never_compared():
    """The issue's case: a batch at 64 tokens and one at 128 are not one configuration that regressed."""
    short = [run("m", "Explain X.", "b64", minutes=i, max_tokens=64, quality_score=85.0 + i % 3) for i in range(4)]
    long = [run("m", "Explain X.", "b128", minutes=60 + i, max_tokens=128, quality_score=71.0 + i % 3) for i in range(4)]
    assert compare_batches(frame(short + long)) == []
    trends = batch_trends(frame(short + long))
    assert sorted(trends["max_tokens"].to_list()) == [64, 128]


def test_the_baseline_and_latest_batches_can_be_named():
    runs = (batch("a", 0, energy=0.0005, seed=7) + batch("b", 60, energy=0.0008, seed=8)
            + batch("c", 120, energy=0.0005, seed=9))
    assert regressions(compare_batches(frame(runs))) == []  # c against b: better, not worse
    (found,) = regressions(compare_batches(frame(runs), baseline_batch="a", latest_batch="b"))
    assert found.latest_batch == "b"


def test_one_batch_has_nothing_to_compare():
    assert compare_batches(frame(batch("only", 0, energy=0.0005))) == []


def test_trends_are_one_row_per_batch_in_time_order():
    runs = batch("late", 600, energy=0.0006, n=3) + batch("early", 0, energy=0.0005, n=2)
    trends = batch_trends(frame(runs))
    assert trends["batch_id"].to_list() == ["early", "late"] and trends["n_runs"].to_list() == [2, 3]


def test_welch_and_holm_by_hand():
    assert welch_p_value(np.array([1.0, 1.0, 1.0]), np.array([1.0, 1.0, 1.0])) is None
    assert welch_p_value(np.array([1.0, 1.0, 1.0]), np.array([2.0, 2.0, 2.0])) is None
    assert welch_p_value(np.array([1.0, 1.0]), np.array([2.0, 3.0, 4.0])) is None
    # One side without spread is still a test (the other side gives the noise), as scipy computes it.
    expected = scipy_stats.ttest_ind([1.0, 1.0, 1.0], [2.0, 3.0, 4.0], equal_var=False).pvalue
    assert welch_p_value(np.array([1.0, 1.0, 1.0]), np.array([2.0, 3.0, 4.0])) == pytest.approx(expected)
    # By hand: means 2 and 4, variances 1 and 1, n = 3: t = 2 / sqrt(2/3) = 2.449 with 4 degrees of
    # freedom; a t-table puts the two-sided p between 0.05 (2.776) and 0.10 (2.132): 0.0705.
    assert welch_p_value(np.array([1.0, 2.0, 3.0]), np.array([3.0, 4.0, 5.0])) == pytest.approx(0.0705, abs=2e-4)
    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_bad_arguments_are_one_line():
    with pytest.raises(UsageError, match="cannot judge"):
        compare_batches(frame([]), metrics=("energy_wh",))
    with pytest.raises(UsageError, match="alpha"):
        compare_batches(frame([]), alpha=5)
