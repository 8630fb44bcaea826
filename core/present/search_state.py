"""The Search page's state, without Streamlit: the view a link opens, the widget values
that show a view, the settings the widgets describe, and the search they ask for.

The page keeps its widget values in a mapping (Streamlit's session state); these
functions read and fill such a mapping, so a plain dict stands in for it in tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.data.collection import is_collection_id
from core.data.documents import Dataset
from core.models.base import (
    DEFAULT_ENCODER,
    PACKAGED_CROSS_ENCODER,
    SEED_CROSS_ENCODER,
    Encoder,
    Reranker,
)
from core.models.together import DEFAULT_EMBEDDING_MODEL, DEFAULT_RERANK_MODEL
from core.present.gate import admit_view
from core.present.views import NO_RERANK, SearchSettings, encoder_choice, reranker_choice
from core.search.activity import visitor_search
from core.search.index import VectorIndex
from core.search.milvus_reference import is_milvus_reference
from core.search.passages import DEFAULT_AGGREGATE, PassageSettings
from core.search.pipeline import SearchResult, search_with_rerank
from core.search.retrievers import Retriever, make_retriever

OTHER_ENCODER = "other"
"""The bi-encoder picker's entry for "another model id…" (typed into its own box)."""


def view_from_link(params: Mapping[str, str]) -> tuple[SearchSettings, list[str]]:
    """The view a link opens, and a warning per setting of the link that was ignored
    (every rule of :mod:`core.present.gate`: unknown datasets and refused Milvus
    references fall back to movies, refused model ids to the defaults)."""
    return admit_view(params, origin="link")


def widget_values(
    view: SearchSettings, packaged_encoders: Sequence[str], *, typed_query: str | None = None
) -> dict[str, Any]:
    """The Search page's widget values (by widget key) that show ``view``.

    ``typed_query``: the text the browser already holds in the query box when a session
    starts on a page an earlier session drew (the server restarted and the page
    reconnected). It wins over the link's query: the link is what the page showed
    before, the box is what the user typed since. ``None`` (a link opened fresh): the
    box shows the link's query.

    The field pickers are seeded later, once the dataset's fields are known, from
    ``pending_fields``.
    """
    choice, typed_model = reranker_choice(view.reranker)
    backend, encoder_model = encoder_choice(view.encoder)
    return {
        "dataset": view.dataset,
        "query": view.query if typed_query is None else typed_query,
        "candidates": view.candidates,
        "results": view.results,
        "encoder_backend": backend,
        "encoder_pick": encoder_model if encoder_model in packaged_encoders else OTHER_ENCODER,
        "encoder": encoder_model if backend == "local" else DEFAULT_ENCODER,
        "retriever": view.retriever,
        "fusion_weight": view.fusion_weight,
        "fusion": view.fusion,
        "rrf_k": view.rrf_k,
        "passages": view.passages,
        "passage_window": view.window,
        "passage_stride": view.stride,
        "dense_passages": view.dense_passages,
        "together_encoder": encoder_model if backend == "together" else DEFAULT_EMBEDDING_MODEL,
        "reranker_choice": choice,
        "st_model": typed_model if choice == "sentence-transformers" else SEED_CROSS_ENCODER,
        "together_model": typed_model if choice == "together" else DEFAULT_RERANK_MODEL,
        "id_choice": view.id_field,
        "title_choice": view.title_field,
        "pending_fields": (view.embed_fields, view.rerank_fields),
    }


def seeded_fields(
    pending: tuple[Sequence[str], Sequence[str]], dataset: Dataset
) -> tuple[list[str], list[str], list[str]]:
    """The field pickers' first values on ``dataset``: the wanted fields it has (else its
    defaults) to embed and to rerank, and a warning per wanted field it lacks."""
    embed_wanted, rerank_wanted = pending
    seeded = SearchSettings(embed_fields=tuple(embed_wanted), rerank_fields=tuple(rerank_wanted))
    seeded, warnings = seeded.with_dataset_fields(dataset.fields)
    return (
        list(seeded.embed_fields or dataset.default_embed_fields),
        list(seeded.rerank_fields or dataset.default_rerank_fields),
        warnings,
    )


def reranker_id(values: Mapping[str, Any]) -> str:
    """The reranker the widgets pick: a choice, or the model id typed for it."""
    choice = values["reranker_choice"]
    if choice in (PACKAGED_CROSS_ENCODER, NO_RERANK):
        return choice
    if choice == "together":
        return "together:" + ((values["together_model"] or "").strip() or DEFAULT_RERANK_MODEL)
    return (values["st_model"] or "").strip() or SEED_CROSS_ENCODER


