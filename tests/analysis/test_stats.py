import math
import statistics

import polars as pl
import pytest

from envirollm_core.analysis.stats import group_stats, t_critical
from envirollm_core.errors import UsageError

from tests.fakes.frames import frame, run

# Student's t, two-sided 95 %, from printed tables.
T_TABLE = {2: 12.706, 3: 4.303, 5: 2.776, 11: 2.228, 31: 2.042}


@pytest.mark.parametrize("n, expected", T_TABLE.items())
def test_t_critical_matches_the_printed_table(n, expected):
    assert t_critical([n])[0] == pytest.approx(expected, abs=5e-4)


def test_t_critical_is_undefined_below_two():
    assert math.isnan(t_critical([1])[0]) and math.isnan(t_critical([0])[0])


def test_mean_std_and_interval_by_hand():
    values = [0.0005, 0.0006, 0.0007]
    runs = [run("a", energy_per_token_wh=v, decode_tps=100.0 + i, quality_score=None) for i, v in enumerate(values)]
    row = group_stats(frame(runs)).row(0, named=True)
    mean, std = statistics.mean(values), statistics.stdev(values)
    half = 4.302653 * std / math.sqrt(3)
    assert row["n_runs"] == 3 and row["energy_per_token_wh_n"] == 3
    assert row["energy_per_token_wh_mean"] == pytest.approx(mean)
    assert row["energy_per_token_wh_std"] == pytest.approx(std)
    assert row["energy_per_token_wh_ci_low"] == pytest.approx(mean - half, rel=1e-6)
    assert row["energy_per_token_wh_ci_high"] == pytest.approx(mean + half, rel=1e-6)
    assert row["quality_score_n"] == 0 and row["quality_score_mean"] is None and row["quality_score_ci_low"] is None


def test_one_run_has_a_mean_but_no_interval():
    row = group_stats(frame([run("a", decode_tps=50.0)])).row(0, named=True)
    assert row["decode_tps_mean"] == 50.0 and row["decode_tps_ci_low"] is None and row["decode_tps_std"] is None


def test_failed_runs_are_counted_but_not_averaged():
    runs = [run("a", decode_tps=100.0), run("a", decode_tps=120.0),
            run("a", status="failed", decode_tps=1.0, error="HTTP 500")]
    row = group_stats(frame(runs)).row(0, named=True)
    assert (row["n_runs"], row["n_failed"], row["decode_tps_mean"]) == (2, 1, 110.0)


def test_groups_are_per_prompt_and_configuration():
    runs = [run("a", "P1", decode_tps=1.0), run("a", "P2", decode_tps=2.0), run("a", "P1", backend="lmstudio", decode_tps=3.0),
            run("a", "P1", quantization="Q8_0", decode_tps=4.0), run("b", "P1", decode_tps=5.0)]
    stats = group_stats(frame(runs))
    assert stats.height == 5
    assert sorted(stats["decode_tps_mean"].to_list()) == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_a_missing_column_or_bad_confidence_is_one_line():
    with pytest.raises(UsageError, match="lacks column"):
        group_stats(pl.DataFrame({"model": ["a"]}))
    with pytest.raises(UsageError, match="confidence"):
        group_stats(frame([run()]), confidence=95)


def test_an_empty_frame_gives_an_empty_table():
    assert group_stats(frame([])).height == 0
