"""Core data shaped for the app's pages, so that a page only reads state and renders: one module per page's job.

Nothing here calls Streamlit. `formats` (text and numbers shown as they are), `monitor` (live frame, power now,
servers), `run_table` (runs with units in the headers), `run_viewer` (one run's components and samples),
`prompt_groups` (a prompt's runs analysed), `recommendations`, `load_sweeps`, `judge_checks`, `downloads`.
The names are re-exported here for callers that import them from `envirollm_core.views`.
"""

from envirollm_core.views.downloads import export_bytes
from envirollm_core.views.formats import plain, plain_formats, text_table
from envirollm_core.views.judge_checks import judge_checks_frame
from envirollm_core.views.load_sweeps import LEVEL_FORMATS, levels_table, sweep_labels
from envirollm_core.views.monitor import (
    MAX_POINTS_PER_SERIES,
    MONITOR_SCHEMA,
    PANELS,
    PowerNow,
    gpus_frame,
    monitor_frame,
    power_now,
    power_series_label,
    remote_power_frame,
    servers_frame,
)
from envirollm_core.views.prompt_groups import GroupAnalysis, analyze_group, group_label, prompt_groups
from envirollm_core.views.recommendations import config_stats, energy_caption, fits_frame, monthly_table, picks_frame
from envirollm_core.views.run_table import DERIVED_TOKENS, NET_ENERGY, TABLE_FORMATS, runs_table, with_derived_figures
from envirollm_core.views.run_viewer import TRACE_PANELS, TRACE_SERIES, components_frame, trace_long

__all__ = [
    "DERIVED_TOKENS", "LEVEL_FORMATS", "MAX_POINTS_PER_SERIES", "MONITOR_SCHEMA", "NET_ENERGY", "PANELS",
    "TABLE_FORMATS", "TRACE_PANELS", "TRACE_SERIES", "GroupAnalysis", "PowerNow", "analyze_group", "components_frame",
    "config_stats", "energy_caption", "export_bytes", "fits_frame", "gpus_frame", "group_label", "judge_checks_frame",
    "levels_table", "monitor_frame", "monthly_table", "picks_frame", "plain", "plain_formats", "power_now",
    "power_series_label", "prompt_groups", "remote_power_frame", "runs_table", "servers_frame", "sweep_labels",
    "text_table", "trace_long", "with_derived_figures",
]
