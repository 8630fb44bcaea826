"""End to end: a real Chromium uploads a file through the sidebar's file input, searches
it, and shares the link; a bad file is refused without losing the dataset in use.

Results are read from the "Download CSV" export (every candidate, exact), as in
test_search_e2e.py, whose page helpers are reused here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from core.data.upload_store import upload_id

from .conftest import wait_for_app_run
from .test_search_e2e import (
    ROOF,
    download_csv,
    expect_rows,
    final_titles,
    grid_column,
    open_app,
    search,
    table,
    url_params,
)

pytestmark = pytest.mark.browser

SMALL = Path(__file__).resolve().parents[1] / "data" / "upload_small.jsonl"
SMALL_LABEL = "upload_small.jsonl (8 records)"
SAMPLE_LABEL = "Sample (40 field-guide notes)"
BIKE_QUERY = "my bike chain keeps skipping gears"
BIKE_TOP = "Replacing a Bicycle Chain"
TRUNCATED = b'[\n  {"title": "Heat", "body": "Bank robbers"},\n  {"title": "Alien", "bo'


# --- helpers --------------------------------------------------------------------------


def sidebar(page: Page) -> Locator:
    return page.get_by_test_id("stSidebar")


def dataset_picker(page: Page) -> Locator:
    """The sidebar's "Dataset" selectbox (not the "Dataset file" uploader): its input
    holds the label of the dataset in use."""
    return sidebar(page).get_by_role("combobox", name="Dataset", exact=True)


def upload_file(page: Page, files) -> None:
    """Open "Upload your own data", put ``files`` in its file input, wait for the run."""
    box = sidebar(page).get_by_test_id("stExpander").filter(has_text="Upload your own data")
    dropzone = box.get_by_test_id("stFileUploaderDropzoneInput")
    if not dropzone.is_visible():
        box.get_by_text("Upload your own data").click()
    expect(box.get_by_text("Dataset file")).to_be_visible()
    wait_for_app_run(page, lambda: dropzone.set_input_files(files))
    expect(page.get_by_test_id("stException")).to_have_count(0)


def quality_report(page: Page, filename: str) -> Locator:
    return page.get_by_test_id("stExpander").filter(has_text=f"Data quality: {filename}")


# --- tests ------------------------------------------------------------------------------


def test_uploaded_file_is_searchable_and_its_link_works_in_a_fresh_context(
    page: Page, app_server: str, new_context: Callable[[], BrowserContext]
) -> None:
    open_app(page, app_server, dataset="sample")
    expect(dataset_picker(page)).to_have_value(SAMPLE_LABEL)

    upload_file(page, SMALL)
    dataset_id = upload_id(SMALL.read_bytes())
    expect(dataset_picker(page)).to_have_value(SMALL_LABEL)
    report = quality_report(page, SMALL.name)
    expect(report).to_be_visible()
    metrics = report.get_by_test_id("stMetric")
    expect(metrics.filter(has_text="Records")).to_contain_text("8")
    expect(metrics.filter(has_text="Searchable")).to_contain_text("8")
    expect(metrics.filter(has_text="Dropped (no text)")).to_contain_text("0")
    assert url_params(page).get("dataset") == dataset_id

    search(page, BIKE_QUERY)
    expect_rows(table(page, "Reranked order"), 8)
    original = download_csv(page)
    assert len(original) == 8  # every record is a candidate (k=50 > 8)
    assert final_titles(original, 1) == [BIKE_TOP]
    assert grid_column(table(page, "Reranked order"), "title")[0] == BIKE_TOP
    share_url = page.url
    assert url_params(page).get("q") == BIKE_QUERY
    assert url_params(page).get("dataset") == dataset_id

    fresh = new_context().new_page()  # no cookies, no session state: only the link
    fresh.goto(share_url)
    wait_for_app_run(fresh)
    expect(fresh.get_by_test_id("stException")).to_have_count(0)
    expect(fresh.get_by_test_id("stAlert")).to_have_count(0)
    expect(dataset_picker(fresh)).to_have_value(SMALL_LABEL)
    expect(quality_report(fresh, SMALL.name)).to_be_visible()
    expect(fresh.get_by_label("Query", exact=True)).to_have_value(BIKE_QUERY)
    shared = download_csv(fresh)
    assert final_titles(shared) == final_titles(original)
    assert url_params(fresh) == url_params(page)


def test_bad_file_shows_an_error_and_keeps_the_dataset(page: Page, app_server: str) -> None:
    open_app(page, app_server, dataset="sample", q=ROOF)
    expect(dataset_picker(page)).to_have_value(SAMPLE_LABEL)
    expect_rows(table(page, "Reranked order"), 10)
    before = grid_column(table(page, "Reranked order"), "title")
    assert before[0] == "Bats in the Attic: Safe Eviction"

    upload_file(
        page, {"name": "truncated.json", "mimeType": "application/json", "buffer": TRUNCATED}
    )
    error = sidebar(page).get_by_text(re.compile(r"truncated\.json is not valid JSON: .* line 3"))
    expect(error).to_be_visible()
    expect(dataset_picker(page)).to_have_value(SAMPLE_LABEL)
    expect(page.get_by_test_id("stExpander").filter(has_text="Data quality")).to_have_count(0)
    assert url_params(page).get("dataset") == "sample"
    assert url_params(page).get("q") == ROOF

    # The sample is still what gets searched.
    search(page, "how long should I let wood dry before burning it in the stove")
    expect_rows(table(page, "Reranked order"), 10)
    assert final_titles(download_csv(page), 1) == ["Seasoning Firewood for a Clean Burn"]
    expect(dataset_picker(page)).to_have_value(SAMPLE_LABEL)
