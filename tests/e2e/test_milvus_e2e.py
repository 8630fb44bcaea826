"""End to end: the app's first stage in Milvus — a Milvus Lite file named in a link, and
a ``milvus-lite server`` subprocess opened from the sidebar by URI — reranked, with
every view (both orders, charts, metrics, the CSV export)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from core.search.milvus import open_collection
from core.search.milvus_client import release
from core.search.milvus_export import export_dataset
from core.search.milvus_reference import MilvusTarget
from tests.test_milvus import MINILM, free_port, start_server, stop

from .conftest import wait_for_app_run
from .test_search_e2e import (
    HEIST,
    download_csv,
    expect_charts_drawn,
    expect_rows,
    grid_column,
    open_app,
    search,
    table,
    url_params,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
# On a loaded machine a Milvus search plus 50 reranked pairs can outlast one app-run wait.
GRID_TIMEOUT_MS = 120_000


def expect_grid_rows(frame, rows: int) -> None:
    """The grid under a heading shows ``rows`` data rows (waiting as long as a run may take)."""
    grid = frame.locator("[role='grid']")
    expect(grid).to_have_attribute("aria-rowcount", str(rows + 1), timeout=GRID_TIMEOUT_MS)


@pytest.fixture(scope="module")
def lite_file(tmp_path_factory, movies, movies_index, minilm) -> Path:
    """Movies exported into a Lite file, then released so the app's process can open it."""
    path = tmp_path_factory.mktemp("milvus-e2e") / "movies.db"
    target = MilvusTarget(str(path))
    export_dataset(
        movies, target, "movies", encoder=minilm, model_id=MINILM, vectors=movies_index.vectors
    )
    release(target)
    return path


@pytest.fixture(scope="module")
def lite_server(tmp_path_factory, movies, movies_index, minilm):
    """``milvus-lite server`` on a loopback port, holding the movies collection."""
    folder = tmp_path_factory.mktemp("milvus-e2e-server")
    port = free_port()
    exe = Path(sys.executable).with_name("milvus-lite")
    args = ["server", "--data-dir", str(folder / "d"), "--host", "127.0.0.1"]
    process = start_server(
        [str(exe), *args, "--port", str(port)],
        port,
        folder / "server.log",
    )
    uri = f"http://127.0.0.1:{port}"
    export_dataset(
        movies,
        MilvusTarget(uri),
        "movies",
        encoder=minilm,
        model_id=MINILM,
        vectors=movies_index.vectors,
    )
    yield uri
    release(MilvusTarget(uri))
    stop(process)


def open_from_sidebar(page: Page, reference: str) -> None:
    """Type a reference into the sidebar's Milvus box and open it, as a user would
    (one more click if a busy server dropped the first)."""
    page.get_by_text("Milvus collection").click()
    box = page.get_by_label("Collection", exact=True)
    box.fill(reference)
    wait_for_app_run(page, lambda: box.press("Enter"))
    opened = page.get_by_text("Milvus first stage; queries embedded with")
    open_button = page.get_by_role("button", name="Open collection", exact=True)
    for attempt in (1, 2):
        wait_for_app_run(page, open_button.click)
        try:
            expect(opened).to_be_visible(timeout=GRID_TIMEOUT_MS // 2)
            break
        except AssertionError:
            if attempt == 2:
                raise
    expect(page.get_by_test_id("stException")).to_have_count(0)


def test_a_lite_file_searches_with_hybrid_and_reranks(
    page: Page, app_server: str, lite_file: Path
) -> None:
    reference = f"milvus:movies@{lite_file}"
    open_app(page, app_server, ret="hybrid")
    open_from_sidebar(page, reference)
    search(page, HEIST)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    caption = page.get_by_text(f"queries embedded with {MINILM}")
    expect(caption).to_be_visible(timeout=GRID_TIMEOUT_MS)
    retrieval, reranked = table(page, "Retrieval order"), table(page, "Reranked order")
    expect_grid_rows(retrieval, 10)
    expect_rows(reranked, 10)
    assert grid_column(reranked, "#") == [str(r) for r in range(1, 11)]
    expect_charts_drawn(page, 3)
    rows = download_csv(page)
    assert len(rows) == 50
    assert sorted(int(r["retrieval_rank"]) for r in rows) == list(range(1, 51))
    assert all(r["rerank_score"] for r in rows)
    # RRF scores of a hybrid first stage: at most 2 / (60 + 1)
    assert all(0 < float(r["retrieval_score"]) <= 2 / 61 + 1e-9 for r in rows)
    params = url_params(page)
    assert params["dataset"] == reference and params["ret"] == "hybrid"


def test_a_lite_server_opened_from_the_sidebar_by_uri(
    page: Page, app_server: str, lite_server: str
) -> None:
    open_app(page, app_server)
    open_from_sidebar(page, f"milvus:movies@{lite_server}")
    assert url_params(page)["dataset"] == f"milvus:movies@{lite_server}"
    search(page, HEIST)
    expect_grid_rows(table(page, "Reranked order"), 10)
    rows = download_csv(page)
    assert len(rows) == 50
    # The first stage is Milvus's dense search: the same ids and cosine scores as asking
    # the server directly through the same code.
    direct = open_collection(f"milvus:movies@{lite_server}")
    from core.models.registry import load_encoder

    hits = direct.retriever("dense", load_encoder(MINILM), model_id=MINILM).retrieve(HEIST, 50)
    by_rank = {int(r["retrieval_rank"]): r for r in rows}
    for hit in hits.hits:
        assert by_rank[hit.rank]["id"] == hit.id
        assert float(by_rank[hit.rank]["retrieval_score"]) == pytest.approx(hit.score, abs=1e-4)
