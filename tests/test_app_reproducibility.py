"""AppTest of issue 34 on the Evaluate and Head to head pages: the "Reproducibility"
section (the manifest with the real files' sha256), the exports carrying it, "Reproduce
in Python" recomputing the Evaluate page's numbers exactly in a subprocess, and the one
drift line a Head to head link made on other data or another B file shows.

Runs on the 40-record sample with BM25 as the first stage (no bi-encoder to load).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.data.beir import dump_judgments_csv
from core.data.datasets import load_dataset
from core.data.documents import make_dataset
from core.models.onnx_optimize import file_sha256
from core.models.packaged import packaged_cross_encoder_dir
from core.present.evaluate_state import evaluation_script
from core.present.exports import evaluation_html, evaluation_json
from core.present.manifest import (
    B_ROLE,
    head_to_head_manifest,
    judgments_sha256,
    remember_manifest,
)
from core.present.views import SearchSettings
from core.quality.headtohead import parse_spec

ROOT = Path(__file__).resolve().parents[1]
BATS = "how do I get bats out of my roof without hurting them"
JUDGMENTS = {
    BATS: {"s15": 3, "s33": 0, "s13": 1},
    "is the silver liquid from a broken thermometer dangerous to breathe": {"s16": 3, "s05": 0},
    "how long should I let wood dry before burning it in the stove": {"s09": 3, "s01": 0},
}
RERANKER_SHA256 = file_sha256(packaged_cross_encoder_dir() / "model.onnx")


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def drift_lines(at) -> list[str]:
    """The drift warnings as a reader sees them (the app's markdown escapes resolved):
    of the page (``at``), or of one section."""
    shown = [re.sub(r"\\(.)", r"\1", str(w.value)) for w in at.warning]
    return [line for line in shown if line.startswith("This link")]


def section(at: AppTest, label: str):
    (found,) = [x for x in at.expander if x.label == label]
    return found


def served_file_id(data: str, mime: str, name: str) -> str:
    """The name Streamlit serves a download under: a hash of its bytes, type and name."""
    try:
        from streamlit.runtime.memory_media_file_storage import _calculate_file_id
    except ImportError:  # pragma: no cover - a Streamlit without this helper
        pytest.skip("this Streamlit has no _calculate_file_id")
    return _calculate_file_id(data.encode(), mime, name)


def served(at: AppTest, label: str) -> str:
    """The file id the download button ``label`` serves."""
    (button,) = [b for b in at.download_button if b.label == label]
    return Path(button.proto.url).stem


def expander_code(at: AppTest, label: str) -> str:
    return "\n".join(c.value for c in section(at, label).code)


def without_timings(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "timings"}


@pytest.mark.slow
def test_evaluate_page_manifest_exports_and_script_reproduce_the_numbers(tmp_path):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page("pages/evaluate.py").run()
    at.radio(key="eval_source").set_value("Judgments CSV on a dataset").run()
    at.selectbox(key="eval_dataset").set_value("sample")
    at.selectbox(key="eval_retriever").set_value("bm25")
    at.slider(key="eval_candidates").set_value(20)
    at.run()
    csv = dump_judgments_csv(JUDGMENTS).encode()
    at.file_uploader(key="eval_csv").set_value(("judgments.csv", csv, "text/csv")).run()
    (run,) = [b for b in at.button if b.label == "Run evaluation"]
    run.click().run()
    no_exception(at)
    assert not at.error

    report, labelled = at.session_state["eval_report"][1:]
    manifest = at.session_state["eval_manifest"][1]
    sample = load_dataset("sample")
    # the manifest names the real files: the data, the judgments, the reranker's weights
    assert manifest.dataset.sha256 == sample.content_hash and manifest.dataset.records == 40
    assert manifest.judgments_sha256 == judgments_sha256(JUDGMENTS)
    assert [(m.role, m.sha256) for m in manifest.models] == [("reranker", RERANKER_SHA256)]
    assert manifest.settings["retriever"] == "bm25" and manifest.settings["candidates"] == 20
    assert manifest.seed == 0 and "onnxruntime" in manifest.packages
    shown = expander_code(at, "Reproducibility")
    for _, digest in manifest.files():
        assert f"sha256 {digest}" in shown
    assert "seed: 0" in shown and '"retriever": "bm25"' in shown

    # the exports carry it (the served files are exactly these)
    data = evaluation_json(report, manifest)
    assert json.loads(data)["manifest"]["fingerprint"] == manifest.fingerprint
    json_id = served_file_id(data, "application/json", "evaluation.json")
    assert served(at, "Export evaluation (JSON)") == json_id
    html = evaluation_html(report, manifest)
    assert all(f"sha256 {digest}" in html for _, digest in manifest.files())
    assert served(at, "Manifest (JSON)") == served_file_id(
        json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False),
        "application/json",
        "manifest.json",
    )

    # "Reproduce in Python": run in a subprocess, it prints the same numbers (|diff| 0)
    script = evaluation_script(labelled, manifest)
    assert served(at, "Reproduce in Python") == served_file_id(
        script, "text/x-python", "reproduce_evaluation.py"
    )
    path = tmp_path / "reproduce_evaluation.py"
    path.write_text(script, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(path)],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "not the version of the data" not in done.stderr
    again = json.loads(done.stdout)
    page = json.loads(json.dumps(report.to_dict(with_rankings=True)))
    assert without_timings(again) == without_timings(page)
    assert again["reranked"]["ndcg@10"] == page["reranked"]["ndcg@10"]


@pytest.mark.slow
def test_evaluate_page_on_scifact_script_reads_the_beir_folder(tmp_path):
    """SciFact (BEIR): the manifest names the corpus (5,183 records) and the qrels; the
    script loads the BEIR folder and prints the page's numbers (2 queries, BM25, 10
    candidates: a few seconds of reranking)."""
    from core.data.beir import load_beir
    from core.data.datasets import scifact_path

    folder = scifact_path()
    if folder is None:
        pytest.skip("SciFact is not on this machine")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page("pages/evaluate.py").run()
    at.radio(key="eval_source").set_value("SciFact (BEIR)").run()
    at.selectbox(key="eval_retriever").set_value("bm25")
    at.slider(key="eval_candidates").set_value(10)
    at.number_input(key="eval_queries").set_value(2)
    at.run()
    (run,) = [b for b in at.button if b.label == "Run evaluation"]
    run.click().run()
    no_exception(at)
    report, labelled = at.session_state["eval_report"][1:]
    manifest = at.session_state["eval_manifest"][1]
    assert manifest.dataset.records == 5183 and manifest.dataset.label == "SciFact (BEIR)"
    assert manifest.judgments_sha256 == judgments_sha256(load_beir(folder).qrels)
    assert manifest.settings["max_queries"] == 2
    script = evaluation_script(labelled, manifest, beir_folder=folder)
    assert served(at, "Reproduce in Python") == served_file_id(
        script, "text/x-python", "reproduce_evaluation.py"
    )
    assert f"load_beir({str(folder)!r}" in script
    path = tmp_path / "reproduce_evaluation.py"
    path.write_text(script, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(path)],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    page = json.loads(json.dumps(report.to_dict(with_rankings=True)))
    assert without_timings(json.loads(done.stdout)) == without_timings(page)


def compare_app(**params: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page("pages/compare.py")
    return at


def test_head_to_head_link_made_on_an_edited_dataset_shows_one_drift_line():
    """A link made when one record of the sample read otherwise: opened here, the page
    says so in one line, and still shows the comparison."""
    view = SearchSettings(dataset="sample", query=BATS, retriever="bm25", reranker="none")
    sample = load_dataset("sample")
    records = [dict(r) for r in sample.records]
    records[3]["summary"] += " (edited)"
    edited = make_dataset("sample", records, id_field="id", title_field="title")
    assert edited.content_hash != sample.content_hash
    then = head_to_head_manifest(view, parse_spec("none"), edited)  # remembered
    at = compare_app(dataset="sample", q=BATS, ret="bm25", k="10", n="5", reranker="none", b="none")
    at.query_params["fp"] = then.fingerprint
    at.run()
    no_exception(at)
    line = (
        "This link was made on another version of dataset sample: 1 record changed. "
        "Shown with what is here now."
    )
    # above the comparison, and again in the (closed) Reproducibility section
    assert drift_lines(at) == [line, line]
    assert drift_lines(section(at, "Reproducibility")) == [line]
    assert at.metric  # the comparison is shown all the same
    now = head_to_head_manifest(view, parse_spec("none"), sample, remember=False)
    assert at.query_params["fp"] == now.fingerprint  # the page's own link names its data
    at.run()  # a rerun keeps the line
    assert drift_lines(at) == [line, line]


@pytest.mark.slow
def test_head_to_head_manifest_names_both_sides_and_a_changed_b_file_is_said():
    view = SearchSettings(dataset="sample", query=BATS, retriever="bm25", reranker="none")
    b = parse_spec("local")
    sample = load_dataset("sample")
    now = head_to_head_manifest(view, b, sample, remember=False)
    key = now.model(B_ROLE)
    assert key.sha256 == RERANKER_SHA256
    then = replace(now, models=(replace(key, sha256="f" * 64),))  # B's file then
    remember_manifest(then, sample)
    at = compare_app(
        dataset="sample", q=BATS, ret="bm25", k="10", n="5", reranker="none", b="local"
    )
    at.query_params["fp"] = then.fingerprint
    at.run()
    no_exception(at)
    line, again = drift_lines(at)
    assert line == again
    assert line.startswith(
        "This link was made with another reranker B file (sha256 ffffffffffff… then, "
        f"sha256 {RERANKER_SHA256[:12]}… now)"
    )
    assert at.query_params["fp"] == now.fingerprint
    shown = expander_code(at, "Reproducibility")
    assert f"sha256 {sample.content_hash}" in shown
    assert "reranker B cross-encoder/ms-marco-MiniLM-L-12-v2: model.onnx: sha256 " in shown
    assert f"sha256 {RERANKER_SHA256}" in shown and '"b": "local"' in shown
    labels = {d.label for d in at.download_button}
    assert {"Reproduce A in Python", "Reproduce B in Python", "Manifest (JSON)"} <= labels
    (shown_manifest,) = at.session_state["h2h_manifests"].values()
    assert shown_manifest.fingerprint == now.fingerprint
    assert served(at, "Manifest (JSON)") == served_file_id(
        json.dumps(shown_manifest.to_dict(), indent=2, ensure_ascii=False),
        "application/json",
        "manifest.json",
    )


@pytest.mark.slow
def test_reproduce_b_script_recomputes_b_side_exactly(tmp_path, cross_encoder, minilm):
    """B's "Reproduce in Python" (core.api.search with B as the second stage), run in a
    subprocess, gives B's order and scores of the head-to-head (max |diff| 0)."""
    from core.api import build_index
    from core.present.reproduce import api_script
    from core.quality.headtohead import head_to_head
    from core.search.retrievers import make_retriever
    from pages.widgets.h2h_reproduce import side_manifest

    sample = load_dataset("sample")
    view = SearchSettings(dataset="sample", query=BATS, candidates=10, results=5)
    b = parse_spec("local@0.5")
    index = build_index(sample, minilm)
    h2h = head_to_head(
        sample,
        BATS,
        retriever=make_retriever(
            "dense", sample, sample.default_embed_fields, encoder=minilm, index=index
        ),
        a=parse_spec("local"),
        b=b,
        reranker_a=cross_encoder,
        reranker_b=cross_encoder,
        num_candidates=10,
        num_results=5,
    )
    manifest = head_to_head_manifest(view, b, sample, remember=False)
    path = tmp_path / "reproduce_b.py"
    path.write_text(api_script(side_manifest(manifest, b)), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(path)],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    side = h2h.b.result.reranked
    assert [r["id"] for r in rows] == [c.id for c in side]
    diffs = [abs(r["fused_score"] - c.fused_score) for r, c in zip(rows, side, strict=True)]
    assert max(diffs) == 0.0
    assert [r["rerank_score"] for r in rows] == [c.rerank_score for c in side]
