"""One vocabulary: the unit conversions, and the one metric table every reader (stats, trends, charts, CLI) shares."""

from __future__ import annotations

import math

import polars as pl
import pytest

from envirollm_core import charts, units
from envirollm_core.analysis import stats, trends
from envirollm_core.figures import figure_text_expr, format_figure
from envirollm_core.metrics import CHARTED, METRIC, RUN_FIGURES, STATISTICS, WATCHED, run_units, table_formats, \
    with_shown_columns


def test_conversions_name_their_units():
    assert units.wh_to_j(1.0) == 3600 and units.j_to_wh(7200.0) == 2.0
    assert units.wh_to_mwh(0.000583) == pytest.approx(0.583) and units.wh_to_mwh(None) is None
    assert units.wh_to_kwh(2500.0) == 2.5
    assert units.energy_wh(360.0, 10.0) == 1.0  # 360 W for 10 s
    assert units.average_power_w(1.0, 10.0) == 360.0 and units.average_power_w(1.0, 0.0) is None
    assert units.average_power_w(None, 10.0) is None
    assert units.bytes_to_mib(3 * 2**20) == 3.0 and units.bytes_to_gb(2_500_000_000) == 2.5
    # `_mb` names hold MiB, `_gb` names hold 10**9 bytes: 1024 MiB is 1 GiB but 1.07 GB.
    assert units.mib_to_gib(1024.0) == 1.0 and units.mib_to_gb(1024.0) == pytest.approx(1.073741824)
    assert units.milli_to_unit(250_000.0) == 250.0 and units.micro_to_unit(3_600_000.0) == 3.6


def test_every_reader_takes_the_one_table():
    assert stats.METRICS == STATISTICS
    assert list(charts.METRICS) == list(CHARTED) and all(charts.METRICS[n] is METRIC[n] for n in CHARTED)
    assert trends.HIGHER_IS_BETTER == {name: METRIC[name].higher_is_better for name in WATCHED}
    assert trends.HIGHER_IS_BETTER == {"energy_per_token_wh": False, "decode_tps": True, "ttft_s": False,
                                       "quality_score": True}
    # The app's runs table: one format per header, each figure already rounded by the one rule.
    formats = table_formats("#")
    assert formats["energy per token (mWh)"] == "%g" and formats["#"] == "plain" and len(formats) == 11
    assert formats["tokens"] == "plain"  # Streamlit's "plain" writes some floats with binary noise: integers only
    assert run_units()["energy_per_token_mwh"] == "mWh" and run_units()["quality_score"] == "score"


def test_surprising_stored_units_are_said_exactly():
    assert "MiB" in METRIC["ram_used_mb_peak"].stored_unit and "2**20" in METRIC["server_peak_rss_mb"].stored_unit
    assert METRIC["energy_per_token_wh"].stored_unit.startswith("Wh/token")
    assert METRIC["energy_per_token_wh"].unit == "mWh/token" and METRIC["energy_per_token_wh"].scale == 1000
    assert METRIC["e2e_tps"].axis_title == "End-to-end speed (tokens/s, over the whole request, TTFT included)"


@pytest.mark.parametrize("column", RUN_FIGURES)
def test_a_metric_prints_one_way_in_python_and_in_polars(column):
    metric = METRIC[column]
    values = [0.000583456, 0.0123456, 0.4567891, 1.5, 38.27, 84.6, 480.617, 12345.6, -0.41, 0.0]
    frame = with_shown_columns(pl.DataFrame({column: values}))
    polars_text = frame.select(figure_text_expr(pl.col(metric.shown_column), metric.figure_unit))
    assert polars_text.to_series().to_list() == [metric.format(v) for v in values]
    assert [metric.format_shown(v) for v in frame[metric.shown_column]] == [metric.format(v) for v in values]


def test_the_text_expression_is_format_figure_over_many_magnitudes():
    # Not exact ties (x.xx5): there Polars' round and Decimal's may part on the float's last bit.
    values = [sign * mantissa * 10.0**exponent for sign in (1, -1) for mantissa in (1.0, 1.23456, 5.5512, 9.9961)
              for exponent in range(-6, 10)]
    for unit in ("", "mWh", "score", "tokens/s"):
        texts = pl.DataFrame({"v": values}).select(figure_text_expr(pl.col("v"), unit)).to_series().to_list()
        assert texts == [format_figure(v, unit) for v in values], unit
    assert pl.DataFrame({"v": [None, math.inf]}, schema={"v": pl.Float64}).select(
        figure_text_expr(pl.col("v")))["v"].to_list()[0] is None


def test_energy_per_token_reads_the_same_in_every_command():
    """mWh/token was `.4f` in the pass-rate lines and three significant digits elsewhere: one format now."""
    from envirollm_core.analysis.pass_rates import pass_rate_lines
    from envirollm_core.analysis.recommend import recommend
    from tests.fakes.frames import frame, run

    runs = [run("m", quality_score=100.0, quality_method="verified", energy_per_token_wh=0.000583456, minutes=i)
            for i in range(3)]
    (line,) = pass_rate_lines(runs)[-1:]
    assert line.endswith(", 0.583 mWh/token")
    (group,) = recommend(frame(runs))
    efficient = next(pick for pick in group.picks if pick.kind == "most_efficient")
    assert efficient.reason.startswith("0.583 mWh/token")


def test_the_docs_list_every_metric_with_its_exact_units():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "METRICS.md").read_text(encoding="utf-8")
    for m in METRIC.values():
        better = {True: "higher", False: "lower", None: "-"}[m.higher_is_better]
        row = (f"| `{m.column}` | {m.title} | {m.unit} | {m.stored_unit} | {m.scale:g} | {m.figure_unit} | {better} "
               f"| {m.short} |")
        assert row in text, row
