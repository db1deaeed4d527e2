import os
import subprocess
import sys
import time

import psutil
import pytest

from envirollm_core.errors import UsageError
from envirollm_core.telemetry.processes import (
    classify_server,
    detect_llm_servers,
    process_tree_stats,
)
from tests.fakes.processes import kill_tree, tree_cpu_s

SERVERS = [
    (["/usr/local/bin/ollama", "serve"], "ollama", None, "ollama"),
    (["/usr/lib/ollama/ollama", "runner", "--model", "/root/.ollama/models/blobs/sha256-x", "--port", "40121"], "ollama", None, "ollama"),
    (["/tmp/ollama123/runners/cuda_v12/ollama_llama_server", "--model", "x"], "ollama_llama_se", None, "ollama"),
    (["/opt/LM Studio/lm-studio"], "lm-studio", None, "lm-studio"),
    (["/home/me/Apps/LM-Studio-0.3.5-x64.AppImage"], "LM-Studio-0.3.", None, "lm-studio"),
    (["C:\\Program Files\\LM Studio\\LM Studio.exe"], "LM Studio.exe", None, "lm-studio"),
    (["./llama-server", "-m", "models/qwen2.5-7b-q4_k_m.gguf", "--port", "8080"], "llama-server", None, "llama.cpp"),
    (["/usr/bin/python3", "-m", "llama_cpp.server", "--model", "m.gguf"], "python3", None, "llama-cpp-python"),
    ([sys.executable, "-m", "envirollm_core.backends.engine_child", "--parent-pid", "1", "--", "--model", "x"], "python", None, "llama-cpp-python"),
    (["./koboldcpp-linux-x64-cuda1210", "--model", "m.gguf"], "koboldcpp-linux", None, "koboldcpp"),
    (["python3", "koboldcpp.py", "--model", "m.gguf"], "python3", None, "koboldcpp"),
    (["/opt/tgw/installer_files/env/bin/python", "server.py", "--listen"], "python", "/home/me/text-generation-webui", "text-generation-webui"),
    (["python", "/home/me/text-generation-webui/one_click.py"], "python", None, "text-generation-webui"),
    (["/usr/bin/python3", "/usr/local/bin/vllm", "serve", "Qwen/Qwen2.5-7B"], "vllm", None, "vllm"),
    (["vllm", "serve", "meta-llama/Llama-3.1-8B"], "vllm", None, "vllm"),
    (["python", "-m", "vllm.entrypoints.openai.api_server", "--model", "x"], "python", None, "vllm"),
    (["/usr/bin/local-ai", "run"], "local-ai", None, "localai"),
    (["local-ai", "--models-path", "/models"], "local-ai", None, "localai"),
    (["/opt/gpt4all/bin/chat"], "chat", None, "gpt4all"),
    (["/usr/bin/gpt4all"], "gpt4all", None, "gpt4all"),
    (["/usr/bin/jan"], "jan", None, "jan"),
    (["/home/me/jan/engines/cortex-server", "--port", "39291"], "cortex-server", None, "jan"),
    (["python", "-m", "mlx_lm.server", "--model", "mlx-community/x"], "python", None, "mlx-lm"),
    (["/opt/homebrew/bin/python3.12", "/opt/homebrew/bin/mlx_lm.server", "--port", "8080"], "python3.12", None, "mlx-lm"),
    (["python3", "-m", "sglang.launch_server", "--model-path", "x"], "python3", None, "sglang"),
]

NOT_SERVERS = [
    (["vim", "llama-server.log"], "vim"),
    (["nvim", "koboldcpp.py"], "nvim"),
    (["/usr/share/code/code", "/home/me/ollama"], "code"),
    (["make", "llama-server"], "make"),
    (["cmake", "--build", "build", "--target", "llama-server"], "cmake"),
    (["git", "clone", "https://github.com/ollama/ollama"], "git"),
    (["grep", "-r", "vllm serve", "."], "grep"),
    (["tail", "-f", "/var/log/ollama.log"], "tail"),
    (["/opt/google/chrome/chrome", "--type=renderer", "https://ollama.com/library"], "chrome"),
    (["firefox", "https://lmstudio.ai"], "firefox"),
    (["ollama", "run", "llama3"], "ollama"),  # the client, not the server
    (["ollama", "pull", "llama3"], "ollama"),
    (["python", "-m", "pytest", "tests/", "-k", "ollama"], "python"),
    (["python", "setup.py", "build_ext"], "python"),
    (["python", "server.py"], "python"),  # some other project's server.py
    (["python", "-c", "import llama_cpp.server"], "python"),
    (["vllm", "bench", "latency"], "vllm"),
    (["local-ai", "models", "list"], "local-ai"),
    (["/usr/bin/chat"], "chat"),
    (["bash", "-c", "ollama serve"], "bash"),  # its child is the server
    ([], "kworker/0:1"),
]


