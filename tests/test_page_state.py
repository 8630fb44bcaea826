"""The Ceiling & fields and Evaluate pages' state without Streamlit
(core.present.diagnostics_state, core.present.evaluate_state).

A plain dict stands in for Streamlit's session state.
"""

from __future__ import annotations

import re

from conftest import FakeEncoder
from test_views import TINY

from core.data.documents import make_dataset
from core.models.base import DEFAULT_ENCODER, PACKAGED_CROSS_ENCODER, SEED_CROSS_ENCODER
from core.present import diagnostics_state as diag
from core.present.evaluate_state import LabelledSet, applied_view, follow_depth, judgments_of
from core.present.views import NO_RERANK, SearchSettings
from core.quality.evaluation_report import BEIR_FIELDS
from core.quality.runs import SecondStage
from core.quality.tuning_grid import Config, FirstStage
from core.search.index import build_index

UPLOAD = "upload-0123456789abcdef"


def first(params=None, **kwargs):
    options = {"remembered": None, "search_view": None, "uploads": [], "last_view": None}
    return diag.first_values(params or {}, **{**options, **kwargs})


# --- Ceiling & fields -------------------------------------------------------------------


def test_a_deep_link_wins_over_what_the_session_remembers() -> None:
    remembered = SearchSettings(dataset="sample", query="remembered")
    values = first({"q": "linked", "k": "30", "view": "fields"}, remembered=remembered)
    assert values["diag_query"] == "linked" and values["diag_candidates"] == 30
    assert values["diag_dataset"] == "movies" and values["diag_view"] == "fields"


def test_without_a_link_the_page_starts_from_its_last_settings_else_the_search_view() -> None:
    search = SearchSettings(dataset="sample", query="from search", results=5)
    remembered = SearchSettings(query="remembered")
    assert first(search_view=search, remembered=remembered)["diag_query"] == "remembered"
    values = first(search_view=search, last_view="fields")
    assert (values["diag_query"], values["diag_dataset"], values["diag_results"]) == (
        "from search",
        "sample",
        5,
    )
    assert values["diag_view"] == "fields"
    assert first()["diag_view"] == "ceiling"


def test_hosted_models_unknown_datasets_and_views_fall_back(monkeypatch) -> None:
    monkeypatch.setenv("RERANK_ALLOW_DOWNLOADS", "1")  # "org/ce" is a hub id
    search = SearchSettings(
        dataset="gone", encoder="together:e", reranker="together:r", rerank_fields=("x",)
    )
    values = first({"view": "nope"}, search_view=search)
    # the link has a view, so the Search page's view is not used; the view is unknown
    assert values["diag_view"] == "ceiling" and values["diag_dataset"] == "movies"
    values = first(search_view=search)
    assert values["diag_reranker"] == PACKAGED_CROSS_ENCODER
    assert values["diag_encoder"] == DEFAULT_ENCODER
    assert values["diag_dataset"] == "movies"
    assert values["diag_pending_fields"] == ((), ("x",))
    typed = first({"reranker": "org/ce", "dataset": UPLOAD})
    assert (typed["diag_reranker"], typed["diag_st_model"]) == ("sentence-transformers", "org/ce")
    assert typed["diag_dataset"] == UPLOAD
    assert first()["diag_st_model"] == SEED_CROSS_ENCODER


def test_dataset_choices_add_a_linked_upload_once() -> None:
    assert diag.dataset_choices("movies", []) == ["movies", "sample"]
    assert diag.dataset_choices(UPLOAD, []) == ["movies", "sample", UPLOAD]
    assert diag.dataset_choices(UPLOAD, [UPLOAD]) == ["movies", "sample", UPLOAD]


def test_fields_keep_what_the_dataset_has_else_its_defaults() -> None:
    dataset = make_dataset(
        "d", [{"title": "A", "body": "b"}], embed_fields=("title",), rerank_fields=("body",)
    )
    assert diag.embed_fields(("body", "nope"), dataset) == ("body",)
    assert diag.embed_fields(("nope",), dataset) == ("title",)
    assert diag.rerank_fields((), dataset) == ["body"]
    assert diag.rerank_fields(("title",), dataset) == ["title"]


def test_settings_and_link_from_the_widgets() -> None:
    values = {
        "diag_dataset": "sample",
        "diag_query": "  bats ",
        "diag_candidates": 30,
        "diag_results": 5,
        "diag_pending_fields": (("title",), ()),
        "diag_rerank_fields": ["summary"],
        "diag_encoder": DEFAULT_ENCODER,
        "diag_reranker": "sentence-transformers",
        "diag_st_model": " ",
        "diag_retriever": "bm25",
    }
    settings = diag.settings_from_widgets(values)
    assert settings == SearchSettings(
        dataset="sample",
        query="bats",
        candidates=30,
        results=5,
        embed_fields=("title",),
        rerank_fields=("summary",),
        reranker=SEED_CROSS_ENCODER,
        retriever="bm25",
    )
    assert diag.link_params(settings, "fields") == {**settings.to_params(), "view": "fields"}
    assert diag.reranker_id({"diag_reranker": NO_RERANK}) == NO_RERANK
    assert diag.reranker_id({"diag_reranker": PACKAGED_CROSS_ENCODER}) == PACKAGED_CROSS_ENCODER


