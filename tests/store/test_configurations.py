"""Issue 13: configurations that keep machines and settings apart, ids a person can type, and why a pick is missing."""

import json
import uuid
from datetime import timedelta

import pytest

from envirollm_core.analysis.stats import ANALYSIS_COLUMNS
from envirollm_core.cli import main
from envirollm_core.machines import UNKNOWN_MACHINE, machine_key
from envirollm_core.store import BadFileError, Store
from envirollm_core.store.store import shortest_unique_prefixes

from tests.fakes.runs import original_csv, original_rows

LAPTOP = {"cpu_model": "Intel Core i7-1165G7", "ram_total_gb": 16.4, "gpus": [], "os_name": "Linux 6.1"}
DESKTOP = {"cpu_model": "AMD Ryzen 9 7950X", "ram_total_gb": 64.2, "os_name": "Linux 6.8",
           "gpus": [{"name": "NVIDIA GeForce RTX 4090", "memory_total_mb": 24564.0}]}


def cli(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_machine_fingerprint_ignores_what_an_update_changes():
    assert machine_key(LAPTOP) == "Intel Core i7-1165G7 · 16 GB RAM"
    assert machine_key({**LAPTOP, "os_name": "Linux 6.9", "envirollm": "9.9"}) == machine_key(LAPTOP)
    assert machine_key(DESKTOP) == "AMD Ryzen 9 7950X · NVIDIA GeForce RTX 4090 · 64 GB RAM"
    assert machine_key({}) == UNKNOWN_MACHINE
    assert machine_key({"source_format": "envirollm-original-csv", "source_file": "a.csv"}) == "unknown machine (a.csv)"


def test_two_machines_are_two_configurations_and_recommend_keeps_them_apart(tmp_path, make_run, capsys):
    path = tmp_path / "m.duckdb"
    runs = [make_run(model="gemma3:1b", prompt="Same prompt.", environment=env, decode_tps=speed + k)
            for env, speed in ((LAPTOP, 20.0), (DESKTOP, 200.0)) for k in range(3)]
    Store(path).add_runs(runs)
    frame = Store(path).runs_frame(columns=ANALYSIS_COLUMNS)
    assert frame["machine"].n_unique() == 2
    code, out, _ = cli(capsys, "recommend", "--db", str(path), "--json")
    groups = json.loads(out)["groups"]
    assert code == 0 and len(groups) == 2  # one per machine: a laptop is never out-picked by a workstation
    assert {group["machine"] for group in groups} == {machine_key(LAPTOP), machine_key(DESKTOP)}
    fastest = {group["machine"]: next(p for p in group["picks"] if p["kind"] == "fastest") for group in groups}
    assert fastest[machine_key(LAPTOP)]["config"]["decode_tps"] == 21.0
    code, out, _ = cli(capsys, "recommend", "--db", str(path), "--json", "--across-machines")
    (group,) = json.loads(out)["groups"]
    assert group["machine"] is None and group["measured_on"] == "across 2 machines" and group["n_configs"] == 2
    code, out, _ = cli(capsys, "recommend", "--db", str(path), "--across-machines")
    assert "on across 2 machines" in out and "AMD Ryzen 9 7950X" in out


def test_max_tokens_split_configurations_in_compare(tmp_path, make_run, capsys):
    """The issue's false alarm: a batch at 64 tokens against one at 128 is no regression of one configuration."""
    path = tmp_path / "t.duckdb"
    runs = []
    for batch, tokens, quality, day in (("b64", 64, 85.0, 0), ("b128", 128, 71.0, 1)):
        for k in range(4):
            run = make_run(batch_id=batch, prompt="One prompt.", model="m", max_tokens=tokens,
                           quality_score=quality + k, environment=LAPTOP)
            run.created_at += timedelta(days=day)
            runs.append(run)
    Store(path).add_runs(runs)
    code, out, err = cli(capsys, "compare", "--db", str(path), "--json", "--fail-on-regression")
    result = json.loads(out)
    assert code == 0 and result["regressions"] == 0 and result["changes"] == []
    assert sorted(group["max_tokens"] for group in result["groups"]) == [64, 128]
    code, out, _ = cli(capsys, "compare", "--db", str(path))
    assert "m Q4_K_M · ollama · Intel Core i7-1165G7 · 16 GB RAM · 64 tok · T 0.7" in out


def test_shortest_unique_prefixes_as_git_does():
    ids = ["a1b2c3d4-0000-0000-0000-000000000001", "a1b2c3d4-0000-0000-0000-000000000002", "ffff0000-1"]
    assert shortest_unique_prefixes(ids, ids) == [ids[0], ids[1], "ffff0000"]
    assert shortest_unique_prefixes(["abcdefghij"], ["abcdefghij", "abcdefgh00"]) == ["abcdefghi"]


def test_list_names_every_imported_run_by_a_prefix_that_works(tmp_path, capsys):
    path = tmp_path / "ids.duckdb"
    rows = original_rows()
    stem = str(uuid.uuid4())[:-4]
    for index, row in enumerate(rows):  # UUIDs that differ only at the end, as the file had
        row["ID"] = f"{stem}{index:04d}"
    Store(path).import_file(original_csv(tmp_path / "orig.csv", rows))
    code, out, _ = cli(capsys, "list", "--db", str(path), "--json")
    listed = json.loads(out)
    assert code == 0 and {run["id"] for run in listed} == {row["ID"] for row in rows}
    shorts = [run["short_id"] for run in listed]
    assert len(set(shorts)) == 3 and all(len(short) == len(stem) + 4 for short in shorts)
    code, out, _ = cli(capsys, "list", "--db", str(path))
    assert all(short in out for short in shorts)
    code, _, err = cli(capsys, "note", "--db", str(path), shorts[0], "checked")
    assert code == 0 and listed[0]["id"] in err


def test_imported_original_runs_are_an_unknown_machine_of_their_file_and_fastest_says_why(tmp_path, capsys):
    path = tmp_path / "orig.duckdb"
    Store(path).import_file(original_csv(tmp_path / "laptop_export.csv", original_rows()))
    frame = Store(path).runs_frame(columns=ANALYSIS_COLUMNS)
    assert set(frame["machine"]) == {"unknown machine (laptop_export.csv)"}
    code, out, _ = cli(capsys, "recommend", "--db", str(path))
    assert code == 0 and "no fastest pick" in out and "decode" in out


# -- bad numbers refused at the door -----------------------------------------------------------------


def test_a_negative_energy_in_an_original_csv_is_refused_with_row_and_column(tmp_path, capsys):
    path = tmp_path / "neg.duckdb"
    rows = original_rows()
    rows[1]["Energy (Wh)"] = -0.41
    code, _, err = cli(capsys, "import", "--db", str(path), str(original_csv(tmp_path / "bad.csv", rows)))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "row 2" in err and "'Energy (Wh)'" in err and "negative" in err
    assert Store(path).count() == 0


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
@pytest.mark.parametrize("field", ["completion_tokens", "decode_tps", "ram_used_mb_peak", "energy_per_token_wh"])
def test_negative_values_are_refused_in_every_format_but_net_energy_may_be_negative(tmp_path, make_run, fmt, field):
    source = Store(tmp_path / "source.duckdb")
    good, bad = make_run(energy_net_wh=-0.02), make_run()
    setattr(bad, field, -3 if field == "completion_tokens" else -0.5)
    source.add_runs([good, bad])  # the store keeps what it is given; the import is the door
    exported = tmp_path / f"runs.{fmt}"
    source.export(exported, fmt)
    target = Store(tmp_path / "target.duckdb")
    with pytest.raises(BadFileError, match=rf"row 2( \(line \d+\))?, column '{field}': -.* is negative"):
        target.import_file(exported)
    assert target.count() == 0
    source.delete_run(bad.id)
    source.export(exported, fmt)
    assert target.import_file(exported).added == 1  # a negative net energy is a difference, not an error
    assert target.run(good.id).energy_net_wh == pytest.approx(-0.02)


def test_non_finite_numbers_are_refused_in_an_original_csv(tmp_path):
    rows = original_rows()
    rows[0]["Power (W)"] = "inf"
    with pytest.raises(BadFileError, match=r"row 1 \(line 2\), column 'Power \(W\)': 'inf' is not a finite number"):
        Store(tmp_path / "x.duckdb").import_file(original_csv(tmp_path / "inf.csv", rows))
