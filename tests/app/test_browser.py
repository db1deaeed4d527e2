"""The app in a real browser: every page opens, and README's screenshot is taken."""

from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"


def test_system_page_renders_in_chromium(app_url, page):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(app_url)
    page.get_by_role("heading", name="System").wait_for(timeout=30_000)
    page.get_by_text("Embedded engine").wait_for()
    assert not errors
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000
