"""Tests of core.search.pipeline: retrieve, rerank, and what each candidate remembers.

Plumbing uses FakeEncoder (bag-of-words hashing) and FakeReranker (scores by id) on a
hand-made dataset whose retrieval order is known; one slow test uses the real models.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from conftest import FakeEncoder, FakeReranker

from core.data.documents import make_dataset
from core.models.base import RerankDoc, RerankResult, sigmoid
from core.models.errors import FieldError, SettingsError
from core.search.index import build_index
from core.search.pipeline import MAX_CANDIDATES, search_with_rerank

QUERY = "heist bank robbery"

# With FakeEncoder these words hash to distinct slots, so the cosine to QUERY falls
# with the number of shared words: d0 1.0, d1 0.816, d2 0.577, d3 0.289, d4 = d5 = 0.
RECORDS = [
    {"id": "d0", "title": "Zero", "text": "heist bank robbery", "note": "a note"},
    {"id": "d1", "title": "One", "text": "heist bank", "note": None},
    {"id": "d2", "title": "Two", "text": "heist", "note": ""},
    {"id": "d3", "title": "Three", "text": "heist thief night city"},
    {"id": "d4", "title": None, "text": "crew space alien", "note": ["  ", None]},
    {"id": "d5", "title": "Five", "text": "green banana", "note": "last"},
]
RETRIEVAL_ORDER = ["d0", "d1", "d2", "d3", "d4", "d5"]
DATASET = make_dataset("tiny", RECORDS, id_field="id")


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path))


def run(reranker=None, *, encoder=None, query=QUERY, **options):
    settings = {
        "embed_fields": ["text"],
        "rerank_fields": ["title", "text", "note"],
        "num_candidates": 6,
        "num_results": 2,
        **options,
    }
    return search_with_rerank(
        DATASET, query, encoder=encoder or FakeEncoder(), reranker=reranker, **settings
    )


def by_id(result):
    return {c.id: c for c in result.candidates}


class TopNReranker:
    """Wraps a reranker and asks it for its best ``top_n`` only, like a hosted API."""

    def __init__(self, inner: FakeReranker, top_n: int) -> None:
        self.inner = inner
        self.top_n = top_n
        self.name = "top-n"
        self.score_kind = inner.score_kind

    def rank(
        self, query: str, docs: Sequence[RerankDoc], top_n: int | None = None
    ) -> list[RerankResult]:
        return self.inner.rank(query, docs, top_n=self.top_n)


# --- retrieval only ---------------------------------------------------------------------


def test_retrieval_order_and_scores() -> None:
    result = run()
    assert [c.id for c in result.candidates] == RETRIEVAL_ORDER
    assert [c.retrieval_rank for c in result.candidates] == [1, 2, 3, 4, 5, 6]
    assert [c.retrieval_score for c in result.candidates] == pytest.approx(
        [1.0, 2 / 6**0.5, 1 / 3**0.5, 1 / (3**0.5 * 2), 0.0, 0.0], abs=1e-6
    )
    assert [c.title for c in result.candidates] == ["Zero", "One", "Two", "Three", "#d4", "Five"]


def test_no_reranker_keeps_retrieval_order() -> None:
    result = run()
    assert result.reranker is None
    assert result.score_kind is None
    assert result.rerank_fields == ()
    assert [c.id for c in result.reranked] == RETRIEVAL_ORDER
    assert [c.id for c in result.top_final] == ["d0", "d1"]
    assert result.top_final == result.top_retrieval
    for c in result.candidates:
        assert c.rerank_rank is None
        assert c.rerank_score is None
        assert c.rerank_normalized is None
        assert c.rerank_text == ""
        assert c.movement is None
        assert c.final_rank == c.retrieval_rank
        assert not c.entered and not c.left


def test_prebuilt_index_is_used() -> None:
    encoder = FakeEncoder()
    index = build_index(DATASET, encoder, ["text"]).index
    assert encoder.calls == [6]
    result = run(encoder=encoder, index=index)
    assert encoder.calls == [6, 1]  # only the query was encoded
    assert [c.id for c in result.candidates] == RETRIEVAL_ORDER
    assert result.timings.index == 0.0
    assert result.timings.index_from_cache is None


# --- reranking and movement --------------------------------------------------------------

SCORES = {"d3": 9.0, "d0": 5.0, "d2": 3.0, "d1": 1.0, "d4": 0.0, "d5": -1.0}


def test_movement_is_retrieval_rank_minus_rerank_rank() -> None:
    result = run(FakeReranker(SCORES))
    assert [c.id for c in result.reranked] == ["d3", "d0", "d2", "d1", "d4", "d5"]
    assert [c.id for c in result.candidates] == RETRIEVAL_ORDER  # kept in retrieval order
    got = {c.id: (c.retrieval_rank, c.rerank_rank, c.movement) for c in result.candidates}
    assert got == {
        "d0": (1, 2, -1),
        "d1": (2, 4, -2),
        "d2": (3, 3, 0),
        "d3": (4, 1, 3),
        "d4": (5, 5, 0),
        "d5": (6, 6, 0),
    }


def test_entered_and_left_the_top() -> None:
    result = run(FakeReranker(SCORES), num_results=2)
    c = by_id(result)
    assert [x.id for x in result.top_retrieval] == ["d0", "d1"]
    assert [x.id for x in result.top_final] == ["d3", "d0"]
    assert c["d3"].entered and c["d3"].in_final_top and not c["d3"].in_retrieval_top
    assert not c["d3"].left
    assert c["d1"].left and c["d1"].in_retrieval_top and not c["d1"].in_final_top
    assert not c["d1"].entered
    assert not c["d0"].entered and not c["d0"].left  # stayed in, moved down one
    assert [x.id for x in result.candidates if x.entered] == ["d3"]
    assert [x.id for x in result.candidates if x.left] == ["d1"]


def test_scores_and_normalized_scores_are_kept() -> None:
    result = run(FakeReranker(SCORES))
    for c in result.candidates:
        assert c.rerank_score == SCORES[c.id]
        assert c.rerank_normalized == pytest.approx(sigmoid(SCORES[c.id]))
    assert result.reranker == "fake-reranker"
    assert result.score_kind == "logit"


def test_rerank_ties_keep_retrieval_order() -> None:
    result = run(FakeReranker({"d4": 4.0, "d2": 4.0, "d1": 4.0}))
    assert [c.id for c in result.reranked] == ["d1", "d2", "d4", "d0", "d3", "d5"]


def test_all_equal_scores_change_nothing() -> None:
    result = run(FakeReranker({}))
    assert [c.id for c in result.reranked] == RETRIEVAL_ORDER
    assert [c.movement for c in result.candidates] == [0] * 6


def test_reranker_reads_chosen_fields_without_nulls() -> None:
    reranker = FakeReranker()
    result = run(reranker, query="  heist bank robbery  ")
    assert len(reranker.seen) == 1
    query, docs = reranker.seen[0]
    assert query == QUERY == result.query  # stripped
    assert [d.id for d in docs] == RETRIEVAL_ORDER
    assert [d.text for d in docs] == [
        "title: Zero\ntext: heist bank robbery\nnote: a note",
        "title: One\ntext: heist bank",
        "title: Two\ntext: heist",
        "title: Three\ntext: heist thief night city",
        "text: crew space alien",
        "title: Five\ntext: green banana\nnote: last",
    ]
    assert all("None" not in d.text for d in docs)
    assert [c.rerank_text for c in result.candidates] == [d.text for d in docs]


def test_plain_rerank_style() -> None:
    reranker = FakeReranker()
    run(reranker, rerank_style="plain", rerank_fields=["title", "note"])
    assert [d.text for d in reranker.seen[0][1]] == [
        "Zero a note",
        "One",
        "Two",
        "Three",
        "",
        "Five last",
    ]


def test_default_rerank_fields_are_the_datasets() -> None:
    reranker = FakeReranker()
    result = run(reranker, rerank_fields=None)
    assert result.rerank_fields == DATASET.default_rerank_fields == ("title", "text", "note")


def test_truncation_flag_reaches_the_candidate() -> None:
    result = run(FakeReranker(SCORES, truncate_ids=["d2"]))
    assert [c.id for c in result.candidates if c.truncated] == ["d2"]


def test_top_n_reranker_ranks_unscored_candidates_after_scored_ones() -> None:
    result = run(TopNReranker(FakeReranker({"d5": 9.0, "d2": 8.0, "d0": 1.0}), top_n=2))
    assert [c.id for c in result.reranked] == ["d5", "d2", "d0", "d1", "d3", "d4"]
    c = by_id(result)
    assert [c[i].rerank_rank for i in RETRIEVAL_ORDER] == [3, 4, 2, 5, 6, 1]
    assert c["d5"].rerank_score == 9.0 and c["d2"].rerank_score == 8.0
    assert c["d0"].rerank_score is None and c["d0"].rerank_normalized is None
    assert c["d5"].movement == 5 and c["d5"].entered
    assert c["d0"].left and c["d1"].left
    assert sorted(x.final_rank for x in result.candidates) == [1, 2, 3, 4, 5, 6]


# --- settings ------------------------------------------------------------------------------


def test_num_results_above_num_candidates_is_lowered() -> None:
    result = run(FakeReranker(SCORES), num_candidates=3, num_results=10)
    assert result.num_results == 3
    assert [c.id for c in result.candidates] == ["d0", "d1", "d2"]
    assert all(c.in_final_top and c.in_retrieval_top for c in result.candidates)
    assert [c.id for c in result.top_final] == ["d0", "d2", "d1"]


def test_more_candidates_than_documents_returns_every_document() -> None:
    result = run(num_candidates=50, num_results=20)
    assert [c.id for c in result.candidates] == RETRIEVAL_ORDER
    assert result.num_candidates == 50


@pytest.mark.parametrize("query", ["", "   ", "\n\t", None])
def test_empty_query_is_a_settings_error(query) -> None:
    encoder = FakeEncoder()
    with pytest.raises(SettingsError, match="the query is empty"):
        search_with_rerank(DATASET, query, encoder=encoder, embed_fields=["text"])
    assert encoder.calls == []  # checked before any work


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_candidates": 0}, "number of candidates must be 1 to 1000, not 0"),
        ({"num_candidates": -5}, "number of candidates must be 1 to 1000, not -5"),
        ({"num_candidates": 1001}, "number of candidates must be 1 to 1000, not 1001"),
        ({"num_results": 0}, "number of results must be at least 1, not 0"),
        ({"num_results": -1}, "number of results must be at least 1, not -1"),
    ],
)
def test_bad_counts_are_settings_errors(options, message) -> None:
    assert MAX_CANDIDATES == 1000
    encoder = FakeEncoder()
    with pytest.raises(SettingsError) as info:
        run(FakeReranker(), encoder=encoder, **options)
    assert str(info.value) == message
    assert encoder.calls == []


def test_unknown_fields_are_field_errors() -> None:
    with pytest.raises(FieldError, match="unknown field.*to embed: plot"):
        run(embed_fields=["plot"])
    with pytest.raises(FieldError, match="unknown field.*to rerank: plot"):
        run(FakeReranker(), rerank_fields=["plot"])


# --- timings and export -----------------------------------------------------------------------


def test_timings_are_present_and_non_negative() -> None:
    first = run(FakeReranker(SCORES))
    second = run(FakeReranker(SCORES))
    for result in (first, second):
        t = result.timings
        assert min(t.index, t.query_encode, t.search, t.rerank, t.total) >= 0.0
        assert t.total >= t.index + t.query_encode + t.search + t.rerank
    assert first.timings.index_from_cache is False
    assert second.timings.index_from_cache is True


def test_to_dict_is_json_with_every_field() -> None:
    result = run(FakeReranker(SCORES, truncate_ids=["d3"]))
    data = json.loads(json.dumps(result.to_dict()))

    assert data["query"] == QUERY
    assert data["dataset"] == "tiny"
    assert data["encoder"] == "fake-encoder"
    assert data["reranker"] == "fake-reranker"
    assert data["score_kind"] == "logit"
    assert data["num_candidates"] == 6
    assert data["num_results"] == 2
    assert data["embed_fields"] == ["text"]
    assert data["retriever"] == "dense"
    assert data["retrieval_score_kind"] == "cosine"
    assert data["fusion_weight"] == 1.0
    assert data["fusion"] is None
    assert data["rerank_fields"] == ["title", "text", "note"]
    assert set(data["timings"]) == {
        "index",
        "query_encode",
        "search",
        "rerank",
        "total",
        "index_from_cache",
    }
    assert [r["id"] for r in data["results"]] == ["d3", "d0", "d2", "d1", "d4", "d5"]

    first = data["results"][0]
    assert set(first) == {
        "id",
        "title",
        "passages",
        "retrieval_passage",
        "record",
        "retrieval_rank",
        "retrieval_score",
        "rerank_text",
        "rerank_rank",
        "rerank_score",
        "rerank_normalized",
        "truncated",
        "movement",
        "final_rank",
        "in_retrieval_top",
        "in_final_top",
        "entered_top",
        "left_top",
        "fused_rank",
        "fused_score",
    }
    assert first["title"] == "Three"
    assert first["record"] == RECORDS[3]
    assert first["retrieval_rank"] == 4
    assert first["retrieval_score"] == pytest.approx(1 / (2 * 3**0.5), abs=1e-6)
    assert first["rerank_rank"] == 1 == first["final_rank"]
    assert first["rerank_score"] == 9.0
    assert first["rerank_normalized"] == pytest.approx(sigmoid(9.0))
    assert first["movement"] == 3
    assert first["truncated"] is True
    assert first["rerank_text"] == "title: Three\ntext: heist thief night city"
    assert (first["entered_top"], first["left_top"]) == (True, False)
    assert (first["in_retrieval_top"], first["in_final_top"]) == (False, True)

    left = next(r for r in data["results"] if r["id"] == "d1")
    assert (left["entered_top"], left["left_top"], left["movement"]) == (False, True, -2)

    slim = result.to_dict(with_record=False)
    assert all("record" not in r for r in slim["results"])


def test_to_dict_without_reranker_has_null_rerank_fields() -> None:
    data = json.loads(json.dumps(run().to_dict()))
    assert data["reranker"] is None and data["score_kind"] is None
    assert data["rerank_fields"] == []
    for r in data["results"]:
        assert r["rerank_rank"] is None and r["rerank_score"] is None
        assert r["movement"] is None
        assert r["final_rank"] == r["retrieval_rank"]


# --- real models ------------------------------------------------------------------------------


@pytest.mark.slow
def test_batman_ranks_first_after_reranking(movies, minilm, cross_encoder, movies_index) -> None:
    result = search_with_rerank(
        movies,
        "super hero mystery action movie about bats",
        encoder=minilm,
        reranker=cross_encoder,
        index=movies_index,
        num_candidates=50,
        num_results=10,
    )
    first = result.top_final[0]
    assert "Batman" in first.title
    assert first.rerank_rank == 1
    assert first.rerank_score == max(c.rerank_score for c in result.candidates)
    assert len(result.candidates) == 50
    # the reranker lifts a Batman film retrieved outside the top 10 into it
    assert any("Batman" in c.title and c.entered for c in result.candidates)
    assert sorted(c.rerank_rank for c in result.candidates) == list(range(1, 51))
    assert result.rerank_fields == ("title", "overview")
