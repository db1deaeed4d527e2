"""A server that echoes the API key back in its errors: the key still never reaches a run, a log or the output."""

import subprocess
import sys
from pathlib import Path

from envirollm_core.quality import JudgeConfig, judge_runs
from tests.fakes.judge import record_passed_check
from tests.fakes.runs import realistic_runs
from tests.fakes.scripted_server import Reply, Request, openai_error, openai_models

KEY = "sk-ECHOED-0123456789abcdef"


def _echo_key(request: Request) -> Reply:
    return openai_error(401, f"Invalid API key: {request.headers.get('authorization', '')}")


def test_an_echoed_key_is_kept_out_of_runs_output_and_database(serve, tmp_path):
    server = serve({("GET", "/v1/models"): openai_models(["m"]), ("POST", "/v1/chat/completions"): _echo_key})
    db = tmp_path / "runs.duckdb"
    result = subprocess.run(
        [sys.executable, "-m", "envirollm_core", "benchmark-openai", "--url", f"{server.url}/v1", "--model", "m",
         "--api-key", KEY, "--repeat", "1", "--warmup", "0", "--idle-s", "0", "--judge", "none", "--db", str(db),
         "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert any(KEY in r.headers.get("authorization", "") for r in server.requests), "the key was not sent at all"
    assert "HTTP 401" in result.stdout and "***" in result.stdout
    for place, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        assert KEY not in text, f"the key reached {place}"
    assert KEY.encode() not in b"".join(p.read_bytes() for p in Path(tmp_path).iterdir() if p.is_file())


def test_an_echoed_key_is_kept_out_of_the_quality_detail(serve):
    judge = serve({("GET", "/v1/models"): openai_models(["judge"]), ("POST", "/v1/chat/completions"): _echo_key})
    runs = [run for run in realistic_runs(batches=1) if run.status == "ok"][:1]
    unchecked = [run for run in realistic_runs(batches=1) if run.status == "ok"][:1]
    judge_runs(unchecked, JudgeConfig(url=f"{judge.url}/v1", model="judge", api_key=KEY))
    assert "could not be checked" in unchecked[0].quality_detail["note"]  # its first use checks it: refused
    assert KEY not in repr(unchecked[0].quality_detail)
    record_passed_check(f"{judge.url}/v1", "judge")  # as if it had passed, to see what grading keeps
    judge_runs(runs, JudgeConfig(url=f"{judge.url}/v1", model="judge", api_key=KEY))
    assert runs[0].quality_score is None
    assert "401" in repr(runs[0].quality_detail)
    assert KEY not in repr(runs[0].quality_detail)
