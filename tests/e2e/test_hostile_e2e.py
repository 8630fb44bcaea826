"""End to end (issue 29): hostile values from links, stored walkthroughs and file names,
rendered by a real Chromium on every page, never become a live link or an image.

Each page is opened with hostile values in every parameter it reads; after the run, the
test counts ``<a>`` elements whose address and ``<img>`` elements whose source came
from those values (zero), and a loopback listener counts image requests (zero).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page, expect

from core.present.walkthrough import FORMAT, WalkthroughStore, parse_walkthrough
from tests.listener import Listener, listening

from .conftest import wait_for_app_run

pytestmark = pytest.mark.browser


@pytest.fixture
def listener() -> Iterator[Listener]:
    yield from listening()


def hostile(port: int) -> str:
    return (
        f"[click](http://evil.example) ![px](http://127.0.0.1:{port}/x.png) "
        "http://evil.example/bare www.evil.example evil@evil.example <b>x</b> # heading"
    )


def live_from_hostile(page: Page, port: int) -> list[str]:
    """Links and images on the page whose address came from a hostile value."""
    return page.evaluate(
        """(port) => {
          // a link or image leaving the app for an address a hostile value named; the
          // app's own links (a page with the query in its URL, a heading's #anchor)
          // stay on this origin and are not counted
          const away = (raw) => {
            if (!raw) return false;
            const url = new URL(raw, location.href);
            const named = url.href.includes("evil") || url.port === String(port);
            return url.origin !== location.origin && named;
          };
          const out = [];
          for (const a of document.querySelectorAll("a")) {
            if (away(a.getAttribute("href"))) out.push("a " + a.getAttribute("href"));
          }
          for (const img of document.querySelectorAll("img")) {
            if (away(img.getAttribute("src"))) out.push("img " + img.getAttribute("src"));
          }
          return out;
        }""",
        port,
    )


def visit(page: Page, url: str) -> None:
    page.goto(url)
    wait_for_app_run(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)


def test_no_page_turns_hostile_link_values_into_links_or_images(
    app_server: str, page: Page, listener: Listener
) -> None:
    text = hostile(listener.port)
    fast = {"ret": "bm25", "reranker": "none", "k": "10", "n": "3"}
    every = {key: text for key in ("dataset", "encoder", "reranker", "idf", "tf", "fm", "psg")}
    urls = [
        f"{app_server}/?{urlencode({'q': text, **every, 'ret': text})}",
        f"{app_server}/?{urlencode({'q': text, **fast})}",
        f"{app_server}/diagnostics?{urlencode({'q': text, **every, 'view': text})}",
        f"{app_server}/diagnostics?{urlencode({'q': text, **fast, 'dataset': 'sample'})}",
        f"{app_server}/compare?{urlencode({'q': text, **fast, 'a': text, 'b': text})}",
        f"{app_server}/compare?{urlencode({'q': text, **every, 'ret': text, 'b': 'none'})}",
        f"{app_server}/walkthrough?{urlencode({'walkthrough': text})}",
        f"{app_server}/?{urlencode({'walkthrough': text})}",
        f"{app_server}/evaluate?{urlencode({'q': text, 'dataset': text})}",
        f"{app_server}/about?{urlencode({'q': text})}",
    ]
    found = {}
    for url in urls:
        visit(page, url)
        found[url] = live_from_hostile(page, listener.port)
    assert not any(found.values()), found
    assert listener.connections == 0


def test_a_stored_walkthrough_with_hostile_title_note_and_query_stays_text(
    app_server: str, page: Page, listener: Listener
) -> None:
    text = hostile(listener.port)
    data = {
        "format": FORMAT,
        "title": text[:190],
        "steps": [
            {
                "params": {"q": text, "ret": "bm25", "reranker": "none", "dataset": "sample"},
                "b": "none",
                "note": text,
            }
        ],
    }
    wid = WalkthroughStore().put(parse_walkthrough(json.dumps(data)))
    visit(page, f"{app_server}/?walkthrough={wid}")
    expect(page.get_by_text("Step 1 of 1")).to_be_visible()
    assert live_from_hostile(page, listener.port) == []
    assert listener.connections == 0


def test_an_upload_named_like_an_address_is_shown_as_text(
    app_server: str, page: Page, listener: Listener
) -> None:
    visit(page, f"{app_server}/?{urlencode({'dataset': 'sample', 'ret': 'bm25'})}")
    box = page.get_by_test_id("stSidebar")
    dropzone = box.get_by_test_id("stFileUploaderDropzoneInput")
    if dropzone.count() == 0:
        box.get_by_text("Upload your own data").click()
    expect(dropzone.first).to_be_attached(timeout=60_000)
    records = [
        {"id": str(i), "title": f"note {i}", "text": "see www.evil.example"} for i in range(5)
    ]
    payload = json.dumps(records).encode()
    for name in ("www.evil.example.json", "evil@evil.example.json"):
        wait_for_app_run(
            page,
            lambda name=name: dropzone.first.set_input_files(
                {"name": name, "mimeType": "application/json", "buffer": payload}
            ),
        )
        expect(page.get_by_test_id("stException")).to_have_count(0)
        assert live_from_hostile(page, listener.port) == [], name
