"""Ceiling & fields page: what retrieval hides from the reranker, and which fields it needs."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.data.datasets import BUILTIN
from core.data.documents import Dataset
from core.data.uploads import is_upload_id
from core.errors import CoreError, ModelUnavailableError
from core.models.base import DEFAULT_ENCODER, PACKAGED_CROSS_ENCODER, SEED_CROSS_ENCODER, Encoder
from core.present.charts import ablation_chart, ceiling_chart
from core.present.views import (
    CANDIDATES_RANGE,
    EXAMPLE_QUERIES,
    NO_RERANK,
    RERANKER_CHOICES,
    RESULTS_RANGE,
    SearchSettings,
    reranker_choice,
)
from core.quality.diagnostics import MAX_CEILING_DOCS, field_ablation, recall_ceiling, score_corpus
from core.search.retrievers import RETRIEVER_KINDS, RETRIEVER_LABELS, make_retriever
from pages.common import BUILTIN_LABELS, get_encoder, get_index, get_reranker, load_named_dataset

VIEWS = {"ceiling": "Recall ceiling", "fields": "Field ablation"}
# Local rerankers only: the ceiling sends every record of the corpus to the reranker.
RERANKERS = {k: RERANKER_CHOICES[k] for k in (PACKAGED_CROSS_ENCODER, "sentence-transformers")}
RERANKERS[NO_RERANK] = "None"


def retrieval_order(
    dataset: Dataset, query: str, kind: str, encoder: Encoder | None, fields: tuple[str, ...]
) -> list[str]:
    """Doc ids, best first, by the chosen first stage over the whole corpus (BM25 lists
    only documents sharing a word with the query).

    The one place that decides the retriever: both views take its order as is.
    """
    index = get_index(dataset, encoder, fields).index if encoder is not None else None
    retriever = make_retriever(kind, dataset, fields, encoder=encoder, index=index)
    return [hit.id for hit in retriever.retrieve(query, len(dataset)).hits]


# --- settings ---------------------------------------------------------------------------
# First visit: a deep link's parameters, else what this page showed last, else the
# Search page's view. Widget state is dropped while another page is shown, so
# ``diag_settings`` remembers this page's settings.
state = st.session_state
if "diag_query" not in state:
    has_params = any(k in st.query_params for k in ("q", "dataset", "k", "n", "view"))
    seed, _ = SearchSettings.from_params(st.query_params.to_dict())
    if not has_params:
        seed = state.get("diag_settings") or state.get("view") or seed
    known = (*BUILTIN, *state.get("uploads", []))
    choice, typed = reranker_choice(seed.reranker)
    state.update(
        diag_dataset=seed.dataset
        if seed.dataset in known or is_upload_id(seed.dataset)
        else "movies",
        diag_query=seed.query,
        diag_candidates=seed.candidates,
        diag_results=seed.results,
        diag_reranker=choice if choice in RERANKERS else PACKAGED_CROSS_ENCODER,
        diag_st_model=typed if choice == "sentence-transformers" else SEED_CROSS_ENCODER,
        diag_pending_fields=(seed.embed_fields, seed.rerank_fields),
        diag_encoder=seed.encoder if not seed.encoder.startswith("together:") else DEFAULT_ENCODER,
        diag_retriever=seed.retriever,
    )
    state.diag_view = st.query_params.get("view", state.get("diag_last_view", "ceiling"))
    if state.diag_view not in VIEWS:
        state.diag_view = "ceiling"
    state.pop("diag_rerank_fields", None)


def _reset_fields() -> None:
    state.diag_pending_fields = ((), ())
    state.pop("diag_rerank_fields", None)


def _use_example(text: str) -> None:
    state.diag_query = text


st.title("Recall ceiling & field ablation")
st.caption(
    "Two questions about the reranker: which results would it have shown if retrieval "
    "had handed it more candidates, and how much does it depend on the fields it reads?"
)

with st.sidebar:
    st.header("Settings")
    labels = {**BUILTIN_LABELS, **state.get("upload_labels", {})}
    uploads = state.get("uploads", [])
    if is_upload_id(state.diag_dataset) and state.diag_dataset not in uploads:
        uploads = [*uploads, state.diag_dataset]
    st.selectbox(
        "Dataset",
        [*BUILTIN, *uploads],
        key="diag_dataset",
        format_func=lambda name: labels.get(name, name),
        on_change=_reset_fields,
    )
    st.selectbox(
        "First stage",
        list(RETRIEVER_KINDS),
        key="diag_retriever",
        format_func=RETRIEVER_LABELS.get,
    )
    st.slider(
        "Candidates retrieved",
        *CANDIDATES_RANGE,
        key="diag_candidates",
        help="The current setting: how many candidates retrieval hands to the reranker.",
    )
    st.slider("Results shown (N)", *RESULTS_RANGE, key="diag_results", help="The top-N.")
    st.selectbox("Reranker", list(RERANKERS), key="diag_reranker", format_func=RERANKERS.get)
    if state.diag_reranker == "sentence-transformers":
        st.text_input("CrossEncoder model id", key="diag_st_model")
    st.caption("Hosted rerankers are not offered here: the ceiling reranks every record.")

try:
    dataset = load_named_dataset(state.diag_dataset).dataset
except CoreError as exc:
    st.error(
        f"The dataset {labels.get(state.diag_dataset, state.diag_dataset)} is not available: {exc}",
        icon="🚫",
    )
    if state.diag_dataset != "sample":
        st.info("Pick the built-in **Sample** dataset in the sidebar.")
    st.stop()

embed_wanted, rerank_wanted = state.diag_pending_fields
embed_fields = tuple(f for f in embed_wanted if f in dataset.fields)
embed_fields = embed_fields or dataset.default_embed_fields
if "diag_rerank_fields" not in state:
    kept = [f for f in rerank_wanted if f in dataset.fields]
    state.diag_rerank_fields = kept or list(dataset.default_rerank_fields)
st.sidebar.multiselect(
    "Fields the reranker reads (ceiling)",
    dataset.fields,
    key="diag_rerank_fields",
    help="The field ablation compares its own field sets.",
)

if state.diag_reranker == NO_RERANK:
    reranker_id = NO_RERANK
elif state.diag_reranker == "sentence-transformers":
    reranker_id = (state.diag_st_model or "").strip() or SEED_CROSS_ENCODER
else:
    reranker_id = PACKAGED_CROSS_ENCODER
query = (state.diag_query or "").strip()
k, n = int(state.diag_candidates), int(state.diag_results)
settings = SearchSettings(
    dataset=state.diag_dataset,
    query=query,
    candidates=k,
    results=n,
    embed_fields=embed_wanted,
    rerank_fields=tuple(state.diag_rerank_fields),
    encoder=state.diag_encoder,
    reranker=reranker_id,
    retriever=state.diag_retriever,
)
state.diag_settings = settings
state.diag_last_view = state.diag_view
params = {**settings.to_params(), "view": state.diag_view}
if st.query_params.to_dict() != params:
    st.query_params.from_dict(params)

# --- query ------------------------------------------------------------------------------
st.text_input("Query", key="diag_query", placeholder="Describe what you are looking for…")
examples = EXAMPLE_QUERIES.get(state.diag_dataset, ())
if examples:
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

if not query:
    st.info("Type a query or pick an example to see the recall ceiling and the field ablation.")
    st.stop()
if reranker_id == NO_RERANK:
    st.error("Both views are about a reranker: pick one in the sidebar.", icon="🚫")
    st.stop()
try:
    reranker = get_reranker(reranker_id)
    encoder = get_encoder(settings.encoder) if settings.retriever != "bm25" else None
except ModelUnavailableError as exc:
    st.error(str(exc), icon="🚫")
    st.stop()
try:
    order = retrieval_order(dataset, query, settings.retriever, encoder, embed_fields)
except CoreError as exc:
    st.error(str(exc), icon="🚫")
    st.stop()
st.caption(
    f"Retrieval: {RETRIEVER_LABELS[settings.retriever]}"
    + (f", {encoder.name}" if encoder is not None else "")
    + f" over {', '.join(embed_fields)} · reranker: "
    f"{reranker.name} · {k} candidates · top-{n}"
)

# --- recall ceiling -----------------------------------------------------------------------
if view == "ceiling":
    st.subheader("Recall ceiling")
    st.caption(
        "The reranker scores the whole corpus once for this query; its best N over every "
        "record is its *ideal* top-N. Retrieval only hands it the first candidates, so "
        "an ideal item retrieval ranked lower can never be shown. A cross-encoder scores "
        "each (query, document) pair on its own, so reranking the first x candidates "
        "gives exactly the ideal order restricted to them."
    )
    if len(dataset) > MAX_CEILING_DOCS:
        st.error(
            f"The recall ceiling reranks every record, so it is limited to "
            f"{MAX_CEILING_DOCS:,} records; this dataset has {len(dataset):,}. "
            "The field ablation works on any size.",
            icon="🚫",
        )
        st.stop()
    if not state.diag_rerank_fields:
        st.error("Choose at least one field for the reranker to read.", icon="🚫")
        st.stop()
    progress_slot = st.empty()

    def _progress(done: int, total: int) -> None:
        text = f"Reranking the whole corpus: {done:,} / {total:,} records"
        progress_slot.progress(done / max(total, 1), text=text)

    try:
        with st.spinner(f"Reranking all {len(dataset):,} records (once per query)…"):
            scores = score_corpus(
                dataset, query, reranker, tuple(state.diag_rerank_fields), progress=_progress
            )
        report = recall_ceiling(dataset, scores, order, num_candidates=k, num_results=n)
    except CoreError as exc:
        st.error(str(exc), icon="🚫")
        st.stop()
    progress_slot.empty()

    n = report.num_results
    full = report.candidates_for_all
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(
        f"Ideal top-{n} reached with {k}",
        f"{report.reached} / {n}",
        help=f"Items of the reranker's best {n} over the whole corpus that are among "
        f"the first {k} retrieved.",
    )
    c2.metric(
        f"Candidates to reach all {n}",
        f"{full:,}" if full else "never",
        help="The retrieval rank of the lowest-ranked ideal item.",
    )
    c3.metric(
        "Whole-corpus rerank",
        f"{report.rerank_seconds:.1f} s",
        help=f"{report.corpus_size:,} pairs, {report.per_pair_ms:.1f} ms per pair, measured "
        + ("when first computed (now read from the cache)" if report.from_cache else "just now"),
    )
    c4.metric(
        f"Est. rerank of {k}",
        f"{report.estimated_ms(k):,.0f} ms",
        help="An estimate: candidates × the measured time per pair.",
    )

    missed = report.missed
    st.markdown(f"**Ideal top-{n} items that {k} candidates miss ({len(missed)})**")
    if missed:
        st.dataframe(
            pd.DataFrame(
                {
                    "title": [i.title for i in missed],
                    "reranker #": [i.ideal_rank for i in missed],
                    "retrieval #": [i.retrieval_rank for i in missed],
                    "score": [i.score for i in missed],
                }
            ),
            hide_index=True,
            column_config={
                "score": st.column_config.NumberColumn(format="%.2f"),
                "retrieval #": st.column_config.NumberColumn(help="empty: never retrieved"),
            },
            key="ceiling_missed",
        )
    else:
        st.success(f"Retrieval fetched every item of the reranker's ideal top-{n}.")

    st.markdown("**More candidates: what they reach, what they cost**")
    st.caption(
        f"Blue steps: items of the ideal top-{n} among the first x retrieved. Red dashes: "
        f"estimated rerank time for x candidates, from the measured {report.per_pair_ms:.1f} "
        "ms per pair (an estimate, not a measurement at each x). Dotted line: now."
    )
    st.altair_chart(ceiling_chart(report), width="stretch")
    with st.expander(f"The reranker's ideal top-{n}"):
        st.dataframe(
            pd.DataFrame(
                {
                    "reranker #": [i.ideal_rank for i in report.ideal],
                    "title": [i.title for i in report.ideal],
                    "retrieval #": [i.retrieval_rank for i in report.ideal],
                    "score": [i.score for i in report.ideal],
                    f"within {k}": ["yes" if i.reached_with(k) else "no" for i in report.ideal],
                }
            ),
            hide_index=True,
            column_config={"score": st.column_config.NumberColumn(format="%.2f")},
            key="ceiling_ideal",
        )

# --- field ablation -----------------------------------------------------------------------
else:
    st.subheader("Field ablation")
    st.caption(
        "The same candidates, reranked reading different fields. Why it matters: the "
        "Together cookbook sent the reranker movie titles only, and for a Batman query "
        "*The Dark Knight* fell out of its top results: its title never says bat."
    )
    try:
        with st.spinner("Reranking the candidates once per field set…"):
            ablation = field_ablation(dataset, query, reranker, order[:k], num_results=n)
    except CoreError as exc:
        st.error(str(exc), icon="🚫")
        st.stop()
    n = ablation.num_results
    # Letters keep the rank columns narrow enough for three tables side by side.
    letters = {name: chr(ord("A") + i) for i, name in enumerate(ablation.names)}
    cols = st.columns(len(ablation.rankings))
    for col, ranking in zip(cols, ablation.rankings, strict=True):
        name = ranking.variant.name
        col.markdown(f"**{letters[name]} · {name}**")
        col.caption("reads: " + ", ".join(ranking.variant.fields))
        rows = pd.DataFrame(ablation.side_by_side(name))
        rows = rows.drop(columns=["id", "score", "retrieval #"]).rename(
            columns={f"{other} #": f"{letters[other]} #" for other in ablation.names}
        )
        col.dataframe(
            rows,
            hide_index=True,
            column_config={
                "#": st.column_config.NumberColumn(width=36),
                # narrow enough that the rank columns stay in view beside long titles
                "title": st.column_config.TextColumn(width=170),
                **{
                    f"{letters[o]} #": st.column_config.NumberColumn(
                        width=44, help=f"Rank when reading {o}"
                    )
                    for o in ablation.names
                },
            },
            key=f"ablation_{name}",
        )
    with st.expander("Scores and retrieval ranks of these items"):
        wide = pd.DataFrame(ablation.union_rows()).drop(columns=["id"])
        st.dataframe(
            wide,
            hide_index=True,
            column_config={
                f"{o} score": st.column_config.NumberColumn(format="%.2f") for o in ablation.names
            },
            key="ablation_scores",
        )

    st.markdown("**Agreement between field sets**")
    st.dataframe(
        pd.DataFrame(
            {
                "field sets": [f"{a.a} vs {a.b}" for a in ablation.agreements],
                "Kendall τ": [a.kendall_tau for a in ablation.agreements],
                "RBO (p=0.9)": [a.rbo for a in ablation.agreements],
                f"overlap@{n}": [a.overlap for a in ablation.agreements],
            }
        ),
        hide_index=True,
        column_config={
            "Kendall τ": st.column_config.NumberColumn(
                format="%.2f",
                help=f"Over all {len(ablation.candidates)} candidates: 1 = same order",
            ),
            "RBO (p=0.9)": st.column_config.NumberColumn(
                format="%.2f", help="Rank-biased overlap: top-weighted, 1 = identical"
            ),
            f"overlap@{n}": st.column_config.NumberColumn(
                format="%.2f", help=f"Shared share of the two top-{n}s"
            ),
        },
        key="ablation_agreement",
    )
    st.markdown("**Rank under each field set**")
    st.caption(
        f"One line per item in any field set's top-{n}; below the dotted line it is "
        "outside that top-N. Hover for every rank."
    )
    st.altair_chart(ablation_chart(ablation), width="content")
