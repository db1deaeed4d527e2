"""Built-in suites: named sets of short tasks, each with a check that verifies its answer automatically.

One function gives a suite's prompts by name (`suite_prompts`), for every command that takes `--suite`
(benchmark, benchmark-openai, demo, and load sweeps) and for the Benchmark page.
Suite files live in `data/suites/<name>.json`: {"name", "about", "tasks": [{"name", "family", "prompt", "check"}]}.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

from envirollm_core.benchmark.presets import Prompt
from envirollm_core.errors import UsageError
from envirollm_core.paths import data_file

SUITES_DIR = data_file("suites")


@dataclass(frozen=True)
class SuiteTask:
    name: str  # "<suite>/<task>", stored as the run's preset
    family: str  # "exact-answer" | "instructions" | "code"
    prompt: str
    check: dict[str, Any] = field(hash=False)

    def as_prompt(self) -> Prompt:
        return Prompt(self.prompt, preset=self.name, check=self.check)


def suite_names() -> list[str]:
    return sorted(path.stem for path in SUITES_DIR.glob("*.json"))


@functools.cache
def load_suite(name: str) -> tuple[SuiteTask, ...]:
    """A suite's tasks, in file order; a clear error for an unknown or unreadable suite."""
    key = name.strip().lower()
    if key not in suite_names():
        raise UsageError(f"unknown suite {name!r}; suites: {', '.join(suite_names())}")
    path = SUITES_DIR / f"{key}.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return tuple(SuiteTask(t["name"], t["family"], t["prompt"], t["check"]) for t in document["tasks"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"cannot read the suite file {path}: {exc}") from None


def suite_prompts(name: str) -> list[Prompt]:
    """The prompts of a suite, each carrying its task name and check."""
    return [task.as_prompt() for task in load_suite(name)]


def suite_task(task_name: str) -> SuiteTask | None:
    """A suite task by its full name (`verified/arith-add`), None when no suite has it."""
    suite, _, _ = task_name.partition("/")
    if suite not in suite_names():
        return None
    return next((task for task in load_suite(suite) if task.name == task_name), None)
