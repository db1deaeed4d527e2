"""Issue 18's "must be true" memory checks, measured.

1. Uploads in Chromium: the app is served by `streamlit run` (a database of
   realistic runs), and three hostile files are uploaded on the Import page in
   one browser session while another session opens the Results page: a
   Parquet of 50 million dictionary-encoded rows (about 400 KB), a 45 MB CSV,
   a JSON list nested a million deep, and a 2 MB CSV of ~9,500 runs that is
   under the limits and analysed. For each: the server's peak RSS above
   its idle RSS (sampled at 50 Hz with psutil), what the page said, and the
   other session's Results render time against its usual time.
2. A server that streams forever (a real HTTP server in this process, ignoring
   max_tokens, never sending a finish reason): `envirollm benchmark-openai` in a
   subprocess, its peak RSS sampled at 50 Hz, for tokens as fast as the socket
   takes them (--max-tokens 100000), one line that never ends, and keep-alives
   that never end (--run-timeout 20).

    python bench/hostile_memory.py            # both parts, ~3 minutes on a 2-core VM
Targets: app server < 1 GB above idle, Results < 2x its usual time; CLI < 300 MB.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from results_page_render import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, VIEWPORT, render_s, serve

from envirollm_core.store import Store
from tests.fakes.runs import realistic_runs
from tests.fakes.hostile_files import big_csv, deep_json, dictionary_parquet

MB = 2**20


class PeakRss:
    """The peak resident memory of a process, sampled at 50 Hz in a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def uploads() -> None:
    work = Path(tempfile.mkdtemp(prefix="hostile-"))
    files = [dictionary_parquet(work / "rows-50M.parquet"), big_csv(work / "45MB.csv"), deep_json(work / "deep.json"),
             big_csv(work / "accepted-2MB.csv", megabytes=2)]  # ~9,500 runs: under the limits, analysed
    home = work / "home"
    Store(home / "envirollm.duckdb").add_runs(realistic_runs(batches=20))
    server, url = serve(home)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            other = browser.new_context(viewport=VIEWPORT)
            render_s(other.new_page(), url, empty=False)  # the first visit pays the imports
            usual = sorted(render_s(other.new_page(), url, empty=False) for _ in range(3))[1]
            time.sleep(2)
            idle = psutil.Process(server.pid).memory_info().rss
            print(f"app server idle RSS {idle / MB:.0f} MB; Results page usually {usual:.2f} s")
            for path in files:
                uploader = browser.new_context(viewport=VIEWPORT).new_page()
                uploader.goto(f"{url}/import")
                uploader.locator("input[type=file]").wait_for(state="attached", timeout=TIMEOUT_MS)
                before = render_s(other.new_page(), url, empty=False)  # the usual time, right now (load varies)
                peak = PeakRss(server.pid)
                uploader.locator("input[type=file]").set_input_files(str(path))
                during = render_s(other.new_page(), url, empty=False)
                outcome = uploader.locator("[data-testid='stAlertContentError'], [data-testid='stAlertContentSuccess']")
                outcome.first.wait_for(timeout=TIMEOUT_MS)
                time.sleep(1)
                top = peak.stop()
                said = outcome.first.inner_text().replace("\n", " ")
                print(f"- {path.name} ({path.stat().st_size / MB:.2f} MiB): server peak {(top - idle) / MB:+.0f} MB above"
                      f" idle; other session's Results {during:.2f} s during the upload, {before:.2f} s just before"
                      f" ({during / before:.2f}x); page said: {said}")
                uploader.context.close()
            browser.close()
    finally:
        server.terminate()
        server.wait()


MODEL = "forever"


class Forever(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    mode = "tokens"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode()
        if self.path != "/v1/models":
            body = b'{"error": "not found"}'
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.mode == "tokens":
            event = b'data: {"choices": [{"index": 0, "delta": {"content": "token "}}]}\n\n' * 64
        elif self.mode == "line":
            event = b"data: " + b"x" * 65536
        else:
            event = b": keep-alive\n\n"
        chunk = f"{len(event):x}\r\n".encode() + event + b"\r\n"
        try:
            while True:
                self.wfile.write(chunk)
                if self.mode == "keepalive":
                    time.sleep(0.5)
        except OSError:
            return


def forever() -> None:
    home = Path(tempfile.mkdtemp(prefix="forever-"))
    for mode, extra in (("tokens", ["--max-tokens", "100000"]), ("line", ["--max-tokens", "512"]),
                        ("keepalive", ["--max-tokens", "512", "--run-timeout", "20"])):
        Forever.mode = mode
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Forever)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        started = time.perf_counter()
        cli = subprocess.Popen(
            [sys.executable, "-m", "envirollm_core", "benchmark-openai", "--url", f"http://127.0.0.1:{httpd.server_port}/v1",
             "--model", MODEL, "--repeat", "1", "--warmup", "0", "--idle-s", "0", "--judge", "none", "--timeout", "5",
             "--json", *extra],
            cwd=REPO, env={**os.environ, "ENVIROLLM_HOME": str(home)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        peak = PeakRss(cli.pid)
        stdout, _ = cli.communicate(timeout=300)
        top = peak.stop()
        httpd.shutdown()
        (run,) = json.loads(stdout)
        print(f"- server streaming {mode} forever, {' '.join(extra)}: CLI peak RSS {top / MB:.0f} MB, ended after"
              f" {time.perf_counter() - started:.1f} s; stored {run['status']}, finish_reason {run['finish_reason']},"
              f" {run['completion_tokens']} tokens{', error: ' + run['error'] if run['error'] else ''}")


if __name__ == "__main__":
    print("## uploads (app server)")
    uploads()
    print("## a server that streams forever (CLI)")
    forever()
