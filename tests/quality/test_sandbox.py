"""Code a model wrote runs in a sandboxed child: each hostile answer fails its check within the limit and
leaves the machine, the database and the user's files as they were."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time

import psutil
import pytest

from envirollm_core.paths import default_db_path
from envirollm_core.quality.checks import run_check
from envirollm_core.quality.sandbox import CHILD_SCRIPT, SandboxLimits, run_python_function
from envirollm_core.store import Store
from tests.fakes.judge import make_run

LIMITS = SandboxLimits(wall_s=8.0, cpu_s=3, memory_mb=256)
SLACK_S = 15.0  # killing and reaping under a loaded CI machine; what matters is that it ends
CASES = [{"args": [[3, 1, 2]], "expected": [1, 2, 3]}, {"args": [[]], "expected": []}]


def _check(code: str) -> dict:
    return {"type": "python-function", "function": "sort_items", "cases": CASES}


def _sandbox_dirs() -> set[str]:
    return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith("envirollm-sandbox-")}


def _sandbox_processes() -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if str(CHILD_SCRIPT) in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


@pytest.fixture
def leaves_nothing():
    """Whatever the code did: no sandbox process and no sandbox directory left afterwards."""
    before = _sandbox_dirs()
    yield
    assert not _sandbox_processes(), "a sandboxed process outlived its check"
    assert _sandbox_dirs() <= before, "the sandbox's working directory was left behind"


def _run(code: str) -> tuple[list, float]:
    started = time.monotonic()
    outcomes = run_python_function(code, "sort_items", CASES, LIMITS)
    return outcomes, time.monotonic() - started


def test_a_right_answer_passes(leaves_nothing):
    result = run_check(_check(""), "```python\ndef sort_items(items):\n    return sorted(items)\n```", LIMITS)
    assert result.score == 100.0 and result.passed == 2


def test_an_infinite_loop_fails_within_the_limit(leaves_nothing):
    outcomes, elapsed_s = _run("def sort_items(items):\n    while True:\n        pass\n")
    assert not any(o.ok for o in outcomes)
    assert elapsed_s < LIMITS.wall_s + SLACK_S
    assert "CPU time" in outcomes[0].error or "longer than" in outcomes[0].error


def test_a_fork_bomb_fails_and_leaves_no_process(leaves_nothing):
    code = "import os\ndef sort_items(items):\n    while True:\n        os.fork()\n"
    outcomes, elapsed_s = _run(code)
    assert not any(o.ok for o in outcomes) and "os.fork is not allowed" in outcomes[0].error
    assert elapsed_s < LIMITS.wall_s + SLACK_S
    via_subprocess = "import subprocess\ndef sort_items(items):\n    subprocess.run(['sleep', '60'])\n"
    assert "not available" in _run(via_subprocess)[0][0].error


def test_a_memory_hog_fails_within_the_limit(leaves_nothing):
    code = "def sort_items(items):\n    hoard = []\n    while True:\n        hoard.append(bytearray(10 ** 7))\n"
    outcomes, elapsed_s = _run(code)
    assert not any(o.ok for o in outcomes) and "MemoryError" in outcomes[0].error
    assert elapsed_s < LIMITS.wall_s + SLACK_S


def test_writing_outside_its_directory_fails_and_writes_nothing(tmp_path, leaves_nothing):
    target = tmp_path / "written-by-the-model.txt"
    code = (f"import os\ndef sort_items(items):\n    open({str(target)!r}, 'w').write('x')\n"
            f"    os.remove({str(tmp_path / 'keep.txt')!r})\n    return sorted(items)\n")
    (tmp_path / "keep.txt").write_text("the user's file")
    outcomes, _ = _run(code)
    assert not any(o.ok for o in outcomes) and "outside the task's directory" in outcomes[0].error
    assert not target.exists() and (tmp_path / "keep.txt").read_text() == "the user's file"


def test_reading_the_results_database_fails_and_leaves_it_as_it_was(isolated_home, leaves_nothing):
    store = Store()
    store.add_run(make_run("an answer"))
    del store
    path = default_db_path()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    code = (f"def sort_items(items):\n    with open({str(path)!r}, 'rb') as db:\n        return len(db.read())\n")
    outcomes, _ = _run(code)
    assert not any(o.ok for o in outcomes) and "outside the task's directory" in outcomes[0].error
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert len(Store().runs()) == 1


def test_the_child_sees_none_of_the_users_environment(monkeypatch, leaves_nothing):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    code = "import os\ndef sort_items(items):\n    return sorted(os.environ)\n"
    (outcome, _), _ = _run(code)
    assert outcome.ok
    assert "OPENAI_API_KEY" not in outcome.value and "ENVIROLLM_HOME" not in outcome.value


def test_no_network_and_no_native_code(leaves_nothing):
    for module in ("socket", "ctypes", "multiprocessing"):
        outcomes, _ = _run(f"import {module}\ndef sort_items(items):\n    return sorted(items)\n")
        assert not outcomes[0].ok and "not available" in outcomes[0].error


def test_printing_fake_results_does_not_pass(leaves_nothing):
    code = 'print(\'[{"ok": true, "value": [1, 2, 3]}, {"ok": true, "value": []}]\')\ndef sort_items(items):\n    return None\n'
    result = run_check(_check(""), code, LIMITS)
    assert result.score == 0.0
