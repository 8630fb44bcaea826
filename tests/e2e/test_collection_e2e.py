"""End to end: a collection built on disk (the 40-record sample, embedded with the
packaged MiniLM, with the ANN threshold lowered so its dense search is approximate) is
listed in the app, opened from a share link by name, searched with every view, and
evaluated with judgments.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from core.data.beir import dump_judgments_csv
from core.data.collection import collection_path

from .conftest import ARTIFACTS, _full_screenshot, wait_for_app_run
from .test_evaluate_e2e import JUDGMENTS
from .test_search_e2e import (
    download_csv,
    expect_charts_drawn,
    expect_rows,
    grid_column,
    open_app,
    table,
    url_params,
)

pytestmark = pytest.mark.browser

NAME = "e2e-notes"
ROOF = "how do I get bats out of my roof without hurting them"


@pytest.fixture(scope="module")
def built_collection() -> str:
    """The sample built as collection ``e2e-notes`` in the app server's cache folder."""
    from core.data.datasets import SAMPLE_PATH, load_sample
    from core.models.registry import load_encoder
    from core.search.collection_build import build_collection

    manifest = collection_path(NAME) / "manifest.json"
    sample = load_sample()
    if not manifest.is_file() or sample.content_hash not in manifest.read_text():
        build_collection(
            SAMPLE_PATH,
            NAME,
            encoder=load_encoder(),
            embed_fields=sample.default_embed_fields,
            rerank_fields=sample.default_rerank_fields,
            id_field="id",
            exact_threshold=20,
            restart=True,
        )
    return f"collection:{NAME}"


def test_a_collection_from_a_share_link_shows_every_view(
    page: Page, app_server: str, built_collection: str
) -> None:
    open_app(page, app_server, dataset=built_collection, q=ROOF, n="5", k="20")
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_text("is approximate")).to_be_visible()
    expect(page.get_by_text("recall@100").first).to_be_visible()
    expect(page.get_by_text("collection on disk, memory-mapped")).to_be_visible()
    retrieval, reranked = table(page, "Retrieval order"), table(page, "Reranked order")
    expect_rows(retrieval, 5)
    expect_rows(reranked, 5)
    assert len(grid_column(reranked, "title")) == 5
    expect_charts_drawn(page, 3)
    expect(page.get_by_role("heading", name="Details")).to_be_visible()
    expect(page.get_by_text("Exactly what the reranker read")).to_be_visible()
    rows = download_csv(page)
    assert len(rows) == 20 and all(row["id"].startswith("s") for row in rows)
    top = min(rows, key=lambda row: int(row["final_rank"]))
    assert top["id"] == "s15", top  # the bats-in-the-roof note, as on the in-memory sample
    assert url_params(page)["dataset"] == built_collection
    _full_screenshot(page, ARTIFACTS / "collection-search.png")

    for first_stage in ("BM25 (lexical)", "Hybrid (RRF of dense + BM25)"):
        picker = page.get_by_role("combobox", name="First stage")
        wait_for_app_run(page, picker.click)
        wait_for_app_run(page, page.get_by_role("option", name=first_stage).click)
        expect(page.get_by_test_id("stException")).to_have_count(0)
        expect_rows(table(page, "Reranked order"), 5)


def test_a_collection_is_listed_and_evaluated_with_judgments(
    page: Page, app_server: str, built_collection: str, tmp_path
) -> None:
    csv = tmp_path / "judgments.csv"
    csv.write_text(dump_judgments_csv(JUDGMENTS), encoding="utf-8")
    open_app(page, app_server)
    picker = page.get_by_role("combobox", name="Dataset", exact=True)
    wait_for_app_run(page, picker.click)
    option = page.get_by_role("option", name=f"Collection {NAME} (40 records", exact=False)
    expect(option).to_be_visible()
    wait_for_app_run(page, option.click)
    assert url_params(page)["dataset"] == built_collection

    nav = page.get_by_test_id("stSidebarNav")
    wait_for_app_run(page, nav.get_by_role("link", name="Evaluate").click)
    wait_for_app_run(page, page.get_by_text("Judgments CSV on a dataset").click)
    picker = page.get_by_role("combobox", name="Dataset", exact=True)
    wait_for_app_run(page, picker.click)
    wait_for_app_run(
        page, page.get_by_role("option", name=f"Collection {NAME} (40 records", exact=False).click
    )
    dropzone = page.get_by_test_id("stFileUploaderDropzoneInput")
    wait_for_app_run(page, lambda: dropzone.set_input_files(str(csv)))
    expect(page.get_by_text("4 judged queries, 8 ratings.")).to_be_visible()
    wait_for_app_run(page, page.get_by_role("button", name="Run evaluation").click)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_test_id("stMetric").filter(has_text="nDCG@10").first).to_be_visible()
    _full_screenshot(page, ARTIFACTS / "collection-evaluate.png")
