"""LAN exposure in a real browser (headless Debian Chromium) against `streamlit run` of the app.

- HTML, script and markdown planted in a stored run (prompt, response, model name, note, error) render as
  text: nothing runs (`window.__pwned` stays undefined) and nothing is fetched (a beacon server on
  127.0.0.1 would see any image or link the browser followed).
- An API key typed on the Benchmark page reaches the LLM server and nothing else:
  not what the server sends any browser, not another visitor's pages, not the app's log, not the database.
- Uploads are capped at `server.maxUploadSize` and XSRF protection is on: the app's own upload request,
  replayed, is refused when too big (413) and without its XSRF token (403).
"""

from __future__ import annotations

import re
import tomllib
import uuid
from pathlib import Path

import httpx
import pytest

from envirollm_core.records import prompt_hash
from envirollm_core.store import Store
from envirollm_core.views import export_bytes
from tests.fakes.scripted_server import (
    TokenScript,
    json_reply,
    openai_error,
    openai_routes,
    openai_stream,
)
from tests.fakes.runs import full_run

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_MS = 60_000
# url path -> heading, and a text each page shows once its body has rendered
PAGES = {
    "": ("Monitor", "LLM servers running now"),
    "benchmark": ("Benchmark", "Start the benchmark"),
    "results": ("Results", "Energy by component"),
    "recommendations": ("Recommendations", "What fits this machine"),
    "import": ("Import", "Export file"),
    "settings": ("Settings", "Save the settings"),
    "system": ("System", "Embedded engine"),
}


def planted(beacon_url: str) -> dict[str, str]:
    """What an attacker would store: each tries another way to run script or make the browser fetch."""
    return {
        "img": "<img src=x onerror=window.__pwned=1>",
        "script": "<script>window.__pwned=2</script>",
        "remote img": f'<img src="{beacon_url}/beacon-html">',
        "markdown img": f"![b]({beacon_url}/beacon-markdown)",
        "markdown link": "[click](javascript:window.__pwned=3)",
        "svg": "<svg onload=window.__pwned=4></svg>",
    }


def wait_for_app(page, heading: str, text: str | None = None) -> None:
    """The page's heading, and a text that proves its body rendered (the Monitor page never stops running)."""
    page.get_by_role("heading", name=heading, exact=True).wait_for(timeout=TIMEOUT_MS)
    if text is not None:
        page.get_by_text(text, exact=False).first.wait_for(timeout=TIMEOUT_MS)


def test_planted_html_and_script_show_as_text_and_never_run(served_app, page, serve, tmp_path):
    beacon = serve({("GET", "/beacon-html"): json_reply({}), ("GET", "/beacon-markdown"): json_reply({})})
    payloads = planted(beacon.url)
    text = "\n".join(payloads.values())
    attack = full_run(prompt=f"Prompt {text}", prompt_hash=prompt_hash(f"Prompt {text}"), response=f"Answer {text}",
                      model=f"evil{payloads['img']}{payloads['markdown img']}", notes=f"Note {text}")
    failed = full_run(prompt=attack.prompt, prompt_hash=attack.prompt_hash, status="failed", response="",
                      error=f"server said {text}", created_at=attack.created_at.replace(year=2020))
    Store(served_app.db).add_runs([attack, failed])
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(f"{served_app.url}/results")
    wait_for_app(page, *PAGES["results"])
    page.get_by_text("Answer <img src=x", exact=False).first.wait_for(timeout=TIMEOUT_MS)  # the newest run shown
    for label, payload in payloads.items():
        assert page.get_by_text(payload, exact=False).count() >= 1, f"{label} is not shown as text"
    page.get_by_label("Run id (or its first characters); a selected row above shows its run").fill(failed.id)
    page.keyboard.press("Enter")
    page.get_by_text(f"server said {payloads['img']}", exact=False).first.wait_for(timeout=TIMEOUT_MS)

    for path in ("recommendations", ""):
        page.goto(f"{served_app.url}/{path}")
        wait_for_app(page, *PAGES[path])

    upload = tmp_path / "planted.csv"
    upload.write_bytes(export_bytes(Store(served_app.db), "csv"))
    page.goto(f"{served_app.url}/import")
    wait_for_app(page, *PAGES["import"])
    page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(upload))
    page.get_by_text("2 runs read from planted.csv").wait_for(timeout=TIMEOUT_MS)

    assert page.evaluate("window.__pwned") is None, "planted script ran"
    assert not [r.path for r in beacon.requests], "the browser fetched a planted URL"
    assert not errors


def _key_checking_server(serve, key: str):
    def chat(request):
        if request.headers.get("authorization") != f"Bearer {key}":
            return openai_error(401, "Incorrect API key provided")
        return openai_stream("m", TokenScript(["fine"], ttft_s=0.01, tokens_per_s=100.0))

    return serve(openai_routes(["m"], chat))


def _fill(page, label: str, value: str) -> None:
    """Type into a field and wait until the app has taken it (a rerun in between would drop it)."""
    field = page.get_by_label(label, exact=True)
    field.fill(value)
    field.press("Enter")
    page.wait_for_function("([label, value]) => [...document.querySelectorAll('input')].some("
                           "i => i.getAttribute('aria-label') === label && (i.value === value || "
                           "(i.type === 'number' && Number(i.value) === Number(value))))", arg=[label, value],
                           timeout=TIMEOUT_MS)
    page.locator("[data-testid='stStatusWidget']").wait_for(state="detached", timeout=TIMEOUT_MS)


