"""The Evaluate page's runs and result panels: evaluation, tuning, the recommended
setting, the report's figures, and one query in the movement view.

Functions only: nothing here draws on import. The tables and texts come from
core.present (tested without Streamlit); these functions lay them out.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.data.documents import rerank_text
from core.models.base import DEFAULT_ENCODER, PACKAGED_CROSS_ENCODER
from core.models.cross_encoders import tokens_per_second
from core.models.errors import CoreError
from core.present.charts import movement_chart, outcome_chart
from core.present.evaluate_state import LabelledSet, applied_view
from core.present.passages import evaluation_cost_note, evaluation_costs, sample_texts
from core.present.tables import (
    best_per_stage_table,
    evaluation_stages,
    evaluation_timings,
    fold_table,
    headline_figures,
    marked_order,
)
from core.present.views import SearchSettings, error_text, escape_markdown
from core.quality.evaluation import evaluate_beir, evaluate_judgments
from core.quality.evaluation_report import EvaluationReport
from core.quality.runs import SecondStage
from core.quality.tuning import TuneReport
from core.quality.tuning import tune as tune_settings
from core.quality.tuning_cost import measure_rerank_cost
from core.quality.tuning_grid import BGE_SMALL, Config, config_grid, default_stages
from core.quality.tuning_workbench import prepare
from core.search.activity import visitor_search
from core.search.budget import Cost
from core.search.passages import PassageSettings, estimate_reading
from core.search.pipeline import search_with_rerank
from core.search.retrievers import make_retriever
from core.search.scorestore import ScoreStore
from pages.widgets import common
from pages.widgets.actions import switch_later

VERDICT_BOX = {"better": st.success, "worse": st.error, "within noise": st.info}


def evaluate(
    labelled: LabelledSet,
    encoder_id: str | None,
    rerank: bool,
    candidates: int,
    options: SecondStage,
    threshold: int = 1,
) -> EvaluationReport:
    """Evaluate the first stage alone and with the second stage, with a progress bar;
    an error is shown and stops the page."""
    encoder = common.get_encoder(encoder_id) if encoder_id is not None else None
    reranker = common.get_reranker(PACKAGED_CROSS_ENCODER) if rerank else None
    bar, progress = common.stage_progress()
    run = {
        "encoder": encoder,
        "reranker": reranker,
        "candidates": candidates,
        "progress": progress,
        "options": options,
        "threshold": threshold,
    }
    try:
        if labelled.beir is not None:
            report = evaluate_beir(
                labelled.beir, max_queries=labelled.max_queries, dataset=labelled.dataset, **run
            )
        else:
            report = evaluate_judgments(labelled.dataset, labelled.qrels, **run)
    except CoreError as exc:
        bar.empty()
        st.error(error_text(exc), icon="🚫")
        st.stop()
    bar.empty()
    return report


@st.cache_data(max_entries=16, show_spinner=False)
def _tokens_per_pair(content_hash: str, _dataset, fields: tuple[str, ...]) -> float:
    texts = [rerank_text(r, fields) for r in sample_texts(_dataset.records)]
    return estimate_reading(texts, PassageSettings(aggregate="first")).tokens_per_pair


def cost_caption(
    labelled: LabelledSet, depth: int | None, candidates: int, encoders: list[str]
) -> tuple[Cost | None, Cost]:
    """Before running: the most pairs each button will score, and how long that takes;
    returns both estimates (run, tune) for the visitor's budget."""
    dataset = labelled.dataset
    tokens = _tokens_per_pair(dataset.content_hash, dataset, tuple(labelled.rerank_fields))
    try:
        reranker = common.get_reranker(PACKAGED_CROSS_ENCODER)
    except CoreError:  # the run says why; the estimate uses the default rate
        reranker = None
    rate, measured = tokens_per_second(reranker, tokens)
    stages = len(_stages(encoders))
    sizes = (
        labelled.num_judged,
        min(depth, len(dataset)) if depth else None,  # a small dataset has fewer
        min(candidates, len(dataset)),
        stages,
        tokens,
        rate,
    )
    st.caption(evaluation_cost_note(*sizes, measured))
    return evaluation_costs(*sizes)


def _stages(encoders: list[str]):
    return default_stages(DEFAULT_ENCODER, BGE_SMALL if BGE_SMALL in encoders else None)


def tune(
    labelled: LabelledSet, candidates: int, encoders: list[str], threshold: int = 1
) -> TuneReport:
    """Cross-validate the grid of first stages, depths and weights, with a progress bar,
    and time the cross-encoder at each depth (3 queries, live); an error is shown and
    stops the page."""
    stages = _stages(encoders)
    loaded = {s.encoder: common.get_encoder(s.encoder) for s in stages if s.encoder}
    cross_encoder = common.get_reranker(PACKAGED_CROSS_ENCODER)
    bar, progress = common.stage_progress()
    try:
        bench = prepare(
            labelled.dataset,
            labelled.queries,
            labelled.qrels,
            stages,
            loaded,
            reranker=cross_encoder,
            embed_fields=labelled.embed_fields,
            rerank_fields=labelled.rerank_fields,
            rerank_style=labelled.rerank_style,
            depth=candidates,
            max_queries=labelled.max_queries,
            ignore_identical_ids=labelled.ignore_identical_ids,
            store=ScoreStore(),
            progress=progress,
            threshold=threshold,
        )
        grid = config_grid(stages, max_depth=candidates)
        bar.progress(1.0, text="Timing the cross-encoder at each depth…")
        measure_rerank_cost(
            bench,
            cross_encoder,
            labelled.dataset,
            sorted({c.depth for c in grid if c.reranked}),
            fields=labelled.rerank_fields,
            style=labelled.rerank_style,
            sample=3,
        )
        tuned = tune_settings(bench, grid, Config(stages[0]), folds=min(5, len(bench.qids)))
    except CoreError as exc:
        bar.empty()
        st.error(error_text(exc), icon="🚫")
        st.stop()
    bar.empty()
    return tuned


