"""The web page, driven in a real headless Chromium (Debian's `chromium` package)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn

from tests.fixtures import CRIME
from tgplus.api import create_app
from tgplus.config import Settings

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("TGPLUS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Without these, Chromium keeps trying to reach Google's services, which a closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_server(settings: Settings) -> Iterator[str]:
    """The app served by uvicorn in a thread; its base URL."""
    port = _free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(fast_model: Path) -> Iterator[str]:
    with running_server(Settings(model_path=fast_model)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("TGPLUS_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def test_type_press_and_see_the_bars(server: str, browser: object) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
    page.goto(server)
    expect(page.get_by_text("model: fast")).to_be_visible()
    page.get_by_label("Description").fill(CRIME)
    page.get_by_role("button", name="Predict genres").click()
    bars = page.locator("#bars li")
    expect(bars.first).to_be_visible()
    assert bars.count() == 20
    expect(page.locator("#genres")).to_contain_text("Crime")
    first_meter = bars.first.get_by_role("meter")
    assert int(first_meter.get_attribute("aria-valuenow") or "0") > 0
    track, fill = first_meter.bounding_box(), bars.first.locator(".fill").bounding_box()
    assert track is not None
    assert fill is not None
    assert 0 < fill["width"] <= track["width"]  # the bar is drawn, in proportion
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    page.close()


def test_an_empty_description_shows_a_message(server: str, browser: object) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    page = browser.new_page()
    page.goto(server)
    page.get_by_role("button", name="Predict genres").click()
    expect(page.get_by_role("alert")).to_have_text("Type a description first.")
    page.get_by_label("Description").fill("x" * 6000)
    page.get_by_role("button", name="Predict genres").click()
    expect(page.get_by_role("alert")).to_contain_text("more than the limit")
    page.close()


def test_the_docs_render_their_operations_offline(server: str, browser: object) -> None:
    """/docs loads every asset from the app itself: any other request is refused."""
    from playwright.sync_api import Browser, Route, expect

    assert isinstance(browser, Browser)
    page = browser.new_page()
    elsewhere: list[str] = []

    def only_this_server(route: Route) -> None:
        if route.request.url.startswith(server):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.goto(server + "/docs")
    for path in ("/predict", "/predict/batch", "/model", "/{description}"):
        operation = page.locator(".opblock-summary-path").filter(has_text=path).first
        expect(operation).to_be_visible()
    page.locator(".opblock-summary-path", has_text="/predict/batch").first.click()
    expect(page.get_by_text("Tag many descriptions at once").first).to_be_visible()
    assert elsewhere == []
    page.close()


def test_pointing_at_a_bar_highlights_its_words(server: str, browser: object) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    page = browser.new_page()
    page.goto(server)
    expect(page.get_by_text("model: fast")).to_be_visible()
    # emoji (two UTF-16 units each) and a combining accent before the words: the
    # server's offsets count code points, and the page must place them the same way
    description = "🎬👩‍👩‍👧 Cafe\u0301 noir: a gangster and a detective after a bank robbery."
    page.get_by_label("Title").fill("Heat 🔥")
    page.get_by_label("Description").fill(description)
    page.get_by_role("button", name="Predict genres").click()
    crime = page.locator('#bars li[data-genre="Crime"]')
    expect(crime).to_be_visible()
    marks = page.locator("#explained-description mark")
    assert marks.count() == 0  # nothing highlighted until a bar is pointed at
    crime.hover()
    expect(page.locator("#explained-hint")).to_contain_text("Words behind Crime")
    highlighted = marks.all_text_contents()
    assert {"gangster", "detective", "bank", "robbery"} <= set(highlighted)
    assert all(word in description for word in highlighted)
    assert page.locator("#explained-description mark.up", has_text="gangster").count() == 1
    assert page.locator("#explained-title mark").all_text_contents() == ["Heat"]
    # the description around the marks is intact
    assert page.locator("#explained-description").text_content() == description
    # selecting keeps the words after the pointer leaves; selecting again clears them
    crime.click()
    page.mouse.move(0, 0)
    expect(crime).to_have_attribute("aria-pressed", "true")
    assert "gangster" in marks.all_text_contents()
    crime.click()
    page.mouse.move(0, 0)
    expect(marks).to_have_count(0)
    page.close()
