"""First-stage scores decomposed exactly: BM25 terms, dense tokens, RRF and fusion parts."""

from __future__ import annotations

import pytest

from core.data.documents import embed_text
from core.quality.explain_first_stage import (
    explain_bm25,
    explain_dense,
    explain_fusion,
    explain_rrf,
    top_terms,
)
from core.search.retrievers import DenseRetriever, HybridRetriever, bm25_index

QUERIES = ("a heist in a big city", "dinosaurs escape in a theme park", "prison escape drama")


@pytest.fixture(scope="module")
def bm25(movies):
    return bm25_index(movies, movies.default_embed_fields)


def test_bm25_terms_sum_to_the_retrievers_score(movies, bm25) -> None:
    for query in QUERIES:
        for hit in bm25.retrieve(query, 5).hits:
            expl = explain_bm25(bm25, movies, hit.id, query)
            assert abs(expl.total - hit.score) < 1e-5, (query, hit.id, expl.total, hit.score)
            assert expl.shown == pytest.approx(hit.score, abs=1e-6)
            for part in expl.parts:
                d = part.detail
                assert part.value == pytest.approx(
                    d["times_in_query"] * d["idf"] * d["tf_part"], abs=1e-12
                )


def test_bm25_names_the_matching_words(movies, bm25) -> None:
    hit = bm25.retrieve("a heist in a big city", 1).hits[0]
    expl = explain_bm25(bm25, movies, hit.id, "a heist in a big city")
    matched = top_terms(expl)
    assert matched and all(p.detail["tf"] > 0 for p in expl.parts if p.label in matched)
    assert {p.label for p in expl.parts} <= {"heist", "big", "citi"}


def test_dense_token_shares_sum_to_the_cosine(movies, minilm, movies_index) -> None:
    retriever = DenseRetriever(movies_index, minilm)
    for query in QUERIES[:2]:
        for hit in retriever.retrieve(query, 3).hits:
            text = embed_text(movies.record(hit.id), movies.default_embed_fields)
            expl = explain_dense(minilm, query, text, hit.score)
            assert expl.exact, expl.note
            assert abs(expl.total - hit.score) < 1e-4, (query, hit.id, expl.total, hit.score)
            word_sum = sum(w.effect for w in expl.words if w.effect is not None)
            special = expl.parts[0]
            assert special.label == "[CLS]/[SEP]"
            assert word_sum + special.value == pytest.approx(expl.total, abs=1e-9)


def test_a_cls_pooled_model_says_so() -> None:
    class Bge:
        name = "BAAI/bge-small-en-v1.5"

    expl = explain_dense(Bge(), "a heist", "a bank heist", 0.5)
    assert not expl.exact and "CLS" in expl.note and not expl.parts


def test_rrf_parts_sum_to_the_hybrid_score(movies, minilm, movies_index, bm25) -> None:
    hybrid = HybridRetriever(DenseRetriever(movies_index, minilm), bm25)
    query = QUERIES[0]
    for hit in hybrid.retrieve(query, 3).hits:
        expl = explain_rrf(hybrid, query, hit.id)
        assert expl.total == pytest.approx(hit.score, abs=1e-12)
        assert {p.label for p in expl.parts} == {"dense", "bm25"}


def test_fusion_parts_sum_to_the_fused_score(movies, minilm, movies_index, cross_encoder) -> None:
    from core.search.pipeline import search_with_rerank

    for method in ("linear", "rrf"):
        result = search_with_rerank(
            movies,
            QUERIES[0],
            encoder=minilm,
            reranker=cross_encoder,
            index=movies_index,
            num_candidates=10,
            num_results=5,
            fusion_weight=0.6,
            fusion=method,
        )
        for cand in result.top_final:
            expl = explain_fusion(result, cand.id)
            assert expl.total == pytest.approx(cand.fused_score, abs=1e-12)
