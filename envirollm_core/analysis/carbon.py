"""Carbon and cost of measured energy: per run, per 1,000 tokens, and per month for a stated usage.

Grid carbon intensity comes from `data/carbon_intensity.csv` (per country, in
g CO2e per kWh, Our World in Data / Ember via CodeCarbon; see data/README.md)
or from the user's own figure; the price of electricity is always the user's.
"""

from __future__ import annotations

import csv
import difflib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from envirollm_core.errors import UsageError
from envirollm_core.paths import data_file
from envirollm_core.units import wh_to_kwh

WORLD = "WLD"
DAYS_PER_MONTH = 30.0


@dataclass(frozen=True)
class GridIntensity:
    code: str  # ISO 3166-1 alpha-3, "WLD" for the world mean, "OWN" for a figure the user gave
    country: str
    g_co2_per_kwh: float
    year: int | None
    source: str


@dataclass(frozen=True)
class Tariff:
    """What a kWh costs here: its carbon, and its price when the user gave one."""

    grid: GridIntensity
    price_per_kwh: float | None = None
    currency: str = ""


@dataclass(frozen=True)
class Footprint:
    energy_wh: float
    co2_g: float
    cost: float | None


@cache
def load_grid_intensities(path: Path = data_file("carbon_intensity.csv")) -> dict[str, GridIntensity]:
    with open(path, encoding="utf-8", newline="") as handle:
        return {
            row["iso_code"]: GridIntensity(
                code=row["iso_code"],
                country=row["country"],
                g_co2_per_kwh=float(row["g_co2_per_kwh"]),
                year=int(row["year"]) if row["year"] else None,
                source="Our World in Data / Ember, via CodeCarbon",
            )
            for row in csv.DictReader(handle)
        }


def grid_intensity(country: str) -> GridIntensity:
    """A country's grid by ISO alpha-3 code (`FRA`) or name (`France`), case-insensitive; `WLD` is the world."""
    grids = load_grid_intensities()
    wanted = country.strip()
    if wanted.upper() in grids:
        return grids[wanted.upper()]
    by_name = {grid.country.lower(): grid for grid in grids.values()}
    if wanted.lower() in by_name:
        return by_name[wanted.lower()]
    close = difflib.get_close_matches(wanted.lower(), list(by_name), n=3)
    hint = f"; did you mean {', '.join(by_name[name].code + ' (' + by_name[name].country + ')' for name in close)}?" if close else ""
    raise UsageError(f"no grid carbon intensity for {country!r}: give an ISO alpha-3 code like FRA or a country name{hint}")


def own_intensity(g_co2_per_kwh: float) -> GridIntensity:
    if not 0 <= g_co2_per_kwh <= 2000:
        raise UsageError(f"a grid intensity is 0 to 2000 g CO2e per kWh, not {g_co2_per_kwh:g}")
    return GridIntensity("OWN", "your own figure", g_co2_per_kwh, None, "given by you")


def make_tariff(
    country: str | None = None, g_co2_per_kwh: float | None = None, price_per_kwh: float | None = None,
    currency: str = "",
) -> Tariff:
    """A tariff from the user's settings: their own intensity, else their country's, else the world mean."""
    if price_per_kwh is not None and price_per_kwh < 0:
        raise UsageError(f"an electricity price must not be negative, not {price_per_kwh:g}")
    if g_co2_per_kwh is not None:
        grid = own_intensity(g_co2_per_kwh)
    else:
        grid = grid_intensity(country or WORLD)
    return Tariff(grid=grid, price_per_kwh=price_per_kwh, currency=currency)


def footprint(energy_wh: float, tariff: Tariff) -> Footprint:
    kwh = wh_to_kwh(energy_wh)
    cost = None if tariff.price_per_kwh is None else kwh * tariff.price_per_kwh
    return Footprint(energy_wh=energy_wh, co2_g=kwh * tariff.grid.g_co2_per_kwh, cost=cost)


def per_thousand_tokens(energy_per_token_wh: float, tariff: Tariff) -> Footprint:
    return footprint(energy_per_token_wh * 1000, tariff)


def monthly(
    tariff: Tariff,
    *,
    energy_per_token_wh: float | None = None,
    tokens_per_day: float | None = None,
    energy_per_request_wh: float | None = None,
    requests_per_day: float | None = None,
    days: float = DAYS_PER_MONTH,
) -> Footprint | None:
    """A month of the stated usage: tokens per day at an energy per token, or requests per day at an
    energy per request (which also counts reading the prompt). None when the usage or energy is missing."""
    for label, value in (("tokens per day", tokens_per_day), ("requests per day", requests_per_day)):
        if value is not None and value < 0:
            raise UsageError(f"{label} must not be negative, not {value:g}")
    if requests_per_day is not None and energy_per_request_wh is not None:
        return footprint(requests_per_day * energy_per_request_wh * days, tariff)
    if tokens_per_day is not None and energy_per_token_wh is not None:
        return footprint(tokens_per_day * energy_per_token_wh * days, tariff)
    return None
