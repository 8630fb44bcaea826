"""The Search page's result sections: summary figures, both orders, charts, details,
judging and export.

Functions only: nothing here draws on import. The tables and texts come from
core.present (tested without Streamlit); these functions lay them out.
"""

from __future__ import annotations

import streamlit as st

from core.data.beir import dump_judgments_csv, load_judgments_csv
from core.models.errors import CoreError
from core.present.charts import movement_chart, score_chart
from core.present.explain import json_with_explanations
from core.present.report import search_report
from core.present.tables import (
    detail_scores,
    final_heading,
    final_table,
    first_stage_caption,
    judging_table,
    rerank_score_label,
    retrieval_table,
    timings_caption,
    update_ratings,
)
from core.present.views import (
    error_text,
    export_csv,
    export_json,
    judged_metrics,
    retrieval_score_label,
    summarize,
)
from core.search.index import IndexBuild
from core.search.pipeline import SearchResult
from pages.widgets.explain_panel import explain_panel, opened
from pages.widgets.passage_panel import dense_details, passage_details, reading_caption
from pages.widgets.quality_panels import judge_prompt


def summary(result: SearchResult, build: IndexBuild | None) -> None:
    """How much the reranker changed the order, and how long each stage took."""
    figures = summarize(result)
    t = result.timings
    cols = st.columns(6)
    if figures:
        cols[0].metric(
            "Top result",
            "changed" if figures.top_changed else "same",
            help="Did the reranker put a different item first?",
        )
        cols[1].metric(
            "Kendall τ",
            f"{figures.kendall_tau:.2f}",
            help="Agreement of the two orders over all candidates: 1 = identical, "
            "0 = unrelated, −1 = reversed.",
        )
        cols[2].metric(
            f"Top-{result.num_results} overlap",
            f"{figures.overlap:.0%}",
            help="Share of the reranked top-N that retrieval also had in its top-N.",
        )
        cols[3].metric(
            "From outside top-N",
            figures.from_outside,
            help=f"Reranked top-{result.num_results} items that retrieval ranked lower.",
        )
    else:
        cols[0].metric("Reranker", "none")
    cols[4].metric(
        "Rerank", f"{t.rerank * 1000:.0f} ms", help=f"{result.num_candidates} pairs scored"
    )
    cols[5].metric(
        "Total",
        f"{t.total * 1000:.0f} ms",
        help=f"query encoding {t.query_encode * 1000:.0f} ms · search "
        f"{t.search * 1000:.1f} ms · rerank {t.rerank * 1000:.0f} ms",
    )
    st.caption(timings_caption(result, build))
    if result.reranker:
        reading_caption(result)
    if figures and figures.truncated and result.passage_settings is None:
        st.warning(
            f"{figures.truncated} candidate text(s) were longer than the reranker's maximum "
            "length and were truncated (see Details).",
            icon="✂️",
        )


def both_orders(result: SearchResult) -> None:
    """The retrieval order and the final order, side by side."""
    first_label, score_label = retrieval_score_label(result), rerank_score_label(result)
    left, right = st.columns(2)
    with left:
        st.subheader("Retrieval order")
        st.caption(first_stage_caption(result))
        st.dataframe(
            retrieval_table(result),
            hide_index=True,
            column_config={first_label: st.column_config.NumberColumn(format="%.3f")},
            key="retrieval_table",
        )
    with right:
        heading, caption = final_heading(result)
        st.subheader(heading)
        st.caption(caption)
        st.dataframe(
            final_table(result),
            hide_index=True,
            column_config={
                score_label: st.column_config.NumberColumn(format="%.2f"),
                "fused": st.column_config.NumberColumn(format="%.3f"),
            },
            key="rerank_table",
        )


def movement_and_scores(result: SearchResult) -> None:
    """The rank movement chart and both stages' score distributions."""
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
    c1.caption(f"Retrieval: {retrieval_score_label(result)} score")
    c1.altair_chart(score_chart(result, "retrieval"), width="stretch")
    c2.caption("Reranker: " + ("normalised score" if normalized else "raw score"))
    c2.altair_chart(score_chart(result, "rerank", normalized=normalized), width="stretch")


