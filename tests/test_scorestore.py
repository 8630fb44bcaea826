"""The on-disk cross-encoder score cache."""

from __future__ import annotations

from conftest import FakeReranker

from core.models.base import RerankDoc
from core.search.scorestore import ScoreStore, cached_scores, pair_key, reranker_key


def cacheable(reranker: FakeReranker) -> FakeReranker:
    reranker.cache_key = f"{reranker.name}|v1"
    return reranker


def test_scores_are_stored_and_not_recomputed(tmp_path) -> None:
    store = ScoreStore(tmp_path / "s.sqlite")
    reranker = cacheable(FakeReranker({"a": 2.0, "b": -1.0, "c": 0.5}, truncate_ids=["b"]))
    docs = [RerankDoc("a", "alpha"), RerankDoc("b", "beta")]
    scores, computed = cached_scores(reranker, "q", docs, store)
    assert scores == {"a": (2.0, False), "b": (-1.0, True)}
    assert computed == 2
    # A second store on the same file (another process) sees them; only "c" is new.
    again = ScoreStore(tmp_path / "s.sqlite")
    more, computed = cached_scores(reranker, "q", [*docs, RerankDoc("c", "gamma")], again)
    assert more == {"a": (2.0, False), "b": (-1.0, True), "c": (0.5, False)}
    assert computed == 1
    assert [d.id for d in reranker.seen[-1][1]] == ["c"]
    assert len(again) == 3


def test_keys_depend_on_model_query_and_text(tmp_path) -> None:
    one, two = cacheable(FakeReranker(name="one")), cacheable(FakeReranker(name="two"))
    assert reranker_key(one) != reranker_key(two)
    assert pair_key("m", "q", "t") != pair_key("m", "q", "t2")
    assert pair_key("m", "q", "t") != pair_key("m", "q2", "t")
    store = ScoreStore(tmp_path / "s.sqlite")
    cached_scores(one, "q", [RerankDoc("a", "alpha")], store)
    _, computed = cached_scores(two, "q", [RerankDoc("a", "alpha")], store)
    assert computed == 1


def test_rerankers_without_a_cache_key_are_never_cached(tmp_path) -> None:
    store = ScoreStore(tmp_path / "s.sqlite")
    reranker = FakeReranker({"a": 1.0})
    assert reranker_key(reranker) is None
    cached_scores(reranker, "q", [RerankDoc("a", "x")], store)
    assert cached_scores(reranker, "q", [RerankDoc("a", "x")], store)[1] == 1
    assert len(store) == 0


def test_without_store_everything_is_scored() -> None:
    reranker = FakeReranker({"a": 1.0})
    scores, computed = cached_scores(reranker, "q", [RerankDoc("a", "x")], None)
    assert scores == {"a": (1.0, False)} and computed == 1
    assert cached_scores(reranker, "q", [], None) == ({}, 0)
