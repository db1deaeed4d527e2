import json
import os
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

import openai
import psutil
import pytest

from envirollm_core.cli import build_parser

CLI = [sys.executable, "-m", "envirollm_core"]


def test_help_describes_every_command():
    result = subprocess.run([*CLI, "--help"], capture_output=True, text=True, check=True)
    commands = build_parser()._subparsers._group_actions[0].choices
    for name in commands:
        assert name in result.stdout
        sub = subprocess.run([*CLI, name, "--help"], capture_output=True, text=True)
        assert sub.returncode == 0 and "usage: envirollm " + name in sub.stdout


def test_occupied_port_exits_2_without_traceback():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([*CLI, "serve-embedded", "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"port {port}" in result.stderr.strip().splitlines()[-1]


def _read_json_object(stream) -> dict:
    text = ""
    while True:
        line = stream.readline()
        assert line, f"no JSON on stdout (got {text!r})"
        text += line
        if line.startswith("}"):
            return json.loads(text)


def _wait_gone(pid: int, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.engine
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_serve_embedded_answers_then_stops_cleanly(stop_signal):
    server = subprocess.Popen([*CLI, "serve-embedded", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        served = _read_json_object(server.stdout)
        client = openai.OpenAI(base_url=served["base_url"], api_key="x")
        reply = client.chat.completions.create(
            model=served["model"], messages=[{"role": "user", "content": "Name a colour."}], max_tokens=16
        )
        assert reply.choices[0].message.content.strip()
        server.send_signal(stop_signal)
        assert server.wait(timeout=30) == 0
        assert "Traceback" not in server.stderr.read()
        assert _wait_gone(served["pid"]), "the llama server outlived serve-embedded"
    finally:
        server.kill()


@pytest.mark.engine
def test_engine_dies_with_a_killed_parent():
    server = subprocess.Popen([*CLI, "serve-embedded", "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    served = _read_json_object(server.stdout)
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    assert _wait_gone(served["pid"]), "the llama server was orphaned"


@pytest.mark.engine
def test_serve_embedded_is_the_owners_own_terminal_so_read_only_mode_does_not_stop_it():
    # read-only guards the app's shared engine (a LAN visitor's click), not the CLI's own engine
    env = {**os.environ, "ENVIROLLM_READ_ONLY": "1"}
    server = subprocess.Popen([*CLI, "serve-embedded", "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, env=env)
    try:
        served = _read_json_object(server.stdout)
        assert served["base_url"].startswith("http://127.0.0.1:")
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        server.kill()


def test_the_metering_proxy_runs_in_the_foreground_until_sigterm(tmp_path):
    proxy = subprocess.Popen([*CLI, "proxy", "--upstream", "http://127.0.0.1:9", "--listen", "127.0.0.1:0", "--json",
                              "--db", str(tmp_path / "use.duckdb")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        listening = urlsplit(_read_json_object(proxy.stdout)["url"])
        socket.create_connection((listening.hostname, listening.port), timeout=5).close()
        proxy.send_signal(signal.SIGTERM)  # as a service manager stops it: cleanly, like Ctrl-C
        assert proxy.wait(timeout=30) == 0
        stderr = proxy.stderr.read()
        assert "stopping the metering proxy" in stderr and "Traceback" not in stderr
    finally:
        proxy.kill()


def test_every_command_takes_db():
    parser = build_parser()
    for name, command in parser._subparsers._group_actions[0].choices.items():
        assert any("--db" in action.option_strings for action in command._actions), name


def test_a_number_that_is_not_finite_is_bad_input():
    result = subprocess.run([*CLI, "fit", "--ram-gb", "nan", "--json"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "finite" in result.stderr.strip().splitlines()[-1]


def test_a_closed_pipe_ends_quietly(tmp_path):
    from envirollm_core.store import Store
    from tests.fakes.runs import realistic_runs

    db = tmp_path / "runs.duckdb"
    Store(db).add_runs(realistic_runs(batches=4))  # an export far larger than a pipe's buffer
    reader = subprocess.Popen(
        [*CLI, "export", "--format", "json", "--output", "-", "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    reader.stdout.read(10)
    reader.stdout.close()  # like `| head -c 10`
    stderr = reader.stderr.read().decode()
    reader.wait(timeout=60)
    assert "Traceback" not in stderr
