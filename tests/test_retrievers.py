"""BM25, dense and hybrid (RRF) first stages, and the pipeline running on each."""

from __future__ import annotations

import pytest
from conftest import FakeEncoder, FakeReranker

from core.data.documents import make_dataset
from core.models.errors import SettingsError
from core.search.index import Hit, build_index
from core.search.pipeline import search_with_rerank
from core.search.retrievers import (
    BM25Index,
    DenseRetriever,
    HybridRetriever,
    bm25_index,
    make_retriever,
    rrf_fuse,
)

RECORDS = [
    {"id": "a", "title": "Bank job", "text": "Robbers plan a bank heist in the city."},
    {"id": "b", "title": "Space", "text": "Astronauts travel to a distant planet."},
    {"id": "c", "title": "Heists", "text": "A heist crew robs banks, heist after heist."},
    {"id": "d", "title": "Cooking", "text": "A chef opens a small restaurant."},
    {"id": "e", "title": "Robbery", "text": "Two brothers robbing banks in Texas."},
]


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def dataset():
    return make_dataset("tiny", RECORDS, id_field="id", title_field="title")


def test_bm25_ranks_term_matches_and_stems(dataset) -> None:
    index = BM25Index(dataset, ["title", "text"])
    hits = index.retrieve("heists", 10).hits
    # "heists" stems to "heist": c (three times) beats a (once); nothing else matches.
    assert [h.id for h in hits] == ["c", "a"]
    assert [h.rank for h in hits] == [1, 2]
    assert hits[0].score > hits[1].score > 0
    assert hits[0].position == 2


def test_bm25_returns_only_matching_documents(dataset) -> None:
    index = BM25Index(dataset, ["title", "text"])
    assert index.retrieve("zebra unicorn", 10).hits == []
    assert index.retrieve("the of and", 10).hits == []  # stop words only
    assert [h.id for h in index.retrieve("robbing banks", 2).hits] == ["e", "c"]


def test_bm25_reads_only_its_fields(dataset) -> None:
    title_only = BM25Index(dataset, ["title"])
    assert [h.id for h in title_only.retrieve("planet", 5).hits] == []
    assert [h.id for h in title_only.retrieve("space", 5).hits] == ["b"]


def test_bm25_index_is_reused_for_same_content_and_fields(dataset) -> None:
    assert bm25_index(dataset, ["title", "text"]) is bm25_index(dataset, ["title", "text"])
    assert bm25_index(dataset, ["title"]) is not bm25_index(dataset, ["title", "text"])


def hit(doc_id: str, rank: int) -> Hit:
    return Hit(id=doc_id, position=ord(doc_id) - ord("a"), rank=rank, score=0.0)


def test_rrf_sums_reciprocal_ranks() -> None:
    fused = rrf_fuse([[hit("a", 1), hit("b", 2)], [hit("b", 1), hit("c", 2)]], 10, rrf_k=60)
    assert [h.id for h in fused] == ["b", "a", "c"]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 62)
    assert fused[1].score == pytest.approx(1 / 61)
    assert fused[2].score == pytest.approx(1 / 62)
    assert [h.rank for h in fused] == [1, 2, 3]
    assert fused[0].position == 1


def test_rrf_ties_go_to_the_first_list_and_k_cuts() -> None:
    fused = rrf_fuse([[hit("a", 1)], [hit("c", 1)]], 1)
    assert [h.id for h in fused] == ["a"]


def test_rrf_k_must_not_be_negative() -> None:
    with pytest.raises(SettingsError):
        rrf_fuse([[hit("a", 1)]], 1, rrf_k=-1)


def test_hybrid_fuses_dense_and_bm25(dataset) -> None:
    encoder = FakeEncoder()
    index = build_index(dataset, encoder, ["title", "text"]).index
    dense = DenseRetriever(index, encoder)
    bm25 = BM25Index(dataset, ["title", "text"])
    hybrid = HybridRetriever(dense, bm25, rrf_k=60)
    query = "bank heist"
    expected = rrf_fuse(
        [dense.retrieve(query, 1000).hits, bm25.retrieve(query, 1000).hits], 3, rrf_k=60
    )
    got = hybrid.retrieve(query, 3)
    assert [(h.id, h.score) for h in got.hits] == [(h.id, h.score) for h in expected]
    assert hybrid.score_kind == "rrf"
    assert "k=60" in hybrid.name


def test_make_retriever_names_and_errors(dataset) -> None:
    encoder = FakeEncoder()
    index = build_index(dataset, encoder, ["text"]).index
    assert make_retriever("dense", dataset, ["text"], encoder=encoder, index=index).kind == "dense"
    assert make_retriever("bm25", dataset, ["text"]).kind == "bm25"
    assert make_retriever("hybrid", dataset, ["text"], encoder=encoder, index=index).kind == (
        "hybrid"
    )
    with pytest.raises(SettingsError, match="unknown retriever"):
        make_retriever("splade", dataset, ["text"])
    with pytest.raises(SettingsError, match="needs an encoder"):
        make_retriever("hybrid", dataset, ["text"])


def test_pipeline_on_bm25_keeps_both_stages(dataset) -> None:
    retriever = make_retriever("bm25", dataset, ["title", "text"])
    reranker = FakeReranker({"e": 5.0, "a": 1.0, "c": 0.0})
    result = search_with_rerank(
        dataset,
        "bank heist robbing",
        retriever=retriever,
        reranker=reranker,
        num_candidates=3,
        num_results=3,
    )
    assert result.retriever == "bm25"
    assert result.retrieval_score_kind == "bm25"
    assert result.encoder == "none"
    assert [c.id for c in result.candidates] == [
        h.id for h in retriever.retrieve("bank heist robbing", 3).hits
    ]
    assert [c.id for c in result.reranked] == ["e", "a", "c"]
    assert all(c.retrieval_score > 0 for c in result.candidates)


def test_cli_search_on_bm25_and_hybrid_with_fusion(monkeypatch, capsys) -> None:
    import json

    import core.models.registry
    from core.cli import main

    monkeypatch.setattr(core.models.registry, "load_encoder", lambda model_id: FakeEncoder())
    monkeypatch.setattr(
        core.models.registry, "load_reranker", lambda model_id, **kw: FakeReranker({"s15": 9.0})
    )
    query = "how do I get bats out of my roof without hurting them"
    assert main(["search", query, "--dataset", "sample", "--retriever", "bm25", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "first stage: bm25 (none)" in out and " bm25 " in out
    args = ["search", query, "--dataset", "sample", "--retriever", "hybrid", "--json"]
    assert main([*args, "--fusion-weight", "0.4", "--fusion", "rrf"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["retriever"] == "hybrid" and data["retrieval_score_kind"] == "rrf"
    assert data["fusion_weight"] == 0.4 and data["fusion"] == "rrf"
    assert all(r["fused_rank"] == r["final_rank"] for r in data["results"])
    assert main([*args, "--fusion-weight", "2"]) == 2
    assert "fusion weight must be between 0 and 1" in capsys.readouterr().err
