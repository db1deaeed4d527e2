"""`envirollm judge`, `judge-pair` and `judge-check`: grade an answer, compare two, test a judge."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from envirollm_core.cli.common import add_json_option, emit_json, finite_float, info
from envirollm_core.metrics import METRIC
from envirollm_core.errors import UsageError
from envirollm_core.quality import JudgeConfig, judge_answer, pairwise, resolve_judge
from envirollm_core.quality.canaries import QUESTION, run_canaries
from envirollm_core.quality.defaults import ollama_url
from envirollm_core.quality.judge_checks import record_judge_check
from envirollm_core.quality.judge import HEURISTIC_METHOD, JudgeEndpoint, heuristic_verdict, verified_verdict
from envirollm_core.settings import load_settings


def add_judge_options(parser: argparse.ArgumentParser, allow_none: bool = True) -> None:
    group = parser.add_argument_group("quality judge (default: the one saved in Settings, else a small model your Ollama has, else the heuristic)")
    group.add_argument("--judge-url", default=None, help="OpenAI-compatible URL of the judge, e.g. http://127.0.0.1:8080/v1")
    group.add_argument("--judge-model", default=None, help="the judge model (alone: a model of your Ollama)")
    group.add_argument("--judge-api-key", default=None, help="the judge's API key (used, never stored)")
    if allow_none:
        group.add_argument("--judge", default=None, metavar="none", help="'none': no LLM judge, the heuristic only")
    group.add_argument("--samples", type=int, default=1, help="judge calls per answer; their spread is stored (default: 1)")
    group.add_argument("--judge-timeout", type=finite_float, default=60.0, help="seconds to wait for the judge (default: 60)")


def judge_config(args: argparse.Namespace) -> JudgeConfig:
    """The judge the flags name: `--judge none` the heuristic only, a model alone one of the local Ollama's;
    with none named, the default judge saved in the settings, if any."""
    judge_url, judge_model, judge = args.judge_url, args.judge_model, getattr(args, "judge", None)
    if judge is not None:
        if judge.strip().lower() != "none":
            raise UsageError(f"--judge takes only 'none', not {judge!r}; name a judge with --judge-url and --judge-model")
        if judge_url or judge_model:
            raise UsageError("--judge none cannot be combined with --judge-url or --judge-model")
        return JudgeConfig(url=None, model=None, disabled=True, timeout_s=args.judge_timeout, samples=args.samples)
    if judge_url is None and judge_model is None:
        saved = load_settings()
        judge_url, judge_model = saved.judge_url, saved.judge_model
    if judge_url and not judge_model:
        raise UsageError("--judge-url needs --judge-model")
    if judge_model and not judge_url:
        judge_url = f"{ollama_url()}/v1"
    return JudgeConfig(url=judge_url, model=judge_model, api_key=args.judge_api_key, timeout_s=args.judge_timeout,
                       samples=args.samples)


def _text(value: str | None, path: Path | None, name: str) -> str | None:
    if value is not None and path is not None:
        raise UsageError(f"give --{name} or --{name}-file, not both")
    if path is None:
        return value
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read --{name}-file {path}: {exc}") from None


def register(subcommands: argparse._SubParsersAction) -> None:
    judge = subcommands.add_parser(
        "judge", help="grade one answer to a prompt (0-100, rubric of four criteria)",
        description="Grade one answer on accuracy, completeness, clarity and relevance (1-5 each; "
        "score = (mean - 1) x 25) with an LLM judge, or with the heuristic when no judge is available.",
    )
    judge.add_argument("--prompt", required=True, help="the question the answer replies to")
    judge.add_argument("--answer", default=None, help="the answer to grade")
    judge.add_argument("--answer-file", type=Path, default=None, help="read the answer from a file ('-': stdin)")
    judge.add_argument("--reference", default=None, help="a reference answer or check for reference-guided grading")
    judge.add_argument(
        "--preset", default=None,
        help="the task preset or suite task (e.g. code-generation, verified/arith-add) the answer replies to: "
             "its check, when it has one, is executed and gives the score (method 'verified')",
    )
    add_judge_options(judge)
    add_json_option(judge)
    judge.set_defaults(handler=run_judge)

    pair = subcommands.add_parser(
        "judge-pair", help="which of two answers to one prompt is better (both orders; disagreement is a tie)",
        description="Ask the judge in both orders; a verdict stands only when both agree, otherwise it is a tie.",
    )
    pair.add_argument("--prompt", required=True, help="the question both answers reply to")
    pair.add_argument("--a", dest="answer_a", required=True, help="answer a")
    pair.add_argument("--b", dest="answer_b", required=True, help="answer b")
    pair.add_argument("--reference", default=None, help="a reference answer or check")
    add_judge_options(pair)
    add_json_option(pair)
    pair.set_defaults(handler=run_pair)

    check = subcommands.add_parser(
        "judge-check", help="test a judge on canaries: a right, an injected, a padded, a wrong and an empty answer",
        description="Grade answers whose right grade is known and report whether the judge rates them soundly. "
        "Exit code 1 when a canary fails: that judge's scores are not to be trusted.",
    )
    check.add_argument("--embedded", action="store_true", help="use the embedded engine (SmolLM2-135M-Instruct) as the judge")
    check.add_argument("--repeat", type=int, default=1, help="grade each canary N times (default: 1)")
    add_judge_options(check, allow_none=False)
    add_json_option(check)
    check.set_defaults(handler=run_check)


def run_judge(args: argparse.Namespace) -> int:
    answer = _text(args.answer, args.answer_file, "answer")
    if answer is None:
        raise UsageError("give the answer with --answer or --answer-file")
    check = _task_check(args.preset) if args.preset is not None else None
    if check is not None:
        verdict = verified_verdict(check, answer)
        payload = {"quality_score": verdict.score, "quality_method": verdict.method, "quality_detail": verdict.detail}
        return _report_judged(payload, args)
    endpoint, note = resolve_judge(judge_config(args))
    if endpoint is None:
        verdict = heuristic_verdict(args.prompt, answer, note)
        payload = {"quality_score": verdict.score, "quality_method": verdict.method, "quality_detail": verdict.detail}
    else:
        verdict = judge_answer(args.prompt, answer, endpoint, args.reference)
        payload = {"quality_score": verdict.score, "quality_method": verdict.method, "quality_detail": verdict.detail}
    return _report_judged(payload, args)


def _task_check(name: str) -> dict | None:
    """The executable check of a preset or suite task named on the command line; None when it has none."""
    from envirollm_core.benchmark.presets import get_preset
    from envirollm_core.benchmark.suites import suite_task
    from envirollm_core.quality.checks import is_checkable

    task = suite_task(name.strip()) if "/" in name else None
    check = task.check if task is not None else get_preset(name).check
    return check if is_checkable(check) else None


def _report_judged(payload: dict, args: argparse.Namespace) -> int:
    if args.json:
        emit_json(payload)
    else:
        # The score is the result (stdout); why it is what it is, a note (stderr).
        score = payload["quality_score"]
        detail = payload["quality_detail"]
        reason = detail.get("error") or detail.get("reason") or detail.get("note") or ""
        print(f"{'unscored' if score is None else METRIC['quality_score'].format(score)} by {payload['quality_method']}"
              + (" (a rough heuristic: form, not truth)" if payload["quality_method"] == HEURISTIC_METHOD else ""))
        if reason:
            info(reason)
        for outcome in detail.get("checks", []):
            print(f"  {'pass' if outcome['passed'] else 'FAIL'}  {outcome['check']}: {outcome['detail']}")
    return 0 if payload["quality_score"] is not None else 1


def run_pair(args: argparse.Namespace) -> int:
    result = pairwise(args.prompt, args.answer_a, args.answer_b, judge_config(args), args.reference)
    if args.json:
        emit_json(asdict(result))
    else:
        print(f"winner: {result.winner or 'none'} by {result.method}")
        if result.detail.get("error") or result.detail.get("note"):
            info(result.detail.get("error") or result.detail.get("note"))
    return 0 if result.winner is not None else 1


def run_check(args: argparse.Namespace) -> int:
    if args.repeat < 1:
        raise UsageError(f"--repeat must be at least 1, not {args.repeat}")
    if args.embedded:
        if args.judge_url or args.judge_model:
            raise UsageError("--embedded cannot be combined with --judge-url or --judge-model")
        from envirollm_core.backends.embedded import EmbeddedEngine

        with EmbeddedEngine() as engine:
            info(f"judging with the embedded engine ({engine.model_id}) ...")
            endpoint = JudgeEndpoint(engine.base_url, engine.model_id, None, args.judge_timeout, args.samples)
            return _report_check(args, endpoint)
    endpoint, note = resolve_judge(judge_config(args), honour_checks=False)  # a failed judge may be checked again
    if endpoint is None:
        raise UsageError(f"no LLM judge to check: {note}; name one with --judge-url and --judge-model, or --embedded")
    return _report_check(args, endpoint)


def _report_check(args: argparse.Namespace, endpoint: JudgeEndpoint) -> int:
    outcomes = run_canaries(endpoint, repeats=args.repeat)
    try:
        record_judge_check(endpoint.label, {o.name: o.passed for o in outcomes})
    except OSError as exc:
        info(f"this check's result could not be kept ({exc}): quality will not know of it")
    if args.json:
        emit_json({"judge": endpoint.label, "question": QUESTION, "canaries": [
            {**asdict(o), "mean_score": o.mean_score} for o in outcomes
        ]})
    else:
        info(f"judge {endpoint.label}, question {QUESTION!r}")
        for o in outcomes:
            verdict = {True: "pass", False: "FAIL", None: "unscored"}[o.passed]
            scores = ", ".join(METRIC["quality_score"].format(s) for s in o.scores)
            info(f"  {o.name:<10} {verdict:<9} scores {scores:<24} expected {o.expect}")
    return 0 if all(o.passed for o in outcomes) else 1
