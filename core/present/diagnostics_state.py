"""The Ceiling & fields page's state, without Streamlit: the settings a visit starts
from, the reranker the widgets pick, the fields each view reads, the link it writes.

The page keeps its widget values (keys prefixed ``diag_``) in a mapping (Streamlit's
session state); a plain dict stands in for it in tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.data.datasets import BUILTIN
from core.data.documents import Dataset
from core.data.upload_store import is_upload_id
from core.models.base import DEFAULT_ENCODER, PACKAGED_CROSS_ENCODER, SEED_CROSS_ENCODER, Encoder
from core.present.gate import admit_view
from core.present.views import (
    NO_RERANK,
    RERANKER_CHOICES,
    SearchSettings,
    escape_markdown,
    reranker_choice,
)
from core.search.index import VectorIndex
from core.search.retrievers import RETRIEVER_LABELS, make_retriever

VIEWS = {"ceiling": "Recall ceiling", "fields": "Field ablation"}
# Local rerankers only: the ceiling sends every record of the corpus to the reranker.
RERANKERS = {k: RERANKER_CHOICES[k] for k in (PACKAGED_CROSS_ENCODER, "sentence-transformers")}
RERANKERS[NO_RERANK] = "None"
LINK_KEYS = ("q", "dataset", "k", "n", "view")
"""URL parameters that make a link describe this page's view (else it starts from the
session's last settings)."""


def first_values(
    params: Mapping[str, str],
    *,
    remembered: SearchSettings | None,
    search_view: SearchSettings | None,
    uploads: Sequence[str],
    last_view: str | None,
) -> dict[str, Any]:
    """The widget values (by key) of a first visit: a deep link's parameters, else
    what this page showed last (``remembered``), else the Search page's view.

    Hosted models are not offered here: a hosted reranker becomes the packaged one and a
    hosted bi-encoder the default one. An unknown dataset becomes movies, an unknown
    view the ceiling.
    """
    seed, _ = admit_view(params, origin="link")
    if not any(k in params for k in LINK_KEYS):
        seed = remembered or search_view or seed
    known = (*BUILTIN, *uploads)
    choice, typed = reranker_choice(seed.reranker)
    view = params.get("view", last_view or "ceiling")
    hosted_encoder = seed.encoder.startswith("together:")
    return {
        "diag_dataset": seed.dataset
        if seed.dataset in known or is_upload_id(seed.dataset)
        else "movies",
        "diag_query": seed.query,
        "diag_candidates": seed.candidates,
        "diag_results": seed.results,
        "diag_reranker": choice if choice in RERANKERS else PACKAGED_CROSS_ENCODER,
        "diag_st_model": typed if choice == "sentence-transformers" else SEED_CROSS_ENCODER,
        "diag_pending_fields": (seed.embed_fields, seed.rerank_fields),
        "diag_encoder": DEFAULT_ENCODER if hosted_encoder else seed.encoder,
        "diag_retriever": seed.retriever,
        "diag_view": view if view in VIEWS else "ceiling",
    }


def dataset_choices(dataset: str, uploads: Sequence[str]) -> list[str]:
    """The dataset picker's entries: built-in, this session's uploads, and ``dataset``
    when it is an upload the session has not seen (a shared link)."""
    if is_upload_id(dataset) and dataset not in uploads:
        uploads = [*uploads, dataset]
    return [*BUILTIN, *uploads]


def embed_fields(wanted: Sequence[str], dataset: Dataset) -> tuple[str, ...]:
    """The wanted fields ``dataset`` has, else its default fields to embed."""
    return tuple(f for f in wanted if f in dataset.fields) or dataset.default_embed_fields


def rerank_fields(wanted: Sequence[str], dataset: Dataset) -> list[str]:
    """The wanted fields ``dataset`` has, else its default fields to rerank."""
    return [f for f in wanted if f in dataset.fields] or list(dataset.default_rerank_fields)


def reranker_id(values: Mapping[str, Any]) -> str:
    """The reranker the widgets pick: none, the packaged one, or a typed model id."""
    if values["diag_reranker"] == NO_RERANK:
        return NO_RERANK
    if values["diag_reranker"] == "sentence-transformers":
        return (values["diag_st_model"] or "").strip() or SEED_CROSS_ENCODER
    return PACKAGED_CROSS_ENCODER


def settings_from_widgets(values: Mapping[str, Any]) -> SearchSettings:
    """The settings the widgets describe (shared with the Search page's link format)."""
    return SearchSettings(
        dataset=values["diag_dataset"],
        query=(values["diag_query"] or "").strip(),
        candidates=int(values["diag_candidates"]),
        results=int(values["diag_results"]),
        embed_fields=values["diag_pending_fields"][0],
        rerank_fields=tuple(values["diag_rerank_fields"]),
        encoder=values["diag_encoder"],
        reranker=reranker_id(values),
        retriever=values["diag_retriever"],
    )


def link_params(settings: SearchSettings, view: str) -> dict[str, str]:
    """The page's URL parameters: the settings, and which view is open."""
    return {**settings.to_params(), "view": view}


def retrieval_order(
    dataset: Dataset,
    query: str,
    kind: str,
    encoder: Encoder | None,
    fields: tuple[str, ...],
    index: VectorIndex | None,
) -> list[str]:
    """Doc ids, best first, by the chosen first stage over the whole corpus (BM25 lists
    only documents sharing a word with the query).

    The one place that decides the retriever: both views take its order as is.
    """
    retriever = make_retriever(kind, dataset, fields, encoder=encoder, index=index)
    return [hit.id for hit in retriever.retrieve(query, len(dataset)).hits]


def run_caption(
    settings: SearchSettings, encoder_name: str | None, fields: Sequence[str], reranker: str
) -> str:
    """What the views were computed with: first stage, fields, reranker, k and N
    (markdown: model and field names are escaped)."""
    return (
        f"Retrieval: {RETRIEVER_LABELS[settings.retriever]}"
        + escape_markdown(
            (f", {encoder_name}" if encoder_name is not None else "")
            + f" over {', '.join(fields)} · reranker: {reranker}"
        )
        + f" · {settings.candidates} candidates · top-{settings.results}"
    )