def _apply(config: Config) -> None:
    state = st.session_state
    state.view = applied_view(state.get("view") or SearchSettings(), config)
    state.applied_setting = config.label
    state.pop("query", None)  # the Search page re-seeds its widgets from state.view
    switch_later("pages/search.py", state.view.to_params())


def recommended(tuned: TuneReport) -> None:
    """The recommended setting, its held-out figures, a button that applies it on the
    Search page, and the folds' choices."""
    rec = tuned.recommended.config
    st.subheader("Recommended setting")
    st.markdown(f"**{escape_markdown(rec.label)}**")
    t1, t2, t3 = st.columns(3)
    t1.metric(
        "Held-out nDCG@10",
        f"{tuned.heldout['ndcg@10']:.3f}",
        help="Each query scored by the setting chosen on the other folds: never chosen on "
        "the queries it is reported on.",
    )
    t2.metric("95% CI", f"{tuned.heldout_ci[0]:.3f} – {tuned.heldout_ci[1]:.3f}")
    t3.metric("Chosen by folds", f"{tuned.agreement} of {tuned.folds}")
    VERDICT_BOX[tuned.heldout_vs_baseline.verdict](
        f"Against {tuned.baseline.config.label} "
        f"(nDCG@10 {tuned.baseline.means['ndcg@10']:.3f}): "
        + tuned.heldout_vs_baseline.sentence("The tuned setting")
    )
    st.button(
        "Apply on the Search page",
        type="primary",
        key="apply_setting",
        on_click=_apply,
        args=(rec,),
    )
    st.dataframe(fold_table(tuned), hide_index=True, key="tune_folds")
    st.caption("Best per first stage, on all queries (in-sample: for orientation only).")
    st.dataframe(best_per_stage_table(tuned), hide_index=True, key="tune_stages")


def figures(report: EvaluationReport) -> None:
    """The headline metrics before and after, the verdict, and the per-query table."""
    s = report.settings
    st.subheader(
        f"{escape_markdown(s.dataset)}: {s.num_queries} queries, {s.candidates} candidates each"
    )
    st.caption(evaluation_stages(report))
    heads = headline_figures(report)
    for col, (label, value, delta) in zip(st.columns(len(heads)), heads, strict=True):
        col.metric(label, value, delta=delta)
    st.caption(evaluation_timings(report))
    comparison = report.comparison
    if comparison is not None:
        VERDICT_BOX[comparison.verdict](comparison.sentence(report.second_stage_label))
        st.altair_chart(outcome_chart(report.rows()), width="stretch")

    st.dataframe(pd.DataFrame(report.rows()), hide_index=True, key="eval_rows")
    st.download_button(
        "Download per-query CSV",
        report.per_query_csv(),
        "evaluation.csv",
        "text/csv",
        on_click="ignore",
    )


def open_query(report: EvaluationReport, labelled: LabelledSet) -> None:
    """One evaluated query: both orders with its relevant documents marked, and the
    movement chart."""
    s, dataset = report.settings, labelled.dataset
    st.subheader("Open a query")
    by_label = {f"{q.qid}: {q.query[:90]}": q for q in report.queries}
    picked = by_label[st.selectbox("Query", list(by_label), key="eval_pick")]
    threshold = s.relevance_threshold
    relevant = {d: r for d, r in labelled.qrels.get(picked.qid, {}).items() if r >= threshold}
    encoder = common.get_encoder(s.encoder) if s.retriever != "bm25" else None
    build = (
        common.get_index(dataset, encoder, tuple(s.embed_fields)) if encoder is not None else None
    )
    first_stage = make_retriever(
        s.retriever,
        dataset,
        s.embed_fields,
        encoder=encoder,
        index=build.index if build is not None else None,
    )
    with visitor_search():
        result = search_with_rerank(
            dataset,
            picked.query,
            reranker=common.get_reranker(PACKAGED_CROSS_ENCODER),
            embed_fields=s.embed_fields,
            rerank_fields=s.rerank_fields,
            num_candidates=s.rerank_depth or s.candidates,
            num_results=10,
            retriever=first_stage,
            rerank_style=s.rerank_style,
            fusion_weight=s.fusion_weight,
            fusion=s.fusion,
        )
    st.caption(f"{len(relevant)} relevant document(s); ★ marks them.")
    left, right = st.columns(2)
    for col, title, items, rank in (
        (left, "Retrieval order", result.top_retrieval, "retrieval_rank"),
        (
            right,
            "Fused order" if result.fused else "Reranked order",
            result.top_final,
            "final_rank",
        ),
    ):
        col.markdown(f"**{title}**")
        col.dataframe(marked_order(items, rank, relevant), hide_index=True)
    st.altair_chart(movement_chart(result, marked=relevant), width="stretch")