@pytest.mark.parametrize(("cmdline", "name", "cwd", "kind"), SERVERS)
def test_servers_are_recognised(cmdline, name, cwd, kind):
    assert classify_server(cmdline, name, cwd) == kind


@pytest.mark.parametrize(("cmdline", "name"), NOT_SERVERS)
def test_editors_browsers_build_tools_and_clients_are_not_servers(cmdline, name):
    assert classify_server(cmdline, name, None) is None


def _spawn_named(tmp_path, name: str, args: list[str], script: str) -> subprocess.Popen:
    """A real process whose name and command line are `name args...`: a link named like the
    program, pointing at Python, which runs the script file named as its first argument."""
    program = tmp_path / name
    if not program.exists():
        program.symlink_to(sys.executable)
    (tmp_path / args[0]).write_text(script)
    return subprocess.Popen([str(program), *args], cwd=tmp_path)


def _wait_for_children(pid: int, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(psutil.Process(pid).children(recursive=True)) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_detects_a_real_ollama_with_its_runner_child_folded_in(tmp_path, no_gpu):
    runner = "import time\ntime.sleep(60)\n"
    serve = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([{str(tmp_path / 'ollama')!r}, 'runner', '--model', 'blob'], cwd={str(tmp_path)!r})\n"
        "time.sleep(60)\n"
    )
    (tmp_path / "runner").write_text(runner)
    server = _spawn_named(tmp_path, "ollama", ["serve"], serve)
    try:
        _wait_for_children(server.pid, 1)
        found = [s for s in detect_llm_servers(sample_s=0.1) if s.pid == server.pid]
        assert len(found) == 1, "the runner child must be folded into its server, not listed apart"
        (ollama,) = found
        assert ollama.name == "ollama" and ollama.cmdline[1:] == ("serve",)
        assert len(ollama.children) == 1
        runner_pid = ollama.children[0]
        assert psutil.Process(runner_pid).cmdline()[1] == "runner"
        assert not any(s.pid == runner_pid for s in detect_llm_servers(sample_s=0.05))
        assert ollama.rss_mb > 5 and ollama.threads >= 2 and ollama.cpu_percent is not None
        assert ollama.gpu_mem_mb is None  # no GPU here: unknown, not 0
    finally:
        kill_tree(server)


def test_a_program_named_like_an_editor_is_not_detected(tmp_path, no_gpu):
    editor = _spawn_named(tmp_path, "vim", ["ollama"], "import time\ntime.sleep(60)\n")  # `vim ollama`
    try:
        time.sleep(0.2)
        assert editor.pid in {p.pid for p in psutil.process_iter()}
        assert not any(s.pid == editor.pid for s in detect_llm_servers(sample_s=0.05))
    finally:
        kill_tree(editor)


def test_process_tree_stats_sums_the_tree(tmp_path):
    script = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "end = time.time() + 60\n"
        "while time.time() < end: pass\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        _wait_for_children(parent.pid, 1)
        cpu_before_s, wall_before_s = tree_cpu_s(parent.pid), time.monotonic()
        stats = process_tree_stats(parent.pid, sample_s=0.5)
        busy_percent = (tree_cpu_s(parent.pid) - cpu_before_s) / (time.monotonic() - wall_before_s) * 100
        own_rss = psutil.Process(parent.pid).memory_info().rss / 2**20
        assert len(stats.children) == 1
        assert stats.rss_mb > own_rss  # the child's memory is in
        assert stats.threads >= 2
        assert busy_percent > 5  # the busy loop ran (however loaded the machine is)...
        assert stats.cpu_percent == pytest.approx(busy_percent, rel=0.3, abs=5)  # ...and was measured
    finally:
        kill_tree(parent)


def test_process_tree_stats_of_a_missing_pid_is_a_usage_error():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with pytest.raises(UsageError, match=f"no process with pid {gone.pid}"):
        process_tree_stats(gone.pid)


@pytest.mark.engine
def test_the_embedded_engine_is_detected_as_llama_cpp_python(embedded_engine, no_gpu):
    servers = {s.pid: s for s in detect_llm_servers()}
    assert embedded_engine.pid in servers
    engine = servers[embedded_engine.pid]
    assert engine.name == "llama-cpp-python"
    assert engine.rss_mb > 100  # the model is loaded
    assert os.getpid() not in servers
