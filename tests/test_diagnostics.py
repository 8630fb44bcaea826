"""core.quality.diagnostics: the recall ceiling and the field ablation.

Plumbing runs on small hand-made datasets with deterministic fakes, so every expected
value below is worked out by hand in the comments; one slow test runs the real packaged
cross-encoder on movies for the bats query.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import pytest
from conftest import FakeReranker

from core.data.documents import make_dataset
from core.models.base import RerankDoc, RerankResult, results_from_scores
from core.models.errors import FieldError, SettingsError
from core.quality.diagnostics import (
    CorpusScores,
    FieldVariant,
    ceiling_cache_key,
    ceiling_cache_path,
    clear_memory_cache,
    field_ablation,
    field_variants,
    recall_ceiling,
    score_corpus,
    text_fields,
)

BATS = "super hero mystery action movie about bats"
BATMAN = re.compile(r"batman|dark knight", re.IGNORECASE)

# --- the recall ceiling on eight records ------------------------------------------------
# Retrieval order a..h (passed in as is). Reranker scores: d 9, f 7, b 5, h 4, e 3, g 2,
# a 1, c 0, so the ideal top-3 is d (retrieval #4), f (#6), b (#2).
CEIL_IDS = ("a", "b", "c", "d", "e", "f", "g", "h")
CEIL = make_dataset(
    "ceil",
    [{"id": i, "title": f"Doc {i.upper()}", "text": f"text {i}"} for i in CEIL_IDS],
    id_field="id",
    title_field="title",
    rerank_fields=("title", "text"),
)
CEIL_SCORES = {"a": 1.0, "b": 5.0, "c": 0.0, "d": 9.0, "e": 3.0, "f": 7.0, "g": 2.0, "h": 4.0}
RETRIEVAL = list(CEIL_IDS)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own disk cache and an empty memory cache."""
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))
    clear_memory_cache()
    yield
    clear_memory_cache()


def scores_for(table: dict[str, float], seconds: float = 0.8) -> CorpusScores:
    """Whole-corpus scores of CEIL built by hand (8 pairs: 100 ms per pair at 0.8 s)."""
    return CorpusScores(
        query="q",
        reranker="fake",
        score_kind="logit",
        rerank_fields=("title", "text"),
        ids=CEIL.ids,
        scores=tuple(table.get(i, 0.0) for i in CEIL.ids),
        seconds=seconds,
    )


def test_score_corpus_scores_every_record_in_chunks_with_progress() -> None:
    reranker = FakeReranker(CEIL_SCORES)
    calls: list[tuple[int, int]] = []
    scores = score_corpus(
        CEIL, "q", reranker, progress=lambda done, total: calls.append((done, total)), chunk_size=3
    )
    assert scores.by_id() == CEIL_SCORES
    assert scores.ids == CEIL.ids and not scores.from_cache
    assert scores.rerank_fields == ("title", "text")
    assert [len(docs) for _, docs in reranker.seen] == [3, 3, 2]
    assert calls == [(0, 8), (3, 8), (6, 8), (8, 8)]
    # the reranker reads the chosen fields as "field: value" lines
    assert reranker.seen[0][1][0] == RerankDoc(id="a", text="title: Doc A\ntext: text a")
    assert scores.seconds > 0
    assert scores.per_pair_seconds == pytest.approx(scores.seconds / 8)


def test_score_corpus_is_cached_in_memory_then_on_disk() -> None:
    reranker = FakeReranker(CEIL_SCORES)
    first = score_corpus(CEIL, "q", reranker)
    assert len(reranker.seen) == 1
    key = ceiling_cache_key(reranker, CEIL, ("title", "text"), "q")
    stored = json.loads(ceiling_cache_path(key).read_text())
    assert stored["scores"] == [CEIL_SCORES[i] for i in CEIL_IDS]

    again = score_corpus(CEIL, "q", reranker)  # memory
    clear_memory_cache()
    from_disk = score_corpus(CEIL, "q", reranker)  # disk
    assert len(reranker.seen) == 1, "neither read scored anything"
    for cached in (again, from_disk):
        assert cached.from_cache
        assert cached.scores == first.scores
        assert cached.seconds == pytest.approx(first.seconds)  # the time measured first

    score_corpus(CEIL, "another query", reranker)
    score_corpus(CEIL, "q", reranker, ("title",))
    assert len(reranker.seen) == 3, "another query or field set is scored anew"


