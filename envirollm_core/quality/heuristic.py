"""A quality score without an LLM: the paper's four features, with its flaws fixed.

Features, each 0-1 (None where it does not apply, and then left out of the mean):
- completeness: how many of the prompt's content words the answer takes up
  (code identifiers split, so `bubble_sort` covers "bubble sort"), and whether
  it ends cleanly rather than cut off mid-sentence or inside an open code fence;
- vocabulary_diversity: moving-average type-token ratio of the prose (window
  50 words), which unlike a plain ratio does not fall as an answer grows; code
  repeats its identifiers by nature, so code-only answers skip this feature;
- length: enough words for what the prompt asks (short for "in one sentence" or
  a one-line question, a few tokens for a query or function) with no upper
  bound unless the prompt sets one, so long-form answers are not punished;
- structure: readable sentence lengths, paragraphs or lists in long prose, no
  sentences repeated; code and SQL count as structured when their fences and
  brackets balance. Decimals ("3.5") and abbreviations ("e.g.") do not end a
  sentence.

Score = mean of the applicable features x 100, labelled `heuristic`, a rough
score: it measures form, not truth, and a fluent wrong answer scores well.

Degenerate answers score at most 20, with the reason in `flags`: an answer that
mostly repeats the prompt (most of its words lie in 5-word runs copied from
it), a repetition loop (most of its 4-word runs repeat an earlier one), and
text that is not language (stray tokens such as lone symbols or `<unused12>`,
vowel-less letter strings, or letters of a script the prompt does not use).
A base model's continuation of the prompt is the usual case of all three.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

HEURISTIC_VERSION = "envirollm-heuristic-2"
DEGENERATE_CAP = 20.0
ECHO_NGRAM, ECHO_SHARE = 5, 0.5
LOOP_NGRAM, LOOP_SHARE = 4, 0.5
STRAY_SHARE, FOREIGN_SCRIPT_SHARE = 0.3, 0.15
MIN_WORDS_TO_FLAG = 8

MATTR_WINDOW = 50
DIVERSITY_FLOOR, DIVERSITY_FULL = 0.45, 0.75  # MATTR-50: padded repetition ~0.4-0.6, ordinary prose 0.75-0.95
COVERAGE_FULL = 0.6  # an answer need not repeat every word of the prompt
MIN_WORDS_DEFAULT = 40
MIN_TOKENS_CODE = 10
SENTENCE_WORDS_LOW, SENTENCE_WORDS_HIGH = 6, 30
LONG_PROSE_WORDS = 200
TOO_SHORT_TO_ASSESS = 10  # words: below this, diversity and sentence form say nothing

_FENCE = re.compile(r"```[^\n]*\n?(.*?)(```|\Z)", re.DOTALL)
_SQL_START = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|WITH|FROM|WHERE|GROUP BY|ORDER BY|HAVING|LIMIT|UNION|"
    r"(LEFT |RIGHT |INNER |OUTER |FULL )?JOIN|VALUES|SET|AND|OR|ON)\b"
)
_CODE_START = re.compile(
    r"^\s*(def |class |import |from \S+ import |return\b|elif\b|else:|try:|except\b|for .*:\s*$|if .*:\s*$|"
    r"while .*:\s*$|function\b|const |let |var |#include|public |private |static |fn |print\(|console\.)"
)
_CODE_END = re.compile(r"[{};]\s*$|^\s*[}\])]+;?\s*$")
_LIST_ITEM = re.compile(r"^\s*([-*+•]|\d+[.)]|[a-z][.)])\s+")
_HEADING = re.compile(r"^\s*(#{1,6}\s|\*\*[^*]+\*\*:?\s*$|[A-Z][^.!?]{0,60}:\s*$)")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_ABBREVIATIONS = {"e.g.", "i.e.", "etc.", "vs.", "dr.", "mr.", "mrs.", "ms.", "prof.", "approx.", "no.", "fig.", "st.", "u.s.", "cf."}
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_TERM = re.compile(r"[A-Za-z][a-z]+|[A-Z]+(?![a-z])")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_CLEAN_END = re.compile(r"[.!?:;)\]\"'`*»”’]\s*$")
_BREVITY = re.compile(
    r"\b(one|a single|1)[ -](sentence|word|line|paragraph)\b|\bbrief(ly)?\b|\bshort\b|\bconcise(ly)?\b|"
    r"\bin (\d+) words\b|\bjust the (answer|number|name)\b|\byes or no\b",
    re.IGNORECASE,
)
_SHORT_QUESTION = re.compile(r"^\s*(what|who|when|where|which|how many|how much|is|are|does|do|can)\b", re.IGNORECASE)
_CODE_TASK = re.compile(r"\b(code|function|query|sql|script|program|implement\w*|regex|class|snippet|method)\b", re.IGNORECASE)
_STOPWORDS = set(
    """a an the and or but if then than that this these those of to in on at by for with from about as into over
    under is are was were be been being it its it's i you your we our they their he she his her them me my
    what which who whom whose when where why how do does did done can could should would will shall may might
    must not no yes so such very more most less least some any all each every both few many much other own same
    too just also only there here please give write explain describe tell list show make provide using use
    between while after before during through per via one two three answer question simple simply terms detail
    detailed works work way step steps example examples""".split()
)


@dataclass(frozen=True)
class HeuristicScore:
    """Score 0-100 and the four features behind it (0-1 each, None where not applicable); `flags` say why a
    degenerate answer was capped at 20."""

    score: float
    features: dict[str, float | None]
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Parts:
    prose: str
    code: str
    fences_balanced: bool


def _split(answer: str) -> _Parts:
    """Separate code (fenced blocks and unfenced code or SQL lines) from prose."""
    code_blocks = [m.group(1) for m in _FENCE.finditer(answer)]
    fences_balanced = answer.count("```") % 2 == 0
    rest = _FENCE.sub("\n\n", answer)
    prose_lines, code_lines = [], []
    for line in rest.splitlines():
        is_code = (
            line.startswith(("    ", "\t")) and not _LIST_ITEM.match(line)
            or _SQL_START.match(line) is not None
            or _CODE_START.match(line) is not None
            or (_CODE_END.search(line) is not None and not _WORD.fullmatch(line.strip().lower().rstrip(";")))
        )
        (code_lines if is_code else prose_lines).append(line)
    code = "\n".join([*code_blocks, *code_lines])
    return _Parts(prose="\n".join(prose_lines), code=code, fences_balanced=fences_balanced)


def _stem(word: str) -> str:
    """The first five letters: `computer`, `computing` and `computation` meet; crude, but language-agnostic."""
    return word[:5]


def _terms(text: str) -> set[str]:
    """Content words, lowercased and crudely stemmed; `bubble_sort`/`bubbleSort` give bubble and sort."""
    words = (w.lower() for w in _TERM.findall(text))
    return {_stem(w) for w in words if len(w) >= 3 and w not in _STOPWORDS}


def _sentences(prose: str) -> list[str]:
    """Sentences of prose; list items, headings and table rows are units of their own."""
    units: list[str] = []
    for block in re.split(r"\n\s*\n", prose):
        paragraph: list[str] = []
        for line in block.splitlines():
            if _HEADING.match(line) or _TABLE_ROW.match(line):
                units.append(line.strip())
            elif _LIST_ITEM.match(line):
                units.extend(_split_sentences(_LIST_ITEM.sub("", line, count=1)))
            elif line.strip():
                paragraph.append(line.strip())
        units.extend(_split_sentences(" ".join(paragraph)))
    return units


def _split_sentences(text: str) -> list[str]:
    merged: list[str] = []
    for piece in _SENTENCE_END.split(text.strip()) if text.strip() else []:
        if merged and (merged[-1].split()[-1].lower() in _ABBREVIATIONS or re.search(r"\b[A-Z]\.$", merged[-1])):
            merged[-1] = f"{merged[-1]} {piece}"  # "e.g." or an initial does not end a sentence
        else:
            merged.append(piece)
    return [p for p in merged if p.strip()]


def _mattr(words: list[str]) -> float:
    if len(words) <= MATTR_WINDOW:
        return len(set(words)) / len(words)
    ratios = [len(set(words[i : i + MATTR_WINDOW])) / MATTR_WINDOW for i in range(len(words) - MATTR_WINDOW + 1)]
    return sum(ratios) / len(ratios)


def _clamp(value: float) -> float:
    return max(0.0, min(1.0, value))


def _length_bounds(prompt: str) -> tuple[int, int | None]:
    """(minimum, maximum or None) answer length in tokens that the prompt asks for."""
    brevity = _BREVITY.search(prompt)
    if brevity:
        if brevity.group(5):  # "in N words"
            return 1, 2 * int(brevity.group(5))
        unit = (brevity.group(2) or "").lower()
        return 1, {"word": 5, "line": 40, "sentence": 60}.get(unit, 200)
    if _CODE_TASK.search(prompt):
        return MIN_TOKENS_CODE, None
    if prompt.strip().endswith("?") and len(prompt.split()) <= 12 and _SHORT_QUESTION.match(prompt):
        return 1, None
    return MIN_WORDS_DEFAULT, None


def _completeness(prompt: str, answer: str, parts: _Parts) -> float:
    last_line = answer.rstrip().splitlines()[-1] if answer.strip() else ""
    if parts.code and answer.rstrip().endswith("```"):
        ends_cleanly = parts.fences_balanced
    else:
        ends_cleanly = bool(
            _CLEAN_END.search(last_line) or _LIST_ITEM.match(last_line) or _TABLE_ROW.match(last_line)
            or (_CODE_END.search(last_line) and parts.code)
        )
    ends_cleanly = ends_cleanly and parts.fences_balanced
    wanted = _terms(prompt)
    if not wanted:
        return float(ends_cleanly)
    coverage = len(wanted & _terms(answer)) / len(wanted)
    return 0.7 * _clamp(coverage / COVERAGE_FULL) + 0.3 * float(ends_cleanly)


def _diversity(parts: _Parts) -> float | None:
    words = _WORD.findall(parts.prose.lower())
    if len(words) < TOO_SHORT_TO_ASSESS or (len(words) < 20 and parts.code.strip()):
        return None  # too little prose to judge; code repeats identifiers by nature
    return _clamp((_mattr(words) - DIVERSITY_FLOOR) / (DIVERSITY_FULL - DIVERSITY_FLOOR))


def _length(prompt: str, parts: _Parts) -> float:
    size = len(parts.prose.split()) + len(_TOKEN.findall(parts.code))
    low, high = _length_bounds(prompt)
    if size < low:
        return size / low
    if high is not None and size > high:
        return high / size
    return 1.0


def _brackets_balanced(code: str) -> bool:
    return all(code.count(o) == code.count(c) for o, c in ("()", "[]", "{}"))


def _structure(parts: _Parts) -> float | None:
    prose_words = len(parts.prose.split())
    code_tokens = len(_TOKEN.findall(parts.code))
    if not code_tokens and prose_words < TOO_SHORT_TO_ASSESS:
        return None  # "4." has no structure to judge, and needs none
    code_score = 1.0
    if code_tokens:
        code_score = (1.0 if parts.fences_balanced else 0.6) * (1.0 if _brackets_balanced(parts.code) else 0.6)
    prose_score = 1.0
    sentences = _sentences(parts.prose)
    if sentences:
        mean_words = sum(len(s.split()) for s in sentences) / len(sentences)
        if mean_words < SENTENCE_WORDS_LOW:
            readable = mean_words / SENTENCE_WORDS_LOW
        elif mean_words > SENTENCE_WORDS_HIGH:
            readable = SENTENCE_WORDS_HIGH / mean_words
        else:
            readable = 1.0
        wall_of_text = prose_words > LONG_PROSE_WORDS and "\n" not in parts.prose.strip()
        organized = 0.7 if wall_of_text else 1.0
        normalized = [" ".join(_WORD.findall(s.lower())) for s in sentences]
        unique = len(set(normalized)) / len(normalized)
        prose_score = readable * organized * unique
    return (prose_score * prose_words + code_score * code_tokens) / (prose_words + code_tokens)


def _ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def _echo_share(prompt: str, answer: str) -> float:
    """Share of the answer's words that lie inside a run of ECHO_NGRAM words copied from the prompt."""
    words = _WORD.findall(answer.lower())
    seen = set(_ngrams(_WORD.findall(prompt.lower()), ECHO_NGRAM))
    copied = [False] * len(words)
    for i, gram in enumerate(_ngrams(words, ECHO_NGRAM)):
        if gram in seen:
            copied[i : i + ECHO_NGRAM] = [True] * ECHO_NGRAM
    return sum(copied) / len(words) if words else 0.0


