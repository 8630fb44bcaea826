"""End to end: a shared link works from the first click on a freshly started server,
whether it was started by the README's command (serve.py) or a plain `streamlit run
app.py`; and several viewers searching at once each get their own results.

Each ``fresh_app_server`` test starts a NEW server process, so the link opened here is
the very first request that process sees (the case Streamlit decides per process).
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from .conftest import APP_SERVER_LOG, SERVER_LOG, wait_for_app_run
from .test_search_e2e import expect_rows, grid_column, table, url_params

pytestmark = pytest.mark.browser

# The st.Page titles app.py builds, in order (read from app.py so a new page is counted).
PAGE_TITLES = re.findall(
    r'title="([^"]+)"', (Path(__file__).resolve().parents[2] / "app.py").read_text()
)[1:]  # [0] is set_page_config's page_title
HEIST = "a heist that goes wrong"
# Evaluate's own widgets take no link parameters; these ride along in the URL (as a
# walkthrough's tracking parameters would) and must survive the recovery rerun.
EVALUATE_PARAMS = {"from": "walkthrough", "step": "3"}


def expect_the_pages(page: Page) -> None:
    """Exactly the st.Page titles, in order (never one entry per file in pages/).

    A link's text is its Material icon's name followed by the title.
    """
    links = page.get_by_test_id("stSidebarNav").get_by_role("link")
    expect(links).to_have_count(len(PAGE_TITLES), timeout=60_000)
    expect(links).to_have_text([re.compile(rf"^\w*{re.escape(t)}$") for t in PAGE_TITLES])


@pytest.mark.parametrize("mode", ["serve", "plain"])
def test_evaluate_link_as_the_first_request_of_a_fresh_server(
    mode: str, fresh_app_server: Callable[[str], str], page: Page
) -> None:
    base_url = fresh_app_server(mode)
    page.goto(f"{base_url}/evaluate?{urlencode(EVALUATE_PARAMS)}")
    wait_for_app_run(page)
    expect_the_pages(page)
    wait_for_app_run(page)
    expect(page.get_by_role("heading", name="Does reranking help?")).to_be_visible()
    expect(page.get_by_role("radiogroup", name="Labelled set")).to_be_visible()
    expect(page.get_by_test_id("stException")).to_have_count(0)
    assert page.url.split("?")[0] == f"{base_url}/evaluate"
    assert url_params(page) == EVALUATE_PARAMS
    current = page.get_by_test_id("stSidebarNav").locator("a[aria-current='page']")
    expect(current).to_have_text(re.compile(r"Evaluate$"))


@pytest.mark.parametrize("mode", ["serve", "plain"])
def test_search_link_as_the_first_request_of_a_fresh_server(
    mode: str, fresh_app_server: Callable[[str], str], page: Page
) -> None:
    base_url = fresh_app_server(mode)
    page.goto(f"{base_url}/?{urlencode({'q': HEIST, 'n': '5', 'dataset': 'movies'})}")
    wait_for_app_run(page)
    expect_the_pages(page)
    expect(page.get_by_role("heading", name="Reranked order")).to_be_visible(timeout=120_000)
    wait_for_app_run(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_label("Query", exact=True)).to_have_value(HEIST)
    expect_rows(table(page, "Reranked order"), 5)
    assert url_params(page)["q"] == HEIST and url_params(page)["n"] == "5"


def _export(page: Page) -> list[dict[str, str]]:
    downloads = []

    def click() -> None:
        with page.expect_download() as info:
            page.get_by_role("button", name="Download CSV").click()
        downloads.append(info.value)

    wait_for_app_run(page, click)
    text = Path(downloads[0].path()).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def _wait_for_warmup(log_path: Path, timeout_s: float = 600) -> None:
    """Wait for the server's warm-up to end (its last log line), so the sessions below
    compete only with each other."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if re.search(r"warm-up (done|failed)", log_path.read_text(errors="replace")):
            return
        time.sleep(0.5)
    pytest.fail(f"the server's warm-up did not end in {timeout_s:.0f} s")


def test_three_viewers_searching_at_once_each_get_their_own_results(
    app_server: str, new_context: Callable[[], BrowserContext], request: pytest.FixtureRequest
) -> None:
    log_path = request.config.stash[APP_SERVER_LOG]
    request.config.stash[SERVER_LOG] = log_path  # a fresh server's test may have moved it
    _wait_for_warmup(log_path)
    from core.data.datasets import load_dataset
    from core.models.registry import load_encoder, load_reranker
    from core.search.pipeline import search_with_rerank

    queries = [
        "a robot learns to love",
        "detective hunts a serial killer in the rain",
        "family road trip comedy",
    ]
    pages = [new_context().new_page() for _ in queries]
    # Start every load before waiting on any, so the server runs the three at once.
    for page, query in zip(pages, queries, strict=True):
        page.goto(f"{app_server}/?{urlencode({'q': query, 'n': '10'})}", wait_until="commit")
    for page in pages:
        wait_for_app_run(page)
        expect(page.get_by_role("heading", name="Reranked order")).to_be_visible()
        expect(page.get_by_test_id("stException")).to_have_count(0)

    movies = load_dataset("movies")
    encoder, reranker = load_encoder(), load_reranker()
    for page, query in zip(pages, queries, strict=True):
        expected = search_with_rerank(
            movies,
            query,
            encoder=encoder,
            reranker=reranker,
            embed_fields=movies.default_embed_fields,
            rerank_fields=movies.default_rerank_fields,
            num_candidates=50,
            num_results=10,
        )
        rows = sorted(_export(page), key=lambda row: int(row["final_rank"]))
        assert [row["id"] for row in rows[:10]] == [c.id for c in expected.top_final]
        shown = grid_column(table(page, "Reranked order"), "title")
        assert shown == [c.title for c in expected.top_final]
        expect(page.get_by_label("Query", exact=True)).to_have_value(query)
