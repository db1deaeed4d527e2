import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

from envirollm_core.cli import main
from tests.fakes.processes import kill_tree

CLI = [sys.executable, "-m", "envirollm_core"]


def _run(args, env_root, timeout=60, prefix=()):
    env = dict(os.environ, ENVIROLLM_SYSFS_ROOT=str(env_root))
    return subprocess.run([*prefix, *CLI, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False)


def _ok_json(result) -> dict:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def test_detect_json_on_a_machine_without_rapl(sysfs_root):
    payload = _ok_json(_run(["detect", "--json"], sysfs_root))
    sources = {c["name"]: (c["kind"], c["source"]) for c in payload["components"]}
    assert sources["cpu"] == ("cpu", "estimate") and sources["ram"] == ("ram", "estimate")
    assert payload["system"]["cpu_logical_cores"] >= 1
    assert isinstance(payload["servers"], list)


def test_detect_human_output_goes_to_stderr(sysfs_root):
    result = _run(["detect"], sysfs_root)
    assert result.returncode == 0 and result.stdout == ""
    assert "component" in result.stderr and "estimate" in result.stderr


def test_track_estimates_on_a_machine_without_counters(sysfs_root):
    payload = _ok_json(_run(["track", "--duration", "1", "--json"], sysfs_root))
    assert payload["duration_s"] == pytest.approx(1.0, abs=0.2)
    names = [c["name"] for c in payload["components"]]
    assert names[:2] == ["cpu", "ram"]
    for component in payload["components"][:2]:
        assert component["source"] == "estimate" and component["energy_j"] > 0
    assert payload["energy_j"] == pytest.approx(payload["energy_wh"] * 3600)
    assert payload["energy_j"] == pytest.approx(sum(c["energy_j"] for c in payload["components"] if c["energy_j"] is not None))


def test_track_reports_package_energy_within_3_percent_of_the_counter(rapl_tree):
    rapl_tree.add_package(0, watts=35.0, dram_watts=4.0)
    rapl_tree.start()
    payload = _ok_json(_run(["track", "--duration", "3", "--json"], rapl_tree.root))
    components = {c["name"]: c for c in payload["components"]}
    package = components["cpu:0"]
    assert (package["kind"], package["source"]) == ("cpu", "counter")
    rise_j = 35.0 * payload["duration_s"]  # the counter rises at exactly 35 W
    assert package["energy_j"] == pytest.approx(rise_j, rel=0.03)
    assert components["dram:0"]["energy_j"] == pytest.approx(4.0 * payload["duration_s"], rel=0.03)
    assert payload["duration_s"] == pytest.approx(3.0, abs=0.2)


def test_track_survives_a_permission_denied_counter_with_a_fix_in_the_note(rapl_tree):
    rapl_tree.add_package(0, watts=35.0)
    (rapl_tree.zone("intel-rapl:0").path / "energy_uj").chmod(0)
    prefix = ()
    if os.geteuid() == 0:  # root reads any file: drop the capabilities that let it, as a normal user lacks them
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv (util-linux) to read as a user without root's file capabilities")
        prefix = ("setpriv", "--bounding-set=-dac_override,-dac_read_search")
    payload = _ok_json(_run(["track", "--duration", "0.5", "--json"], rapl_tree.root, prefix=prefix))
    cpu = {c["name"]: c for c in payload["components"]}["cpu"]
    assert cpu["source"] == "estimate" and "permission denied" in cpu["note"]
    (problem,) = [note for note in payload["notes"] if "RAPL" in note]
    assert "chmod" in problem and "udev" in problem and "\n" not in problem
    human = _run(["detect"], rapl_tree.root, prefix=prefix)
    assert human.returncode == 0 and "chmod" in human.stderr and "Traceback" not in human.stderr


@pytest.mark.parametrize("args", [
    ["track", "--duration", "0"],
    ["track", "--duration", "-1", "--json"],
    ["track", "--interval", "0"],
    ["track", "--interval", "120"],
    ["track", "-p", "no-such-program-anywhere"],
])
def test_bad_track_arguments_exit_2_with_one_line(sysfs_root, args, capsys):
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("envirollm: error:") and len(err.strip().splitlines()) == 1


def test_track_a_pid_that_does_not_exist_exits_2(sysfs_root, capsys):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert main(["track", "--pid", str(gone.pid), "--duration", "1"]) == 2
    assert f"pid {gone.pid}" in capsys.readouterr().err


def test_track_a_process_by_name_and_by_pid(sysfs_root, tmp_path):
    program = tmp_path / "fake-llm-worker"
    program.symlink_to(sys.executable)
    worker = subprocess.Popen([str(program), "-c", "import time\nend = time.time() + 30\nwhile time.time() < end: pass"])
    try:
        time.sleep(0.3)  # it has exec'd: its name is the link's
        by_name = _ok_json(_run(["track", "-p", "fake-llm-worker", "--duration", "1", "--json"], sysfs_root))
        (process,) = by_name["processes"]
        assert process["pid"] == worker.pid and process["cpu_percent_avg"] > 5 and process["rss_mb_peak"] > 5
        by_pid = _ok_json(_run(["track", "--pid", str(worker.pid), "--duration", "1", "--json"], sysfs_root))
        assert [p["pid"] for p in by_pid["processes"]] == [worker.pid]
    finally:
        kill_tree(worker)


def test_track_stops_cleanly_on_ctrl_c_and_prints_the_summary(sysfs_root):
    env = dict(os.environ, ENVIROLLM_SYSFS_ROOT=str(sysfs_root))
    track = subprocess.Popen([*CLI, "track", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    started = ""
    while "tracking" not in started:  # the window is open (no output would mean it died: fail on EOF)
        line = track.stderr.readline()
        assert line, "track ended before it started tracking"
        started += line
    time.sleep(1.0)
    track.send_signal(signal.SIGINT)
    out, err = track.communicate(timeout=20)
    assert track.returncode == 0 and "Traceback" not in err
    assert json.loads(out)["duration_s"] > 0.5


def test_track_on_a_terminal_redraws_a_live_table(sysfs_root):
    env = dict(os.environ, ENVIROLLM_SYSFS_ROOT=str(sysfs_root))
    master, slave = pty.openpty()
    track = subprocess.Popen([*CLI, "track", "--duration", "3.2"], stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    output = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    assert track.wait(timeout=20) == 0
    text = output.decode()
    assert text.count("power W") >= 2  # the table was drawn more than once
    assert "\x1b[" in text  # ...in place
    assert "tracked the whole machine for 3.2 s" in text


@pytest.mark.engine
def test_track_auto_follows_the_embedded_engine(sysfs_root, embedded_engine):
    payload = _ok_json(_run(["track", "--auto", "--duration", "1", "--json"], sysfs_root))
    tracked = {p["pid"]: p for p in payload["processes"]}
    assert embedded_engine.pid in tracked
    engine = tracked[embedded_engine.pid]
    assert engine["label"] == "llama-cpp-python" and engine["rss_mb_peak"] > 100
    assert psutil.pid_exists(embedded_engine.pid)


def test_a_reading_that_is_not_there_is_a_dash_in_every_command(sysfs_root, monkeypatch, capsys):
    from envirollm_core.figures import format_figure
    from tests.fakes import fake_pynvml
    from tests.fakes.fake_pynvml import FakeGpu

    assert (format_figure(None, "W"), format_figure(2.346, "W"), format_figure(3, "count")) == ("-", "2.35", "3")
    fake_pynvml.install(monkeypatch, [FakeGpu(name="NVIDIA T4", memory_info=False)])
    assert main(["detect"]) == 0
    assert "GPU 0: NVIDIA T4, - MB" in capsys.readouterr().err  # the same "-" as benchmark and list, not "n/a"
