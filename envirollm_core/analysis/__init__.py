"""Analysis over a runs frame (Polars): statistics, recommendations, trends, hardware fit, carbon and cost."""

from envirollm_core.analysis.carbon import Footprint, GridIntensity, Tariff, footprint, make_tariff, monthly
from envirollm_core.analysis.hardware import FitEstimate, hardware_fit, memory_estimate
from envirollm_core.analysis.recommend import GroupRecommendation, Pick, pareto_frontier, recommend
from envirollm_core.analysis.stats import ANALYSIS_COLUMNS, CONFIG_KEYS, METRICS, PROMPT_KEYS, group_stats
from envirollm_core.analysis.trends import MetricChange, batch_trends, compare_batches, regressions

__all__ = [
    "ANALYSIS_COLUMNS",
    "CONFIG_KEYS",
    "FitEstimate",
    "Footprint",
    "GridIntensity",
    "GroupRecommendation",
    "METRICS",
    "MetricChange",
    "PROMPT_KEYS",
    "Pick",
    "Tariff",
    "batch_trends",
    "compare_batches",
    "footprint",
    "group_stats",
    "hardware_fit",
    "make_tariff",
    "memory_estimate",
    "monthly",
    "pareto_frontier",
    "recommend",
    "regressions",
]
