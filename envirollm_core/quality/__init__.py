"""Quality of answers: an LLM judge any local model can serve, pairwise comparison, and an honest heuristic.

    from envirollm_core.quality import JudgeConfig, judge_runs, heuristic_score, pairwise
"""

from envirollm_core.quality.heuristic import HEURISTIC_VERSION, HeuristicScore, heuristic_score
from envirollm_core.quality.judge import (
    HEURISTIC_METHOD,
    JudgeConfig,
    JudgeCost,
    JudgeEndpoint,
    JudgeVerdict,
    judge_answer,
    judge_runs,
    resolve_judge,
)
from envirollm_core.quality.pairwise import PairwiseResult, pairwise
from envirollm_core.quality.rubric import CRITERIA, RUBRIC_VERSION, raw_to_score

__all__ = [
    "CRITERIA",
    "HEURISTIC_METHOD",
    "HEURISTIC_VERSION",
    "RUBRIC_VERSION",
    "HeuristicScore",
    "JudgeConfig",
    "JudgeCost",
    "JudgeEndpoint",
    "JudgeVerdict",
    "PairwiseResult",
    "heuristic_score",
    "judge_answer",
    "judge_runs",
    "pairwise",
    "raw_to_score",
    "resolve_judge",
]
