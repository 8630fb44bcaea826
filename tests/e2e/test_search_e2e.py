"""End to end: a real Chromium drives the real app (real packaged models, shared data).

Results are read from the "Download CSV" export (exact, every candidate) and, where the
test is about what is on screen, from the dataframes' accessible grid (st.dataframe
draws on a canvas; its hidden ARIA table holds the visible cells).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from .conftest import pick_option, wait_for_app_run

pytestmark = pytest.mark.browser

BATS = "super hero mystery action movie about bats"
HEIST = "a heist that goes wrong"
ROOF = "how do I get bats out of my roof without hurting them"
BATMAN = re.compile(r"batman|dark knight", re.IGNORECASE)
METRIC_LABELS = [
    "Top result",
    "Kendall τ",
    "Top-10 overlap",
    "From outside top-N",
    "Rerank",
    "Total",
]


# --- helpers --------------------------------------------------------------------------


def open_app(page: Page, base_url: str, path: str = "/", **params: str) -> None:
    """Load the app (optionally with share-link parameters) and wait for its first run."""
    query = f"?{urlencode(params)}" if params else ""
    page.goto(f"{base_url}{path}{query}")
    wait_for_app_run(page)


def search(page: Page, query: str) -> None:
    """Type into the Query box and press Enter, as a user would."""
    box = page.get_by_label("Query", exact=True)
    box.fill(query)
    wait_for_app_run(page, lambda: box.press("Enter"))
    expect(page.get_by_test_id("stException")).to_have_count(0)


def url_params(page: Page) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(urlsplit(page.url).query).items()}


def table(page: Page, heading: str) -> Locator:
    """The st.dataframe under the subheader ``heading`` (one per column of the page)."""
    column = page.get_by_test_id("stColumn").filter(has=page.get_by_role("heading", name=heading))
    return column.get_by_test_id("stDataFrame")


def grid_column(frame: Locator, header: str) -> list[str]:
    """Visible cells of one column, top to bottom, from the grid's accessible table.

    Glide's ARIA table is hidden from the accessibility tree (get_by_role skips it), so
    it is read with CSS role selectors. The grid paints after the script run ends, so
    the first header is awaited.
    """
    expect(frame.locator("[role='columnheader']").first).to_be_attached()
    headers = [h.strip() for h in frame.locator("[role='columnheader']").all_inner_texts()]
    assert header in headers, f"column {header!r} not among {headers}"
    index = headers.index(header) + 1
    cells = frame.locator(f"tbody [role='row'] [role='gridcell'][aria-colindex='{index}']")
    return [text.strip() for text in cells.all_inner_texts()]


def expect_rows(frame: Locator, rows: int) -> None:
    """The grid reports ``rows`` data rows (plus its header row)."""
    expect(frame.locator("[role='grid']")).to_have_attribute("aria-rowcount", str(rows + 1))


def download_csv(page: Page) -> list[dict[str, str]]:
    """The "Download CSV" export: every candidate, in final order."""
    downloads = []

    def click() -> None:
        with page.expect_download() as info:
            page.get_by_role("button", name="Download CSV").click()
        downloads.append(info.value)

    # A download button reruns the script by default: wait for that run too.
    wait_for_app_run(page, click)
    download = downloads[0]
    assert download.suggested_filename == "rerank-results.csv"
    text = Path(download.path()).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def final_titles(rows: list[dict[str, str]], n: int | None = None) -> list[str]:
    ordered = sorted(rows, key=lambda row: int(row["final_rank"]))
    return [row["title"] for row in ordered[:n]]


def expect_charts_drawn(page: Page, count: int) -> None:
    charts = page.get_by_test_id("stVegaLiteChart")
    expect(charts).to_have_count(count)
    for index in range(count):
        chart = charts.nth(index)
        surface = chart.locator("svg.marks, canvas").first
        expect(surface).to_be_visible()
        box = surface.bounding_box()
        assert box and box["width"] > 50 and box["height"] > 50, f"chart {index}: {box}"
        if surface.evaluate("el => el.tagName.toLowerCase()") == "svg":
            # Vega draws data marks (lines, points, bars) as paths inside role-mark groups.
            expect(chart.locator("g[class*='role-mark'] > path").first).to_be_attached()


# --- tests ------------------------------------------------------------------------------


def test_typed_query_shows_both_orders_charts_metrics_and_share_link(
    page: Page, app_server: str
) -> None:
    open_app(page, app_server)
    expect(page.get_by_text("Type a query or pick an example")).to_be_visible()

    search(page, BATS)

    retrieval = table(page, "Retrieval order")
    reranked = table(page, "Reranked order")
    expect_rows(retrieval, 10)
    expect_rows(reranked, 10)
    assert len(grid_column(retrieval, "title")) == 10
    shown = grid_column(reranked, "title")
    assert len(shown) == 10
    assert BATMAN.search(shown[0]), f"top reranked result is not a Batman film: {shown}"
    assert grid_column(reranked, "#") == [str(rank) for rank in range(1, 11)]

    expect(page.get_by_role("heading", name="Rank movement")).to_be_visible()
    expect_charts_drawn(page, 3)

    labels = page.get_by_test_id("stMetricLabel")
    expect(labels).to_have_count(len(METRIC_LABELS))
    assert [t.strip() for t in labels.all_inner_texts()] == METRIC_LABELS
    values = dict(
        zip(METRIC_LABELS, page.get_by_test_id("stMetricValue").all_inner_texts(), strict=True)
    )
    assert values["Top result"] in {"same", "changed"}
    assert -1.0 <= float(values["Kendall τ"].replace("−", "-")) <= 1.0
    assert re.fullmatch(r"\d+%", values["Top-10 overlap"])
    assert values["Rerank"].endswith(" ms") and values["Total"].endswith(" ms")

    params = url_params(page)
    assert params.get("q") == BATS
    assert params.get("dataset") == "movies"


def test_share_link_reproduces_the_results_in_a_fresh_context(
    page: Page, app_server: str, new_context: Callable[[], BrowserContext]
) -> None:
    open_app(page, app_server)
    search(page, BATS)
    share_url = page.url
    assert url_params(page).get("q") == BATS
    original = download_csv(page)
    assert len(original) == 50  # every candidate (default k) is exported
    assert final_titles(original, 10) == grid_column(table(page, "Reranked order"), "title")

    fresh = new_context().new_page()  # no cookies, no session state: only the link
    fresh.goto(share_url)
    wait_for_app_run(fresh)
    expect(fresh.get_by_test_id("stException")).to_have_count(0)
    expect(fresh.get_by_label("Query", exact=True)).to_have_value(BATS)
    expect_rows(table(fresh, "Reranked order"), 10)
    shared = download_csv(fresh)

    assert final_titles(shared, 5) == final_titles(original, 5)
    assert BATMAN.search(final_titles(shared, 1)[0])
    assert grid_column(table(fresh, "Reranked order"), "title")[:5] == final_titles(original, 5)
    assert url_params(fresh) == url_params(page)


def test_two_sessions_searching_at_once_keep_their_own_results(
    app_server: str, new_context: Callable[[], BrowserContext]
) -> None:
    movies, sample = new_context().new_page(), new_context().new_page()
    # Start both loads before waiting on either (goto returns once the response starts
    # arriving), so the server runs both sessions' scripts at the same time.
    movies.goto(
        f"{app_server}/?{urlencode({'dataset': 'movies', 'q': HEIST})}", wait_until="commit"
    )
    sample.goto(f"{app_server}/?{urlencode({'dataset': 'sample', 'q': ROOF})}", wait_until="commit")
    wait_for_app_run(movies)
    wait_for_app_run(sample)

    for page in (movies, sample):
        expect(page.get_by_test_id("stException")).to_have_count(0)
        expect_rows(table(page, "Reranked order"), 10)
    sample_top = grid_column(table(sample, "Reranked order"), "title")
    movies_top = grid_column(table(movies, "Reranked order"), "title")
    assert sample_top[0] == "Bats in the Attic: Safe Eviction"
    assert movies_top[0] != "Bats in the Attic: Safe Eviction"
    assert "Bats in the Attic: Safe Eviction" not in movies_top
    assert not set(sample_top) & set(movies_top)

    assert url_params(movies)["q"] == HEIST and url_params(movies)["dataset"] == "movies"
    assert url_params(sample)["q"] == ROOF and url_params(sample)["dataset"] == "sample"
    expect(movies.get_by_label("Query", exact=True)).to_have_value(HEIST)
    expect(sample.get_by_label("Query", exact=True)).to_have_value(ROOF)


def test_no_reranker_keeps_the_retrieval_order(page: Page, app_server: str) -> None:
    open_app(page, app_server, dataset="movies", q=HEIST)
    expect(page.get_by_role("heading", name="Rank movement")).to_be_visible()

    reranker = page.get_by_test_id("stSelectbox").filter(has_text="Reranker")
    pick_option(page, reranker.get_by_role("combobox"), "None: retrieval only (baseline)")
    expect(page.get_by_test_id("stException")).to_have_count(0)

    final = table(page, "Final order (no reranker)")
    retrieval = table(page, "Retrieval order")
    expect_rows(final, 10)
    expect_rows(retrieval, 10)
    assert grid_column(final, "title") == grid_column(retrieval, "title")
    assert grid_column(final, "retrieval #") == [str(rank) for rank in range(1, 11)]
    expect(page.get_by_role("heading", name="Rank movement")).to_have_count(0)
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(0)
    assert url_params(page).get("reranker") == "none"

    rows = download_csv(page)
    assert [row["final_rank"] for row in rows] == [row["retrieval_rank"] for row in rows]
    assert all(row["rerank_score"] == "" for row in rows)


def test_about_page_explains_the_last_search(page: Page, app_server: str) -> None:
    open_app(page, app_server)
    search(page, BATS)

    about = page.get_by_test_id("stSidebarNav").get_by_role("link", name="About")
    wait_for_app_run(page, about.click)
    expect(page.get_by_role("heading", name="About this workbench")).to_be_visible()
    expect(page.get_by_role("heading", name=f"Your last search: “{BATS}”")).to_be_visible()
    expect(page.get_by_text("50 (query, document) pairs")).to_be_visible()


def test_back_from_about_to_search_keeps_working(page: Page, app_server: str) -> None:
    open_app(page, app_server, dataset="sample", q=ROOF)
    nav = page.get_by_test_id("stSidebarNav")
    wait_for_app_run(page, nav.get_by_role("link", name="About").click)
    wait_for_app_run(page, nav.get_by_role("link", name="Search").click)
    expect(page.get_by_test_id("stException")).to_have_count(0, timeout=2_000)
    expect(page.get_by_label("Query", exact=True)).to_have_value(ROOF)