def test_an_api_key_typed_in_the_browser_goes_to_the_llm_server_and_nowhere_else(served_app, page, browser, serve):
    key = f"sk-browser-{uuid.uuid4().hex}"
    server = _key_checking_server(serve, key)
    received: list[bytes] = []

    def watch(socket) -> None:
        socket.on("framereceived", lambda payload: received.append(payload if isinstance(payload, bytes)
                                                                    else payload.encode()))

    page.on("websocket", watch)
    page.goto(f"{served_app.url}/benchmark")
    wait_for_app(page, *PAGES["benchmark"])
    page.get_by_text("Custom OpenAI-compatible server").click()
    page.get_by_label("API key (optional: used for the requests, never stored)").wait_for(timeout=TIMEOUT_MS)
    # The Ollama choice's URL field lingers for a moment after the switch: wait for it to go.
    page.get_by_label("Server URL", exact=True).and_(page.get_by_placeholder("http://localhost:8000/v1")).wait_for(
        timeout=TIMEOUT_MS)
    page.wait_for_function("document.querySelectorAll('input[aria-label=\"Server URL\"]').length === 1",
                           timeout=TIMEOUT_MS)
    _fill(page, "Server URL", f"{server.url}/v1")
    _fill(page, "API key (optional: used for the requests, never stored)", key)
    _fill(page, "Model name(s), comma-separated", "m")
    for label, value in (("Repetitions", "1"), ("Max tokens", "4"), ("Warm-up runs per model", "0"),
                         ("Idle baseline (s)", "0")):
        _fill(page, label, value)
    page.get_by_text("Heuristic only (no LLM judge)").click()
    page.get_by_role("button", name="Start the benchmark").click()
    page.get_by_text("Done: 1 runs stored", exact=False).wait_for(timeout=TIMEOUT_MS)
    chats = [r for r in server.requests if r.path == "/v1/chat/completions"]
    assert chats and chats[-1].headers["authorization"] == f"Bearer {key}", "the key was not used"
    (run,) = [run for run in Store(served_app.db, read_only=True).runs() if run.base_url == f"{server.url}/v1"]
    assert run.status == "ok" and run.response == "fine"

    # Another visitor on the LAN opens every page.
    visitor = browser.new_context()
    other = visitor.new_page()
    shown: list[str] = []
    for path, (heading, text) in PAGES.items():
        other.goto(f"{served_app.url}/{path}")
        wait_for_app(other, heading, text)
        shown += [other.content(), other.inner_text("body")]
    visitor.close()

    # The key is in the password box it was typed into (React mirrors a field's value in its attribute),
    # in the typing browser only; everything else on that page must be free of it.
    page.evaluate("document.querySelectorAll('input[type=password]').forEach(i => i.removeAttribute('value'))")
    places = {
        "frames the server sent the browser": b"".join(received),
        "the typing browser's page": (page.content() + page.inner_text("body")).encode(),
        "another visitor's pages": "".join(shown).encode(),
        "the app's log": served_app.log.read_bytes(),
        "the database": served_app.db.read_bytes(),
    }
    assert received and served_app.log.stat().st_size > 0
    leaks = [place for place, data in places.items() if key.encode() in data]
    assert not leaks, f"the key was found in {leaks}"


def test_uploads_are_capped_and_xsrf_protection_is_on(served_app, page, tmp_path):
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text(encoding="utf-8"))["server"]
    assert config["maxUploadSize"] == 50 and config["enableXsrfProtection"] is True
    assert config["address"] == "127.0.0.1"  # LAN sharing is the owner's choice (--server.address 0.0.0.0)

    uploads: list = []
    page.on("request", lambda request: uploads.append(request) if "/_stcore/upload_file/" in request.url
            and request.method == "PUT" else None)
    page.goto(f"{served_app.url}/import")
    wait_for_app(page, *PAGES["import"])
    small = tmp_path / "small.csv"
    small.write_bytes(export_bytes(_one_run_store(tmp_path), "csv"))
    page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(small))
    page.get_by_text("1 runs read from small.csv").wait_for(timeout=TIMEOUT_MS)
    (upload,) = uploads
    token = upload.headers["x-xsrftoken"]
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    assert "_streamlit_xsrf" in cookies

    def put(data: bytes, headers: dict[str, str]) -> int:
        with httpx.Client(cookies=cookies, timeout=60) as client:
            return client.put(upload.url, files={"file": ("runs.csv", data, "text/csv")}, headers=headers).status_code

    assert put(small.read_bytes(), {"X-Xsrftoken": token}) == 204  # the replay itself is sound
    assert put(b"x" * (51 * 2**20), {"X-Xsrftoken": token}) == 413  # over server.maxUploadSize (50 MB)
    assert put(small.read_bytes(), {}) == 403  # no XSRF token
    forged = re.sub(r"[0-9a-f]", "0", token)
    assert put(small.read_bytes(), {"X-Xsrftoken": forged if forged != token else token + "0"}) == 403


def _one_run_store(tmp_path) -> Store:
    store = Store(tmp_path / "one.duckdb")
    store.add_run(full_run())
    return store
