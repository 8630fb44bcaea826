"""The Search page's state without Streamlit (core.present.search_state): link -> view
-> widget values -> settings, round trip, and the search the settings ask for.

A plain dict stands in for Streamlit's session state.
"""

from __future__ import annotations

from conftest import FakeEncoder, FakeReranker
from test_views import RERANK_ORDER, RERANK_SCORES, RETRIEVAL_ORDER, TINY

from core.data.documents import make_dataset
from core.models.base import DEFAULT_ENCODER, PACKAGED_CROSS_ENCODER, SEED_CROSS_ENCODER
from core.models.together import DEFAULT_EMBEDDING_MODEL, DEFAULT_RERANK_MODEL
from core.present.search_state import (
    OTHER_ENCODER,
    encoder_id,
    reranker_id,
    run_key,
    run_search,
    seeded_fields,
    settings_from_widgets,
    uses_together,
    view_from_link,
    widget_values,
)
from core.present.views import NO_RERANK, SearchSettings
from core.search.index import build_index

PACKAGED = ("sentence-transformers/all-MiniLM-L6-v2", "BAAI/bge-small-en-v1.5")


def widgets_for(view: SearchSettings) -> dict:
    """The widget values of ``view``, with the field pickers filled as the page does."""
    values = widget_values(view, PACKAGED)
    values["embed_fields"], values["rerank_fields"] = values.pop("pending_fields")
    return values


def test_link_gives_the_view_and_warns_about_what_it_ignores() -> None:
    view, warnings = view_from_link({"dataset": "sample", "q": " bats ", "k": "500"})
    assert (view.dataset, view.query, view.candidates) == ("sample", "bats", 200)
    assert warnings == ["k=500 is outside 10–200; using 200"]
    view, warnings = view_from_link({"dataset": "nope"})
    assert view.dataset == "movies"
    assert warnings == ["unknown dataset 'nope' in the link; using movies"]
    upload = "upload-" + "0" * 16
    assert view_from_link({"dataset": upload}) == (SearchSettings(dataset=upload), [])


def test_widget_values_of_a_view_describe_the_same_view() -> None:
    for view in (
        SearchSettings(),
        SearchSettings(
            dataset="sample",
            query="bats",
            candidates=120,
            results=7,
            embed_fields=("title",),
            rerank_fields=("summary",),
            encoder="BAAI/bge-small-en-v1.5",
            reranker="org/typed-cross-encoder",
            retriever="hybrid",
            fusion_weight=0.6,
            fusion="rrf",
            rrf_k=20,
        ),
        SearchSettings(encoder="together:some/embedder", reranker="together:some/reranker"),
        SearchSettings(encoder="org/other-encoder", reranker=NO_RERANK),
    ):
        assert settings_from_widgets(widgets_for(view), upload=False) == view


def test_widget_values_split_model_ids_into_pickers_and_boxes() -> None:
    values = widget_values(SearchSettings(encoder="org/x", reranker="org/y"), PACKAGED)
    assert values["encoder_backend"] == "local"
    assert (values["encoder_pick"], values["encoder"]) == (OTHER_ENCODER, "org/x")
    assert values["together_encoder"] == DEFAULT_EMBEDDING_MODEL
    assert (values["reranker_choice"], values["st_model"]) == ("sentence-transformers", "org/y")
    assert values["together_model"] == DEFAULT_RERANK_MODEL
    hosted = widget_values(SearchSettings(encoder="together:e", reranker="together:r"), PACKAGED)
    assert (hosted["encoder_backend"], hosted["together_encoder"]) == ("together", "e")
    assert hosted["encoder"] == DEFAULT_ENCODER
    assert (hosted["reranker_choice"], hosted["together_model"]) == ("together", "r")
    assert hosted["st_model"] == SEED_CROSS_ENCODER
    assert uses_together(hosted) and not uses_together(values)


def test_empty_model_boxes_fall_back_to_the_defaults() -> None:
    values = {
        "reranker_choice": "sentence-transformers",
        "st_model": "  ",
        "encoder_backend": "local",
        "encoder_pick": OTHER_ENCODER,
        "encoder": "",
    }
    assert reranker_id(values) == SEED_CROSS_ENCODER
    assert encoder_id(values) == DEFAULT_ENCODER
    values.update(reranker_choice="together", together_model=None)
    values.update(encoder_backend="together", together_encoder=" ")
    assert reranker_id(values) == "together:" + DEFAULT_RERANK_MODEL
    assert encoder_id(values) == "together:" + DEFAULT_EMBEDDING_MODEL
    assert reranker_id({"reranker_choice": PACKAGED_CROSS_ENCODER}) == PACKAGED_CROSS_ENCODER
    # no picker drawn yet (the backend is hosted): the default encoder
    assert encoder_id({"encoder_backend": "local"}) == DEFAULT_ENCODER


