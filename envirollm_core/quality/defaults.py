"""The judge to use when none is named: a small instruct model the user's Ollama already has.

Nothing is downloaded: if Ollama is not running, or has none of the models
below, quality falls back to the heuristic, and the label says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from envirollm_core.backends.base import BackendError
from envirollm_core.backends.ollama import OllamaBackend, ollama_url

DISCOVERY_TIMEOUT_S = 2.0

# Best judges first: 3-4 B instruct models grade far more reliably than 1 B ones,
# yet stay cheap next to the models being benchmarked. Reasoning models (qwen3,
# deepseek-r1) are left out: their thinking costs more than the grade is worth.
# An entry matches the name itself, `name-<variant>` (`qwen2.5:3b-instruct-q4_K_M`)
# and, for untagged entries, `name:latest`.
PREFERRED_JUDGES: tuple[str, ...] = (
    "qwen2.5:3b",
    "llama3.2:3b",
    "llama3.2",  # :latest is the 3 B model
    "phi4-mini",
    "gemma3:4b",
    "gemma3",  # :latest is the 4 B model
    "phi3.5",
    "phi3:mini",
    "granite3.3:2b",
    "gemma2:2b",
    "qwen2.5:1.5b",
    "gemma3:1b",
    "llama3.2:1b",
    "smollm2:1.7b",
)


@dataclass(frozen=True)
class OllamaJudgeChoice:
    base_url: str  # OpenAI-compatible endpoint of the Ollama server
    model: str
    self_judged: bool  # the judge is also one of the models it grades


def _normalized(name: str) -> str:
    name = name.strip().lower()
    return name.removesuffix(":latest")


def _matches(preference: str, name: str) -> bool:
    return name == preference or name.startswith(preference + "-")


def pick_judge_model(available: Iterable[str], graded_models: Iterable[str] = ()) -> tuple[str, bool] | None:
    """The preferred judge among the installed models, avoiding the graded ones where possible."""
    installed = list(dict.fromkeys(available))
    graded = {_normalized(m) for m in graded_models}
    ranked = [
        name
        for preference in PREFERRED_JUDGES
        for name in installed
        if _matches(preference, _normalized(name))
    ]
    ranked = list(dict.fromkeys(ranked))
    if not ranked:
        return None
    independent = [name for name in ranked if _normalized(name) not in graded]
    return (independent[0], False) if independent else (ranked[0], True)


def default_ollama_judge(graded_models: Iterable[str] = ()) -> OllamaJudgeChoice | None:
    base = ollama_url().rstrip("/")
    try:
        with OllamaBackend(base, read_timeout_s=DISCOVERY_TIMEOUT_S, connect_timeout_s=DISCOVERY_TIMEOUT_S) as ollama:
            installed = ollama.list_models()
    except BackendError:  # Ollama not running, or not answering: no default judge
        installed = []
    choice = pick_judge_model(installed, graded_models)
    if choice is None:
        return None
    model, self_judged = choice
    return OllamaJudgeChoice(base_url=f"{base}/v1", model=model, self_judged=self_judged)