def test_retrieval_order_covers_the_corpus_and_the_caption_names_the_run() -> None:
    encoder = FakeEncoder()
    index = build_index(TINY, encoder, ("text",), use_cache=False).index
    order = diag.retrieval_order(TINY, "apple", "dense", encoder, ("text",), index)
    assert order == ["a", "b", "c", "d", "e", "f", "g", "h"]
    bm25 = diag.retrieval_order(TINY, "gold", "bm25", None, ("text",), None)
    assert bm25 == ["e", "f", "g", "h"]  # only records holding the word (e: i = 4)
    settings = SearchSettings(candidates=30, results=5)
    caption = diag.run_caption(settings, "fake-encoder", ("text",), "fake-reranker")
    assert "fake\\-reranker" in caption  # markdown: names are escaped
    assert re.sub(r"\\(.)", r"\1", caption) == (
        "Retrieval: Dense (bi-encoder), fake-encoder over text · reranker: fake-reranker · "
        "30 candidates · top-5"
    )


# --- Evaluate ---------------------------------------------------------------------------


def test_depth_follows_the_candidates() -> None:
    assert follow_depth(None, 0, 100) == 100  # first run: all candidates
    assert follow_depth(100, 100, 150) == 150  # at the maximum: moves up with them
    assert follow_depth(40, 100, 150) == 40  # below it: stays
    assert follow_depth(40, 100, 30) == 30  # never above the candidates


def test_a_tuned_setting_becomes_the_search_view() -> None:
    view = SearchSettings(query="kept", candidates=40, encoder="org/e")
    rerank = applied_view(view, Config(FirstStage("dense", "org/bge"), 20, 0.6, "rrf"))
    assert (rerank.query, rerank.retriever, rerank.encoder) == ("kept", "dense", "org/bge")
    assert (rerank.candidates, rerank.reranker) == (20, PACKAGED_CROSS_ENCODER)
    assert (rerank.fusion_weight, rerank.fusion) == (0.6, "rrf")
    alone = applied_view(view, Config(FirstStage("bm25")))
    assert (alone.retriever, alone.encoder, alone.candidates) == ("bm25", "org/e", 40)
    assert (alone.reranker, alone.fusion_weight) == (NO_RERANK, 1.0)


def test_judgments_labelled_set_and_its_keys() -> None:
    session = {"tiny": {"apple": {"a": 3}, "pear": {}}, "other": {"x": {"b": 1}}}
    judgments = judgments_of(session, "tiny")
    assert judgments == {"apple": {"a": 3}}  # queries without ratings are left out
    assert judgments_of(session, "none") == {}
    labelled = LabelledSet.from_judgments("csv", TINY, judgments)
    assert labelled.queries == {"apple": "apple"} and labelled.num_judged == 1
    assert labelled.embed_fields == TINY.default_embed_fields
    assert labelled.rerank_fields == TINY.default_rerank_fields
    assert (labelled.rerank_style, labelled.ignore_identical_ids) == ("fields", False)
    options = SecondStage(retriever="dense", rerank_depth=10)
    key = labelled.run_key(50, True, "enc", options)
    assert key == LabelledSet.from_judgments("csv", TINY, {"apple": {"a": 3}}).run_key(
        50, True, "enc", options
    )
    changed = LabelledSet.from_judgments("csv", TINY, {"apple": {"a": 2}})
    assert changed.run_key(50, True, "enc", options) != key  # a new rating: a new run
    assert changed.tune_key(50) != labelled.tune_key(50)
    assert labelled.run_key(60, True, "enc", options) != key
    assert labelled.tune_key(50) != labelled.tune_key(60)


def test_beir_labelled_set(tmp_path) -> None:
    from test_evaluation import CORPUS, QRELS, QUERIES, write_beir

    from core.data.beir import load_beir
    from core.quality.evaluation import beir_to_dataset

    beir = load_beir(write_beir(tmp_path / "tiny", CORPUS, QUERIES, QRELS))
    labelled = LabelledSet.from_beir("SciFact (BEIR)", beir, beir_to_dataset(beir), 2)
    assert labelled.num_judged == 2 and labelled.labels_key is None
    assert labelled.embed_fields == labelled.rerank_fields == BEIR_FIELDS
    assert (labelled.rerank_style, labelled.ignore_identical_ids) == ("plain", True)
    assert labelled.qrels is beir.qrels and labelled.queries is beir.queries
    assert labelled.tune_key(10)[2] == 2
