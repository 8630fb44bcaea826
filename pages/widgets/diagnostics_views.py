"""The Ceiling & fields page's sidebar and its two views: the recall ceiling and the
field ablation.

Functions only: nothing here draws on import. The tables and texts come from
core.present (tested without Streamlit); these functions lay them out.
"""

from __future__ import annotations

import streamlit as st

from core.data.documents import Dataset
from core.models.base import Reranker
from core.models.errors import CoreError
from core.present.charts import ablation_chart, ceiling_chart
from core.present.diagnostics_state import RERANKERS, dataset_choices
from core.present.tables import (
    ablation_scores_table,
    agreement_table,
    ideal_table,
    missed_table,
    variant_letters,
    variant_table,
)
from core.present.views import CANDIDATES_RANGE, RESULTS_RANGE, error_text, escape_markdown
from core.quality import diagnostics
from core.quality.diagnostics import field_ablation, recall_ceiling, score_corpus
from core.search.retrievers import RETRIEVER_KINDS, RETRIEVER_LABELS
from pages.widgets.costs import may_run


def _reset_fields() -> None:
    st.session_state.diag_pending_fields = ((), ())
    st.session_state.pop("diag_rerank_fields", None)


def settings_sidebar(labels: dict[str, str]) -> None:
    """Dataset, first stage, candidates, results and reranker (local ones only)."""
    state = st.session_state
    st.header("Settings")
    st.selectbox(
        "Dataset",
        dataset_choices(state.diag_dataset, state.get("uploads", [])),
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


def ceiling_view(
    dataset: Dataset, query: str, reranker: Reranker, order: list[str], k: int, n: int
) -> None:
    """Which of the reranker's ideal top-N (over the whole corpus) ``k`` candidates
    reach, which they miss, and what more candidates would reach and cost."""
    state = st.session_state
    st.subheader("Recall ceiling")
    st.caption(
        "The reranker scores the whole corpus once for this query; its best N over every "
        "record is its *ideal* top-N. Retrieval only hands it the first candidates, so "
        "an ideal item retrieval ranked lower can never be shown. A cross-encoder scores "
        "each (query, document) pair on its own, so reranking the first x candidates "
        "gives exactly the ideal order restricted to them."
    )
    limit = diagnostics.MAX_CEILING_DOCS  # read at run time: a test lowers it
    if len(dataset) > limit:
        st.error(
            f"The recall ceiling reranks every record, so it is limited to "
            f"{limit:,} records; this dataset has {len(dataset):,}. "
            "The field ablation works on any size.",
            icon="🚫",
        )
        st.stop()
    if not state.diag_rerank_fields:
        st.error("Choose at least one field for the reranker to read.", icon="🚫")
        st.stop()
    cost = diagnostics.ceiling_cost(dataset, query, reranker, tuple(state.diag_rerank_fields))
    if not may_run(cost, f"ceiling-{dataset.content_hash}-{query}"):
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
        st.error(error_text(exc), icon="🚫")
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

    st.markdown(f"**Ideal top-{n} items that {k} candidates miss ({len(report.missed)})**")
    if report.missed:
        st.dataframe(
            missed_table(report),
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
            ideal_table(report, k),
            hide_index=True,
            column_config={"score": st.column_config.NumberColumn(format="%.2f")},
            key="ceiling_ideal",
        )


def ablation_view(
    dataset: Dataset, query: str, reranker: Reranker, order: list[str], k: int, n: int
) -> None:
    """The same ``k`` candidates reranked reading different field sets, side by side,
    with how much the orders agree."""
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
        st.error(error_text(exc), icon="🚫")
        st.stop()
    n = ablation.num_results
    # Letters keep the rank columns narrow enough for three tables side by side.
    letters = variant_letters(ablation)
    cols = st.columns(len(ablation.rankings))
    for col, ranking in zip(cols, ablation.rankings, strict=True):
        name = ranking.variant.name
        col.markdown(f"**{letters[name]} · {escape_markdown(name)}**")
        col.caption("reads: " + escape_markdown(", ".join(ranking.variant.fields)))
        col.dataframe(
            variant_table(ablation, name),
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
        st.dataframe(
            ablation_scores_table(ablation),
            hide_index=True,
            column_config={
                f"{o} score": st.column_config.NumberColumn(format="%.2f") for o in ablation.names
            },
            key="ablation_scores",
        )

    st.markdown("**Agreement between field sets**")
    st.dataframe(
        agreement_table(ablation),
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