def _loop_share(answer: str) -> float:
    """Share of the answer's LOOP_NGRAM-word runs that repeat an earlier one."""
    grams = _ngrams(_WORD.findall(answer.lower()), LOOP_NGRAM)
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def _scripts(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for char in text:
        if char.isalpha():
            script = unicodedata.name(char, "UNKNOWN").split()[0]
            counts[script] = counts.get(script, 0) + 1
    return counts


def _not_language(prompt: str, prose: str) -> str | None:
    tokens = prose.split()
    if len(tokens) >= MIN_WORDS_TO_FLAG:
        stray = [t for t in tokens if not any(c.isalnum() for c in t) and t not in ("-", "–", "—", "&")
                 or re.fullmatch(r"<\|?[\w|]*\|?>|\[/?[A-Z_]+\]", t)
                 or (len(t) >= 5 and t.isalpha() and t.isascii() and not re.search(r"[aeiouyAEIOUY]", t))]
        if len(stray) / len(tokens) >= STRAY_SHARE:
            return f"not language: {len(stray)} of {len(tokens)} tokens are stray ({' '.join(stray[:5])[:60]})"
    letters = _scripts(prose)
    total = sum(letters.values())
    expected = set(_scripts(prompt)) or {"LATIN"}
    foreign = sum(n for script, n in letters.items() if script not in expected)
    if total >= 20 and foreign / total >= FOREIGN_SCRIPT_SHARE:
        return f"not language: {foreign / total:.0%} of its letters are in a script the prompt does not use"
    return None


def degenerate_flags(prompt: str, answer: str, prose: str) -> tuple[str, ...]:
    """Why an answer is an echo, a loop or not language; empty for an ordinary answer."""
    flags = []
    if len(_WORD.findall(answer.lower())) >= MIN_WORDS_TO_FLAG:
        echo = _echo_share(prompt, answer)
        if echo >= ECHO_SHARE:
            flags.append(f"echo: {echo:.0%} of the answer repeats the prompt")
        loop = _loop_share(answer)
        if loop >= LOOP_SHARE:
            flags.append(f"loop: {loop:.0%} of its {LOOP_NGRAM}-word runs repeat")
    odd = _not_language(prompt, prose)
    if odd:
        flags.append(odd)
    return tuple(flags)


def heuristic_score(prompt: str, answer: str) -> HeuristicScore:
    """Score an answer 0-100 from its form alone; deterministic, no model needed."""
    if not answer.strip():
        features: dict[str, float | None] = dict.fromkeys(
            ("completeness", "vocabulary_diversity", "length", "structure"), 0.0
        )
        return HeuristicScore(score=0.0, features=features)
    parts = _split(answer)
    features = {
        "completeness": _completeness(prompt, answer, parts),
        "vocabulary_diversity": _diversity(parts),
        "length": _length(prompt, parts),
        "structure": _structure(parts),
    }
    applicable = [value for value in features.values() if value is not None]
    score = 100.0 * sum(applicable) / len(applicable)
    flags = degenerate_flags(prompt, answer, parts.prose)
    if flags:
        score = min(score, DEGENERATE_CAP)
    return HeuristicScore(
        score=round(score, 1),
        features={k: (round(v, 3) if v is not None else None) for k, v in features.items()},
        flags=flags,
    )