def test_a_damaged_cache_file_is_ignored_and_rewritten() -> None:
    reranker = FakeReranker(CEIL_SCORES)
    path = ceiling_cache_path(ceiling_cache_key(reranker, CEIL, ("title", "text"), "q"))
    path.parent.mkdir(parents=True)
    path.write_text('{"format": 1, "ids": [')
    assert score_corpus(CEIL, "q", reranker).by_id() == CEIL_SCORES
    assert len(reranker.seen) == 1
    assert json.loads(path.read_text())["ids"] == list(CEIL_IDS)


def test_cache_key_names_reranker_length_content_fields_and_query() -> None:
    class Keyed(FakeReranker):
        cache_key = "fake#int8"
        max_length = 512

    base = Keyed(name="same-name")
    key = ceiling_cache_key(base, CEIL, ("title",), "q")
    other_key = Keyed(name="same-name")
    other_key.cache_key = "fake#fp32"
    shorter = Keyed(name="same-name")
    shorter.max_length = 128
    edited = make_dataset(
        "ceil", [*CEIL.records[:-1], {"id": "h", "title": "Changed"}], id_field="id"
    )
    assert ceiling_cache_key(Keyed(name="renamed"), CEIL, ("title",), "q") == key  # cache_key wins
    assert ceiling_cache_key(other_key, CEIL, ("title",), "q") != key
    assert ceiling_cache_key(shorter, CEIL, ("title",), "q") != key
    assert ceiling_cache_key(base, edited, ("title",), "q") != key
    assert ceiling_cache_key(base, CEIL, ("title", "text"), "q") != key
    assert ceiling_cache_key(base, CEIL, ("title",), "q2") != key
    # without cache_key, the name counts
    assert ceiling_cache_key(FakeReranker(name="x"), CEIL, ("title",), "q") != ceiling_cache_key(
        FakeReranker(name="y"), CEIL, ("title",), "q"
    )


def test_score_corpus_refuses_large_corpora_empty_queries_and_unknown_fields() -> None:
    reranker = FakeReranker(CEIL_SCORES)
    with pytest.raises(SettingsError, match="limited to 5 records; this dataset has 8"):
        score_corpus(CEIL, "q", reranker, max_docs=5)
    with pytest.raises(SettingsError, match="query is empty"):
        score_corpus(CEIL, "   ", reranker)
    with pytest.raises(FieldError, match="nope"):
        score_corpus(CEIL, "q", reranker, ("nope",))
    assert reranker.seen == []


def test_ceiling_ideal_top_n_missed_items_and_curve() -> None:
    report = recall_ceiling(
        CEIL, scores_for(CEIL_SCORES), RETRIEVAL, num_candidates=3, num_results=3
    )
    assert [(i.id, i.ideal_rank, i.retrieval_rank, i.score) for i in report.ideal] == [
        ("d", 1, 4, 9.0),
        ("f", 2, 6, 7.0),
        ("b", 3, 2, 5.0),
    ]
    assert report.ideal[0].title == "Doc D"
    assert report.reached == 1  # only b is among a, b, c
    assert [i.id for i in report.missed] == ["d", "f"]
    assert report.candidates_for_all == 6
    # grid points up to 8 (1, 2, 3, 5), the corpus size, the current 3, and the retrieval
    # ranks 2, 4, 6 where an ideal item arrives
    assert [(p.candidates, p.reached) for p in report.curve] == [
        (1, 0),
        (2, 1),
        (3, 1),
        (4, 2),
        (5, 2),
        (6, 3),
        (8, 3),
    ]
    # 0.8 s for 8 pairs: 100 ms per pair, the estimate is linear in the candidates
    assert report.per_pair_ms == pytest.approx(100.0)
    assert [p.estimated_ms for p in report.curve] == pytest.approx(
        [100, 200, 300, 400, 500, 600, 800]
    )
    assert report.estimated_ms(3) == pytest.approx(300.0)
    assert report.corpus_size == 8 and report.num_candidates == 3


def test_reranking_the_first_x_gives_the_ideal_order_restricted_to_them() -> None:
    """The docstring's claim, checked: one whole-corpus scoring predicts every x."""
    reranker = FakeReranker(CEIL_SCORES)
    scores = score_corpus(CEIL, "q", reranker)
    order = ["h", "c", "a", "f", "g", "b", "e", "d"]
    full = recall_ceiling(CEIL, scores, order, num_candidates=8, num_results=8)
    ideal_order = [i.id for i in full.ideal]
    for x in range(1, 9):
        docs = [RerankDoc(id=i, text=i) for i in order[:x]]
        reranked = [r.id for r in reranker.rank("q", docs)]
        assert reranked == [i for i in ideal_order if i in order[:x]]
        report = recall_ceiling(CEIL, scores, order, num_candidates=x, num_results=3)
        top3 = {i.id for i in report.ideal}
        assert report.reached == len(top3 & set(reranked[:3]))


