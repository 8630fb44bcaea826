"""Search page: retrieve with a bi-encoder, rerank with a cross-encoder, compare."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from core.data.upload_store import is_upload_id
from core.models.allow import model_refusal
from core.models.base import PACKAGED_CROSS_ENCODER
from core.models.errors import CoreError, ModelUnavailableError
from core.models.packaged import packaged_model_ids
from core.present.search_state import (
    dense_index_settings,
    run_key,
    run_search,
    seeded_fields,
    settings_from_widgets,
    uses_together,
    view_from_link,
    widget_values,
)
from core.present.views import (
    EXAMPLE_QUERIES,
    MAX_QUERY_CHARS,
    NO_RERANK,
    approximate_note,
    clip_query,
    error_text,
    escape_markdown,
)
from core.search.background import EmbeddingJob, StartGate
from core.search.milvus_reference import is_milvus_reference
from pages.widgets import reproduce_panel as reproduce
from pages.widgets import search_results as results
from pages.widgets import search_sidebar as sidebar
from pages.widgets.common import (
    BUILTIN_LABELS,
    browser_text,
    encoder_for,
    get_reranker,
    index_or_job,
    load_named_dataset,
    milvus_encoder,
    milvus_retriever,
    reranker_for,
    together_api_key,
)
from pages.widgets.embedding_status import first_stage_note
from pages.widgets.h2h_panel import search_compare_panel
from pages.widgets.milvus_panel import milvus_box
from pages.widgets.passage_panel import dense_caption, passage_estimate
from pages.widgets.upload_panel import quality_report, upload_box
from serve import ensure_navigation

ensure_navigation()  # first: a deep link on a fresh plain server (serve.py)

# --- settings ---------------------------------------------------------------------------
# The URL defines the view on a session's first run. Widgets then own the settings, and
# ``state.view`` remembers them: Streamlit drops widget state while another page is
# shown, so coming back re-seeds the widgets from it.
state = st.session_state
if "view" not in state:
    state.view, state.url_warnings = view_from_link(st.query_params.to_dict())
    reproduce.remember_link(st.query_params.to_dict(), state.view.dataset)
if "query" not in state:
    # A browser reconnecting after a server restart sends what its box holds: a query
    # typed since then must not be overwritten by the link's (older) one.
    typed = browser_text("query")
    state.update(widget_values(state.view, packaged_model_ids("embedding"), typed_query=typed))
    state.pop("embed_fields", None)
    state.pop("rerank_fields", None)


def _use_example(text: str) -> None:
    state.query = text


st.title("Retrieve, then rerank")
st.caption(
    "A first stage (bi-encoder, BM25, or both fused) fetches candidates fast; a "
    "cross-encoder then reads each (query, document) pair and reorders them. Compare both "
    "orders below."
)
if applied := state.pop("applied_setting", None):
    st.success(f"Applied the recommended setting: {escape_markdown(applied)}", icon="✅")
for warning in state.pop("url_warnings", []):
    st.warning(f"Link setting ignored: {escape_markdown(warning)}", icon="⚠️")

# --- sidebar: dataset -------------------------------------------------------------------
st.sidebar.header("Settings")
picker, uploader = st.sidebar.container(), st.sidebar.container()
with uploader:
    new_upload = upload_box()
if new_upload:
    state.dataset = new_upload
    state.just_uploaded = new_upload
    sidebar.reset_fields()
if new_milvus := milvus_box():
    state.dataset = new_milvus
    sidebar.reset_fields()
uploads = state.setdefault("uploads", [])
if is_upload_id(state.dataset) and state.dataset not in uploads:
    uploads.append(state.dataset)
in_milvus = is_milvus_reference(state.dataset)
if in_milvus and state.dataset not in state.setdefault("milvus", []):
    state.milvus.append(state.dataset)
id_choice, title_choice = state.get("id_choice", ""), state.get("title_choice", "")
try:
    loaded = load_named_dataset(state.dataset, id_choice, title_choice)
except CoreError as exc:
    state.setdefault("upload_labels", {})
    if id_choice or title_choice:
        st.error(f"Cannot use that id or title field: {error_text(exc)}", icon="🚫")
        state.id_choice = state.title_choice = ""
        loaded = load_named_dataset(state.dataset)
    else:
        name = BUILTIN_LABELS.get(state.dataset, state.dataset)
        st.error(error_text(f"The dataset {name} is not available: {exc}"), icon="🚫")
        if state.dataset != "sample":
            st.info("Pick the built-in **Sample** dataset in the sidebar, or upload a file.")
        sidebar.dataset_picker(picker)
        st.stop()
dataset = loaded.dataset
if loaded.report is not None:
    state.setdefault("upload_labels", {})[state.dataset] = loaded.label
# Drawn after loading so an upload's label is known: a label that changed between runs
# would make Streamlit treat the picker as a new widget and reset it.
sidebar.dataset_picker(picker)
if loaded.report is not None:
    quality_report(loaded.report, expanded=state.pop("just_uploaded", None) == state.dataset)
    with picker:
        sidebar.id_and_title_pickers(dataset)

# --- sidebar: stages and models ---------------------------------------------------------
if "embed_fields" not in state:
    state.embed_fields, state.rerank_fields, field_warnings = seeded_fields(
        state.pending_fields, dataset
    )
    for warning in field_warnings:
        st.warning(f"Link setting ignored: {escape_markdown(warning)}", icon="⚠️")
with st.sidebar:
    sidebar.stage_settings(dataset)
    sidebar.advanced_settings()
    hosted = uses_together(state)
    if hosted:
        sidebar.together_key_box()

# A pasted or linked query longer than the cap would make the share link too long.
state.query, query_cut = clip_query(state.query)
if query_cut:
    st.warning(f"Query cut: {query_cut}.", icon="✂️")
# The URL always describes the view, so the address bar is a shareable link.
# A Milvus collection's vectors were made by one model: queries must use it.
fixed_encoder = milvus_encoder(state.dataset) if in_milvus else None
if fixed_encoder:
    st.sidebar.caption(
        f"Milvus first stage; queries embedded with {escape_markdown(fixed_encoder)}."
    )
settings = state.view = settings_from_widgets(
    state, upload=loaded.report is not None, encoder=fixed_encoder
)
manifest = state.last_manifest = reproduce.view_manifest(settings, loaded)  # fp in the link
if st.query_params.to_dict() != (params := reproduce.with_fingerprint(settings, manifest)):
    st.query_params.from_dict(params)
reproduce.drift_warning(manifest, dataset)

# --- query ------------------------------------------------------------------------------
st.text_input(
    "Query",
    key="query",
    placeholder="Describe what you are looking for…",
    help=f"Up to {MAX_QUERY_CHARS:,} characters (longer queries are cut, with a note).",
)
if examples := EXAMPLE_QUERIES.get(settings.dataset, ()):
    cols = st.columns(len(examples))
    for col, text in zip(cols, examples, strict=True):
        col.button(text, on_click=_use_example, args=(text,), width="stretch", type="tertiary")

if not settings.query:
    st.info("Type a query or pick an example to see both orders side by side.")
    st.stop()
if not settings.embed_fields:
    st.error("Choose at least one field to embed.")
    st.stop()

# --- run --------------------------------------------------------------------------------
notices = []
api_key = together_api_key() if hosted else None
if hosted and api_key is None:
    st.info(
        "The Together options need an API key: paste it into **Together API key** in the "
        "sidebar (kept only in this session), set the `TOGETHER_API_KEY` environment "
        'variable, or add `TOGETHER_API_KEY = "…"` to `.streamlit/secrets.toml`.',
        icon="🔑",
    )
    if state.encoder_backend == "together":
        st.stop()
encoder = None
if settings.retriever != "bm25":
    # typed into the sidebar: the same allow-list as links (folders only if the operator
    # allows them), decided without touching the file system
    if refusal := model_refusal(settings.encoder, "encoder", origin="typed"):
        st.error(escape_markdown(refusal), icon="🚫")
        st.stop()
    try:
        encoder = encoder_for(settings.encoder, api_key)
    except ModelUnavailableError as exc:
        st.error(error_text(exc), icon="🚫")
        st.stop()
reranker = fallback = None
hosted_reranker = state.reranker_choice == "together"
if settings.reranker != NO_RERANK:
    if not settings.rerank_fields:
        st.error("Choose at least one field for the reranker to read, or pick no reranker.")
        st.stop()
    if refusal := model_refusal(settings.reranker, "reranker", origin="typed"):
        notices.append(f"{refusal}. Showing retrieval only.")
    elif hosted_reranker and api_key is None:
        notices.append("Together rerank needs an API key; showing retrieval only.")
    else:
        try:
            reranker = reranker_for(settings.reranker, api_key)
        except ModelUnavailableError as exc:
            notices.append(f"{exc} Showing retrieval only.")
    if reranker is not None and hosted_reranker and state.get("together_fallback"):
        fallback = get_reranker(PACKAGED_CROSS_ENCODER)

if reranker is not None and not hosted_reranker:  # the cost, shown before the run
    passage_estimate(
        dataset,
        settings.rerank_fields,
        settings.passage_settings(),
        settings.candidates,
        reranker,
    )
# Reruns caused by the details picker, the score toggle or a download reuse the result
# instead of scoring every candidate again.
cached = state.get("last_search")
run_settings = settings  # BM25 stands in while an upload's dense index is built
try:
    build = milvus = job = None
    if in_milvus:
        milvus = milvus_retriever(
            settings.dataset, settings.retriever, encoder, settings.rrf_k, settings.encoder
        )
    elif encoder is not None:
        dense = dense_index_settings(settings, settings.dataset)
        build = index_or_job(dataset, encoder, settings.embed_fields, dense)
        if isinstance(build, EmbeddingJob | StartGate):
            job, build, run_settings = build, None, replace(settings, retriever="bm25")
    key = run_key(run_settings, reranker, fallback)
    if cached is not None and cached[0] == key:
        result = cached[1]
    else:
        result = run_search(
            run_settings,
            dataset,
            encoder=encoder,
            index=build.index if build is not None else None,
            reranker=reranker,
            fallback=fallback,
            hosted_reranker=hosted_reranker,
            retriever=milvus,
        )
except CoreError as exc:
    st.error(error_text(exc), icon="🚫")
    st.stop()
state.last_search = (key, result)
state.last_result = result
first_stage_note(job, build is not None, settings)
for notice in [*notices, *([result.notice] if result.notice else [])]:
    st.warning(escape_markdown(notice), icon="⚠️")

# --- results ----------------------------------------------------------------------------
results.summary(result, build)
dense_caption(result, build)
if getattr(dataset, "approximate", False) and result.retriever != "bm25":
    st.info(approximate_note(dataset), icon="ℹ️")
results.both_orders(result)
if result.reranker:
    results.movement_and_scores(result)
search_compare_panel(settings)
results.details(result)
results.judging(settings.dataset, result)
results.downloads(result, manifest)
reproduce.panel(manifest, result, dataset)
st.caption("Share this view: copy the address bar. Every setting is in the link.")
st.page_link(
    "pages/compare.py",
    label="Compare this view with another reranker, head to head",
    icon=":material/compare_arrows:",
    query_params=settings.to_params(),
)
