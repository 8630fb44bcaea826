"""End to end: a head-to-head of the local cross-encoder and a fused setting on movies,
a three-query walkthrough shared by link and opened in a fresh browser, the blind vote
and reveal, and the exported HTML report opened from disk with networking disabled.

Screenshots land in test-artifacts/ (the fixture's full-page shots plus the named ones
below).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page, expect

from .conftest import ARTIFACTS, wait_for_app_run

pytestmark = pytest.mark.browser

QUERIES = (
    "a heist that goes wrong",
    "astronauts stranded far from earth",
    "a toy that comes to life",
)
NOTES = ("Fusion keeps the first stage's heist films up.", "", "Watch the top result.")
LINK = {"dataset": "movies", "k": "20", "n": "5", "b": "local@0.5"}


def open_compare(page: Page, base_url: str, query: str) -> None:
    # The root first: a process whose first request is a deep link serves no navigation.
    page.goto(base_url)
    wait_for_app_run(page)
    page.goto(f"{base_url}/compare?{urlencode({**LINK, 'q': query})}")
    wait_for_app_run(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)


def set_query(page: Page, query: str) -> None:
    box = page.get_by_label("Query", exact=True)
    box.fill(query)
    wait_for_app_run(page, lambda: box.press("Enter"))
    expect(page.get_by_test_id("stException")).to_have_count(0)


def metric(page: Page, label: str) -> str:
    card = page.get_by_test_id("stMetric").filter(has_text=label)
    return card.get_by_test_id("stMetricValue").inner_text().strip()


def click(page: Page, name: str) -> None:
    wait_for_app_run(page, lambda: page.get_by_role("button", name=name, exact=True).click())
    expect(page.get_by_test_id("stException")).to_have_count(0)


def download(page: Page, name: str, target: Path) -> Path:
    with page.expect_download() as info:
        page.get_by_role("button", name=name).click()
    info.value.save_as(target)
    return target


def open_offline(browser, path: Path, shot: str) -> Page:
    """Open a saved report from disk in a context with networking off (any request that
    is not the file itself is aborted and counted)."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, offline=True)
    blocked: list[str] = []

    def route(r) -> None:
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.goto(path.resolve().as_uri())
    expect(page.locator("h1")).to_be_visible()
    assert not blocked, blocked
    page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    return page


def test_head_to_head_and_its_report_offline(app_server: str, page: Page, browser) -> None:
    # As a new user: search on movies, follow the link to the head to head, pick B.
    page.goto(
        f"{app_server}/?{urlencode({'dataset': 'movies', 'q': QUERIES[0], 'k': '20', 'n': '5'})}"
    )
    wait_for_app_run(page)
    link = page.get_by_role("link", name=re.compile("Compare this view with another reranker"))
    wait_for_app_run(page, link.click)
    expect(page.get_by_role("heading", name="Head to head")).to_be_visible()
    expect(page.get_by_label("Query", exact=True)).to_have_value(QUERIES[0])
    b_box = page.get_by_test_id("stSelectbox").filter(has_text="B: second stage")
    b_box.get_by_role("combobox").click()
    option = page.get_by_role("option", name="Local cross-encoder (MiniLM-L-12, INT8 ONNX)")
    wait_for_app_run(page, option.click)
    slider = (
        page.get_by_test_id("stSlider")
        .filter(has_text="B: cross-encoder weight")
        .get_by_role("slider")
    )
    for _ in range(5):
        wait_for_app_run(page, lambda: slider.press("ArrowLeft"))
    expect(page).to_have_url(re.compile(r"[?&]b=local%400\.5(&|$)"))
    expect(page.get_by_test_id("stException")).to_have_count(0)
    for label in ("Kendall τ (A vs B)", "RBO (p = 0.9)", "Overlap@5", "A time", "B time"):
        expect(page.get_by_test_id("stMetric").filter(has_text=label)).to_be_visible()
    assert re.fullmatch(r"[+-]\d\.\d\d", metric(page, "Kendall τ (A vs B)"))
    expect(page.get_by_role("heading", name="A · local cross-encoder", exact=True)).to_be_visible()
    expect(
        page.get_by_role("heading", name="B · local cross-encoder fused w=0.5", exact=True)
    ).to_be_visible()
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(3)  # movement + 2 scores
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    saved = download(page, "Export report (HTML)", ARTIFACTS / "head-to-head-report.html")
    report = open_offline(browser, saved, "head-to-head-report.png")
    assert report.locator("svg").count() == 3
    assert report.locator("svg line, svg rect").count() > 10  # drawn, not empty
    expect(report.get_by_text("Movement from A to B")).to_be_visible()
    expect(report.locator("table").first).to_contain_text(QUERIES[0])
    report.context.close()


