"""End to end: the "Ceiling & fields" page on movies with the real packaged models.

The whole-corpus rerank behind the recall ceiling is cached on disk (under
RERANK_CACHE_DIR, the shared .test-cache), so only a cold cache pays its tens of
seconds. Screenshots of both views go to test-artifacts/.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit

import pytest
from playwright.sync_api import Page, expect

from .conftest import ARTIFACTS, _full_screenshot, wait_for_app_run
from .test_search_e2e import grid_column, url_params

pytestmark = pytest.mark.browser

BATS = "super hero mystery action movie about bats"
BATMAN = re.compile(r"batman|dark knight", re.IGNORECASE)


def metric_value(page: Page, label: str) -> str:
    """The value of the st.metric whose label starts with ``label``."""
    metric = page.get_by_test_id("stMetric").filter(
        has=page.get_by_test_id("stMetricLabel").filter(has_text=label)
    )
    return metric.get_by_test_id("stMetricValue").inner_text().strip()


def test_both_views_on_movies_from_the_search_page(page: Page, app_server: str) -> None:
    # A search first: the page takes its query and settings over.
    page.goto(f"{app_server}/?{urlencode({'q': BATS})}")
    wait_for_app_run(page)
    nav = page.get_by_test_id("stSidebarNav")
    wait_for_app_run(page, nav.get_by_role("link", name="Ceiling & fields").click)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_role("heading", name="Recall ceiling & field ablation")).to_be_visible()
    assert urlsplit(page.url).path.endswith("/diagnostics")
    expect(page.get_by_label("Query", exact=True)).to_have_value(BATS)

    # --- recall ceiling ---
    reached = metric_value(page, "Ideal top-10 reached with 50")
    assert re.fullmatch(r"\d+ / 10", reached), reached
    assert int(reached.split(" / ")[0]) < 10
    assert re.fullmatch(r"[\d,]+|never", metric_value(page, "Candidates to reach all 10"))
    assert re.fullmatch(r"[\d.]+ s", metric_value(page, "Whole-corpus rerank"))
    assert re.fullmatch(r"[\d,]+ ms", metric_value(page, "Est. rerank of 50"))
    missed = page.get_by_test_id("stDataFrame").first
    titles = grid_column(missed, "title")
    assert len(titles) == 10 - int(reached.split(" / ")[0])
    assert all(int(r) > 50 for r in grid_column(missed, "retrieval #"))
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(1)
    expect(page.get_by_test_id("stVegaLiteChart").locator("canvas, svg").first).to_be_visible()
    assert url_params(page)["view"] == "ceiling"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _full_screenshot(page, ARTIFACTS / "diagnostics-ceiling.png")
    page.set_viewport_size({"width": 1400, "height": 1000})

    # --- field ablation ---
    wait_for_app_run(page, page.get_by_text("Field ablation", exact=True).first.click)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_role("heading", name="Field ablation", exact=True)).to_be_visible()
    frames = page.get_by_test_id("stDataFrame")
    expect(frames).to_have_count(5)  # three field sets, the scores, the agreement table
    title_only = grid_column(frames.nth(0), "title")
    with_overview = grid_column(frames.nth(1), "title")
    every_field = grid_column(frames.nth(2), "title")
    assert len(title_only) == len(with_overview) == len(every_field) == 10
    assert title_only != every_field
    assert "The Dark Knight" in with_overview and "The Dark Knight" not in title_only
    assert any(BATMAN.search(t) for t in every_field[:5])
    pairs = grid_column(frames.nth(4), "field sets")
    assert pairs[0] == "title only vs title + overview"
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(1)
    assert url_params(page)["view"] == "fields"
    assert url_params(page)["q"] == BATS


def test_deep_link_opens_the_field_ablation(page: Page, app_server: str) -> None:
    params = {"dataset": "sample", "q": "how do I get bats out of my roof", "k": "20", "n": "5"}
    page.goto(f"{app_server}/diagnostics?{urlencode({**params, 'view': 'fields'})}")
    wait_for_app_run(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_role("heading", name="Field ablation", exact=True)).to_be_visible()
    frames = page.get_by_test_id("stDataFrame")
    expect(frames).to_have_count(5)
    assert grid_column(frames.nth(0), "#") == ["1", "2", "3", "4", "5"]
    assert "Bats in the Attic: Safe Eviction" in grid_column(frames.nth(1), "title")
    assert {k: url_params(page)[k] for k in params} == params
