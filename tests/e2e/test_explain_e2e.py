"""End to end: "Why this score?" in a real Chromium on the real app and models: the
details view's explanation, a contrast, and the exported HTML report's explanations.

With ``RERANK_DOC_IMAGES=1`` the three views are also saved, cropped, as the images of
docs/explanations.md (docs/images/explain-details.png, explain-contrast.png,
explain-report.png); otherwise they go to test-artifacts/.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from .conftest import ARTIFACTS, wait_for_app_run
from .test_search_e2e import open_app

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
HEIST = "a heist that goes wrong"
MAX_IMAGE_BYTES = 250_000


def _shot(target: Locator, name: str) -> Path:
    """A cropped screenshot of ``target``: into docs/images with RERANK_DOC_IMAGES=1."""
    folder = ROOT / "docs" / "images" if os.environ.get("RERANK_DOC_IMAGES") else ARTIFACTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page, box = target.page, target.bounding_box()
    size = page.viewport_size or {"width": 1400, "height": 1000}
    if box and box["height"] + 200 > size["height"]:  # Streamlit scrolls inside stMain:
        page.set_viewport_size({"width": size["width"], "height": int(box["height"]) + 300})
        page.wait_for_timeout(400)  # grow the window so the whole element is painted
    target.scroll_into_view_if_needed()
    target.screenshot(path=str(path), animations="disabled")
    assert path.stat().st_size < MAX_IMAGE_BYTES, f"{name}: {path.stat().st_size} bytes"
    return path


def _shot_span(page: Page, top: Locator, bottom: Locator, name: str) -> Path:
    """A screenshot from ``top``'s top edge to ``bottom``'s bottom edge (same width)."""
    folder = ROOT / "docs" / "images" if os.environ.get("RERANK_DOC_IMAGES") else ARTIFACTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    bottom.scroll_into_view_if_needed()
    a, b = top.bounding_box(), bottom.bounding_box()
    assert a and b, "both parts are on screen"
    x, y = min(a["x"], b["x"]) - 8, a["y"] - 8
    width = max(a["x"] + a["width"], b["x"] + b["width"]) - x + 8
    page.screenshot(
        path=str(path),
        clip={"x": x, "y": y, "width": width, "height": b["y"] + b["height"] - y + 8},
    )
    assert path.stat().st_size < MAX_IMAGE_BYTES, f"{name}: {path.stat().st_size} bytes"
    return path


def test_details_explanation_contrast_and_report(page: Page, app_server: str) -> None:
    open_app(page, app_server, dataset="movies", q=HEIST, k="30", n="10")
    expect(page.get_by_test_id("stException")).to_have_count(0)
    panel = page.get_by_test_id("stExpander").filter(has_text="Why this score?")
    wait_for_app_run(page, lambda: panel.locator("summary").click())
    go = panel.get_by_role("button", name=re.compile(r"Explain this result \(~\d+ model calls\)"))
    wait_for_app_run(page, go.click)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    helped = panel.get_by_text(re.compile(r"^Helped \(logits\): \S+ \(\+\d"))
    expect(helped).to_be_visible()
    expect(panel.get_by_text("raised", exact=False).first).to_be_visible()
    expect(panel.get_by_text("Query words", exact=False)).to_be_visible()
    _shot(panel, "explain-details.png")

    compare = panel.get_by_role("button", name="Compare the two")
    wait_for_app_run(page, compare.click)
    swap = panel.get_by_test_id("stCode").filter(has_text="swap test")
    expect(swap).to_be_visible()
    expect(swap).to_contain_text("X has, Y lacks:")
    picker = panel.get_by_test_id("stSelectbox").filter(has_text="Why above")
    _shot_span(page, picker, swap, "explain-contrast.png")

    with page.expect_download() as info:
        page.get_by_role("button", name="Export report (HTML)").click()
    report = Path(info.value.path()).read_text(encoding="utf-8")
    assert "Why these scores?" in report and "<script" not in report.lower()
    viewer = page.context.new_page()
    viewer.set_viewport_size({"width": 1000, "height": 900})
    viewer.set_content(report)
    section = viewer.locator("section").filter(
        has=viewer.get_by_role("heading", name="Why these scores?")
    )
    expect(section.get_by_text(re.compile(r"Helped"))).to_be_visible()
    _shot(section, "explain-report.png")


def test_head_to_head_explains_each_side_of_one_document(page: Page, app_server: str) -> None:
    open_app(page, app_server, "/compare", dataset="movies", q=HEIST, k="30", n="10", b="none")
    expect(page.get_by_test_id("stException")).to_have_count(0)
    panel = page.get_by_test_id("stExpander").filter(has_text="Why did A and B score it so?")
    wait_for_app_run(page, lambda: panel.locator("summary").click())
    go = panel.get_by_role("button", name=re.compile(r"Explain \(~\d+ model calls\)"))
    wait_for_app_run(page, go.click)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(panel.get_by_text(re.compile(r"^A · local cross-encoder"))).to_be_visible()
    expect(panel.get_by_text(re.compile(r"^B · first stage only"))).to_be_visible()
    expect(panel.get_by_text(re.compile(r"^Helped \(logits\): \S+ \(\+\d"))).to_be_visible()
    expect(
        panel.get_by_test_id("stCode").filter(has_text="dense: parts sum to").first
    ).to_be_visible()
    expect(panel.get_by_role("button", name="Pin to the next walkthrough step")).to_be_visible()
    _shot(panel, "explain-h2h.png")
