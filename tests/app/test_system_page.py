from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "system.py")


def test_system_page_shows_the_machine():
    app = AppTest.from_file(PAGE, default_timeout=30).run()
    assert not app.exception
    labels = [m.label for m in app.metric]
    assert labels == ["CPU", "RAM", "NVIDIA GPUs", "OS"]
    assert any("Stopped" in i.value for i in app.info)


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
