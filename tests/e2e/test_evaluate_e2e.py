"""End to end: first stages and fusion on the Search page, and on the Evaluate page a
cross-validated recommendation that a click applies to the Search page.

The labelled set is a judgments CSV on the built-in sample dataset (4 queries), so the
tuning runs in seconds; screenshots go to test-artifacts/.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from core.data.beir import dump_judgments_csv

from .conftest import ARTIFACTS, _full_screenshot, wait_for_app_run
from .test_search_e2e import grid_column, open_app, table, url_params

pytestmark = pytest.mark.browser

BATS = "super hero mystery action movie about bats"
JUDGMENTS = {
    "how do I get bats out of my roof without hurting them": {"s15": 3, "s33": 0, "s13": 1},
    "is the silver liquid from a broken thermometer dangerous to breathe": {"s16": 3, "s05": 0},
    "how long should I let wood dry before burning it in the stove": {"s09": 3, "s01": 0},
    "my python gets scared and curls up when I pick it up": {"s20": 2},
}


def test_hybrid_first_stage_with_fusion_from_a_link(page: Page, app_server: str) -> None:
    open_app(page, app_server, q=BATS, ret="hybrid", fw="0.6", k="30", n="5")
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_role("heading", name="Fused order")).to_be_visible()
    fused = table(page, "Fused order")
    assert len(grid_column(fused, "fused")) == 5
    retrieval = table(page, "Retrieval order")
    assert len(grid_column(retrieval, "RRF")) == 5
    assert url_params(page)["ret"] == "hybrid" and url_params(page)["fw"] == "0.6"
    _full_screenshot(page, ARTIFACTS / "search-hybrid-fused.png")


def test_tune_on_judgments_and_apply_on_the_search_page(
    page: Page, app_server: str, tmp_path
) -> None:
    csv = tmp_path / "judgments.csv"
    csv.write_text(dump_judgments_csv(JUDGMENTS), encoding="utf-8")
    open_app(page, app_server)
    nav = page.get_by_test_id("stSidebarNav")
    expect(nav.get_by_role("link")).to_contain_text(
        ["Search", "Ceiling & fields", "Evaluate", "About"]
    )
    wait_for_app_run(page, nav.get_by_role("link", name="Evaluate").click)
    wait_for_app_run(page, page.get_by_text("Judgments CSV on a dataset").click)
    picker = page.get_by_role("combobox", name="Dataset", exact=True)
    wait_for_app_run(page, picker.click)
    wait_for_app_run(page, page.get_by_role("option", name="Sample (40 field-guide notes)").click)
    dropzone = page.get_by_test_id("stFileUploaderDropzoneInput")
    wait_for_app_run(page, lambda: dropzone.set_input_files(str(csv)))
    expect(page.get_by_text("4 judged queries, 8 ratings.")).to_be_visible()

    button = page.get_by_role("button", name="Find the best setting (cross-validated)")
    wait_for_app_run(page, button.click)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_role("heading", name="Recommended setting")).to_be_visible()
    heldout = page.get_by_test_id("stMetric").filter(has_text="Held-out nDCG@10")
    expect(heldout).to_be_visible()
    expect(page.get_by_text("95% CI").first).to_be_visible()
    recommended = page.get_by_test_id("stMarkdown").filter(has_text=" · ").first.inner_text()
    _full_screenshot(page, ARTIFACTS / "evaluate-tune.png")
    # Quality against measured cost: one chart, the cheapest setting within noise named.
    expect(page.get_by_role("heading", name="Quality against cost")).to_be_visible()
    expect(page.get_by_text("Cheapest within noise of the best:")).to_be_visible()
    chart = page.get_by_test_id("stVegaLiteChart").filter(has=page.locator("canvas, svg")).first
    expect(chart).to_be_visible()
    chart.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    ARTIFACTS.mkdir(exist_ok=True)
    chart.screenshot(path=str(ARTIFACTS / "evaluate-quality-vs-cost.png"))

    apply = page.get_by_role("button", name="Apply on the Search page")
    wait_for_app_run(page, apply.click)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_role("heading", name="Retrieve, then rerank")).to_be_visible()
    expect(page.get_by_text("Applied the recommended setting:")).to_be_visible()
    assert recommended.strip() in page.get_by_test_id("stAlert").first.inner_text()