def test_ceiling_ties_follow_retrieval_order_and_unretrieved_items_are_never_reached() -> None:
    # Only d scores; the rest tie at 0 and are ordered by retrieval position. A partial
    # retrieval order (BM25 may return only matching documents) leaves d unreached.
    report = recall_ceiling(
        CEIL, scores_for({"d": 9.0}), ["h", "g", "a"], num_candidates=3, num_results=3
    )
    assert [(i.id, i.retrieval_rank) for i in report.ideal] == [("d", None), ("h", 1), ("g", 2)]
    assert report.reached == 2
    assert [i.id for i in report.missed] == ["d"]
    assert report.candidates_for_all is None
    assert report.curve[-1].reached == 2


def test_ceiling_rejects_bad_settings() -> None:
    scores = scores_for(CEIL_SCORES)
    with pytest.raises(SettingsError, match="unknown document id 'zz'"):
        recall_ceiling(CEIL, scores, ["a", "zz"], num_candidates=2)
    with pytest.raises(SettingsError, match="at least 1"):
        recall_ceiling(CEIL, scores, RETRIEVAL, num_candidates=0)
    other = make_dataset("other", [{"id": "x", "title": "X"}], id_field="id")
    with pytest.raises(SettingsError, match="another dataset"):
        recall_ceiling(other, scores, ["x"], num_candidates=1)


# --- field ablation on four films -------------------------------------------------------


class WordReranker:
    """Scores a text by how many of the query's words it contains (repeats count)."""

    name = "word-reranker"
    score_kind = "logit"

    def __init__(self) -> None:
        self.seen: list[list[RerankDoc]] = []

    def rank(
        self, query: str, docs: Sequence[RerankDoc], top_n: int | None = None
    ) -> list[RerankResult]:
        self.seen.append(list(docs))
        wanted = set(re.findall(r"[a-z]+", query.lower()))
        scores = [
            float(sum(w in wanted for w in re.findall(r"[a-z]+", d.text.lower()))) for d in docs
        ]
        return results_from_scores(docs, scores, self.score_kind, top_n)


FILMS = make_dataset(
    "films",
    [
        {"id": "m1", "title": "Dark Knight", "overview": "bats vigilante", "genres": "action"},
        {
            "id": "m2",
            "title": "Bats Attack",
            "overview": "a horror film",
            "genres": "action mystery",
        },
        {"id": "m3", "title": "Hero Story", "overview": "a hero story", "genres": "action mystery"},
        {
            "id": "m4",
            "title": "Cooking Show",
            "overview": "food",
            "genres": "documentary",
            "year": 1,
        },
    ],
    id_field="id",
    title_field="title",
    rerank_fields=("title", "overview"),
)
FILMS_QUERY = "bats hero mystery action"
# Query words found:       title only   title + overview      all fields
#   m1 Dark Knight         0            bats = 1              bats, action = 2
#   m2 Bats Attack         bats = 1     bats = 1              bats, action, mystery = 3
#   m3 Hero Story          hero = 1     hero x2 = 2           hero x2, action, mystery = 4
#   m4 Cooking Show        0            0                     0
# Ties keep the candidates' (retrieval) order m1, m2, m3, m4.
TITLE_ORDER = ("m2", "m3", "m1", "m4")
DEFAULT_ORDER = ("m3", "m1", "m2", "m4")
ALL_ORDER = ("m3", "m2", "m1", "m4")


def test_field_variants_title_defaults_and_every_text_field() -> None:
    assert text_fields(FILMS) == ("title", "overview", "genres")  # not id, not the number
    assert field_variants(FILMS) == (
        FieldVariant("title only", ("title",)),
        FieldVariant("title + overview", ("title", "overview")),
        FieldVariant("all fields (3)", ("title", "overview", "genres")),
    )
    # duplicates are dropped: here the defaults are every text field
    plain = make_dataset("plain", [{"title": "A", "body": "b"}])
    assert [v.name for v in field_variants(plain)] == ["title only", "title + body"]


def test_field_variants_on_movies(movies) -> None:
    assert field_variants(movies) == (
        FieldVariant("title only", ("title",)),
        FieldVariant("title + overview", ("title", "overview")),
        FieldVariant("all fields (5)", ("title", "overview", "director", "genres", "tagline")),
    )


