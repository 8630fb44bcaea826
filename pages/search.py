"""Search page: retrieve with a bi-encoder, rerank with a cross-encoder, compare."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st

from core.data.beir import dump_judgments_csv, load_judgments_csv
from core.data.datasets import BUILTIN
from core.data.uploads import is_upload_id
from core.errors import CoreError, ModelUnavailableError
from core.models.base import DEFAULT_ENCODER, PACKAGED_CROSS_ENCODER, SEED_CROSS_ENCODER
from core.models.packaged import packaged_model_ids
from core.models.together import DEFAULT_EMBEDDING_MODEL, DEFAULT_RERANK_MODEL
from core.present.charts import movement_chart, score_chart
from core.present.views import (
    CANDIDATES_RANGE,
    ENCODER_CHOICES,
    EXAMPLE_QUERIES,
    NO_RERANK,
    RERANKER_CHOICES,
    RESULTS_RANGE,
    ROW_IDS,
    SearchSettings,
    badge,
    encoder_choice,
    export_csv,
    export_json,
    judged_metrics,
    reranker_choice,
    retrieval_score_label,
    summarize,
)
from core.search.fusion import FUSION_LABELS, FUSION_METHODS
from core.search.pipeline import SearchResult, search_with_rerank
from core.search.retrievers import RETRIEVER_KINDS, RETRIEVER_LABELS, make_retriever
from pages.common import (
    BUILTIN_LABELS,
    encoder_for,
    get_index,
    get_reranker,
    load_named_dataset,
    reranker_for,
    together_api_key,
)
from pages.upload_panel import quality_report, upload_box

# --- settings ---------------------------------------------------------------------------
# The URL defines the view on a session's first run. Widgets then own the settings, and
# ``state.view`` remembers them: Streamlit drops widget state while another page is
# shown, so coming back re-seeds the widgets from it.
state = st.session_state
OTHER_ENCODER = "other"
PACKAGED_ENCODERS = packaged_model_ids("embedding")
if "view" not in state:
    view, url_warnings = SearchSettings.from_params(st.query_params.to_dict())
    if view.dataset not in BUILTIN and not is_upload_id(view.dataset):
        url_warnings.append(f"unknown dataset {view.dataset!r} in the link; using movies")
        view = replace(view, dataset="movies")
    state.view = view
    state.url_warnings = url_warnings
if "query" not in state:
    view = state.view
    choice, typed_model = reranker_choice(view.reranker)
    backend, encoder_model = encoder_choice(view.encoder)
    state.update(
        dataset=view.dataset,
        query=view.query,
        candidates=view.candidates,
        results=view.results,
        encoder_backend=backend,
        encoder_pick=encoder_model if encoder_model in PACKAGED_ENCODERS else OTHER_ENCODER,
        encoder=encoder_model if backend == "local" else DEFAULT_ENCODER,
        retriever=view.retriever,
        fusion_weight=view.fusion_weight,
        fusion=view.fusion,
        rrf_k=view.rrf_k,
        together_encoder=encoder_model if backend == "together" else DEFAULT_EMBEDDING_MODEL,
        reranker_choice=choice,
        st_model=typed_model if choice == "sentence-transformers" else SEED_CROSS_ENCODER,
        together_model=typed_model if choice == "together" else DEFAULT_RERANK_MODEL,
        id_choice=view.id_field,
        title_choice=view.title_field,
        pending_fields=(view.embed_fields, view.rerank_fields),
    )
    state.pop("embed_fields", None)
    state.pop("rerank_fields", None)


def _reset_fields() -> None:
    state.pending_fields = ((), ())
    state.pop("embed_fields", None)
    state.pop("rerank_fields", None)
    state.id_choice = state.title_choice = ""


def _dataset_picker(container) -> None:
    labels = {**BUILTIN_LABELS, **state.setdefault("upload_labels", {})}
    container.selectbox(
        "Dataset",
        [*BUILTIN, *state.uploads],
        key="dataset",
        format_func=lambda name: labels.get(name, name),
        on_change=_reset_fields,
    )


def _use_example(text: str) -> None:
    state.query = text


st.title("Retrieve, then rerank")
st.caption(
    "A first stage (bi-encoder, BM25, or both fused) fetches candidates fast; a "
    "cross-encoder then reads each (query, document) pair and reorders them. Compare both "
    "orders below."
)
if applied := state.pop("applied_setting", None):
    st.success(f"Applied the recommended setting: {applied}", icon="✅")
for warning in state.pop("url_warnings", []):
    st.warning(f"Link setting ignored: {warning}", icon="⚠️")

st.sidebar.header("Settings")
picker, uploader = st.sidebar.container(), st.sidebar.container()
with uploader:
    new_upload = upload_box()
if new_upload:
    state.dataset = new_upload
    state.just_uploaded = new_upload
    _reset_fields()
uploads = state.setdefault("uploads", [])
if is_upload_id(state.dataset) and state.dataset not in uploads:
    uploads.append(state.dataset)
id_choice, title_choice = state.get("id_choice", ""), state.get("title_choice", "")
try:
    loaded = load_named_dataset(state.dataset, id_choice, title_choice)
except CoreError as exc:
    state.setdefault("upload_labels", {})
    if id_choice or title_choice:
        st.error(f"Cannot use that id or title field: {exc}", icon="🚫")
        state.id_choice = state.title_choice = ""
        loaded = load_named_dataset(state.dataset)
    else:
        st.error(
            f"The dataset {BUILTIN_LABELS.get(state.dataset, state.dataset)} is not available: "
            f"{exc}",
            icon="🚫",
        )
        if state.dataset != "sample":
            st.info("Pick the built-in **Sample** dataset in the sidebar, or upload a file.")
        _dataset_picker(picker)
        st.stop()
dataset = loaded.dataset
if loaded.report is not None:
    state.setdefault("upload_labels", {})[state.dataset] = loaded.label
# Drawn after loading so an upload's label is known: a label that changed between runs
# would make Streamlit treat the picker as a new widget and reset it.
_dataset_picker(picker)
if loaded.report is not None:
    quality_report(loaded.report, expanded=state.pop("just_uploaded", None) == state.dataset)
    with picker:
        st.selectbox(
            "Id field",
            ["", ROW_IDS, *dataset.fields],
            key="id_choice",
            format_func=lambda f: {"": "suggested", ROW_IDS: "row position"}.get(f, f),
            help=f"Now: {dataset.id_field or 'row position'}. Values must be unique.",
        )
        st.selectbox(
            "Title field",
            ["", *dataset.fields],
            key="title_choice",
            format_func=lambda f: "suggested" if f == "" else f,
            help=f"Shown in lists. Now: {dataset.title_field or 'the id'}.",
        )

if "embed_fields" not in state:
    embed_wanted, rerank_wanted = state.pending_fields
    seeded = SearchSettings(embed_fields=embed_wanted, rerank_fields=rerank_wanted)
    seeded, field_warnings = seeded.with_dataset_fields(dataset.fields)
    for warning in field_warnings:
        st.warning(f"Link setting ignored: {warning}", icon="⚠️")
    state.embed_fields = list(seeded.embed_fields or dataset.default_embed_fields)
    state.rerank_fields = list(seeded.rerank_fields or dataset.default_rerank_fields)

with st.sidebar:
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
    st.multiselect(
        "Fields to embed / index",
        dataset.fields,
        key="embed_fields",
        help="Concatenated into the text the bi-encoder embeds and BM25 indexes.",
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
                [*PACKAGED_ENCODERS, OTHER_ENCODER],
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
    uses_together = state.reranker_choice == "together" or state.encoder_backend == "together"
    if uses_together:
        with st.expander("Together API key", expanded=together_api_key() is None):
            st.text_input(
                "API key",
                type="password",
                key="together_key",
                help="Kept only in this browser session: never in the link, logs or exports. "
                "Alternatively set TOGETHER_API_KEY or add it to .streamlit/secrets.toml.",
            )

if state.reranker_choice in (PACKAGED_CROSS_ENCODER, NO_RERANK):
    reranker_id = state.reranker_choice
elif state.reranker_choice == "together":
    reranker_id = "together:" + ((state.together_model or "").strip() or DEFAULT_RERANK_MODEL)
else:
    reranker_id = (state.st_model or "").strip() or SEED_CROSS_ENCODER
if state.encoder_backend == "together":
    encoder_id = "together:" + ((state.together_encoder or "").strip() or DEFAULT_EMBEDDING_MODEL)
elif state.get("encoder_pick", DEFAULT_ENCODER) != OTHER_ENCODER:
    encoder_id = state.get("encoder_pick") or DEFAULT_ENCODER
else:
    encoder_id = (state.get("encoder") or "").strip() or DEFAULT_ENCODER
settings = SearchSettings(
    dataset=state.dataset,
    query=state.query.strip(),
    candidates=state.candidates,
    results=state.results,
    embed_fields=tuple(state.embed_fields),
    rerank_fields=tuple(state.rerank_fields),
    encoder=encoder_id,
    reranker=reranker_id,
    id_field=state.get("id_choice", "") if loaded.report is not None else "",
    title_field=state.get("title_choice", "") if loaded.report is not None else "",
    retriever=state.retriever,
    fusion_weight=round(float(state.fusion_weight), 2),
    fusion=state.fusion,
    rrf_k=int(state.rrf_k),
)
# The URL always describes the view, so the address bar is a shareable link.
state.view = settings
params = settings.to_params()
if st.query_params.to_dict() != params:
    st.query_params.from_dict(params)

# --- query ------------------------------------------------------------------------
st.text_input("Query", key="query", placeholder="Describe what you are looking for…")
examples = EXAMPLE_QUERIES.get(settings.dataset, ())
if examples:
    cols = st.columns(len(examples))
    for col, text in zip(cols, examples, strict=True):
        col.button(text, on_click=_use_example, args=(text,), width="stretch", type="tertiary")

if not settings.query:
    st.info("Type a query or pick an example to see both orders side by side.")
    st.stop()
if not settings.embed_fields:
    st.error("Choose at least one field to embed.")
    st.stop()

# --- run ----------------------------------------------------------------------------
notices = []
api_key = together_api_key() if uses_together else None
if uses_together and api_key is None:
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
    try:
        encoder = encoder_for(settings.encoder, api_key)
    except ModelUnavailableError as exc:
        st.error(str(exc), icon="🚫")
        st.stop()
reranker = fallback = None
if settings.reranker != NO_RERANK:
    if not settings.rerank_fields:
        st.error("Choose at least one field for the reranker to read, or pick no reranker.")
        st.stop()
    if state.reranker_choice == "together" and api_key is None:
        notices.append("Together rerank needs an API key; showing retrieval only.")
    else:
        try:
            reranker = reranker_for(settings.reranker, api_key)
        except ModelUnavailableError as exc:
            notices.append(f"{exc} Showing retrieval only.")
    wants_fallback = state.reranker_choice == "together" and state.get("together_fallback")
    if reranker is not None and wants_fallback:
        fallback = get_reranker(PACKAGED_CROSS_ENCODER)

cached = state.get("last_search")
try:
    build = get_index(dataset, encoder, settings.embed_fields) if encoder is not None else None
    retriever = make_retriever(
        settings.retriever,
        dataset,
        settings.embed_fields,
        encoder=encoder,
        index=build.index if build is not None else None,
        rrf_k=settings.rrf_k,
    )
    run_key = (settings, reranker is not None, fallback is not None)
    if cached is not None and cached[0] == run_key:
        # Reruns caused by the details picker, the score toggle or a download reuse the
        # result instead of scoring every candidate again.
        result: SearchResult = cached[1]
    else:
        result = search_with_rerank(
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
            # hosted rerank APIs are asked for the top-N only, as in the seed flow
            rerank_top_n=settings.results if state.reranker_choice == "together" else None,
            fallback=fallback,
        )
except CoreError as exc:
    st.error(str(exc), icon="🚫")
    st.stop()
state.last_search = (run_key, result)
state.last_result = result
for notice in [*notices, *([result.notice] if result.notice else [])]:
    st.warning(notice, icon="⚠️")

# --- summary --------------------------------------------------------------------------
summary = summarize(result)
t = result.timings
cols = st.columns(6)
if summary:
    cols[0].metric(
        "Top result",
        "changed" if summary.top_changed else "same",
        help="Did the reranker put a different item first?",
    )
    cols[1].metric(
        "Kendall τ",
        f"{summary.kendall_tau:.2f}",
        help="Agreement of the two orders over all candidates: 1 = identical, "
        "0 = unrelated, −1 = reversed.",
    )
    cols[2].metric(
        f"Top-{result.num_results} overlap",
        f"{summary.overlap:.0%}",
        help="Share of the reranked top-N that retrieval also had in its top-N.",
    )
    cols[3].metric(
        "From outside top-N",
        summary.from_outside,
        help=f"Reranked top-{result.num_results} items that retrieval ranked lower.",
    )
else:
    cols[0].metric("Reranker", "none")
cols[4].metric("Rerank", f"{t.rerank * 1000:.0f} ms", help=f"{result.num_candidates} pairs scored")
cols[5].metric(
    "Total",
    f"{t.total * 1000:.0f} ms",
    help=f"query encoding {t.query_encode * 1000:.0f} ms · search "
    f"{t.search * 1000:.1f} ms · rerank {t.rerank * 1000:.0f} ms",
)
if build is None:
    corpus_note = "BM25 index in memory"
elif build.from_cache:
    corpus_note = "corpus embeddings from disk cache"
else:
    corpus_note = f"corpus embeddings encoded in {build.seconds:.1f} s"
st.caption(
    f"Timings: query encoding **{t.query_encode * 1000:.0f} ms** · search "
    f"**{t.search * 1000:.1f} ms** · rerank **{t.rerank * 1000:.0f} ms** · total "
    f"**{t.total * 1000:.0f} ms** · {corpus_note}"
)
if summary and summary.truncated:
    st.warning(
        f"{summary.truncated} candidate text(s) were longer than the reranker's maximum "
        "length and were truncated (see Details).",
        icon="✂️",
    )

# --- both orders ----------------------------------------------------------------------
score_label = "relevance" if result.score_kind == "relevance" else "logit"
first_label = retrieval_score_label(result)
first_stage = RETRIEVER_LABELS[result.retriever]
if result.retriever != "bm25":
    first_stage += f" · {result.encoder}"
left, right = st.columns(2)
with left:
    st.subheader("Retrieval order")
    st.caption(f"{first_stage} · {first_label} score")
    st.dataframe(
        pd.DataFrame(
            {
                "#": [c.retrieval_rank for c in result.top_retrieval],
                "title": [c.title for c in result.top_retrieval],
                first_label: [c.retrieval_score for c in result.top_retrieval],
                "final #": [
                    c.final_rank if result.reranker else None for c in result.top_retrieval
                ],
            }
        ),
        hide_index=True,
        column_config={first_label: st.column_config.NumberColumn(format="%.3f")},
        key="retrieval_table",
    )
with right:
    if result.fused:
        st.subheader("Fused order")
        st.caption(
            f"{result.reranker} · weight {result.fusion_weight:g} on the cross-encoder, "
            f"{1 - result.fusion_weight:g} on the first stage ({FUSION_LABELS[result.fusion]})"
        )
    else:
        st.subheader("Reranked order" if result.reranker else "Final order (no reranker)")
        st.caption(f"{result.reranker} · {score_label}" if result.reranker else "retrieval order")
    top = result.top_final
    columns = {
        "#": [c.final_rank for c in top],
        "title": [c.title for c in top],
        score_label: [c.rerank_score for c in top],
    }
    if result.fused:
        columns["fused"] = [c.fused_score for c in top]
        columns["rerank #"] = [c.rerank_rank for c in top]
    columns["retrieval #"] = [c.retrieval_rank for c in top]
    columns["move"] = [badge(c) for c in top]
    st.dataframe(
        pd.DataFrame(columns),
        hide_index=True,
        column_config={
            score_label: st.column_config.NumberColumn(format="%.2f"),
            "fused": st.column_config.NumberColumn(format="%.3f"),
        },
        key="rerank_table",
    )

if result.reranker:
    st.subheader("Rank movement")
    st.caption(
        "Each line is one item, from its retrieval rank (left) to its reranked rank "
        f"(right). Dashed lines and hollow marks: items that entered or left the "
        f"top-{result.num_results} (below the dotted line). Hover for titles and scores."
    )
    st.altair_chart(movement_chart(result), width="stretch")

    st.subheader("Scores")
    normalized = st.toggle(
        "Show reranker scores as sigmoid(logit) in 0–1",
        disabled=result.score_kind == "relevance",
        help="Raw logits are what the cross-encoder outputs; sigmoid maps them to the "
        "model's estimate of P(relevant). Cosine and reranker scores are never drawn on "
        "one axis.",
    )
    c1, c2 = st.columns(2)
    c1.caption(f"Retrieval: {first_label} score")
    c1.altair_chart(score_chart(result, "retrieval"), width="stretch")
    c2.caption("Reranker: " + ("normalised score" if normalized else "raw score"))
    c2.altair_chart(score_chart(result, "rerank", normalized=normalized), width="stretch")

# --- details and export -----------------------------------------------------------------
st.subheader("Details")
by_label = {f"{c.final_rank}. {c.title}": c for c in result.top_final}
picked = by_label[st.selectbox("Result", list(by_label), key="detail_pick")]
d1, d2 = st.columns(2)
with d1:
    st.markdown("**Record**")
    st.json(picked.record)
with d2:
    st.markdown("**Exactly what the reranker read**" if result.reranker else "**Rerank text**")
    if picked.truncated:
        st.warning("Truncated: this text exceeded the reranker's maximum length.", icon="✂️")
    st.code(picked.rerank_text or "(no reranker)", language=None, wrap_lines=True)
    st.markdown(
        f"Retrieval **#{picked.retrieval_rank}** ({first_label} {picked.retrieval_score:.3f})"
        + (
            f" → reranked **#{picked.final_rank}** ({score_label} {picked.rerank_score:.2f}, "
            f"normalised {picked.rerank_normalized:.3f}) {badge(picked)}"
            if picked.rerank_score is not None
            else ""
        )
    )

# --- judging -------------------------------------------------------------------------
# Ratings live in the session per dataset and query; the Evaluate page reads them too.
all_judgments = state.setdefault("judgments", {}).setdefault(settings.dataset, {})
ratings = all_judgments.setdefault(result.query, {})
with st.expander("Judge these results: are they relevant? (0–3)", expanded=bool(ratings)):
    shown = {c.id: c for c in [*result.top_final, *result.top_retrieval]}
    frame = pd.DataFrame(
        {
            "id": list(shown),
            "title": [c.title for c in shown.values()],
            "retrieval #": [c.retrieval_rank for c in shown.values()],
            "final #": [c.final_rank for c in shown.values()],
            "rating": [ratings.get(doc_id) for doc_id in shown],
        }
    )
    edited = st.data_editor(
        frame,
        hide_index=True,
        disabled=["id", "title", "retrieval #", "final #"],
        column_config={
            "rating": st.column_config.NumberColumn(
                "rating",
                min_value=0,
                max_value=3,
                step=1,
                help="0 not relevant · 1 somewhat · 2 relevant · 3 perfect",
            )
        },
        key=f"judge-{settings.dataset}-{result.query}",
    )
    for doc_id, rating in zip(edited["id"], edited["rating"], strict=True):
        if pd.notna(rating):
            ratings[str(doc_id)] = int(rating)
        else:
            ratings.pop(str(doc_id), None)
    figures = judged_metrics(result, ratings)
    if figures is None:
        st.caption("Rate at least one result above 0 to compare the two orders.")
    else:
        k = result.num_results
        j1, j2 = st.columns(2)
        j1.metric(
            f"nDCG@{k}: base → reranked",
            f"{figures['base_ndcg']:.3f} → {figures['reranked_ndcg']:.3f}",
            delta=f"{figures['reranked_ndcg'] - figures['base_ndcg']:+.3f}",
        )
        j2.metric(
            f"MRR@{k}: base → reranked",
            f"{figures['base_mrr']:.3f} → {figures['reranked_mrr']:.3f}",
            delta=f"{figures['reranked_mrr'] - figures['base_mrr']:+.3f}",
        )
    i1, i2 = st.columns(2)
    i1.download_button(
        "Export judgments (CSV)",
        dump_judgments_csv({q: r for q, r in all_judgments.items() if r}),
        f"judgments-{settings.dataset}.csv",
        "text/csv",
        on_click="ignore",
    )
    imported = i2.file_uploader("Import judgments (CSV)", type=["csv"], key="judgments_csv")
    if imported is not None and state.get("judgments_imported") != imported.file_id:
        try:
            for query, docs in load_judgments_csv(imported.getvalue()).items():
                all_judgments.setdefault(query, {}).update(docs)
            state.judgments_imported = imported.file_id
            st.rerun()
        except CoreError as exc:
            st.error(str(exc), icon="🚫")

e1, e2, _ = st.columns([1, 1, 4])
e1.download_button(
    "Download CSV", export_csv(result), "rerank-results.csv", "text/csv", on_click="ignore"
)
e2.download_button(
    "Download JSON",
    export_json(result),
    "rerank-results.json",
    "application/json",
    on_click="ignore",
)
st.caption("Share this view: copy the address bar. Every setting is in the link.")
