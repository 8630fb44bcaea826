"""End to end: the server restarts under an open page (a deploy, a crash). Streamlit's
frontend reconnects by itself to a fresh session; the first query typed after that must
be searched, not replaced by the (older) query of the page's link.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .conftest import SERVER_LOG, _free_port, _server_env, run_app_server
from .test_search_e2e import open_app, search, url_params

pytestmark = pytest.mark.browser

LINKED = "first query"
TYPED = "a heist that goes wrong"
APP = "[data-testid='stApp']"


def test_a_query_typed_after_the_server_restarts_is_searched(
    page: Page, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    env, port = _server_env(), _free_port()
    box = page.get_by_label("Query", exact=True)
    request.config.stash[SERVER_LOG] = tmp_path / "server-1.log"
    with run_app_server("serve", tmp_path / "server-1.log", env, port=port) as base_url:
        open_app(page, base_url, q=LINKED, n="5")
        expect(box).to_have_value(LINKED)
    # The server is gone: the page notices and keeps trying to reconnect.
    page.locator(f"{APP}:not([data-test-connection-state='CONNECTED'])").wait_for(
        state="attached", timeout=30_000
    )
    request.config.stash[SERVER_LOG] = tmp_path / "server-2.log"
    with run_app_server("serve", tmp_path / "server-2.log", env, port=port):
        page.locator(f"{APP}[data-test-connection-state='CONNECTED']").wait_for(
            state="attached", timeout=60_000
        )
        expect(box).to_have_value(LINKED)  # still the old session's page
        search(page, TYPED)  # the new session's first run
        expect(box).to_have_value(TYPED)
        assert url_params(page)["q"] == TYPED  # the link now describes the typed search
        expect(page.get_by_role("heading", name="Reranked order")).to_be_visible()
        expect(page.get_by_test_id("stException")).to_have_count(0)
        # The settings the link carried survive as well (only the query was typed).
        assert url_params(page)["n"] == "5"