def test_field_ablation_orders_ranks_and_agreement() -> None:
    reranker = WordReranker()
    report = field_ablation(FILMS, FILMS_QUERY, reranker, ["m1", "m2", "m3", "m4"], num_results=2)
    assert report.names == ("title only", "title + overview", "all fields (3)")
    assert [r.order for r in report.rankings] == [TITLE_ORDER, DEFAULT_ORDER, ALL_ORDER]
    assert report.ranking("all fields (3)").scores == (4.0, 3.0, 2.0, 0.0)
    # each variant reads only its own fields
    assert reranker.seen[0][0].text == "title: Dark Knight"
    assert (
        reranker.seen[2][1].text
        == "title: Bats Attack\noverview: a horror film\ngenres: action mystery"
    )
    assert report.ranks("m1") == {"title only": 3, "title + overview": 2, "all fields (3)": 3}
    assert report.top("title only") == ("m2", "m3")
    assert report.top_union() == ("m2", "m3", "m1")

    rows = report.side_by_side("title only")
    assert rows == [
        {
            "#": 1,
            "title": "Bats Attack",
            "score": 1.0,
            "retrieval #": 2,
            "title + overview #": 3,
            "all fields (3) #": 2,
            "id": "m2",
        },
        {
            "#": 2,
            "title": "Hero Story",
            "score": 1.0,
            "retrieval #": 3,
            "title + overview #": 1,
            "all fields (3) #": 1,
            "id": "m3",
        },
    ]

    agree = {(a.a, a.b): a for a in report.agreements}
    assert list(agree) == [
        ("title only", "title + overview"),
        ("title only", "all fields (3)"),
        ("title + overview", "all fields (3)"),
    ]
    t_d = agree[("title only", "title + overview")]
    # TITLE_ORDER positions in DEFAULT_ORDER: m2 2, m3 0, m1 1, m4 3 -> 2 inversions of 6
    assert t_d.kendall_tau == pytest.approx(1 / 3)
    assert t_d.overlap == 0.5  # {m2, m3} vs {m3, m1}
    # RBO_ext, equal lengths: (1-p)/p * sum X_d/d p^d + p^4 with X = 0, 1, 3, 4
    p = 0.9
    assert t_d.rbo == pytest.approx((1 - p) / p * (1 / 2 * p**2 + p**3 + p**4) + p**4)
    t_a = agree[("title only", "all fields (3)")]
    # positions in ALL_ORDER: m2 1, m3 0, m1 2, m4 3 -> 1 inversion
    assert t_a.kendall_tau == pytest.approx(2 / 3)
    assert t_a.overlap == 1.0
    d_a = agree[("title + overview", "all fields (3)")]
    # positions in ALL_ORDER: m3 0, m1 2, m2 1, m4 3 -> 1 inversion
    assert d_a.kendall_tau == pytest.approx(2 / 3)
    assert d_a.overlap == 0.5


def test_field_ablation_with_an_id_only_reranker_agrees_fully() -> None:
    # FakeReranker scores by id, whatever it reads: every variant gives the same order.
    report = field_ablation(
        FILMS, FILMS_QUERY, FakeReranker({"m4": 2.0, "m1": 1.0}), ["m3", "m1", "m4", "m2"]
    )
    assert {r.order for r in report.rankings} == {("m4", "m1", "m3", "m2")}
    assert report.num_results == 4  # lowered to the number of candidates
    assert all(
        (a.kendall_tau, a.rbo, a.overlap) == pytest.approx((1.0, 1.0, 1.0))
        for a in report.agreements
    )


def test_field_ablation_rejects_bad_input() -> None:
    with pytest.raises(SettingsError, match="query is empty"):
        field_ablation(FILMS, " ", WordReranker(), ["m1"])
    with pytest.raises(SettingsError, match="no candidates"):
        field_ablation(FILMS, "q", WordReranker(), [])
    with pytest.raises(FieldError, match="plot"):
        field_ablation(FILMS, "q", WordReranker(), ["m1"], variants=[FieldVariant("x", ("plot",))])


# --- the real cross-encoder on movies ---------------------------------------------------


