from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.fakes import fake_pynvml
from tests.fakes.fake_pynvml import FakeGpu

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "system.py")


def test_system_page_shows_the_machine():
    app = AppTest.from_file(PAGE, default_timeout=30).run()
    assert not app.exception
    labels = [m.label for m in app.metric]
    assert labels == ["CPU", "RAM", "NVIDIA GPUs", "OS"]
    assert any("Stopped" in i.value for i in app.info)


def test_system_page_lists_each_gpu_with_its_memory_rounded(monkeypatch):
    fake_pynvml.install(monkeypatch, [FakeGpu(memory_total_mb=24563.9)])
    app = AppTest.from_file(PAGE, default_timeout=30).run()
    assert not app.exception
    assert app.metric[2].value == "1"
    gpus = app.table[0].value
    assert list(gpus.columns) == ["GPU", "name", "memory (MB)", "driver"]
    assert list(gpus.iloc[0])[0] == "0" and list(gpus.iloc[0])[2] == "24564"  # whole megabytes, as the CLI prints


@pytest.mark.engine
def test_system_page_starts_the_engine_and_streams_an_answer():
    app = AppTest.from_file(PAGE, default_timeout=180).run()
    app.text_input[0].set_value("Say hello.")
    app.button[0].click().run()
    assert not app.exception
    assert not app.error
    answer = " ".join(m.value for m in app.markdown)
    assert answer.strip()
    # The same visit, without leaving the page: the status and the button say that the engine runs.
    assert any("Running" in s.value for s in app.success) and not any("Stopped" in i.value for i in app.info)
    assert [b.label for b in app.button] == ["Ask the engine"]
