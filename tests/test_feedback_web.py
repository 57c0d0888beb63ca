"""An editor corrects the genres on the page, in a real headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import CRIME
from tests.test_web import browser, running_server
from tgplus.config import Settings
from tgplus.feedback import FeedbackRepository, FeedbackStore

pytestmark = pytest.mark.browser
__all__ = ["browser"]  # the Chromium fixture, shared with the page's other tests
TOKEN = "page-editor-token"


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('feedback') / 'feedback.sqlite3'}"


@pytest.fixture(scope="module")
def editor_server(fast_model: Path, database: str) -> Iterator[str]:
    settings = Settings(model_path=fast_model, database_url=database, api_token=TOKEN)
    with running_server(settings) as url:
        yield url


def test_an_editor_ticks_the_right_genres_and_sends_them(
    editor_server: str, browser: object, database: str, fast_model: Path
) -> None:
    from playwright.sync_api import Browser, expect

    from tgplus.models import load_predictor, read_metadata

    assert isinstance(browser, Browser)
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(editor_server)
    expect(page.get_by_text("model: fast")).to_be_visible()
    page.get_by_label("Description").fill(CRIME)
    page.get_by_role("button", name="Predict genres").click()
    crime = page.get_by_role("checkbox", name="Crime")
    expect(crime).to_be_checked()  # the predicted genres start ticked
    boxes = page.locator("#genre-choices input[type=checkbox]")
    assert boxes.count() == len(read_metadata(fast_model)["genres"])  # every genre it knows
    suggested = [b.get_attribute("value") or "" for b in boxes.all() if b.is_checked()]
    page.get_by_role("checkbox", name="Western").check()
    for genre in suggested:
        if genre != "Crime":
            page.get_by_role("checkbox", name=genre).uncheck()

    send = page.get_by_role("button", name="Send: these are the right genres")
    send.click()
    expect(page.get_by_role("status")).to_have_text("Type your editor token first.")
    page.get_by_label("Editor token").fill("not-the-token")
    send.click()
    expect(page.get_by_role("status")).to_have_text("The editor token is wrong.")
    page.get_by_label("Your name").fill("ana")
    page.get_by_label("Editor token").fill(TOKEN)
    send.click()
    expect(page.get_by_role("status")).to_have_text("Saved as feedback #1: Crime, Western.")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.close()

    store = FeedbackStore(database)
    try:
        with store.session() as session:
            [row] = FeedbackRepository(store, session).feedback()
    finally:
        store.dispose()
    assert (row.description, row.genres, row.editor) == (CRIME, ["Crime", "Western"], "ana")
    assert sorted(row.suggested) == sorted(suggested)
    assert row.suggested == list(load_predictor(fast_model).predict_one(CRIME).genres)  # best first
