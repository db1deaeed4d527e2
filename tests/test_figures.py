"""The one rounding rule for figures shown to a person (envirollm_core/figures.py), unit by unit."""

import math
import random

import polars as pl
import pytest

from envirollm_core.figures import MISSING, figure_expr, format_figure, format_spread, round_figure, round_frame


@pytest.mark.parametrize(("value", "unit", "shown"), [
    (480.617, "g/kWh", "481"),  # issue 13: the grid figure, CLI and app alike
    (0.4567891, "Wh", "0.457"),
    (0.000583456, "Wh", "0.000583"),
    (0.583456, "mWh", "0.583"),
    (12.3456, "J", "12.3"),
    (38.27, "tokens/s", "38.3"),
    (1234.56, "tokens/s", "1235"),  # never cut below the whole part
    (0.30000000000000004, "s", "0.3"),  # shortest text: no float noise, no trailing zeros
    (1.5, "s", "1.5"),
    (255.94, "W", "256"),
    (99.96, "W", "100"),  # rounding up to the next power of ten gives no spurious decimal
    (-0.0123456, "Wh", "-0.0123"),  # net energy may be negative
    (85.4, "score", "85"),
    (37.5, "%", "38"),  # half to even on the number as written
    (12345.0, "tokens", "12345"),
    (7, "count", "7"),
    (0.0, "Wh", "0"),
    (1.5e16, "J", "15000000000000000"),  # too large for a fraction: shown whole
    (None, "Wh", MISSING),
])
def test_each_unit_is_shown_by_the_rule(value, unit, shown):
    assert format_figure(value, unit) == shown


def test_a_spread_is_rounded_like_its_mean():
    assert format_spread(38.27, 37.0, 39.5, "tokens/s") == "38.3 ± 1.25"
    assert format_spread(38.27, None, None, "tokens/s") == "38.3"
    assert format_spread(None, 1.0, 2.0) == MISSING


def test_the_frame_expression_and_a_single_value_round_alike():
    rng = random.Random(13)
    values = [rng.uniform(-0.2, 1.0) * 10 ** rng.randint(-7, 6) for _ in range(5000)] + [0.0, math.nan]
    for unit in ("Wh", "score"):
        rounded = pl.select(figure_expr(pl.Series(values), unit)).to_series().to_list()
        for value, by_frame in zip(values, rounded):
            by_value = round_figure(value, unit)
            assert by_frame == by_value or (math.isnan(by_frame) and math.isnan(by_value)), (value, unit)
            assert format_figure(by_frame, unit) == format_figure(value, unit)


def test_a_rounded_frame_stays_numeric_and_keeps_its_nulls():
    frame = round_frame(pl.DataFrame({"energy_wh": [0.4567891, None, 12.345], "model": ["a", "b", "c"]}),
                        {"energy_wh": "Wh", "absent": "W"})
    assert frame.schema["energy_wh"] == pl.Float64
    assert frame["energy_wh"].to_list() == [0.457, None, 12.3]
    assert frame.sort("energy_wh", nulls_last=True)["model"].to_list() == ["a", "c", "b"]
