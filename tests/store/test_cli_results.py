"""The results commands: list, compare, recommend, fit, export, import, delete, note, clean."""

import json
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from envirollm_core.cli import main
from envirollm_core.store import Store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(tmp_path, make_run):
    """Two batches of two models on one prompt; model gemma3:4b got 40 % worse in the second."""
    path = tmp_path / "cli.duckdb"
    runs = []
    for batch, factor in (("monday", 1.0), ("tuesday", 1.4)):
        for model, energy, quality in (("gemma3:1b", 0.0004, 72.0), ("gemma3:4b", 0.0009, 90.0)):
            for repeat in range(5):
                run = make_run(batch_id=batch, model=model, prompt="Explain quantum computing.", repeat_index=repeat,
                               energy_per_token_wh=energy * (factor if model == "gemma3:4b" else 1.0) * (1 + repeat / 100),
                               quality_score=quality + repeat, decode_tps=100.0 + repeat)
                run.created_at += timedelta(days=0 if batch == "monday" else 1)
                runs.append(run)
    Store(path).add_runs(runs)
    return path


def cli(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_prints_a_table_and_json_prints_only_json(capsys, db):
    code, out, err = cli(capsys, "list", "--db", str(db), "--limit", "3")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["id", "when", "(UTC)"] and set(lines[1]) <= {"-", " "} and len(lines) == 5
    assert "3 run(s) shown" in err
    code, out, _ = cli(capsys, "list", "--db", str(db), "--json", "--model", "gemma3:1b", "--limit", "0")
    runs = json.loads(out)
    assert code == 0 and len(runs) == 10 and {run["model"] for run in runs} == {"gemma3:1b"}
    assert runs[0]["created_at"].endswith("Z")


def test_compare_finds_the_regression_and_fails_only_when_asked(capsys, db):
    code, out, err = cli(capsys, "compare", "--db", str(db))
    assert code == 0 and "regression" in out and "gemma3:4b" in out and "1 regression(s) found" in err
    code, out, _ = cli(capsys, "compare", "--db", str(db), "--json", "--fail-on-regression")
    result = json.loads(out)
    assert code == 1 and result["regressions"] == 1
    (found,) = [c for c in result["changes"] if c["verdict"] == "regression"]
    assert found["model"] == "gemma3:4b" and found["metric"] == "energy_per_token_wh"
    assert found["change_fraction"] == pytest.approx(0.4, abs=0.01)
    assert {group["model"] for group in result["groups"]} == {"gemma3:1b", "gemma3:4b"}


def test_recommend_with_carbon_cost_and_a_month(capsys, db):
    code, out, err = cli(capsys, "recommend", "--db", str(db), "--country", "FRA", "--price-per-kwh", "0.25",
                         "--currency", "EUR", "--tokens-per-day", "100000")
    assert code == 0 and "most efficient" in out and "Pareto frontier" in out and "France" in err
    code, out, _ = cli(capsys, "recommend", "--db", str(db), "--json", "--grid-g-per-kwh", "100",
                       "--tokens-per-day", "1000000")
    (group,) = json.loads(out)["groups"]
    picks = {pick["kind"]: pick for pick in group["picks"]}
    assert picks["highest_quality"]["config"]["model"] == "gemma3:4b"
    efficient = picks["most_efficient"]
    energy = efficient["config"]["energy_per_token_wh"]
    assert efficient["per_1k_tokens"]["co2_g"] == pytest.approx(energy * 1000 / 1000 * 100)
    assert efficient["per_month"]["energy_wh"] == pytest.approx(energy * 1e6 * 30)


def test_fit_for_stated_memory(capsys):
    code, out, _ = cli(capsys, "fit", "--ram-gb", "8", "--vram-gb", "0", "--json", "--quant", "Q4_K_M")
    result = json.loads(out)
    assert code == 0 and result["estimates"]
    assert all(e["placement"] == "cpu" and e["total_gb"] <= 6 for e in result["estimates"])
    code, out, _ = cli(capsys, "fit", "--ram-gb", "8", "--vram-gb", "0", "--quant", "")
    assert code == 2


def test_export_import_round_trip_through_the_cli(capsys, tmp_path, db):
    out_file = tmp_path / "all.parquet"
    code, out, _ = cli(capsys, "export", "--db", str(db), "--output", str(out_file), "--json")
    assert code == 0 and json.loads(out) == {"path": str(out_file.resolve()), "format": "parquet", "runs": 20}
    fresh = tmp_path / "fresh.duckdb"
    code, out, _ = cli(capsys, "import", str(out_file), "--db", str(fresh), "--json")
    assert code == 0 and json.loads(out)["added"] == 20
    code, out, _ = cli(capsys, "import", str(out_file), "--db", str(fresh), "--json")
    assert json.loads(out)["skipped_existing"] == 20
    assert Store(db).runs(with_trace=True) == Store(fresh).runs(with_trace=True)
    code, out, err = cli(capsys, "import", str(out_file), "--db", str(tmp_path / "dry.duckdb"), "--dry-run")
    assert code == 0 and "20 valid run(s)" in err and Store(tmp_path / "dry.duckdb").count() == 0


def test_export_to_stdout(capsys, db):
    code, out, _ = cli(capsys, "export", "--db", str(db), "--format", "json", "--output", "-")
    assert code == 0 and len(json.loads(out)) == 20


def test_delete_note_and_clean(capsys, db):
    run_id = Store(db).runs(limit=1)[0].id
    code, _, _ = cli(capsys, "note", run_id[:12], "battery saver on", "--db", str(db))
    assert code == 0 and Store(db).run(run_id).notes == "battery saver on"
    code, _, _ = cli(capsys, "delete", run_id, "--db", str(db))
    assert code == 0 and Store(db).count() == 19
    code, _, err = cli(capsys, "delete", run_id, "--db", str(db))
    assert code == 2 and "no stored run" in err
    code, _, err = cli(capsys, "clean", "--db", str(db))  # stdin is not a terminal under pytest
    assert code == 2 and "--yes" in err and Store(db).count() == 19
    code, out, _ = cli(capsys, "clean", "--db", str(db), "--yes", "--json")
    assert code == 0 and json.loads(out) == {"deleted": 19} and Store(db).count() == 0


def test_read_only_mode_refuses_writes_from_the_cli(capsys, db, monkeypatch):
    monkeypatch.setenv("ENVIROLLM_READ_ONLY", "1")
    code, _, err = cli(capsys, "clean", "--db", str(db), "--yes")
    assert code == 2 and "read-only" in err and Store(db).count() == 20
    code, out, _ = cli(capsys, "list", "--db", str(db), "--json")
    assert code == 0 and len(json.loads(out)) == 20


def test_a_bad_import_is_one_line_exit_2_without_traceback(tmp_path, db):
    bad = tmp_path / "bad.csv"
    bad.write_text("ID;Model;Timestamp\n1;a;b\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "envirollm_core", "import", str(bad), "--db", str(db)],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "semicolons" in result.stderr and Store(db).count() == 20


def _as_the_app_shows(value: float | int) -> str:
    """A number in an st.dataframe column formatted "plain": its shortest text, as JavaScript writes it."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def test_list_compare_and_the_apps_runs_table_show_the_same_digits(capsys, tmp_path, make_run):
    from envirollm_core.views import runs_table

    path = tmp_path / "figures.duckdb"
    runs = [make_run(prompt="Explain.", model="gemma3:1b", batch_id="one", repeat_index=repeat, notes="", ttft_s=0.1234567,
                     decode_tps=38.27, completion_tokens=784, energy_wh=0.4567891, energy_per_token_wh=0.000583456,
                     quality_score=85.4)
            for repeat in range(3)]
    Store(path).add_runs(runs)
    table = runs_table(Store(path).runs_frame())
    app = table.row(0, named=True)
    shown = [_as_the_app_shows(app[name]) for name in
             ("tokens", "TTFT (s)", "decode (tokens/s)", "energy (Wh)", "energy per token (mWh)", "quality (0-100)")]
    assert shown == ["784", "0.123", "38.3", "0.457", "0.583", "85"]

    code, out, _ = cli(capsys, "list", "--db", str(path))
    (line,) = [line for line in out.splitlines() if line.startswith(app["run id"])]
    assert code == 0 and line.split()[-6:] == shown  # tokens, TTFT s, tok/s, Wh, mWh/tok, quality

    code, out, _ = cli(capsys, "compare", "--db", str(path))
    (line,) = [line for line in out.splitlines() if "gemma3:1b" in line]
    # configuration ... n, fail, Wh, tokens, tok/s, TTFT s, mWh/tok, quality: equal runs, so the means are the runs'
    means = re.sub(r" ± \S+", "", line).split()[-6:]  # the 95 % intervals' half-widths dropped
    assert code == 0 and means == [shown[3], shown[0], shown[2], shown[1], shown[4], shown[5]]
    code, out, _ = cli(capsys, "list", "--db", str(path), "--json")
    assert json.loads(out)[0]["energy_wh"] == 0.4567891  # --json stays exact


def test_a_chart_tooltip_prints_what_the_tables_print(capsys, tmp_path, make_run):
    """The same run's figures in the Results charts' tooltips read as `list` prints them (issue 13)."""
    from envirollm_core import charts
    from envirollm_core.views import analyze_group

    path = tmp_path / "tooltips.duckdb"
    Store(path).add_runs([make_run(prompt="Explain.", model="gemma3:1b", ttft_s=0.1234567, decode_tps=38.27,
                                   completion_tokens=784, energy_wh=0.4567891, energy_per_token_wh=0.000583456,
                                   quality_score=85.4, notes="")])
    code, out, _ = cli(capsys, "list", "--db", str(path))
    line = out.splitlines()[2]
    printed = dict(zip(["tokens", "TTFT s", "tok/s", "Wh", "mWh/tok", "quality"], line.split()[-6:]))
    analysis = analyze_group(Store(path).runs_frame())
    chart = charts.energy_vs_speed(analysis.stats).to_dict()
    bubbles = next(layer for layer in chart["layer"] if layer["mark"]["type"] == "circle")
    (row,) = chart["datasets"][bubbles.get("data", chart.get("data"))["name"]]
    shown = {tip["title"]: row[tip["field"]] for tip in bubbles["encoding"]["tooltip"]}
    assert code == 0 and printed["mWh/tok"] == "0.583" and printed["quality"] == "85"
    assert shown["Energy per token (mWh/token)"] == printed["mWh/tok"]
    assert shown["Decode speed (tokens/s)"] == printed["tok/s"] == "38.3"
    assert shown["Quality (score 0-100)"] == printed["quality"]
    bars = charts.model_intervals(analysis.stats, "ttft_s").to_dict()
    (row,) = bars["datasets"][bars["layer"][0].get("data", bars.get("data"))["name"]]
    assert row["ttft_s_mean_text"] == printed["TTFT s"] == "0.123"


def test_recommend_and_compare_warn_when_quality_methods_mix(capsys, tmp_path, make_run):
    path = tmp_path / "mixed.duckdb"
    runs = [make_run(prompt="Explain.", model=model, repeat_index=repeat, quality_score=score, quality_method=method,
                     energy_per_token_wh=energy)
            for model, score, method, energy in (("small", 90.0, "heuristic", 0.0004), ("large", 60.0, "verified", 0.0009))
            for repeat in range(3)]
    Store(path).add_runs(runs)
    code, out, _ = cli(capsys, "recommend", "--db", str(path))
    assert code == 0 and "warning: quality scores made by 2 different methods (heuristic, verified)" in out
    code, out, _ = cli(capsys, "recommend", "--db", str(path), "--json")
    (group,) = json.loads(out)["groups"]
    assert code == 0 and group["quality_methods"] == ["heuristic", "verified"]
    assert group["quality_methods_mixed"].startswith("quality scores made by 2 different methods")
    code, out, _ = cli(capsys, "compare", "--db", str(path))
    assert code == 0 and "warning: quality scores made by 2 different methods" in out

    Store(path).clean()
    Store(path).add_runs([run for run in runs if run.quality_method == "verified"])
    code, out, _ = cli(capsys, "recommend", "--db", str(path), "--json")
    (group,) = json.loads(out)["groups"]
    assert group["quality_methods"] == ["verified"] and group["quality_methods_mixed"] is None
