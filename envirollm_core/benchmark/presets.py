"""Prompts to benchmark: the shipped task presets (`data/presets.json`), custom text, prompt files."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envirollm_core.errors import UsageError
from envirollm_core.paths import data_file
from envirollm_core.store.exchange import MAX_FIELD_CHARS

PRESETS_FILE = data_file("presets.json")
PROMPT_SEPARATOR = "\n---\n"  # a prompt file may hold several prompts, separated by a line holding only ---
# A run stores its prompt whole, and an export must import again: no prompt may be longer than an import takes.
MAX_PROMPT_CHARS = MAX_FIELD_CHARS


@dataclass(frozen=True)
class Prompt:
    """One prompt of a batch; `preset` names the task when it came from a preset."""

    text: str
    preset: str | None = None
    reference: str | None = None
    check: dict[str, Any] | None = None


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    prompt: str
    reference: str | None = None
    check: dict[str, Any] | None = field(default=None, hash=False)

    def as_prompt(self) -> Prompt:
        return Prompt(self.prompt, preset=self.name, reference=self.reference, check=self.check)


@functools.cache
def load_presets(path: Path = PRESETS_FILE) -> dict[str, Preset]:
    """The presets by name, in file order."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return {
            entry["name"]: Preset(
                name=entry["name"], title=entry.get("title", entry["name"]), prompt=entry["prompt"],
                reference=entry.get("reference"), check=entry.get("check"),
            )
            for entry in document["presets"]
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"cannot read the presets file {path}: {exc}") from None


def _key(name: str) -> str:
    return "-".join(name.strip().lower().replace("_", " ").replace("-", " ").split())


def get_preset(name: str) -> Preset:
    """A preset by name; `code generation`, `code_generation` and `Code-Generation` all find `code-generation`."""
    presets = load_presets()
    by_key = {_key(p.name): p for p in presets.values()} | {_key(p.title): p for p in presets.values()}
    preset = by_key.get(_key(name)) or by_key.get(_key(name) + "-writing")
    if preset is None:
        raise UsageError(f"unknown preset {name!r}; presets: {', '.join(presets)}")
    return preset


def read_prompt_file(path: Path) -> list[Prompt]:
    """Prompts from a text file: the whole file, or several prompts separated by lines holding only `---`."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_PROMPT_CHARS + 1)  # bounded: /dev/zero or a wrong file must not fill the memory
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"prompt file not found: {path}") from None
    except UnicodeDecodeError:
        raise UsageError(f"prompt file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"cannot read prompt file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_PROMPT_CHARS:
        raise UsageError(f"prompt file {path} is longer than {MAX_PROMPT_CHARS:,} bytes")
    prompts = [p.strip() for p in text.replace("\r\n", "\n").split(PROMPT_SEPARATOR)]
    prompts = [p for p in prompts if p]
    if not prompts:
        raise UsageError(f"prompt file {path} holds no prompt")
    return [Prompt(p) for p in prompts]


def select_prompts(
    prompt: str | None = None, presets: list[str] | None = None, prompt_file: Path | None = None,
    suite: str | None = None,
) -> list[Prompt]:
    """The prompts a command asked for: text, presets (or `all`), a file, a suite; the `explanation` preset when none."""
    from envirollm_core.benchmark.suites import suite_prompts  # suites build on this module

    selected: list[Prompt] = []
    if prompt is not None:
        if not prompt.strip():
            raise UsageError("--prompt is empty")
        selected.append(Prompt(prompt))
    for name in presets or ():
        if _key(name) == "all":
            selected.extend(p.as_prompt() for p in load_presets().values())
        else:
            selected.append(get_preset(name).as_prompt())
    if prompt_file is not None:
        selected.extend(read_prompt_file(prompt_file))
    if suite is not None:
        selected.extend(suite_prompts(suite))
    return selected or [get_preset("explanation").as_prompt()]
