"""The package as a user installs it: a wheel (not an editable link) in a fresh environment, run outside the repo.

The wheel is built from a copy of what it is made of (pyproject.toml, README.md, requirements.txt, envirollm_core/,
data/), so no stale build/ folder of the checkout can put in a module the tree no longer has. Nothing is fetched:
pip gets --no-index, and building uses the setuptools and wheel already installed (requirements-dev.txt). The
environment sees the installed dependencies (--system-site-packages); the global site may hold an editable
envirollm, so every check first proves that the environment imports its own copy.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.wheel

REPO = Path(__file__).resolve().parents[1]
WHEEL_SOURCES = ("pyproject.toml", "README.md", "requirements.txt", "envirollm_core", "data")


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    outside: Path  # a folder outside the repository: the commands' working directory and ENVIROLLM_HOME

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        return {**env, "ENVIROLLM_HOME": str(self.outside / "home"), "PYTHONNOUSERSITE": "1"}


def _pip(python: Path | str, *args: str, cwd: Path) -> None:
    result = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args], cwd=cwd,
                            capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": ""})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in WHEEL_SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, source / name)
    _pip(sys.executable, "wheel", "--no-deps", "--no-index", "--no-build-isolation", "-w", str(work / "dist"),
         str(source), cwd=work)
    (wheel,) = (work / "dist").glob("envirollm-*.whl")
    venv = work / "venv"
    # No pip of its own (quicker): the global pip, run by the environment's python, installs into it.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True,
                   timeout=300)
    _pip(venv / "bin" / "python", "install", "--no-deps", "--no-index", "--force-reinstall", str(wheel), cwd=work)
    outside = work / "outside"
    outside.mkdir()
    return Installed(wheel, venv, outside)


def _data_files() -> list[str]:
    return sorted(str(p.relative_to(REPO / "data")) for p in (REPO / "data").rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts)


def test_the_wheel_holds_every_module_and_every_data_file(installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    modules = sorted(str(p.relative_to(REPO)) for p in (REPO / "envirollm_core").rglob("*.py")
                     if "__pycache__" not in p.parts)
    missing = [m for m in modules if m not in names]
    # A module left out is a package missing from [tool.setuptools] packages in pyproject.toml.
    assert not missing, f"not in the wheel (list their packages in pyproject.toml): {missing}"
    data = _data_files()
    assert "presets.json" in data and "suites/verified.json" in data
    assert not [f for f in data if f"envirollm_core/data/{f}" not in names]


def test_the_environment_imports_its_own_copy_and_data(installed):
    probe = ("import json, envirollm_core\n"
             "from envirollm_core.paths import data_file\n"
             "print(json.dumps([envirollm_core.__file__, str(data_file('presets.json')), str(data_file('suites'))]))")
    result = subprocess.run([str(installed.python), "-c", probe], cwd=installed.outside, env=installed.env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    package, presets, suites = (Path(p) for p in json.loads(result.stdout))
    site = installed.venv / "lib"
    assert package.is_relative_to(site), package  # not the checkout's, not an editable link's
    assert presets.is_relative_to(site) and presets.read_bytes() == (REPO / "data" / "presets.json").read_bytes()
    assert suites.is_dir() and suites.is_relative_to(site)


def test_commands_run_from_a_folder_outside_the_repo(installed):
    commands = {"fit": ["fit", "--json"], "recommend": ["recommend", "--json"], "demo": ["demo", "--help"]}
    envirollm = str(installed.venv / "bin" / "envirollm")
    env = {**installed.env(), "COLUMNS": "400"}  # argparse wraps help at the terminal's width, hyphens too
    started = {name: subprocess.Popen([envirollm, *args], cwd=installed.outside, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name, args in commands.items()}
    out = {}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, (name, stderr[-3000:])
        assert "Traceback" not in stderr, (name, stderr[-3000:])
        out[name] = stdout

    # fit: estimates for models of the shipped catalog (those that fit this machine), its smallest among them
    with open(REPO / "data" / "model_catalog.csv", newline="", encoding="utf-8") as f:
        catalog = {row["name"]: float(row["params_b"]) for row in csv.DictReader(f)}
    estimated = {e["model"] for e in json.loads(out["fit"])["estimates"]}
    assert estimated <= set(catalog) and min(catalog, key=catalog.get) in estimated, estimated

    # recommend: the world-mean grid intensity of the shipped carbon table (no country set)
    with open(REPO / "data" / "carbon_intensity.csv", newline="", encoding="utf-8") as f:
        world = next(row for row in csv.DictReader(f) if row["iso_code"] == "WLD")
    grid = json.loads(out["recommend"])["tariff"]["grid"]
    assert grid["code"] == "WLD" and grid["g_co2_per_kwh"] == pytest.approx(float(world["g_co2_per_kwh"]))

    # demo --help: names the shipped suites and presets
    presets = [p["name"] for p in json.loads((REPO / "data" / "presets.json").read_text(encoding="utf-8"))["presets"]]
    suites = [p.stem for p in (REPO / "data" / "suites").glob("*.json")]
    help_text = " ".join(out["demo"].split())
    assert suites and all(s in help_text for s in suites), help_text
    assert presets and all(p in help_text for p in presets), help_text
