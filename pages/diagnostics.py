"""Ceiling & fields page: what retrieval hides from the reranker, and which fields it needs."""

from __future__ import annotations

import streamlit as st

from core.models.allow import model_refusal
from core.models.errors import CoreError, ModelUnavailableError
from core.present.diagnostics_state import (
    VIEWS,
    embed_fields,
    first_values,
    link_params,
    rerank_fields,
    retrieval_order,
    run_caption,
    settings_from_widgets,
)
from core.present.gate import admit_view
from core.present.views import EXAMPLE_QUERIES, NO_RERANK, error_text, escape_markdown
from pages.widgets import common
from pages.widgets.diagnostics_views import ablation_view, ceiling_view, settings_sidebar
from serve import ensure_navigation

ensure_navigation()  # first: a deep link on a fresh plain server (serve.py)

# --- settings ---------------------------------------------------------------------------
# First visit: a deep link's parameters, else what this page showed last, else the
# Search page's view. Widget state is dropped while another page is shown, so
# ``diag_settings`` remembers this page's settings.
state = st.session_state
if "diag_query" not in state:
    state.update(
        first_values(
            st.query_params.to_dict(),
            remembered=state.get("diag_settings"),
            search_view=state.get("view"),
            uploads=state.get("uploads", []),
            last_view=state.get("diag_last_view"),
        )
    )
    state.pop("diag_rerank_fields", None)
    # what the link asked for and did not get (refused model ids included)
    state.diag_url_warnings = admit_view(st.query_params.to_dict())[1]


def _use_example(text: str) -> None:
    state.diag_query = text


st.title("Recall ceiling & field ablation")
st.caption(
    "Two questions about the reranker: which results would it have shown if retrieval "
    "had handed it more candidates, and how much does it depend on the fields it reads?"
)
for warning in state.pop("diag_url_warnings", []):
    st.warning(f"Link setting ignored: {escape_markdown(warning)}", icon="⚠️")

labels = {**common.BUILTIN_LABELS, **state.get("upload_labels", {})}
with st.sidebar:
    settings_sidebar(labels)

try:
    dataset = common.load_named_dataset(state.diag_dataset).dataset
except CoreError as exc:
    name = labels.get(state.diag_dataset, state.diag_dataset)
    st.error(error_text(f"The dataset {name} is not available: {exc}"), icon="🚫")
    if state.diag_dataset != "sample":
        st.info("Pick the built-in **Sample** dataset in the sidebar.")
    st.stop()

fields = embed_fields(state.diag_pending_fields[0], dataset)
if "diag_rerank_fields" not in state:
    state.diag_rerank_fields = rerank_fields(state.diag_pending_fields[1], dataset)
st.sidebar.multiselect(
    "Fields the reranker reads (ceiling)",
    dataset.fields,
    key="diag_rerank_fields",
    help="The field ablation compares its own field sets.",
)

settings = state.diag_settings = settings_from_widgets(state)
state.diag_last_view = state.diag_view
if st.query_params.to_dict() != (params := link_params(settings, state.diag_view)):
    st.query_params.from_dict(params)

# --- query ------------------------------------------------------------------------------
st.text_input("Query", key="diag_query", placeholder="Describe what you are looking for…")
if examples := EXAMPLE_QUERIES.get(state.diag_dataset, ()):
    cols = st.columns(len(examples))
    for col, text in zip(cols, examples, strict=True):
        col.button(
            text,
            key=f"diag_example_{text}",
            on_click=_use_example,
            args=(text,),
            width="stretch",
            type="tertiary",
        )
view = st.radio("View", list(VIEWS), key="diag_view", format_func=VIEWS.get, horizontal=True)

if not settings.query:
    st.info("Type a query or pick an example to see the recall ceiling and the field ablation.")
    st.stop()
if settings.reranker == NO_RERANK:
    st.error("Both views are about a reranker: pick one in the sidebar.", icon="🚫")
    st.stop()
refusal = model_refusal(settings.reranker, "reranker", origin="typed") or (
    model_refusal(settings.encoder, "encoder", origin="typed")
    if settings.retriever != "bm25"
    else None
)
if refusal:
    st.error(escape_markdown(refusal), icon="🚫")
    st.stop()
try:
    reranker = common.get_reranker(settings.reranker)
    encoder = common.get_encoder(settings.encoder) if settings.retriever != "bm25" else None
except ModelUnavailableError as exc:
    st.error(error_text(exc), icon="🚫")
    st.stop()
try:
    index = common.get_index(dataset, encoder, fields).index if encoder is not None else None
    order = retrieval_order(dataset, settings.query, settings.retriever, encoder, fields, index)
except CoreError as exc:
    st.error(error_text(exc), icon="🚫")
    st.stop()
st.caption(
    run_caption(settings, encoder.name if encoder is not None else None, fields, reranker.name)
)

# --- the view -----------------------------------------------------------------------------
k, n = settings.candidates, settings.results
if view == "ceiling":
    ceiling_view(dataset, settings.query, reranker, order, k, n)
else:
    ablation_view(dataset, settings.query, reranker, order, k, n)
