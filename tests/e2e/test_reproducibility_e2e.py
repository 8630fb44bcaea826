"""End to end (issue 34): a Head to head link made when one record of the sample read
otherwise shows one drift line above the comparison; the page's "Reproducibility"
section names the data's and both sides' model files with their sha256.

Screenshots: test-artifacts/reproducibility.png and drift-warning.png, cropped to the
part shown; with RERANK_DOC_SCREENSHOTS=1 they are also written to docs/images/ (the
pictures docs/reproducibility.md shows).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page, expect

from core.data.datasets import load_dataset
from core.data.documents import make_dataset
from core.models.onnx_optimize import file_sha256
from core.models.packaged import packaged_cross_encoder_dir
from core.present.manifest import head_to_head_manifest
from core.present.views import SearchSettings
from core.quality.headtohead import parse_spec

from .conftest import ARTIFACTS, ROOT, wait_for_app_run

pytestmark = pytest.mark.browser

QUERY = "how do I get bats out of my roof without hurting them"
LINK = {"dataset": "sample", "k": "10", "n": "5"}  # dense MiniLM, A the cross-encoder
DOC_IMAGES = ROOT / "docs" / "images"
MARGIN = 12


def keep(path: Path) -> Path:
    """When asked (RERANK_DOC_SCREENSHOTS=1), copy a screenshot into docs/images/."""
    if os.environ.get("RERANK_DOC_SCREENSHOTS") == "1":
        (DOC_IMAGES / path.name).write_bytes(path.read_bytes())
    return path


def shoot(page: Page, boxes: list[dict], name: str) -> Path:
    """A screenshot of the visible region holding ``boxes`` (bounding boxes in the
    viewport), with a margin."""
    left = max(min(b["x"] for b in boxes) - MARGIN, 0)
    top = max(min(b["y"] for b in boxes) - MARGIN, 0)
    right = max(b["x"] + b["width"] for b in boxes) + MARGIN
    bottom = max(b["y"] + b["height"] for b in boxes) + MARGIN
    clip = {"x": left, "y": top, "width": right - left, "height": bottom - top}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), clip=clip)
    return keep(ARTIFACTS / name)


def test_drift_line_and_reproducibility_section(page: Page, app_server: str) -> None:
    view = SearchSettings(dataset="sample", query=QUERY)
    b = parse_spec("local@0.5")  # B: the cross-encoder fused with the first stage
    sample = load_dataset("sample")
    records = [dict(r) for r in sample.records]
    records[14]["summary"] += " Updated: check for pups first."  # s15, the bats note
    edited = make_dataset("sample", records, id_field="id", title_field="title")
    then = head_to_head_manifest(view, b, edited)  # the server reads it from the cache
    now = head_to_head_manifest(view, b, sample, remember=False)

    page.goto(app_server)
    wait_for_app_run(page)
    page.goto(
        f"{app_server}/compare?"
        + urlencode({**LINK, "q": QUERY, "b": b.to_string(), "fp": then.fingerprint})
    )
    wait_for_app_run(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)

    line = (
        "This link was made on another version of dataset sample: 1 record changed. "
        "Shown with what is here now."
    )
    warning = page.get_by_test_id("stAlert").filter(has_text="This link was made")
    expect(warning.first.locator("p")).to_have_text(line)
    expect(page.get_by_test_id("stMetric").first).to_be_visible()  # shown all the same
    assert f"fp={now.fingerprint}" in page.url  # the page's own link names its data
    title = page.locator("h1").first
    figures = page.get_by_test_id("stMetric").last  # B's time, with its note under it
    boxes = [title.bounding_box(), warning.first.bounding_box(), figures.bounding_box()]
    shoot(page, boxes, "drift-warning.png")

    section = page.get_by_test_id("stExpander").filter(has_text="Reproducibility")
    section.get_by_text("Reproducibility", exact=True).click()
    code = section.get_by_test_id("stCode")
    expect(code).to_be_visible()
    shown = code.inner_text()
    reranker = file_sha256(packaged_cross_encoder_dir() / "model.onnx")
    assert f"sha256 {sample.content_hash}" in shown
    encoder = now.model("encoder")
    assert f"sha256 {encoder.sha256}" in " ".join(shown.split())
    assert f"reranker B cross-encoder/ms-marco-MiniLM-L-12-v2: model.onnx: sha256 {reranker}" in (
        " ".join(shown.split())
    )
    expect(section.get_by_role("button", name="Reproduce B in Python")).to_be_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    section.screenshot(path=str(ARTIFACTS / "reproducibility.png"))
    keep(ARTIFACTS / "reproducibility.png")