def encoder_id(values: Mapping[str, Any]) -> str:
    """The bi-encoder the widgets pick: hosted, packaged, or another typed model id."""
    if values["encoder_backend"] == "together":
        typed = (values["together_encoder"] or "").strip()
        return "together:" + (typed or DEFAULT_EMBEDDING_MODEL)
    if values.get("encoder_pick", DEFAULT_ENCODER) != OTHER_ENCODER:
        return values.get("encoder_pick") or DEFAULT_ENCODER
    return (values.get("encoder") or "").strip() or DEFAULT_ENCODER


def uses_together(values: Mapping[str, Any]) -> bool:
    """Whether the widgets pick a hosted (Together) model for either stage."""
    return values["reranker_choice"] == "together" or values["encoder_backend"] == "together"


def settings_from_widgets(
    values: Mapping[str, Any], *, upload: bool, encoder: str | None = None
) -> SearchSettings:
    """The view the widgets describe (what the URL then says).

    ``upload``: the dataset is an upload, so its id and title field choices count.
    ``encoder``: a model id that overrides the picker (a Milvus collection's vectors
    were made by one model, and queries must use it).
    """
    return SearchSettings(
        dataset=values["dataset"],
        query=values["query"].strip(),
        candidates=values["candidates"],
        results=values["results"],
        embed_fields=tuple(values["embed_fields"]),
        rerank_fields=tuple(values["rerank_fields"]),
        encoder=encoder or encoder_id(values),
        reranker=reranker_id(values),
        id_field=values.get("id_choice", "") if upload else "",
        title_field=values.get("title_choice", "") if upload else "",
        retriever=values["retriever"],
        fusion_weight=round(float(values["fusion_weight"]), 2),
        fusion=values["fusion"],
        rrf_k=int(values["rrf_k"]),
        passages=values.get("passages", DEFAULT_AGGREGATE),
        window=int(values.get("passage_window") or 0),
        stride=int(values.get("passage_stride") or 0),
        dense_passages=bool(values.get("dense_passages", False)),
    )


def dense_index_settings(settings: SearchSettings, dataset_name: str) -> PassageSettings | None:
    """The dense-passage settings the corpus index is built with: None for BM25, a
    built collection or a Milvus collection (they keep one vector per document) or
    when dense passages are off."""
    if settings.retriever == "bm25" or not dense_passages_available(dataset_name):
        return None
    return settings.dense_passage_settings()


def dense_passages_available(dataset_name: str) -> bool:
    """Whether ``dataset_name`` is embedded in process (so it can be by passage)."""
    return not (is_milvus_reference(dataset_name) or is_collection_id(dataset_name))


def run_key(settings: SearchSettings, reranker: Reranker | None, fallback: Reranker | None):
    """What decides a search's result: a rerun with the same key can reuse it."""
    return (settings, reranker is not None, fallback is not None)


def run_search(
    settings: SearchSettings,
    dataset: Dataset,
    *,
    encoder: Encoder | None,
    index: VectorIndex | None,
    reranker: Reranker | None,
    fallback: Reranker | None = None,
    hosted_reranker: bool = False,
    retriever: Retriever | None = None,
) -> SearchResult:
    """Run the search ``settings`` describe: the chosen first stage, then the reranker.

    A hosted reranker is asked for the top-N only, as in the seed flow, and sent whole
    documents; a local one reads long documents passage by passage as
    ``settings.passages`` says. Without a reranker the final order is the first stage's.
    ``retriever`` (e.g. a Milvus collection's) replaces the in-process first stage.
    ``index`` is what :func:`dense_index_settings` asks for: with dense passages, the
    passage index (the caller builds it, as it caches it).
    Counted as a visitor's search while it runs (background warm-up work waits for it).
    """
    with visitor_search():
        if retriever is None:
            retriever = make_retriever(
                settings.retriever,
                dataset,
                settings.embed_fields,
                encoder=encoder,
                index=index,
                rrf_k=settings.rrf_k,
            )
        return search_with_rerank(
            dataset,
            settings.query,
            encoder=encoder,
            reranker=reranker,
            embed_fields=settings.embed_fields,
            rerank_fields=settings.rerank_fields,
            num_candidates=settings.candidates,
            num_results=settings.results,
            retriever=retriever,
            fusion_weight=settings.fusion_weight if reranker is not None else 1.0,
            fusion=settings.fusion,
            rerank_top_n=settings.results if hosted_reranker else None,
            fallback=fallback,
            passages=settings.passage_settings()
            if reranker is not None and not hosted_reranker
            else None,
        )
