"""The Search page's sidebar widgets: dataset, field and model pickers.

Functions only: nothing here draws on import. The widgets keep their values in the
session state under their keys (see core.present.search_state for what they mean).
"""

from __future__ import annotations

import streamlit as st

from core.data.datasets import BUILTIN
from core.data.documents import Dataset
from core.models.packaged import packaged_model_ids
from core.present.search_state import OTHER_ENCODER, dense_passages_available
from core.present.views import (
    CANDIDATES_RANGE,
    ENCODER_CHOICES,
    NO_RERANK,
    RERANKER_CHOICES,
    RESULTS_RANGE,
    ROW_IDS,
    escape_markdown,
)
from core.search.fusion import FUSION_LABELS, FUSION_METHODS
from core.search.milvus_reference import is_milvus_reference
from core.search.retrievers import RETRIEVER_KINDS, RETRIEVER_LABELS
from pages.widgets.common import BUILTIN_LABELS, collection_labels, together_api_key
from pages.widgets.passage_panel import passage_picker


def reset_fields() -> None:
    """Forget the field choices: a new dataset starts from its own defaults."""
    state = st.session_state
    state.pending_fields = ((), ())
    state.pop("embed_fields", None)
    state.pop("rerank_fields", None)
    state.id_choice = state.title_choice = ""


def dataset_picker(container) -> None:
    """The dataset picker: the built-in datasets, built collections, this session's
    uploads and the Milvus collections it opened."""
    state = st.session_state
    collections = collection_labels()
    labels = {**BUILTIN_LABELS, **collections, **state.setdefault("upload_labels", {})}
    choices = [*BUILTIN, *collections, *state.uploads, *state.setdefault("milvus", [])]
    container.selectbox(
        "Dataset",
        choices if state.dataset in choices else [*choices, state.dataset],
        key="dataset",
        format_func=lambda name: labels.get(name, name),
        on_change=reset_fields,
    )


def id_and_title_pickers(dataset: Dataset) -> None:
    """An upload's id and title field pickers (empty: the suggested field)."""
    st.selectbox(
        "Id field",
        ["", ROW_IDS, *dataset.fields],
        key="id_choice",
        format_func=lambda f: {"": "suggested", ROW_IDS: "row position"}.get(f, f),
        help=f"Now: {escape_markdown(dataset.id_field or 'row position')}. Values must be unique.",
    )
    st.selectbox(
        "Title field",
        ["", *dataset.fields],
        key="title_choice",
        format_func=lambda f: "suggested" if f == "" else f,
        help=f"Shown in lists. Now: {escape_markdown(dataset.title_field or 'the id')}.",
    )


def stage_settings(dataset: Dataset) -> None:
    """First stage, candidates, results, fields, reranker and fusion weight."""
    state = st.session_state
    st.selectbox(
        "First stage",
        list(RETRIEVER_KINDS),
        key="retriever",
        format_func=RETRIEVER_LABELS.get,
        help="Dense: cosine similarity of bi-encoder embeddings. BM25: word matches "
        "(stemmed). Hybrid: reciprocal rank fusion of both lists.",
    )
    st.slider(
        "Candidates retrieved",
        *CANDIDATES_RANGE,
        key="candidates",
        help="How many candidates the first stage hands to the reranker.",
    )
    st.slider(
        "Results shown",
        *RESULTS_RANGE,
        key="results",
        help="The top-N compared between the two orders.",
    )
    in_milvus = is_milvus_reference(state.dataset)
    st.multiselect(
        "Fields to embed / index",
        dataset.fields,
        key="embed_fields",
        disabled=in_milvus,
        help="Concatenated into the text the bi-encoder embeds and BM25 indexes."
        + (" A Milvus collection keeps the fields it was exported with." if in_milvus else ""),
    )
    st.selectbox(
        "Reranker", list(RERANKER_CHOICES), key="reranker_choice", format_func=RERANKER_CHOICES.get
    )
    if state.reranker_choice == "sentence-transformers":
        st.text_input(
            "CrossEncoder model id",
            key="st_model",
            help="Any sentence-transformers cross-encoder id; needs the Hugging "
            "Face hub unless it is already cached on this machine.",
        )
    if state.reranker_choice == "together":
        st.text_input(
            "Together rerank model",
            key="together_model",
            help="Hosted rerank models change; any id Together serves works here.",
        )
        st.checkbox(
            "If Together fails, rerank locally instead",
            key="together_fallback",
            help="Uses the local cross-encoder and says so above the results.",
        )
    st.multiselect(
        "Fields the reranker reads",
        dataset.fields,
        key="rerank_fields",
        disabled=state.reranker_choice == NO_RERANK,
        help="Sent as 'field: value' lines with the query to the cross-encoder.",
    )
    passage_picker(
        disabled=state.reranker_choice in (NO_RERANK, "together"),
        dense_disabled=state.retriever == "bm25" or not dense_passages_available(state.dataset),
    )
    st.slider(
        "Cross-encoder weight",
        0.0,
        1.0,
        step=0.1,
        key="fusion_weight",
        disabled=state.reranker_choice == NO_RERANK,
        help="1 = pure rerank (order by the cross-encoder alone). Below 1, the final "
        "order blends the first stage's score in: "
        "weight × minmax(cross-encoder) + (1 − weight) × minmax(first stage). "
        "The Evaluate page can tune it on labelled data.",
    )


def advanced_settings() -> None:
    """The bi-encoder (local or hosted), the fusion method and the hybrid's RRF k."""
    state = st.session_state
    with st.expander("Advanced"):
        st.selectbox(
            "Bi-encoder",
            list(ENCODER_CHOICES),
            key="encoder_backend",
            format_func=ENCODER_CHOICES.get,
            disabled=state.retriever == "bm25",
        )
        if state.encoder_backend == "local":
            st.selectbox(
                "Bi-encoder model",
                [*packaged_model_ids("embedding"), OTHER_ENCODER],
                key="encoder_pick",
                format_func=lambda m: "another model id…" if m == OTHER_ENCODER else m,
                disabled=state.retriever == "bm25",
                help="The listed models are packaged and work offline.",
            )
            if state.encoder_pick == OTHER_ENCODER:
                st.text_input(
                    "Bi-encoder model id",
                    key="encoder",
                    help="Any sentence-transformers model id; needs the Hugging Face hub "
                    "unless it is cached on this machine.",
                )
        else:
            st.text_input("Together embedding model", key="together_encoder")
        st.selectbox(
            "Fusion",
            list(FUSION_METHODS),
            key="fusion",
            format_func=FUSION_LABELS.get,
            disabled=state.reranker_choice == NO_RERANK or state.fusion_weight >= 1.0,
            help="How the two stages' scores are blended when the weight is below 1.",
        )
        st.number_input(
            "Hybrid: RRF k",
            0,
            1000,
            key="rrf_k",
            disabled=state.retriever != "hybrid",
            help="Reciprocal rank fusion adds 1 / (k + rank) from each list; 60 is the "
            "usual choice. Smaller k favours the top of each list.",
        )


def together_key_box() -> None:
    """The Together API key (password field), open while no key is known."""
    with st.expander("Together API key", expanded=together_api_key() is None):
        st.text_input(
            "API key",
            type="password",
            key="together_key",
            help="Kept only in this browser session: never in the link, logs or exports. "
            "Alternatively set TOGETHER_API_KEY or add it to .streamlit/secrets.toml.",
        )