def details(result: SearchResult) -> None:
    """One picked result: its record, and exactly the text the reranker read."""
    st.subheader("Details")
    by_label = {f"{c.final_rank}. {c.title}": c for c in result.top_final}
    picked = by_label[st.selectbox("Result", list(by_label), key="detail_pick")]
    d1, d2 = st.columns(2)
    with d1:
        st.markdown("**Record**")
        st.json(picked.record)
        dense_details(result, picked)
    with d2:
        st.markdown("**Exactly what the reranker read**" if result.reranker else "**Rerank text**")
        if picked.passages is not None:
            passage_details(result, picked)
        else:
            if picked.truncated:
                st.warning("Truncated: this text exceeded the reranker's maximum length.", icon="✂️")
            st.code(picked.rerank_text or "(no reranker)", language=None, wrap_lines=True)
        st.markdown(detail_scores(result, picked))
    explain_panel(result, picked)


def judging(dataset_name: str, result: SearchResult) -> None:
    """Rate the shown results (any whole-number grades); compare both orders on the
    ratings; export/import. Unrated documents the reranker brought into the top N are
    offered for rating in one click.

    Ratings live in the session per dataset and query; the Evaluate page reads them too.
    """
    state = st.session_state
    all_judgments = state.setdefault("judgments", {}).setdefault(dataset_name, {})
    ratings = all_judgments.setdefault(result.query, {})
    focus = judge_prompt(result, ratings)
    with st.expander(
        "Judge these results: are they relevant? (0–3, or any whole-number scale)",
        expanded=bool(ratings) or focus is not None,
    ):
        edited = st.data_editor(
            judging_table(result, ratings, only=focus),
            hide_index=True,
            disabled=["id", "title", "retrieval #", "final #"],
            column_config={
                "rating": st.column_config.NumberColumn(
                    "rating",
                    min_value=0,
                    step=1,
                    help="0 not relevant · 1 somewhat · 2 relevant · 3 perfect (or your "
                    "own scale: any whole number, e.g. Quepid's 0-4)",
                )
            },
            key=f"judge-{dataset_name}-{result.query}-{'new' if focus else 'all'}",
        )
        update_ratings(ratings, edited)
        _judged_figures(result, ratings)
        i1, i2 = st.columns(2)
        i1.download_button(
            "Export judgments (CSV)",
            dump_judgments_csv({q: r for q, r in all_judgments.items() if r}),
            f"judgments-{dataset_name}.csv",
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
                st.error(error_text(exc), icon="🚫")


def _judged_figures(result: SearchResult, ratings: dict[str, int]) -> None:
    figures = judged_metrics(result, ratings)
    if figures is None:
        st.caption("Rate at least one result above 0 to compare the two orders.")
        return
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
    st.caption(
        f"Rated in the top {k}: {figures['base_judged']:.0%} → "
        f"{figures['reranked_judged']:.0%}. Condensed nDCG@{k} (unrated documents removed "
        f"first): {figures['base_ndcg_cond']:.3f} → {figures['reranked_ndcg_cond']:.3f}; "
        "the figures above count them irrelevant."
    )


def downloads(result: SearchResult, manifest=None) -> None:
    """Download every candidate of this search as CSV or JSON, or the view as an HTML
    report; both carry the view's manifest (what it was computed from) when given."""
    row = st.container(horizontal=True)  # buttons at their labels' width, side by side
    explained = opened(result)  # the explanations opened ("Why this score?") go along
    row.download_button(
        "Download CSV", export_csv(result), "rerank-results.csv", "text/csv", on_click="ignore"
    )
    row.download_button(
        "Download JSON",
        json_with_explanations(export_json(result, manifest), explained),
        "rerank-results.json",
        "application/json",
        on_click="ignore",
    )
    row.download_button(
        "Export report (HTML)",
        search_report(result, manifest=manifest, explanations=explained),
        "search-report.html",
        "text/html",
        on_click="ignore",
        help="One self-contained file: settings, both orders, movement and score charts, "
        "timings. Opens offline and prints well.",
    )
