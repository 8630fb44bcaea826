"""The tables and texts the pages show (core.present.tables), from real results.

Search results come from the hand-computed tiny search of test_views (retrieval
a, b, c, d, e, f; rerank e, a, c, b, f, d; top-3); the ceiling and ablation reports from
test_diagnostics' eight-record and four-film cases; the evaluation from the real
evaluation over three films; the tuning from test_tuning's synthetic workbench.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
from conftest import FakeEncoder, FakeReranker
from test_diagnostics import CEIL, CEIL_SCORES, FILMS, FILMS_QUERY, RETRIEVAL, WordReranker
from test_diagnostics import scores_for as ceiling_scores
from test_tuning import synthetic
from test_views import RERANK_SCORES, _search

from core.data.documents import make_dataset
from core.present import tables
from core.quality.diagnostics import field_ablation, recall_ceiling
from core.quality.evaluation import evaluate_judgments
from core.quality.tuning import tune
from core.search.index import IndexBuild
from core.search.pipeline import search_with_rerank


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def result():
    return _search(FakeReranker(RERANK_SCORES, truncate_ids=("b", "f")))


# --- search -----------------------------------------------------------------------------


def test_retrieval_table_has_both_ranks(result) -> None:
    frame = tables.retrieval_table(result)
    assert list(frame.columns) == ["#", "title", "cosine", "final #"]
    assert frame["title"].tolist() == ["Doc A", "Doc B", "Doc C"]
    assert frame["final #"].tolist() == [2, 4, 3]
    assert frame["cosine"].tolist() == pytest.approx([1, 1 / math.sqrt(2), 1 / math.sqrt(3)])
    plain = tables.retrieval_table(_search(None))
    assert plain["final #"].isna().all()


def test_final_table_and_heading(result) -> None:
    frame = tables.final_table(result)
    assert list(frame.columns) == ["#", "title", "logit", "retrieval #", "move"]
    assert frame["title"].tolist() == ["Doc E", "Doc A", "Doc C"]
    assert frame["retrieval #"].tolist() == [5, 1, 3]
    assert frame["move"].tolist() == ["new · from #5", "▼ 1", "="]
    assert tables.final_heading(result) == ("Reranked order", "fake\\-reranker · logit")
    assert tables.final_heading(_search(None)) == ("Final order (no reranker)", "retrieval order")
    assert (
        tables.first_stage_caption(result) == "Dense (bi-encoder) · fake\\-encoder · cosine score"
    )


def test_a_fused_order_shows_the_fused_score_and_the_rerank_rank() -> None:
    from test_views import TINY

    fused = search_with_rerank(
        TINY,
        "apple",
        encoder=FakeEncoder(),
        reranker=FakeReranker(RERANK_SCORES, score_kind="relevance"),
        num_candidates=6,
        num_results=3,
        fusion_weight=0.5,
    )
    frame = tables.final_table(fused)
    columns = ["#", "title", "relevance", "fused", "rerank #", "retrieval #", "move"]
    assert list(frame.columns) == columns
    heading, caption = tables.final_heading(fused)
    assert heading == "Fused order"
    assert caption.startswith("fake\\-reranker · weight 0.5 on the cross-encoder, 0.5 on the first")


def test_corpus_note_and_timings(result) -> None:
    assert tables.corpus_note(None) == "BM25 index in memory"
    cached = IndexBuild(index=None, from_cache=True, seconds=0.1, cache_path=None)
    assert tables.corpus_note(cached) == "corpus embeddings from disk cache"
    encoded = IndexBuild(index=None, from_cache=False, seconds=2.345, cache_path=None)
    assert tables.corpus_note(encoded) == "corpus embeddings encoded in 2.3 s"
    caption = tables.timings_caption(result, encoded)
    assert caption.startswith("Timings: query encoding **")
    assert caption.endswith("· corpus embeddings encoded in 2.3 s")


def test_detail_scores_name_both_ranks(result) -> None:
    e = result.top_final[0]
    assert tables.detail_scores(result, e) == (
        f"Retrieval **#5** (cosine {1 / math.sqrt(5):.3f}) → reranked **#1** (logit 5.00, "
        f"normalised {1 / (1 + math.exp(-5)):.3f}) new · from #5"
    )
    plain = _search(None)
    assert tables.detail_scores(plain, plain.top_final[0]) == "Retrieval **#1** (cosine 1.000)"


def test_judging_table_lists_every_shown_item_once_and_ratings_round_trip(result) -> None:
    ratings = {"a": 3}
    frame = tables.judging_table(result, ratings)
    assert frame["id"].tolist() == ["e", "a", "c", "b"]
    assert frame["rating"].isna().tolist() == [True, False, True, True]
    assert frame["rating"][1] == 3
    edited = frame.copy()
    edited["rating"] = [2, None, 0.0, float("nan")]
    tables.update_ratings(ratings, edited)
    assert ratings == {"e": 2, "c": 0}


# --- evaluate ---------------------------------------------------------------------------


FILM_RECORDS = [
    {"title": "Ronin", "overview": "a bank heist crew"},
    {"title": "Alien", "overview": "space crew alien"},
    {"title": "Bank job", "overview": "heist bank robbery"},
]


def test_evaluation_figures_stages_and_timings() -> None:
    dataset = make_dataset("films", FILM_RECORDS, title_field="title")
    judgments = {"bank heist": {"2": 3, "0": 1}, "alien": {"1": 2}}
    report = evaluate_judgments(
        dataset,
        judgments,
        encoder=FakeEncoder(),
        reranker=FakeReranker({"0": 2.0, "2": 1.0}),
        candidates=3,
    )
    figures = tables.headline_figures(report)
    assert [label for label, _, _ in figures] == [
        "nDCG@10: base → reranked",
        "MRR@10: base → reranked",
        "Recall@100: base → reranked",
        "P@10: base → reranked",
    ]
    base, after = report.base["ndcg@10"], report.reranked["ndcg@10"]
    assert figures[0][1:] == (f"{base:.3f} → {after:.3f}", f"{after - base:+.3f}")
    assert tables.evaluation_stages(report) == "Dense (bi-encoder) · fake-encoder → rerank top 3"
    assert tables.evaluation_timings(report).startswith("Per query: encoding ")
    alone = evaluate_judgments(dataset, judgments, encoder=FakeEncoder(), reranker=None)
    assert tables.headline_figures(alone)[0] == ("nDCG@10", f"{alone.base['ndcg@10']:.3f}", None)
    assert tables.evaluation_stages(alone) == "Dense (bi-encoder) · fake-encoder"


def test_tuning_tables() -> None:
    bench, configs = synthetic({"alone": [0.5] * 10, "rerank": [0.4] * 10, "fuse": [0.7] * 10})
    tuned = tune(bench, configs, configs[0], folds=5, resamples=200, rule="best")
    folds = tables.fold_table(tuned)
    assert list(folds.columns) == [
        "fold",
        "queries",
        "chosen on the other folds",
        "nDCG@10 there",
        "nDCG@10 on this fold",
    ]
    assert folds["fold"].tolist() == [1, 2, 3, 4, 5]
    assert set(folds["chosen on the other folds"]) == {configs[2].label}
    assert folds["nDCG@10 on this fold"].tolist() == pytest.approx([0.7] * 5)
    best = tables.best_per_stage_table(tuned)
    assert best["setting"].tolist() == [r.config.label for r in tuned.best_per_stage()]
    assert best.loc[best["setting"] == configs[2].label, "nDCG@10"].tolist() == [pytest.approx(0.7)]


def test_marked_order_stars_the_relevant_items(result) -> None:
    frame = tables.marked_order(result.top_final, "final_rank", {"a": 2})
    assert frame.to_dict("list") == {
        "#": [1, 2, 3],
        "relevant": ["", "★", ""],
        "title": ["Doc E", "Doc A", "Doc C"],
    }


# --- ceiling & fields -------------------------------------------------------------------


def test_ceiling_tables() -> None:
    report = recall_ceiling(
        CEIL, ceiling_scores(CEIL_SCORES), RETRIEVAL, num_candidates=3, num_results=3
    )
    missed = tables.missed_table(report)
    assert missed.to_dict("list") == {
        "title": ["Doc D", "Doc F"],
        "reranker #": [1, 2],
        "retrieval #": [4, 6],
        "score": [9.0, 7.0],
    }
    ideal = tables.ideal_table(report, 3)
    assert ideal["title"].tolist() == ["Doc D", "Doc F", "Doc B"]
    assert ideal["within 3"].tolist() == ["no", "no", "yes"]
    assert tables.ideal_table(report, 6)["within 6"].tolist() == ["yes"] * 3


def test_ablation_tables_use_letters_for_the_rank_columns() -> None:
    ablation = field_ablation(
        FILMS, FILMS_QUERY, WordReranker(), ["m1", "m2", "m3", "m4"], num_results=2
    )
    assert tables.variant_letters(ablation) == {
        "title only": "A",
        "title + overview": "B",
        "all fields (3)": "C",
    }
    title_only = tables.variant_table(ablation, "title only")
    assert title_only.to_dict("list") == {
        "#": [1, 2],
        "title": ["Bats Attack", "Hero Story"],
        "B #": [3, 1],
        "C #": [2, 1],
    }
    agreement = tables.agreement_table(ablation)
    assert list(agreement.columns) == ["field sets", "Kendall τ", "RBO (p=0.9)", "overlap@2"]
    assert agreement["field sets"].tolist() == [
        "title only vs title + overview",
        "title only vs all fields (3)",
        "title + overview vs all fields (3)",
    ]
    scores = tables.ablation_scores_table(ablation)
    assert "id" not in scores.columns and "title only score" in scores.columns
    assert isinstance(scores, pd.DataFrame) and len(scores) == len(ablation.top_union())