@pytest.mark.slow
def test_bats_query_on_movies_with_the_real_cross_encoder(
    movies, minilm, movies_index, cross_encoder, monkeypatch
) -> None:
    from conftest import CACHE

    # The whole-corpus scores are kept in this process's test cache (1,000 pairs: ~10-30 s).
    monkeypatch.setenv("RERANK_CACHE_DIR", str(CACHE))
    vector = minilm.encode([BATS], kind="query")[0]
    order = [h.id for h in movies_index.search(vector, len(movies))]

    ablation = field_ablation(movies, BATS, cross_encoder, order[:50], num_results=10)
    title_only, default, every = ablation.rankings
    assert every.variant.fields == ("title", "overview", "director", "genres", "tagline")
    assert any(BATMAN.search(movies.title(d)) for d in ablation.top(every.variant.name)[:5])
    assert ablation.top(title_only.variant.name) != ablation.top(every.variant.name)
    assert all(a.kendall_tau < 0.9 for a in ablation.agreements if a.a == "title only")
    # The Together cookbook's loss: The Dark Knight's title never says "bat", so a
    # title-only rerank pushes it far down; with its overview it is a top-10 result.
    (knight,) = [d for d in ablation.candidates if movies.title(d) == "The Dark Knight"]
    assert default.rank(knight) <= 10
    assert title_only.rank(knight) > 20

    scores = score_corpus(movies, BATS, cross_encoder)
    report = recall_ceiling(movies, scores, order, num_candidates=50, num_results=10)
    assert BATMAN.search(report.ideal[0].title)
    reached = [p.reached for p in report.curve]
    assert reached == sorted(reached) and reached[-1] == 10
    assert report.reached == sum(i.retrieval_rank <= 50 for i in report.ideal)
    assert report.reached < 10, "the bi-encoder's first 50 miss part of the ideal top-10"
    assert report.rerank_seconds > 0


def test_union_rows_and_chart_frames() -> None:
    from core.present.charts import ablation_chart, ablation_frame, ceiling_chart, ceiling_frame

    report = field_ablation(
        FILMS, FILMS_QUERY, WordReranker(), ["m1", "m2", "m3", "m4"], num_results=1
    )
    # top-1 per variant: m2 (title only), m3 (the other two)
    rows = report.union_rows()
    assert [r["id"] for r in rows] == ["m2", "m3"]
    assert rows[0] == {
        "id": "m2",
        "title": "Bats Attack",
        "retrieval #": 2,
        "title only #": 1,
        "title only score": 1.0,
        "title + overview #": 3,
        "title + overview score": 1.0,
        "all fields (3) #": 2,
        "all fields (3) score": 3.0,
    }
    frame = ablation_frame(report)
    assert len(frame) == 2 * 3  # two items, three variants; 4 candidates: nothing clipped
    assert not frame["clipped"].any()
    assert list(frame[frame["id"] == "m2"]["rank"]) == [1, 3, 2]
    assert ablation_chart(report).to_dict()["layer"]

    ceiling = recall_ceiling(
        CEIL, scores_for(CEIL_SCORES), RETRIEVAL, num_candidates=3, num_results=3
    )
    data = ceiling_frame(ceiling)
    assert list(data["reached"]) == [0, 1, 1, 2, 2, 3, 3]
    assert list(data["current"]) == [False, False, True, False, False, False, False]
    spec = ceiling_chart(ceiling).to_dict()
    assert spec["resolve"] == {"scale": {"y": "independent"}}


def test_ablation_frame_clips_far_ranks() -> None:
    from core.present.charts import ablation_frame

    class LastNumber(FakeReranker):
        """Scores a text by the number ending it: "title: t5\nbody: b24" scores 24."""

        def rank(self, query, docs, top_n=None):
            scores = [float(re.findall(r"\d+", d.text)[-1]) for d in docs]
            return results_from_scores(docs, scores, "logit", top_n)

    ids = [f"d{i:02d}" for i in range(30)]
    records = [{"id": d, "title": f"t{i}", "body": f"b{29 - i}"} for i, d in enumerate(ids)]
    data = make_dataset("many", records, id_field="id", title_field="title")
    variants = [FieldVariant("a", ("title",)), FieldVariant("b", ("title", "body"))]
    report = field_ablation(data, "q", LastNumber(), ids, variants=variants, num_results=3)
    assert report.top("a") == ("d29", "d28", "d27") and report.top("b") == ("d00", "d01", "d02")
    frame = ablation_frame(report).set_index(["id", "variant"])
    # N = 3: ranks beyond max(2N, N + 10) = 13 sit on row 14, with their true rank kept
    assert frame.loc[("d29", "b"), ["rank", "y", "clipped"]].tolist() == [30, 14, True]
    assert frame.loc[("d29", "a"), ["rank", "y", "clipped"]].tolist() == [1, 1, False]
    assert frame.loc[("d02", "a"), ["rank", "y", "in_top"]].tolist() == [28, 14, False]
