"""An LLM judge on any OpenAI-compatible endpoint, and the pass that grades a batch.

The judge runs after the timed runs, never inside their energy windows; its own
time and energy are measured in a window of their own and returned as its cost.
A judge that is down, slow or unparseable never fails a run: the run keeps its
measurements and its quality is None, with the reason in `quality_detail`.

What each endpoint accepts is learnt once and remembered for the process:
whether its chat template keeps the system role, and which output format it
takes (`json_schema`, else `json_object` with a schema, else plain text).
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import openai

from envirollm_core.backends.base import redact, secrets_of
from envirollm_core.errors import EnviroLLMError, UsageError
from envirollm_core.quality.checks import VERIFIED_METHOD, check_for, run_check
from envirollm_core.quality.judge_checks import judge_may_grade, last_judge_check
from envirollm_core.quality.defaults import default_ollama_judge, ollama_url
from envirollm_core.quality.heuristic import HEURISTIC_VERSION, heuristic_score
from envirollm_core.quality.parsing import ParsedVerdict, parse_verdict
from envirollm_core.quality.references import reference_for
from envirollm_core.quality.rubric import (
    CRITERIA,
    OUTPUT_MODES,
    REASONING_MAX_CHARS,
    RUBRIC_VERSION,
    SCALE_MIN,
    VERDICT_SCHEMA,
    OutputMode,
    fold_system,
    raw_to_score,
    response_format,
    single_messages,
    steering_phrases,
)
from envirollm_core.records import ComponentEnergy, RunResult
from envirollm_core.telemetry.measurement import EnergyMeter

HEURISTIC_METHOD = "heuristic"
EMPTY_ANSWER_METHOD = "rule:empty-answer"
JUDGE_MAX_TOKENS = 400
CONNECT_TIMEOUT_S = 5.0
SAMPLING_TEMPERATURE = 0.7  # only when several samples are asked for: their spread must mean something
NO_API_KEY = "not-needed"  # local servers need none, the client insists on one
# Codes that will come back the same for every request: stop asking this judge.
_FATAL_STATUS = {401, 403, 404}

SystemRole = Literal["system", "folded"]
MessageBuilder = Callable[[OutputMode], list[dict[str, str]]]


@dataclass(frozen=True)
class JudgeConfig:
    """Which judge grades the runs. No URL and not disabled: the default (Ollama's small model, else heuristic)."""

    url: str | None
    model: str | None
    api_key: str | None = field(default=None, repr=False)  # used, never stored or logged
    disabled: bool = False
    timeout_s: float = 60.0
    samples: int = 1

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise UsageError(f"judge samples must be at least 1, not {self.samples}")
        if not self.timeout_s > 0:
            raise UsageError(f"judge timeout must be positive, not {self.timeout_s}")
        if self.url is not None:
            if urlsplit(self.url).scheme not in ("http", "https") or not urlsplit(self.url).netloc:
                raise UsageError(f"judge URL {self.url!r} is not an http(s) URL, e.g. http://127.0.0.1:8080/v1")
            if not self.model:
                raise UsageError("--judge-url needs --judge-model")


@dataclass(frozen=True)
class JudgeEndpoint:
    """A resolved LLM judge: where it is and which model."""

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 60.0
    samples: int = 1

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc.rsplit("@", 1)[-1]  # never a user:password

    @property
    def label(self) -> str:
        return f"judge:{self.model}@{self.host}"


@dataclass(frozen=True)
class JudgeVerdict:
    """The grade of one answer: score on 0-100 (None if none could be had), label and detail."""

    score: float | None
    method: str
    detail: dict[str, Any]
    calls: int = 0
    unparsed: int = 0
    judge_down: str | None = None  # set when the judge itself failed (down, slow, refused)
    judge_down_for_good: bool = False  # it will fail the next call too: stop asking


@dataclass(frozen=True)
class JudgeCost:
    """What grading a batch cost: judge calls, time, and energy when a sampler measured it."""

    method: str | None
    calls: int
    duration_s: float
    energy_wh: float | None
    components: tuple[ComponentEnergy, ...] = ()
    scored: int = 0
    unscored: int = 0
    unparsed: int = 0
    note: str = ""


class JudgeUnavailable(Exception):
    """The judge could not answer (down, slow, refused); `fatal` means it will not answer the next call either."""

    def __init__(self, reason: str, fatal: bool, calls: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fatal = fatal
        self.calls = calls


@dataclass
class _EndpointMemory:
    mode: OutputMode | None = None
    system_role: SystemRole | None = None


_memory: dict[tuple[str, str], _EndpointMemory] = {}
_memory_lock = threading.Lock()


def _remembered(endpoint: JudgeEndpoint) -> _EndpointMemory:
    with _memory_lock:
        return _memory.setdefault((endpoint.base_url.rstrip("/"), endpoint.model), _EndpointMemory())


def forget_endpoints() -> None:
    """Forget what every endpoint accepts (a server restarted with other settings)."""
    with _memory_lock:
        _memory.clear()


def _client(endpoint: JudgeEndpoint) -> openai.OpenAI:
    timeout = httpx.Timeout(endpoint.timeout_s, connect=min(CONNECT_TIMEOUT_S, endpoint.timeout_s))
    return openai.OpenAI(
        base_url=endpoint.base_url, api_key=endpoint.api_key or NO_API_KEY, timeout=timeout, max_retries=0
    )


def _unavailable(exc: openai.APIError, endpoint: JudgeEndpoint) -> JudgeUnavailable:
    """Why the judge gave no verdict, with its key and URL password kept out (a server may echo them)."""
    reason = _reason(exc, endpoint)
    return JudgeUnavailable(redact(str(reason), secrets_of(endpoint.base_url, endpoint.api_key)), fatal=reason.fatal)


def _reason(exc: openai.APIError, endpoint: JudgeEndpoint) -> JudgeUnavailable:
    if isinstance(exc, openai.APITimeoutError):
        return JudgeUnavailable(f"judge {endpoint.label} did not answer within {endpoint.timeout_s:g} s", fatal=True)
    if isinstance(exc, openai.APIConnectionError):
        return JudgeUnavailable(f"judge {endpoint.label} is unreachable ({exc})", fatal=True)
    status = getattr(exc, "status_code", None)
    message = " ".join(str(getattr(exc, "message", exc)).split())[:200]
    return JudgeUnavailable(f"judge {endpoint.label} answered HTTP {status}: {message}", fatal=status in _FATAL_STATUS)


_PROBE_SYSTEM = "You are a careful assistant. Follow the rules you are given here exactly and answer briefly."


def _probe_system_role(client: openai.OpenAI, endpoint: JudgeEndpoint) -> tuple[SystemRole, int]:
    """Does the chat template keep the system message? Compare prompt tokens with and without one.

    Deterministic and independent of the model's skill: two one-token requests. A
    server that reports no usage is assumed to keep it.
    """
    counts = []
    for messages in (
        [{"role": "system", "content": _PROBE_SYSTEM}, {"role": "user", "content": "Hi"}],
        [{"role": "user", "content": "Hi"}],
    ):
        try:
            reply = client.chat.completions.create(
                model=endpoint.model, messages=messages, max_tokens=1, temperature=0.0
            )
        except openai.APIError as exc:
            failure = _unavailable(exc, endpoint)
            if failure.fatal or not isinstance(exc, openai.APIStatusError):
                raise failure from None
            return "system", len(counts) + 1  # a server that refuses the probe is graded as it is
        counts.append(reply.usage.prompt_tokens if reply.usage else None)
    if None in counts:
        return "system", 2
    return ("folded" if counts[0] == counts[1] else "system"), 2


@dataclass(frozen=True)
class JudgeReply:
    text: str
    mode: OutputMode
    system_role: SystemRole
    calls: int


def ask_judge(
    endpoint: JudgeEndpoint, build: MessageBuilder, schema: dict, schema_name: str, temperature: float, seed: int | None
) -> JudgeReply:
    """One judge reply, in the best output mode the endpoint accepts."""
    with _client(endpoint) as client:  # closed after the call: no socket left to the garbage collector
        return _ask(client, endpoint, build, schema, schema_name, temperature, seed)


def _ask(
    client: openai.OpenAI, endpoint: JudgeEndpoint, build: MessageBuilder, schema: dict, schema_name: str,
    temperature: float, seed: int | None,
) -> JudgeReply:
    memory = _remembered(endpoint)
    calls = 0
    if memory.system_role is None:
        memory.system_role, calls = _probe_system_role(client, endpoint)
    modes = (memory.mode,) if memory.mode else OUTPUT_MODES
    failure: JudgeUnavailable | None = None
    for mode in modes:
        messages = build(mode)
        if memory.system_role == "folded":
            messages = fold_system(messages)
        request: dict[str, Any] = {"max_tokens": JUDGE_MAX_TOKENS, "temperature": temperature}
        if seed is not None:
            request["seed"] = seed
        fmt = response_format(mode, schema, schema_name)
        if fmt is not None:
            request["response_format"] = fmt
        calls += 1
        try:
            reply = client.chat.completions.create(model=endpoint.model, messages=messages, **request)
        except openai.APIStatusError as exc:
            failure = _unavailable(exc, endpoint)
            if failure.fatal:
                break
            continue  # this output mode is refused (llama-cpp-python answers 500 to json_schema): try the next
        except openai.APIError as exc:
            failure = _unavailable(exc, endpoint)
            failure.calls = calls
            raise failure from None
        memory.mode = mode
        text = reply.choices[0].message.content if reply.choices else None
        return JudgeReply(text=text or "", mode=mode, system_role=memory.system_role, calls=calls)
    assert failure is not None
    failure.calls = calls
    raise failure


def judge_answer(
    prompt: str, answer: str, endpoint: JudgeEndpoint, reference: str | None = None
) -> JudgeVerdict:
    """Grade one answer on the rubric with `endpoint.samples` judge calls."""
    started = time.perf_counter()
    parsed: list[ParsedVerdict] = []
    errors: list[str] = []
    calls = 0
    mode: OutputMode | None = None
    system_role: SystemRole | None = None
    down: str | None = None
    down_for_good = False
    for index in range(endpoint.samples):
        several = endpoint.samples > 1
        try:
            reply = ask_judge(
                endpoint,
                lambda m: single_messages(prompt, answer, reference, m),
                VERDICT_SCHEMA,
                "grade",
                temperature=SAMPLING_TEMPERATURE if several else 0.0,
                seed=index if several else None,
            )
        except JudgeUnavailable as exc:
            calls += exc.calls
            down, down_for_good = exc.reason, exc.fatal
            break
        calls += reply.calls
        mode, system_role = reply.mode, reply.system_role
        verdict = parse_verdict(reply.text)
        if verdict.ok:
            parsed.append(verdict)
        else:
            errors.append(verdict.error or "unparseable")
    detail = _detail(endpoint, parsed, errors, mode, system_role, reference, time.perf_counter() - started)
    steering = steering_phrases(answer)
    if steering:
        detail["steering_suspected"] = steering[:5]
    unparsed = len(errors)
    if down is not None:
        detail["error"] = down
    elif not parsed:
        detail["error"] = f"no judge reply could be parsed ({unparsed} of {endpoint.samples}): {errors[0]}"
    score = raw_to_score(detail["mean_raw"]) if detail.get("mean_raw") is not None else None
    if down is not None and parsed:
        score = None  # a partial set of samples is not the grade that was asked for
    return JudgeVerdict(
        score=score, method=endpoint.label, detail=detail, calls=calls, unparsed=unparsed,
        judge_down=down, judge_down_for_good=down_for_good,
    )


def _detail(
    endpoint: JudgeEndpoint,
    parsed: list[ParsedVerdict],
    errors: list[str],
    mode: OutputMode | None,
    system_role: SystemRole | None,
    reference: str | None,
    elapsed_s: float,
) -> dict[str, Any]:
    means = [v.mean_raw for v in parsed if v.mean_raw is not None]
    names = [n for n in (*CRITERIA, "overall") if any(n in v.scores for v in parsed)]
    return {
        "rubric_version": RUBRIC_VERSION,
        "judge_model": endpoint.model,
        "judge_host": endpoint.host,
        "output_mode": mode,
        "system_role": system_role,
        "reference_used": reference is not None,
        "samples": endpoint.samples,
        "samples_parsed": len(parsed),
        "samples_unparsed": len(errors),
        "raw_scores": [v.scores for v in parsed],
        "criteria_mean": {n: statistics.fmean(v.scores[n] for v in parsed if n in v.scores) for n in names},
        "mean_raw": statistics.fmean(means) if means else None,
        "spread_raw": statistics.stdev(means) if len(means) > 1 else None,
        "reasoning": [v.reasoning[:REASONING_MAX_CHARS] for v in parsed],
        "parse_errors": errors,
        "judge_time_s": round(elapsed_s, 4),
    }


def empty_answer_verdict() -> JudgeVerdict:
    """An empty answer is 1 on every criterion by the rubric's anchors; no judge is asked (a weak one rates it higher)."""
    raw = dict.fromkeys(CRITERIA, float(SCALE_MIN))
    detail = {"rubric_version": RUBRIC_VERSION, "rule": "empty answer: 1 on every criterion", "raw_scores": [raw]}
    return JudgeVerdict(score=raw_to_score(SCALE_MIN), method=EMPTY_ANSWER_METHOD, detail=detail)


def verified_verdict(check: dict[str, Any], answer: str) -> JudgeVerdict:
    """The task's check executed against the answer: the share of checks passed, each check's outcome kept."""
    result = run_check(check, answer)
    return JudgeVerdict(score=result.score, method=VERIFIED_METHOD, detail=result.detail(check))


def heuristic_verdict(prompt: str, answer: str, note: str = "") -> JudgeVerdict:
    result = heuristic_score(prompt, answer)
    detail: dict[str, Any] = {"heuristic_version": HEURISTIC_VERSION, "features": result.features,
                              "rough": "form only, not truth"}
    if result.flags:
        detail["flags"] = list(result.flags)
        detail["reason"] = "; ".join(result.flags)
    if note:
        detail["note"] = note
    return JudgeVerdict(score=result.score, method=HEURISTIC_METHOD, detail=detail)


def resolve_judge(
    config: JudgeConfig, graded_models: Iterable[str] = (), honour_checks: bool = True
) -> tuple[JudgeEndpoint | None, str]:
    """The LLM judge a config names, or the default; None means the heuristic, with the reason.

    Only a judge that passed `judge-check` grades (one never checked is checked now, `judge_may_grade`); any
    other is passed over for the heuristic. `honour_checks=False` is for `judge-check` itself."""
    if config.disabled:
        return None, "LLM judge disabled (--judge none)"
    if config.url:
        endpoint, note = JudgeEndpoint(config.url, config.model or "", config.api_key, config.timeout_s, config.samples), ""
    else:
        choice = default_ollama_judge(graded_models)
        if choice is None:
            return None, f"no judge named and no small instruct model found in Ollama at {ollama_url()}"
        note = "the judge is also one of the graded models" if choice.self_judged else ""
        endpoint = JudgeEndpoint(choice.base_url, choice.model, None, config.timeout_s, config.samples)
    if honour_checks:
        may_grade, why = judge_may_grade(endpoint)
        if not may_grade:
            return None, why
    return endpoint, note


def judge_runs(
    runs: list[RunResult],
    config: JudgeConfig,
    sampler: EnergyMeter | None = None,
    references: Mapping[str, str] | None = None,
) -> JudgeCost:
    """Grade every completed run in place; call it after the timed runs, never inside an energy window.

    `references` maps a prompt hash to a reference answer or check; presets that
    carry one are used without it. Failed runs are left alone.
    """
    targets = [run for run in runs if run.status == "ok"]
    checks = {run.id: check_for(run) for run in targets}
    judged = [run for run in targets if checks[run.id] is None]  # an executed check outranks any judge
    window = f"quality-judge-{uuid.uuid4().hex[:8]}"
    window_open = _begin(sampler, window) if targets else False
    started = time.perf_counter()
    calls = unparsed = scored = 0
    down: str | None = None
    try:
        # Inside the window: a judge's first use checks it on the canaries, and that is part of the judge's cost.
        endpoint, note = resolve_judge(config, {run.model for run in judged}) if judged else (None, "")
        for run in targets:
            check = checks[run.id]
            verdict = verified_verdict(check, run.response) if check else _grade_run(run, endpoint, note, down, references)
            if verdict.judge_down_for_good:
                down = f"{verdict.judge_down} (not asked again in this batch)"
            run.quality_score, run.quality_method, run.quality_detail = verdict.score, verdict.method, verdict.detail
            calls += verdict.calls
            unparsed += verdict.unparsed
            scored += verdict.score is not None
    finally:  # the sampler is shared by the whole process: never leave its window open
        duration_s = time.perf_counter() - started
        energy_wh, components, energy_note = _end(sampler, window) if window_open else (None, (), _no_window_note(sampler))
    return JudgeCost(
        method=endpoint.label if endpoint else (HEURISTIC_METHOD if judged else VERIFIED_METHOD if targets else None),
        calls=calls,
        duration_s=duration_s,
        energy_wh=energy_wh,
        components=components,
        scored=scored,
        unscored=len(targets) - scored,
        unparsed=unparsed,
        note="; ".join(part for part in (note, down or "", energy_note) if part),
    )


def _grade_run(
    run: RunResult, endpoint: JudgeEndpoint | None, note: str, down: str | None, references: Mapping[str, str] | None
) -> JudgeVerdict:
    if endpoint is None:
        return heuristic_verdict(run.prompt, run.response, note)
    if not run.response.strip():
        return empty_answer_verdict()
    if down is not None:
        detail = {"rubric_version": RUBRIC_VERSION, "judge_model": endpoint.model, "error": down}
        return JudgeVerdict(score=None, method=endpoint.label, detail=detail)
    verdict = judge_answer(run.prompt, run.response, endpoint, reference_for(run, references))
    if note:
        verdict.detail["note"] = note
    check = last_judge_check(endpoint.label)
    verdict.detail["judge_check"] = f"passed {check.checked_at}" if check else "passed (the check could not be kept)"
    return verdict


def _begin(sampler: EnergyMeter | None, name: str) -> bool:
    if sampler is None:
        return False
    try:
        sampler.begin_window(name)
    except EnviroLLMError:
        return False
    return True


def _end(sampler: EnergyMeter, name: str) -> tuple[float | None, tuple[ComponentEnergy, ...], str]:
    try:
        measurement = sampler.end_window(name)
    except EnviroLLMError as exc:
        return None, (), f"judge energy not measured: {exc}"
    return measurement.energy_wh, tuple(measurement.components), ""


def _no_window_note(sampler: EnergyMeter | None) -> str:
    return "judge energy not measured: no sampler given" if sampler is None else "judge energy not measured"
