"""End to end: upload a JSONL of long documents, search, and open the top result: the
details view shows the passage that decided, highlighted, with the query's terms marked,
and the page says how many documents were read in full and in part."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .conftest import wait_for_app_run
from .test_search_e2e import expect_rows, grid_column, open_app, search, table

pytestmark = pytest.mark.browser

LONG = Path(__file__).resolve().parents[1] / "data" / "upload_long.jsonl"
QUERY = "radiators stay cold in winter: bleed the valve and reset the boiler pressure"


def upload_long(page: Page) -> None:
    """Open "Upload your own data" and put the long JSONL in its file input."""
    box = page.get_by_test_id("stSidebar").get_by_test_id("stExpander")
    box = box.filter(has_text="Upload your own data")
    expect(box).to_be_visible()
    dropzone = box.get_by_test_id("stFileUploaderDropzoneInput")
    if dropzone.count() == 0:
        box.get_by_text("Upload your own data").click()
    expect(dropzone).to_be_attached(timeout=60_000)
    wait_for_app_run(page, lambda: dropzone.set_input_files(LONG))
    expect(page.get_by_test_id("stException")).to_have_count(0)


def test_long_upload_shows_the_deciding_passage(page: Page, app_server: str) -> None:
    open_app(page, app_server, dataset="sample")
    upload_long(page)
    search(page, QUERY)
    expect_rows(table(page, "Reranked order"), 4)
    assert grid_column(table(page, "Reranked order"), "title")[0] == (
        "House rules for the Elm Street flats"
    )
    expect(page.get_by_text("Documents read in full: 4 · in part: 0")).to_be_visible()
    expect(page.get_by_text("(query, passage) pairs per query")).to_be_visible()

    # the top result is the one the details view opens with
    decided_line = re.compile(r"Passage (\d) of \1 decided \(best passage")
    expect(page.get_by_text(decided_line)).to_be_visible()
    mark = page.locator("mark.decided-passage").first  # the excerpt, shown first
    expect(mark).to_be_visible()
    expect(mark).to_contain_text("bleed the valve at the top of each radiator")
    terms = mark.locator("b.query-term")
    assert {t.lower() for t in terms.all_inner_texts()} >= {"boiler", "pressure", "bleed"}
    # every passage's score; the last one (where the answer is) decided
    details = page.get_by_test_id("stColumn").filter(has_text="Exactly what the reranker read")
    passages = details.get_by_test_id("stDataFrame")
    passages.scroll_into_view_if_needed()  # the grid paints when on screen
    decided = grid_column(passages, "decided")
    assert len(decided) >= 2 and decided[-1] == "◀" and set(decided[:-1]) == {""}
    expect(page.get_by_test_id("stException")).to_have_count(0)