def test_walkthrough_shared_by_link_blind_test_and_report(
    app_server: str, new_context, browser
) -> None:
    builder = new_context().new_page()
    open_compare(builder, app_server, QUERIES[0])
    note_box = builder.get_by_label("Note for this step (optional)")
    for number, (query, note) in enumerate(zip(QUERIES, NOTES, strict=True), start=1):
        if query != QUERIES[0]:
            set_query(builder, query)
        note_box.fill(note)  # differs from the box's last value: its blur reruns
        wait_for_app_run(builder, note_box.blur)
        click(builder, "Add this view as a step")
        # As a presenter would: see the step added before changing the query.
        expect(builder.get_by_text(f"Step {number} added.")).to_be_visible()
    steps = builder.get_by_test_id("stSidebar").get_by_test_id("stCaptionContainer")
    expect(steps.filter(has_text=" — B: ")).to_have_text(
        [re.compile(re.escape(query)) for query in QUERIES]
    )
    click(builder, "Save and share")
    codes = builder.get_by_test_id("stCode")
    viewer_link, link = (codes.nth(i).inner_text().strip() for i in (0, 1))
    room = r"/\?walkthrough=[0-9a-f]{16}&room=[0-9a-f]{12}"
    assert re.fullmatch(re.escape(app_server) + room, viewer_link), viewer_link
    assert re.fullmatch(re.escape(app_server) + room + r"&presenter=[\w-]+", link), link

    # A fresh browser context (no cookies, no session) opens the presenter's link.
    presenter = new_context().new_page()
    presenter.goto(link)
    wait_for_app_run(presenter)
    expect(presenter.get_by_test_id("stException")).to_have_count(0)
    expect(presenter.get_by_text("Step 1 of 3")).to_be_visible()
    expect(presenter.get_by_role("heading", name=f"“{QUERIES[0]}”")).to_be_visible()
    expect(presenter.get_by_text(NOTES[0])).to_be_visible()
    click(presenter, "Next ▶")
    expect(presenter.get_by_text("Step 2 of 3")).to_be_visible()
    click(presenter, "Next ▶")
    expect(presenter.get_by_text("Step 3 of 3")).to_be_visible()
    expect(presenter.get_by_role("button", name="Next ▶")).to_be_disabled()
    presenter.screenshot(path=str(ARTIFACTS / "walkthrough-step3.png"), full_page=True)
    click(presenter, "◀ Previous")
    click(presenter, "◀ Previous")
    expect(presenter.get_by_text("Step 1 of 3")).to_be_visible()

    # Blind test: unlabelled lists, one vote per query, then the reveal.
    click(presenter, "Start the blind test")
    expect(presenter.get_by_role("heading", name="Left list")).to_be_visible()
    expect(presenter.get_by_text("local cross-encoder")).to_have_count(0)
    picks = ("Left is better", "Right is better", "Tie")
    for number, pick in enumerate(picks):
        click(presenter, pick)
        if number < 2:
            click(presenter, "Next ▶")
    presenter.screenshot(path=str(ARTIFACTS / "blind-vote.png"), full_page=True)
    click(presenter, "Reveal")
    verdict = presenter.get_by_text(re.compile(r"sign test p = "))
    expect(verdict).to_be_visible()
    text = verdict.inner_text()
    assert "A (local cross-encoder)" in text and "B (local cross-encoder fused w=0.5)" in text
    counts = re.search(r"\) (\d+) · B \(.*?\) (\d+) · ties (\d+)", text)
    assert counts and [int(x) for x in counts.groups()][2] == 1
    assert sum(int(x) for x in counts.groups()) == 3
    presenter.screenshot(path=str(ARTIFACTS / "blind-reveal.png"), full_page=True)

    click(presenter, "Prepare the report of the whole walkthrough (HTML)")
    saved = download(presenter, "Download report (HTML)", ARTIFACTS / "walkthrough-report.html")
    report = open_offline(browser, saved, "walkthrough-report.png")
    assert report.locator("section.step").count() == 3
    assert report.locator("svg").count() == 9  # per step: movement + two score charts
    expect(report.get_by_text("Blind test")).to_be_visible()
    expect(report.get_by_text(NOTES[2])).to_be_visible()
    report.emulate_media(media="print")
    report.screenshot(path=str(ARTIFACTS / "walkthrough-report-print.png"), full_page=True)
    report.context.close()
