"""LAN exposure, in the core and on the command line: read-only mode on every write path, API keys nowhere.

The browser side (what a visitor's browser gets: keys, planted HTML and script, uploads, XSRF) is in
test_lan_browser.py.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from streamlit.testing.v1 import AppTest

from envirollm_core.backends.embedded import shared_engine, start_shared_engine
from envirollm_core.backends.openai_compat import OpenAIBackend
from envirollm_core.backends.factory import BackendChoice
from envirollm_core.benchmark.jobs import BenchmarkJob, JobRegistry
from envirollm_core.benchmark.presets import Prompt
from envirollm_core.benchmark.runner import BenchmarkConfig, run_benchmark
from envirollm_core.settings import (
    ReadOnlyError,
    Settings,
    read_only_mode,
    save_settings,
    settings_path,
)
from envirollm_core.store import Store
from envirollm_core.store.codec import encode_runs
from tests.fakes.scripted_server import (
    TokenScript,
    openai_error,
    openai_routes,
    openai_stream,
)
from tests.fakes.cli import assert_one_line_usage_error, run_cli_all
from tests.fakes.runs import full_run

REPO = Path(__file__).resolve().parents[2]
MODEL = "phi-3.5-mini-instruct"
SCRIPT = TokenScript(tokens=["fine ", "thanks"], ttft_s=0.01, tokens_per_s=500.0)
QUICK = ["--repeat", "1", "--warmup", "0", "--idle-s", "0", "--judge", "none", "--max-tokens", "4"]


def config() -> BenchmarkConfig:
    return BenchmarkConfig(models=(MODEL,), prompts=(Prompt("Say hi."),), repeat=1, warmup=0, max_tokens=4, idle_s=0)


# -- read-only mode ---------------------------------------------------------------------------------

HOW = ["environment", "settings file", "settings file with a bad value", "explicit read_only=False",
       "store made before"]


@pytest.mark.parametrize("how", HOW)
def test_read_only_holds_in_the_core_for_every_write_path(how, serve, isolated_home, tmp_path, monkeypatch):
    server = serve(openai_routes([MODEL], openai_stream(MODEL, SCRIPT)))
    path = isolated_home / "envirollm.duckdb"
    kept = [full_run(), full_run()]
    made_before = Store(path)
    made_before.add_runs(kept)
    export = tmp_path / "runs.csv"
    Store(path).export(export, "csv")
    save_settings(Settings(country_code="DEU"))
    stored_before = Store(path).runs(with_trace=True)

    if how == "environment":
        monkeypatch.setenv("ENVIROLLM_READ_ONLY", "1")
    else:
        saved = json.loads(settings_path().read_text(encoding="utf-8"))
        # A value out of range must not switch read-only mode off (a broken file is no reason to allow writes).
        extra = {"sampling_interval_s": 99} if how == "settings file with a bad value" else {}
        settings_path().write_text(json.dumps({**saved, "read_only": True, **extra}), encoding="utf-8")
        if how in ("explicit read_only=False", "store made before"):
            monkeypatch.setenv("ENVIROLLM_READ_ONLY", "yes")
    settings_before = settings_path().read_bytes()
    engine_pid = shared_engine().pid  # an earlier test of the session may have started it: it must not change
    assert read_only_mode()
    store = {"explicit read_only=False": lambda: Store(path, read_only=False),
             "store made before": lambda: made_before}.get(how, lambda: Store(path))()
    run = kept[0]
    graded = full_run(id=run.id, quality_score=1.0)
    writes = {
        "add_run": lambda: store.add_run(full_run()),
        "add_runs": lambda: store.add_runs([full_run()], skip_existing=True),
        "add_encoded": lambda: store.add_encoded(encode_runs([full_run()])),
        "delete_run": lambda: store.delete_run(run.id),
        "clean": store.clean,
        "set_note": lambda: store.set_note(run.id, "changed"),
        "set_quality": lambda: store.set_quality([graded]),
        "import_file": lambda: store.import_file(export),
        "save_settings": lambda: save_settings(Settings(country_code="FRA")),
        "JobRegistry.start": lambda: JobRegistry().start(BackendChoice("openai", f"{server.url}/v1"), config(),
                                                         store_path=path),
        "BenchmarkJob": lambda: BenchmarkJob(BackendChoice("openai", f"{server.url}/v1"), config(), store_path=path),
        "run_benchmark": lambda: run_benchmark(OpenAIBackend(f"{server.url}/v1", name="openai"), config(),
                                               store=store),
        "start_shared_engine": start_shared_engine,  # the System page's "ask the embedded engine"
    }
    allowed = []
    for name, write in writes.items():
        try:
            write()
        except ReadOnlyError as exc:
            assert str(exc).startswith("read-only mode: ") and "\n" not in str(exc), (name, str(exc))
        else:
            allowed.append(name)
    assert not allowed, f"written in read-only mode: {allowed}"
    assert Store(path).runs(with_trace=True) == stored_before
    assert {r.id: r.notes for r in Store(path).runs()} == {r.id: r.notes for r in kept}
    assert Store(path).run(run.id).quality_score == run.quality_score
    assert settings_path().read_bytes() == settings_before
    assert not [r for r in server.requests if r.path == "/v1/chat/completions"], "refused before any request"
    assert shared_engine().pid == engine_pid


def test_read_only_system_page_cannot_run_the_engine(isolated_home, monkeypatch):
    monkeypatch.setenv("ENVIROLLM_READ_ONLY", "1")
    engine_pid = shared_engine().pid
    app = AppTest.from_file(str(REPO / "app_pages" / "system.py"), default_timeout=60).run()
    assert not app.exception
    # "Ask the engine" when an earlier test left the shared engine running
    assert next(b for b in app.button if b.label in ("Start the engine and ask", "Ask the engine")).disabled
    assert any("Read-only" in info.value for info in app.info)
    assert shared_engine().pid == engine_pid


def test_read_only_on_the_command_line(serve, isolated_home, tmp_path):
    server = serve(openai_routes([MODEL], openai_stream(MODEL, SCRIPT)))
    Store().add_runs([full_run(), full_run()])
    run_id = Store().runs()[0].id
    export = tmp_path / "runs.json"
    Store().export(export, "json")
    before = Store().runs(with_trace=True)
    writes = {
        "benchmark-openai": ["benchmark-openai", "--url", f"{server.url}/v1", "--model", MODEL, *QUICK],
        "benchmark": ["benchmark", "--models", MODEL, "--url", server.url, *QUICK],
        "demo": ["demo", *QUICK],
        "import": ["import", str(export)],
        "delete": ["delete", run_id],
        "note": ["note", run_id, "changed"],
        "clean": ["clean", "--yes"],
    }
    reads = {"list": ["list", "--json"], "export": ["export", "--format", "csv", "--output", str(tmp_path / "out.csv")],
             "compare": ["compare", "--json"]}
    results = run_cli_all([*writes.values(), *reads.values()], env={"ENVIROLLM_READ_ONLY": "1"})
    for name, result in zip([*writes, *reads], results, strict=True):
        if name in writes:
            assert_one_line_usage_error(result, "read-only")
        else:
            assert result.returncode == 0 and "Traceback" not in result.stderr, (name, result.stderr[-1000:])
    assert Store().runs(with_trace=True) == before
    assert not server.requests, "no server was asked anything"
    assert "engine" not in "".join(results[2].stderr.splitlines()[:-1])  # the demo did not start its engine first


# -- API keys ----------------------------------------------------------------------------------------


def key_checking_routes(key: str, password: str, script: TokenScript = SCRIPT):
    """A server that answers only with the right key (or behind a proxy, the right password), as hosted ones do."""
    basic = "Basic " + base64.b64encode(f"user:{password}".encode()).decode()

    def chat(request):
        if request.headers.get("authorization") not in (f"Bearer {key}", basic):
            return openai_error(401, "Incorrect API key provided")
        return openai_stream(MODEL, script)

    return openai_routes([MODEL], chat)


def every_file_under(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_api_keys_never_reach_the_database_exports_output_or_logs(serve, isolated_home, tmp_path, caplog):
    key = f"sk-reliability-{uuid.uuid4().hex}"
    password = f"pw-{uuid.uuid4().hex}"  # a key can also come as the URL's password
    server = serve(key_checking_routes(key, password))
    host = server.url.removeprefix("http://")
    runs_cli = run_cli_all([
        ["benchmark-openai", "--url", f"{server.url}/v1", "--model", MODEL, "--api-key", key, "--json", *QUICK],
        ["benchmark-openai", "--url", f"http://user:{password}@{host}/v1", "--model", MODEL, "--json", *QUICK],
        ["benchmark-openai", "--url", f"{server.url}/v1", "--model", MODEL, "--api-key", f"{key}-wrong", "--json", *QUICK],
    ])
    assert [r.returncode for r in runs_cli] == [0, 0, 1], [r.stderr[-500:] for r in runs_cli]
    assert "HTTP 401" in json.loads(runs_cli[2].stdout)[0]["error"]
    authorized = [r for r in server.requests if r.path == "/v1/chat/completions"]
    assert sum(r.headers.get("authorization") == f"Bearer {key}" for r in authorized) == 1  # the key was used
    assert sum(r.headers.get("authorization", "").startswith("Basic ") for r in authorized) == 1  # and the password

    # The same through the core, with every log record of every logger captured.
    with caplog.at_level(logging.DEBUG):
        job = JobRegistry().start(BackendChoice("openai", f"http://user:{password}@{host}/v1"), config(),
                                  store_path=isolated_home / "envirollm.duckdb")
        assert job.wait(60) and job.snapshot().state == "finished"
        failing = JobRegistry().start(BackendChoice("openai", f"{server.url}/v1", api_key=f"{key}-wrong"), config(),
                                      store_path=isolated_home / "envirollm.duckdb")
        assert failing.wait(60) and failing.snapshot().failed_runs == 1
    assert Store().count() == 5

    exports = run_cli_all([["export", "--format", fmt, "--output", str(tmp_path / f"all.{fmt}")]
                           for fmt in ("csv", "parquet", "json")] + [["list", "--json"], ["export", "--format", "json"]],
                          cwd=tmp_path)  # the last export lands under its default name in tmp_path, searched below
    assert all(result.returncode == 0 for result in exports), [r.stderr for r in exports]
    parquet_text = json.dumps(pq.read_table(io.BytesIO((tmp_path / "all.parquet").read_bytes())).to_pylist(), default=str)

    places = {
        **{str(path): data for path, data in every_file_under(isolated_home).items()},  # the database, settings...
        **{str(path): data for path, data in every_file_under(tmp_path).items()},  # the exports
        "parquet, decoded": parquet_text.encode(),
        "logs": caplog.text.encode(),
        **{f"output of command {i}": (r.stdout + r.stderr).encode() for i, r in enumerate(runs_cli + exports)},
    }
    assert any(path.endswith("envirollm.duckdb") for path in places)
    for secret in (key, password):
        leaks = [place for place, data in places.items() if secret.encode() in data]
        assert not leaks, f"{secret[:12]}... found in {leaks}"
    assert caplog.records, "nothing was logged at all: the check above would prove nothing"