def test_id_and_title_fields_count_only_for_uploads() -> None:
    values = widgets_for(SearchSettings(id_field="(row)", title_field="name", query=" q "))
    assert settings_from_widgets(values, upload=False).id_field == ""
    uploaded = settings_from_widgets(values, upload=True)
    assert (uploaded.id_field, uploaded.title_field, uploaded.query) == ("(row)", "name", "q")


def test_seeded_fields_keep_what_the_dataset_has_else_its_defaults() -> None:
    dataset = make_dataset(
        "d",
        [{"title": "A", "body": "b", "tags": "t"}],
        embed_fields=("title", "body"),
        rerank_fields=("body",),
    )
    assert seeded_fields(((), ()), dataset) == (["title", "body"], ["body"], [])
    embed, rerank, warnings = seeded_fields((("tags", "plot"), ("nope",)), dataset)
    assert (embed, rerank) == (["tags"], ["body"])
    assert warnings == [
        "this dataset has no field(s) plot; they were left out",
        "this dataset has no field(s) nope; they were left out",
    ]


def test_run_search_follows_the_settings() -> None:
    encoder = FakeEncoder()
    index = build_index(TINY, encoder, ("text",), use_cache=False).index
    settings = SearchSettings(
        dataset="tiny",
        query="apple",
        candidates=6,
        results=3,
        embed_fields=("text",),
        rerank_fields=("title", "text"),
    )
    reranker = FakeReranker(RERANK_SCORES)
    result = run_search(settings, TINY, encoder=encoder, index=index, reranker=reranker)
    assert [c.id for c in result.candidates] == RETRIEVAL_ORDER
    assert [c.id for c in result.reranked] == RERANK_ORDER
    assert result.num_results == 3 and not result.fused
    # without a reranker the weight is ignored: the final order is the first stage's
    plain = run_search(
        SearchSettings(**{**settings.__dict__, "fusion_weight": 0.5}),
        TINY,
        encoder=encoder,
        index=index,
        reranker=None,
    )
    assert [c.id for c in plain.reranked] == RETRIEVAL_ORDER and not plain.fused
    bm25 = run_search(
        SearchSettings(**{**settings.__dict__, "retriever": "bm25"}),
        TINY,
        encoder=None,
        index=None,
        reranker=reranker,
    )
    assert bm25.retriever == "bm25" and bm25.reranked[0].id == "e"


class TopNReranker(FakeReranker):
    """Records the ``top_n`` each call asked for."""

    def __init__(self, scores: dict[str, float]) -> None:
        super().__init__(scores)
        self.top_ns: list[int | None] = []

    def rank(self, query, docs, top_n=None):
        self.top_ns.append(top_n)
        return super().rank(query, docs, top_n)


def test_a_hosted_reranker_is_asked_for_the_top_n_only() -> None:
    settings = SearchSettings(
        query="apple", candidates=6, results=2, embed_fields=("text",), rerank_fields=("text",)
    )
    reranker = TopNReranker(RERANK_SCORES)
    encoder = FakeEncoder()
    index = build_index(TINY, encoder, ("text",), use_cache=False).index
    run_search(settings, TINY, encoder=encoder, index=index, reranker=reranker)
    run_search(
        settings, TINY, encoder=encoder, index=index, reranker=reranker, hosted_reranker=True
    )
    assert reranker.top_ns == [None, 2]


def test_run_key_changes_with_the_settings_and_the_models() -> None:
    a, b = SearchSettings(query="a"), SearchSettings(query="b")
    reranker = FakeReranker({})
    assert run_key(a, reranker, None) == run_key(SearchSettings(query="a"), reranker, None)
    assert run_key(a, reranker, None) != run_key(b, reranker, None)
    assert run_key(a, reranker, None) != run_key(a, None, None)
    assert run_key(a, reranker, None) != run_key(a, reranker, reranker)


def test_a_query_the_browser_holds_wins_over_the_link_on_a_reconnected_session() -> None:
    view, _ = view_from_link({"q": "first query", "n": "5"})
    # A link opened fresh: the box shows the link's query.
    assert widget_values(view, PACKAGED)["query"] == "first query"
    # The page reconnected to a new session with a query typed since (even an emptied box).
    typed = widget_values(view, PACKAGED, typed_query="a heist that goes wrong")
    assert (typed["query"], typed["results"]) == ("a heist that goes wrong", 5)
    assert widget_values(view, PACKAGED, typed_query="")["query"] == ""
