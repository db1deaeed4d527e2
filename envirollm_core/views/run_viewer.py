"""One stored run as the Results page shows it: its energy by component and its samples."""

from __future__ import annotations

import polars as pl

from envirollm_core.figures import round_frame
from envirollm_core.records import RunResult
from envirollm_core.views.monitor import MONITOR_SCHEMA


def components_frame(run: RunResult) -> pl.DataFrame:
    """A run's energy by component, each with its source (`counter`, `estimate`...) and note."""
    frame = pl.DataFrame(
        [{"component": c.component, "energy (Wh)": c.energy_wh, "source": c.source, "note": c.note}
         for c in run.components],
        schema={"component": pl.String, "energy (Wh)": pl.Float64, "source": pl.String, "note": pl.String},
    )
    return round_frame(frame, {"energy (Wh)": "Wh"})


TRACE_PANELS: dict[str, str] = {"Power": "W", "Load": "%"}


TRACE_SERIES: dict[str, tuple[str, str]] = {
    "cpu_power_w": ("Power", "CPU power"),
    "gpu_power_w": ("Power", "GPU power"),
    "cpu_percent": ("Load", "CPU %"),
    "gpu_util_percent": ("Load", "GPU utilization %"),
}


def trace_long(trace: pl.DataFrame) -> pl.DataFrame:
    """A run's samples (`Store.trace_frame`) as (panel, series, t_s, value) for `charts.timeline`."""
    parts = [
        trace.select(pl.lit(panel).alias("panel"), pl.lit(series).alias("series"), pl.col("t_s").cast(pl.Float64),
                     pl.col(column).cast(pl.Float64).alias("value"))
        for column, (panel, series) in TRACE_SERIES.items() if column in trace.columns
    ]
    if not parts:
        return pl.DataFrame(schema=MONITOR_SCHEMA)
    return pl.concat(parts).filter(pl.col("value").is_not_null())
