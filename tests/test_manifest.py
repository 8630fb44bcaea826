"""The manifest (what a result was computed from) and drift (a link made on other data or
model files): fingerprints, model keys, exports, and the one line a drifted link shows."""

from __future__ import annotations

import hashlib
import json

import pytest

from core.data.documents import make_dataset
from core.models.onnx_optimize import file_sha256
from core.models.packaged import packaged_cross_encoder_dir
from core.present.drift import (
    RecordChanges,
    drift_line,
    link_fingerprint,
    record_changes,
    steps_that_differ,
)
from core.present.manifest import (
    Manifest,
    dataset_print,
    judgments_sha256,
    make_manifest,
    model_key,
    recall_manifest,
    record_digests,
    search_manifest,
)
from core.present.views import SearchSettings

RECORDS = [
    {"id": "a", "title": "Bats in the attic", "text": "How to get bats out of a roof."},
    {"id": "b", "title": "Mercury spills", "text": "A broken thermometer and its vapour."},
    {"id": "c", "title": "Seasoned firewood", "text": "Let wood dry a year before burning."},
]


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Fingerprints and uploads go to a fresh cache folder per test."""
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))


def notes(records=RECORDS, name="notes"):
    return make_dataset(name, records, id_field="id", title_field="title")


def manifest_of(dataset, reranker="cross-encoder/ms-marco-MiniLM-L-12-v2", **kw):
    view = SearchSettings(dataset=dataset.name, query="bats", reranker=reranker)
    return search_manifest(view, dataset, **kw)


def test_dataset_print_is_count_and_content_hash():
    data = notes()
    printed = dataset_print(data, label="notes.json")
    assert (printed.records, printed.sha256, printed.label) == (3, data.content_hash, "notes.json")
    assert dataset_print(notes()).sha256 == printed.sha256  # equal content, equal hash
    edited = [dict(RECORDS[0], text="changed"), *RECORDS[1:]]
    assert dataset_print(notes(edited)).sha256 != printed.sha256


def test_packaged_reranker_key_names_its_file_runtime_and_length():
    key = model_key("local", "reranker")
    onnx = packaged_cross_encoder_dir() / "model.onnx"
    assert key.model == "cross-encoder/ms-marco-MiniLM-L-12-v2"
    assert key.file == str(onnx) and key.sha256 == file_sha256(onnx)
    assert key.runtime.startswith("onnxruntime ") and "INT8" in key.runtime
    assert key.max_length == 512
    encoder = model_key("sentence-transformers/all-MiniLM-L6-v2", "encoder")
    assert encoder.file.endswith("model.safetensors") and len(encoder.sha256) == 64
    hosted = model_key("together:Salesforce/Llama-Rank-V1", "reranker")
    assert hosted.file is None and hosted.sha256 is None and "hosted" in hosted.runtime


def test_manifest_round_trips_and_names_every_file_hash():
    data = notes()
    manifest = manifest_of(data, label="notes.json")
    again = Manifest.from_dict(json.loads(json.dumps(manifest.to_dict())))
    assert again == manifest and again.fingerprint == manifest.fingerprint
    hashes = [digest for _, digest in manifest.files()]
    assert data.content_hash in hashes
    assert all(m.sha256 in hashes for m in manifest.models)
    assert manifest.settings["embed_fields"] == ["title", "text"]
    assert {"onnxruntime", "sentence-transformers", "numpy"} <= set(manifest.packages)
    assert len(manifest.fingerprint) == 12


def test_fingerprint_follows_data_and_models_not_settings():
    data = notes()
    base = manifest_of(data)
    other_query = search_manifest(SearchSettings(dataset="notes", query="wood"), data)
    assert other_query.fingerprint == base.fingerprint
    assert manifest_of(data, reranker="none").fingerprint != base.fingerprint
    edited = notes([dict(RECORDS[0], text="changed"), *RECORDS[1:]])
    assert manifest_of(edited).fingerprint != base.fingerprint


def test_judgments_hash_is_canonical():
    assert judgments_sha256({"q": {"a": 1, "b": 0}}) == judgments_sha256({"q": {"b": 0, "a": 1}})
    assert judgments_sha256({"q": {"a": 1}}) != judgments_sha256({"q": {"a": 2}})
    assert judgments_sha256(None) is None


def test_manifest_is_remembered_with_record_digests():
    data = notes()
    manifest = manifest_of(data)
    recalled = recall_manifest(manifest.fingerprint)
    assert recalled is not None
    assert recalled[0].fingerprint == manifest.fingerprint
    assert recalled[1] == record_digests(data) and set(recalled[1]) == {"a", "b", "c"}
    assert recall_manifest("../../etc/passwd") is None
    assert recall_manifest("0" * 12) is None


def test_export_json_carries_the_manifest(movies, minilm, movies_index, cross_encoder):
    from core.present.search_state import run_search
    from core.present.views import export_json

    view = SearchSettings(query="a heist that goes wrong", candidates=10, results=5)
    result = run_search(view, movies, encoder=minilm, index=movies_index, reranker=cross_encoder)
    manifest = search_manifest(view, movies)
    data = json.loads(export_json(result, manifest))
    assert data["manifest"]["fingerprint"] == manifest.fingerprint
    assert data["manifest"]["dataset"]["sha256"] == movies.content_hash
    assert data["manifest"]["dataset"]["records"] == 1000
    assert "manifest" not in json.loads(export_json(result))


# -- drift ------------------------------------------------------------------------------


def test_record_changes_counts_changed_added_removed():
    then = {"a": "1", "b": "2", "c": "3"}
    assert record_changes(then, {"a": "1", "b": "X", "c": "Y", "d": "4"}) == RecordChanges(2, 1, 0)
    assert RecordChanges(3, 1, 0).phrase() == "3 records changed, 1 added"
    assert RecordChanges(1, 0, 2).phrase() == "1 record changed, 2 removed"
    assert RecordChanges(0, 1, 0).phrase() == "1 record added"


def test_link_fingerprint_accepts_only_twelve_hex():
    assert link_fingerprint({"fp": "A0c3d0a5bb80"}) == "a0c3d0a5bb80"
    assert link_fingerprint({"fp": "<script>"}) is None
    assert link_fingerprint({}) is None


def test_editing_one_record_of_a_stored_upload_is_reported(tmp_path):
    """A link made on an upload, opened on an edited copy of it (one record changed, one
    added): one plain line says so, naming the file."""
    from core.api import load_dataset
    from core.data.upload_store import UploadStore

    store = UploadStore()
    original = json.dumps(RECORDS).encode()
    first = store.put(original, "notes.json")
    then_data = load_dataset(first)
    then = manifest_of(then_data, label="notes.json")

    edited = [dict(r) for r in RECORDS]
    edited[1]["text"] = "A broken thermometer: open the windows."
    edited.append({"id": "d", "title": "Shy pythons", "text": "Ball pythons curl up."})
    second = store.put(json.dumps(edited).encode(), "notes.json")
    assert second != first  # content-addressed: the edit is a new version
    now_data = load_dataset(second)
    now = manifest_of(now_data, label="notes.json", remember=False)

    line = drift_line(then.fingerprint, now, now_data)
    assert line == (
        "This link was made on another version of dataset notes.json: 1 record changed, "
        "1 added. Shown with what is here now."
    )
    assert drift_line(then.fingerprint, then, then_data) is None
    assert drift_line(None, now, now_data) is None


def test_another_reranker_file_is_reported():
    from dataclasses import replace

    data = notes()
    then = manifest_of(data)
    key = then.model("reranker")
    other = replace(key, sha256="f" * 64)
    now = replace(then, models=(then.model("encoder"), other))
    line = drift_line(then.fingerprint, now, data)
    assert line.startswith("This link was made with another reranker file (sha256 ")
    assert f"{key.sha256[:12]}… then, sha256 ffffffffffff… now" in line


def test_unknown_fingerprint_says_so_in_one_line():
    now = manifest_of(notes(), remember=False)
    line = drift_line("0123456789ab", now)
    assert "other data or model files (fingerprint 0123456789ab" in line
    assert "\n" not in line


def test_walkthrough_steps_that_differ():
    data = notes()
    same = manifest_of(data)
    edited = manifest_of(notes([dict(RECORDS[0], text="x"), *RECORDS[1:]]), remember=False)
    fps = [same.fingerprint, same.fingerprint, None]
    assert steps_that_differ(fps, [same, edited, edited]) == [2]


def test_make_manifest_for_an_evaluation_names_judgments():
    data = notes()
    manifest = make_manifest(
        "evaluation",
        data,
        {"candidates": 10},
        encoder=None,
        reranker=None,
        judgments={"bats": {"a": 1}},
        seed=0,
    )
    assert manifest.judgments_sha256 and manifest.seed == 0 and manifest.models == ()
    assert ("judgments", manifest.judgments_sha256) in manifest.files()


def test_a_walkthrough_names_the_steps_that_no_longer_reproduce():
    from core.present.drift import walkthrough_drift
    from core.present.walkthrough import Walkthrough, step_from_view

    data = notes()
    view = SearchSettings(dataset="sample", query="bats")
    same = manifest_of(data)
    edited = manifest_of(notes([dict(RECORDS[0], text="x"), *RECORDS[1:]]), remember=False)
    steps = Walkthrough().add(step_from_view(view, "none", "", same.fingerprint))
    steps = steps.add(step_from_view(view, "none", "", same.fingerprint))
    steps = steps.add(step_from_view(view, "none"))  # made before fingerprints: not checked
    assert steps.steps[0].params["fp"] == same.fingerprint and steps.steps[0].query == "bats"
    params = [s.params for s in steps.steps]
    assert walkthrough_drift(params, [same, same, edited]) is None
    line = walkthrough_drift(params, [same, edited, edited])
    assert line.startswith("Step 2 of this walkthrough was made on other data")


def test_the_html_report_names_every_file_hash_escaped(movies, minilm, movies_index, cross_encoder):
    from core.present.report import search_report
    from core.present.search_state import run_search

    view = SearchSettings(query="a toy that comes to life", candidates=10, results=5)
    result = run_search(view, movies, encoder=minilm, index=movies_index, reranker=cross_encoder)
    manifest = search_manifest(view, movies, label="<b>movies</b>", remember=False)
    html = search_report(result, manifest=manifest)
    assert "<h2>Reproducibility</h2>" in html
    for _, digest in manifest.files():
        assert f"sha256 {digest}" in html
    assert len(manifest.files()) == 3  # the data, the encoder's and the reranker's files
    assert "&lt;b&gt;movies&lt;/b&gt;" in html and "<b>movies</b>" not in html
    assert manifest.fingerprint in html


# -- head-to-head manifests: both sides' model files -------------------------------------


def local_reranker(folder, weights: bytes):
    """A reranker folder of our own (its weights file is what a key hashes)."""
    folder.mkdir(exist_ok=True)
    (folder / "model.onnx").write_bytes(weights)
    return folder


def test_head_to_head_manifest_names_a_and_b_files(tmp_path):
    from core.present.manifest import B_ROLE, head_to_head_manifest
    from core.quality.headtohead import parse_spec

    data = notes()
    view = SearchSettings(dataset="notes", query="bats", reranker="local")
    b_folder = local_reranker(tmp_path / "b-model", b"weights v1")
    manifest = head_to_head_manifest(view, parse_spec(str(b_folder)), data)
    a, b = manifest.model("reranker"), manifest.model(B_ROLE)
    onnx = packaged_cross_encoder_dir() / "model.onnx"
    assert a.sha256 == file_sha256(onnx) and a.model == "cross-encoder/ms-marco-MiniLM-L-12-v2"
    assert b.file == str(b_folder / "model.onnx")
    assert b.sha256 == hashlib.sha256(b"weights v1").hexdigest()
    assert manifest.kind == "head-to-head" and manifest.settings["b"] == str(b_folder)
    hashes = dict((digest, what) for what, digest in manifest.files())
    assert {data.content_hash, a.sha256, b.sha256, manifest.model("encoder").sha256} <= set(hashes)
    assert recall_manifest(manifest.fingerprint)[0] == manifest  # remembered for drift
    # B the first stage alone: the same data and files as the Search view, the same print
    alone = head_to_head_manifest(view, parse_spec("none"), data, remember=False)
    assert alone.fingerprint == search_manifest(view, data, remember=False).fingerprint
    assert alone.fingerprint != manifest.fingerprint


def test_a_walkthrough_step_whose_b_file_changed_differs(tmp_path):
    """Issue 34: a head-to-head step's fingerprint covers B's model; a changed B file
    makes the step differ (and a link's drift line names B's file)."""
    from core.present.drift import walkthrough_drift
    from core.present.manifest import head_to_head_manifest
    from core.present.walkthrough import Walkthrough, step_from_view
    from core.quality.headtohead import parse_spec

    data = notes()
    view = SearchSettings(dataset="notes", query="bats", reranker="local")
    b_folder = local_reranker(tmp_path / "b-model", b"weights v1")
    b = parse_spec(str(b_folder))
    then = head_to_head_manifest(view, b, data)
    other_query = SearchSettings(dataset="notes", query="wood", reranker="local")
    plain = head_to_head_manifest(other_query, parse_spec("none"), data)
    steps = Walkthrough().add(step_from_view(view, b.to_string(), "", then.fingerprint))
    steps = steps.add(step_from_view(other_query, "none", "", plain.fingerprint))
    params = [s.params for s in steps.steps]
    assert walkthrough_drift(params, [then, plain]) is None

    (b_folder / "model.onnx").write_bytes(b"weights v2, retrained")
    now = head_to_head_manifest(view, b, data, remember=False)
    same_a = head_to_head_manifest(other_query, parse_spec("none"), data, remember=False)
    assert now.model("reranker") == then.model("reranker")  # A did not change
    assert walkthrough_drift(params, [now, same_a]) == (
        "Step 1 of this walkthrough was made on other data or model files than this server "
        "has now: their numbers may differ from what was agreed."
    )
    line = drift_line(then.fingerprint, now, data)
    old, new = hashlib.sha256(b"weights v1").hexdigest(), now.model("reranker B").sha256
    assert line == (
        f"This link was made with another reranker B file (sha256 {old[:12]}… then, "
        f"sha256 {new[:12]}… now). Shown with what is here now."
    )


# -- evaluation manifests and exports ------------------------------------------------------


def notes_labelled():
    from core.present.evaluate_state import LabelledSet

    judgments = {"bats in the roof": {"a": 2, "b": 0}, "dry firewood": {"c": 1}}
    return LabelledSet.from_judgments("Judgments CSV on a dataset", notes(), judgments)


def evaluation_of(labelled, options):
    from core.api import evaluate

    return evaluate(labelled.dataset, dict(labelled.qrels), **options)


def test_evaluation_manifest_names_data_judgments_models_and_seed():
    from core.present.evaluate_state import evaluation_manifest_of, evaluation_options

    labelled = notes_labelled()
    options = evaluation_options(
        labelled,
        retriever="bm25",
        encoder="sentence-transformers/all-MiniLM-L6-v2",
        candidates=3,
        rerank=True,
        depth=3,
        weight=1.0,
        threshold=1,
    )
    manifest = evaluation_manifest_of(labelled, options, name="notes", label="notes.json")
    assert manifest.kind == "evaluation" and manifest.seed == 0
    assert manifest.dataset.sha256 == labelled.dataset.content_hash
    assert manifest.judgments_sha256 == judgments_sha256(labelled.qrels)
    onnx = packaged_cross_encoder_dir() / "model.onnx"
    assert [(m.role, m.sha256) for m in manifest.models] == [("reranker", file_sha256(onnx))]
    assert manifest.settings == options  # core.api.evaluate's keyword arguments
    assert options["reranker"] == "cross-encoder/ms-marco-MiniLM-L-12-v2"
    assert options["rerank_fields"] == list(labelled.dataset.default_rerank_fields)
    assert "seed: 0" in manifest.lines()


def test_evaluation_exports_carry_the_manifest(cross_encoder):
    from core.present.evaluate_state import evaluation_manifest_of, evaluation_options
    from core.present.exports import evaluation_html, evaluation_json

    labelled = notes_labelled()
    options = evaluation_options(
        labelled,
        retriever="bm25",
        encoder="sentence-transformers/all-MiniLM-L6-v2",
        candidates=3,
        rerank=True,
        depth=3,
        weight=1.0,
        threshold=1,
    )
    label = "<i>notes</i>.json"
    manifest = evaluation_manifest_of(labelled, options, name="notes", label=label)
    report = evaluation_of(labelled, options)
    data = json.loads(evaluation_json(report, manifest))
    assert data["manifest"] == json.loads(json.dumps(manifest.to_dict()))
    assert data["manifest"]["judgments_sha256"] == judgments_sha256(labelled.qrels)
    assert data["base"] == pytest.approx(report.base)
    assert {q["qid"] for q in data["queries"]} == {"bats in the roof", "dry firewood"}
    html = evaluation_html(report, manifest)
    assert "<h2>Reproducibility</h2>" in html
    assert len(manifest.files()) == 3  # the data, the judgments, the reranker's file
    for _, digest in manifest.files():
        assert f"sha256 {digest}" in html
    assert "&lt;i&gt;notes&lt;/i&gt;.json" in html and "<i>notes</i>" not in html
    assert "bats in the roof" in html


def test_with_manifest_adds_the_section_before_the_footer():
    from core.present.exports import with_manifest
    from core.present.report import document

    manifest = manifest_of(notes(), remember=False)
    html = with_manifest(document("T", "<p>&lt;footer&gt; typed by a user</p>"), manifest)
    assert html.index("<h2>Reproducibility</h2>") < html.index("<footer>")
    assert html.count("<h2>Reproducibility</h2>") == 1
    assert with_manifest("<p>x</p>", manifest) == "<p>x</p>"


def test_the_head_to_head_report_names_both_sides_files(cross_encoder):
    from core.data.datasets import load_dataset
    from core.present.exports import head_to_head_html
    from core.present.manifest import B_ROLE, head_to_head_manifest
    from core.quality.headtohead import head_to_head, parse_spec
    from core.search.retrievers import make_retriever

    sample = load_dataset("sample")
    view = SearchSettings(dataset="sample", query="bats in the roof", retriever="bm25")
    a, b = parse_spec("local"), parse_spec("local@0.5")
    h2h = head_to_head(
        sample,
        view.query,
        retriever=make_retriever("bm25", sample, sample.default_embed_fields),
        a=a,
        b=b,
        reranker_a=cross_encoder,
        reranker_b=cross_encoder,
        num_candidates=10,
        num_results=5,
    )
    manifest = head_to_head_manifest(view, b, sample, label="<sample>", remember=False)
    assert manifest.model("reranker").sha256 == manifest.model(B_ROLE).sha256  # same file
    html = head_to_head_html(h2h, "a note", manifest)
    assert html.count("<h2>Reproducibility</h2>") == 1
    assert html.index("<h2>Reproducibility</h2>") < html.index("<footer>")
    assert len(manifest.files()) == 3  # the data, A's file and B's (no encoder: BM25)
    for what, digest in manifest.files():
        assert f"sha256 {digest}" in html, what
    assert "reranker B cross-encoder/ms-marco-MiniLM-L-12-v2: model.onnx" in html
    assert "&lt;sample&gt;" in html and "<sample>" not in html
