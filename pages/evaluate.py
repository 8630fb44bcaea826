"""Evaluate page: does the reranker help on labelled data? Base -> second stage, with a
confidence interval; and a setting chosen by cross-validation, applicable in one click."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st

from core.data.beir import load_beir, load_judgments_csv
from core.data.datasets import scifact_path
from core.errors import CoreError
from core.models.base import DEFAULT_ENCODER, PACKAGED_CROSS_ENCODER
from core.models.packaged import packaged_model_ids
from core.present.charts import movement_chart, outcome_chart
from core.present.views import NO_RERANK, SearchSettings, escape_markdown
from core.quality.evaluation import (
    BEIR_FIELDS,
    HEADLINE_METRICS,
    METRIC_LABELS,
    SecondStage,
    beir_to_dataset,
    evaluate_beir,
    evaluate_judgments,
    second_stage_name,
)
from core.quality.tuning import BGE_SMALL, Config, config_grid, default_stages, prepare, tune
from core.search.pipeline import search_with_rerank
from core.search.retrievers import RETRIEVER_KINDS, RETRIEVER_LABELS, make_retriever
from core.search.scorestore import ScoreStore
from pages.common import BUILTIN_LABELS, get_encoder, get_index, get_reranker, load_named_dataset

VERDICT_BOX = {"better": st.success, "worse": st.error, "within noise": st.info}

st.title("Does reranking help?")
st.caption(
    "First stage alone vs first stage + cross-encoder on labelled data: the same "
    "candidates, scored against relevance judgments, with a 95% confidence interval. "
    "Reranking does not always help; this page says when it hurts."
)
state = st.session_state
scifact = scifact_path()
sources = (["SciFact (BEIR)"] if scifact else []) + ["Judgments CSV on a dataset"]
source = st.radio("Labelled set", sources, horizontal=True, key="eval_source")
encoders = packaged_model_ids("embedding")

c1, c2, c3, c4 = st.columns(4)
retriever = c1.selectbox(
    "First stage", list(RETRIEVER_KINDS), key="eval_retriever", format_func=RETRIEVER_LABELS.get
)
encoder_id = c1.selectbox("Bi-encoder", encoders, key="eval_encoder", disabled=retriever == "bm25")
candidates = c2.slider("Candidates per query", 10, 200, 100, key="eval_candidates")
rerank_on = c3.toggle("Rerank", value=True, key="eval_rerank")
# The depth follows the candidates down (and up, while it was at the maximum).
if state.get("eval_depth") is None or state.eval_depth >= state.get("eval_depth_max", 0):
    state.eval_depth = candidates
state.eval_depth = min(state.eval_depth, candidates)
state.eval_depth_max = candidates
depth = c3.slider(
    "Rerank depth",
    1,
    candidates,
    key="eval_depth",
    disabled=not rerank_on,
    help="The cross-encoder reorders this many of the candidates; the rest keep their "
    "first-stage order below them.",
)
state.setdefault("eval_weight", 1.0)
weight = c4.slider(
    "Cross-encoder weight",
    0.0,
    1.0,
    step=0.1,
    key="eval_weight",
    disabled=not rerank_on,
    help="1 = pure rerank; below 1 blends in the first stage's score (min-max normalised).",
)

if source.startswith("SciFact"):

    @st.cache_resource(show_spinner="Reading SciFact…")
    def _scifact():
        beir = load_beir(scifact)
        return beir, beir_to_dataset(beir)

    beir, dataset = _scifact()
    total = len(beir.qrels)
    max_queries = c2.number_input(
        "Queries",
        1,
        total,
        min(50, total),
        key="eval_queries",
        help=f"The first N of {total} judged test queries (all {total} take a few minutes "
        "the first time; cross-encoder scores are then cached on disk).",
    )
    qrels_by_id = beir.qrels
    queries_by_id = beir.queries
    embed_fields, rerank_style, ignore_ids = BEIR_FIELDS, "plain", True
else:
    choices = [*BUILTIN_LABELS, *state.get("uploads", [])]
    name = c2.selectbox(
        "Dataset",
        choices,
        key="eval_dataset",
        format_func=lambda n: {**BUILTIN_LABELS, **state.get("upload_labels", {})}.get(n, n),
    )
    upload = st.file_uploader(
        "Judgments CSV (columns: query, doc_id, rating 0–3)", type=["csv"], key="eval_csv"
    )
    judgments = {q: dict(d) for q, d in state.get("judgments", {}).get(name, {}).items() if d}
    if upload is not None:
        try:
            judgments = load_judgments_csv(upload.getvalue())
        except CoreError as exc:
            st.error(str(exc), icon="🚫")
            st.stop()
    if not judgments:
        st.info(
            "Upload a judgments CSV, or rate results on the Search page (Judge section): "
            "those judgments are used here too."
        )
        st.stop()
    try:
        dataset = load_named_dataset(name).dataset
    except CoreError as exc:
        st.error(str(exc), icon="🚫")
        st.stop()
    max_queries = None
    qrels_by_id = judgments
    queries_by_id = {q: q for q in judgments}
    embed_fields, rerank_style, ignore_ids = dataset.default_embed_fields, "fields", False
    st.caption(f"{len(judgments)} judged queries, {sum(map(len, judgments.values()))} ratings.")

labels_key = (
    tuple(sorted((q, tuple(sorted(d.items()))) for q, d in qrels_by_id.items()))
    if not source.startswith("SciFact")
    else None
)
options = SecondStage(
    retriever=retriever,
    rerank_depth=depth if rerank_on else None,
    fusion_weight=weight if rerank_on else 1.0,
)
run_key = (
    source,
    getattr(dataset, "content_hash", None),
    candidates,
    max_queries,
    rerank_on,
    encoder_id if retriever != "bm25" else None,
    options,
    labels_key,
)


def _progress_bar():
    bar = st.progress(0.0, text="Starting…")

    def progress(done: int, total: int, stage: str) -> None:
        bar.progress(done / max(total, 1), text=f"{stage}: {done:,} / {total:,}")

    return bar, progress


run_col, tune_col = st.columns([1, 3])
if run_col.button("Run evaluation", type="primary"):
    encoder = get_encoder(encoder_id) if retriever != "bm25" else None
    reranker = get_reranker(PACKAGED_CROSS_ENCODER) if rerank_on else None
    bar, progress = _progress_bar()
    common = {
        "encoder": encoder,
        "reranker": reranker,
        "candidates": candidates,
        "progress": progress,
        "options": options,
    }
    try:
        if source.startswith("SciFact"):
            report = evaluate_beir(beir, max_queries=int(max_queries), dataset=dataset, **common)
        else:
            report = evaluate_judgments(dataset, qrels_by_id, **common)
    except CoreError as exc:
        bar.empty()
        st.error(str(exc), icon="🚫")
        st.stop()
    bar.empty()
    state.eval_report = (run_key, report, dataset)

# --- tuning ---------------------------------------------------------------------------
tune_key = (source, getattr(dataset, "content_hash", None), max_queries, candidates, labels_key)
num_judged = len(qrels_by_id) if max_queries is None else int(max_queries)
if tune_col.button(
    "Find the best setting (cross-validated)",
    disabled=num_judged < 4,
    help="Tries dense (MiniLM, bge-small), BM25 and hybrid first stages, rerank depths "
    "10–100 and cross-encoder weights 0.2–1, choosing on 4/5 of the queries and scoring "
    "on the other fifth, five times over. Needs at least 4 judged queries.",
):
    stages = default_stages(DEFAULT_ENCODER, BGE_SMALL if BGE_SMALL in encoders else None)
    loaded = {s.encoder: get_encoder(s.encoder) for s in stages if s.encoder}
    bar, progress = _progress_bar()
    try:
        bench = prepare(
            dataset,
            queries_by_id,
            qrels_by_id,
            stages,
            loaded,
            reranker=get_reranker(PACKAGED_CROSS_ENCODER),
            embed_fields=embed_fields,
            rerank_fields=embed_fields
            if source.startswith("SciFact")
            else (dataset.default_rerank_fields),
            rerank_style=rerank_style,
            depth=candidates,
            max_queries=None if max_queries is None else int(max_queries),
            ignore_identical_ids=ignore_ids,
            store=ScoreStore(),
            progress=progress,
        )
        tuned = tune(
            bench,
            config_grid(stages, max_depth=candidates),
            Config(stages[0]),
            folds=min(5, len(bench.qids)),
        )
    except CoreError as exc:
        bar.empty()
        st.error(str(exc), icon="🚫")
        st.stop()
    bar.empty()
    state.eval_tuned = (tune_key, tuned)


def _apply(config: Config) -> None:
    view = state.get("view") or SearchSettings()
    state.view = replace(
        view,
        retriever=config.stage.retriever,
        encoder=config.stage.encoder or view.encoder,
        candidates=config.depth if config.reranked else view.candidates,
        reranker=PACKAGED_CROSS_ENCODER if config.reranked else NO_RERANK,
        fusion_weight=config.weight if config.reranked else 1.0,
        fusion=config.fusion,
    )
    state.applied_setting = config.label
    state.pop("query", None)  # the Search page re-seeds its widgets from state.view


stored_tune = state.get("eval_tuned")
if stored_tune is not None and stored_tune[0] == tune_key:
    tuned = stored_tune[1]
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
    if st.button("Apply on the Search page", type="primary", key="apply_setting"):
        _apply(rec)
        st.switch_page("pages/search.py", query_params=state.view.to_params())
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "fold": c.fold,
                    "queries": c.num_queries,
                    "chosen on the other folds": c.chosen.label,
                    "nDCG@10 there": c.train_ndcg,
                    "nDCG@10 on this fold": c.heldout_ndcg,
                }
                for c in tuned.choices
            ]
        ),
        hide_index=True,
        key="tune_folds",
    )
    st.caption("Best per first stage, on all queries (in-sample: for orientation only).")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "setting": r.config.label,
                    "nDCG@10": r.means["ndcg@10"],
                    "MRR@10": r.means["mrr@10"],
                    "Recall@100": r.means["recall@100"],
                    "vs first stage alone": (
                        r.vs_first_stage.sentence("It", "nDCG@10") if r.vs_first_stage else ""
                    ),
                }
                for r in tuned.best_per_stage()
            ]
        ),
        hide_index=True,
        key="tune_stages",
    )

stored = state.get("eval_report")
if stored is None or stored[0] != run_key:
    st.info("Choose the settings and press **Run evaluation**.")
    st.stop()
_, report, dataset = stored

# --- figures ------------------------------------------------------------------------
s, t = report.settings, report.timings
st.subheader(
    f"{escape_markdown(s.dataset)}: {s.num_queries} queries, {s.candidates} candidates each"
)
stage_text = RETRIEVER_LABELS[s.retriever] + ("" if s.retriever == "bm25" else f" · {s.encoder}")
if report.reranked is not None:
    stage_text += f" → {second_stage_name(s)}"
st.caption(stage_text)
after_label = "fused" if s.fusion_weight < 1.0 else "reranked"
cols = st.columns(len(HEADLINE_METRICS))
for col, metric in zip(cols, HEADLINE_METRICS, strict=True):
    base = report.base[metric]
    if report.reranked is None:
        col.metric(METRIC_LABELS[metric], f"{base:.3f}")
    else:
        after = report.reranked[metric]
        col.metric(
            f"{METRIC_LABELS[metric]}: base → {after_label}",
            f"{base:.3f} → {after:.3f}",
            delta=f"{after - base:+.3f}",
        )
st.caption(
    f"Per query: encoding {t.query_encode_ms:.1f} ms · search {t.search_ms:.2f} ms · "
    f"rerank {t.rerank_ms:.0f} ms ({t.pairs_scored:,} pairs scored, {t.pairs_cached:,} from "
    "the score cache). Corpus index "
    f"{'from the disk cache' if t.index_from_cache else f'encoded in {t.index:.1f} s'}."
)
comparison = report.comparison
if comparison is not None:
    VERDICT_BOX[comparison.verdict](comparison.sentence(report.second_stage_label))
    st.altair_chart(outcome_chart(report.rows()), width="stretch")

rows = pd.DataFrame(report.rows())
st.dataframe(rows, hide_index=True, key="eval_rows")
st.download_button(
    "Download per-query CSV",
    report.per_query_csv(),
    "evaluation.csv",
    "text/csv",
    on_click="ignore",
)

# --- one query in the movement view ------------------------------------------------------
if report.reranked is not None and len(report.queries):
    st.subheader("Open a query")
    by_label = {f"{q.qid}: {q.query[:90]}": q for q in report.queries}
    picked = by_label[st.selectbox("Query", list(by_label), key="eval_pick")]
    relevant = {d: r for d, r in qrels_by_id.get(picked.qid, {}).items() if r > 0}
    encoder = get_encoder(s.encoder) if s.retriever != "bm25" else None
    build = get_index(dataset, encoder, tuple(s.embed_fields)) if encoder is not None else None
    first_stage = make_retriever(
        s.retriever,
        dataset,
        s.embed_fields,
        encoder=encoder,
        index=build.index if build is not None else None,
    )
    result = search_with_rerank(
        dataset,
        picked.query,
        reranker=get_reranker(PACKAGED_CROSS_ENCODER),
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
        col.dataframe(
            pd.DataFrame(
                {
                    "#": [getattr(c, rank) for c in items],
                    "relevant": ["★" if c.id in relevant else "" for c in items],
                    "title": [c.title for c in items],
                }
            ),
            hide_index=True,
        )
    st.altair_chart(movement_chart(result, marked=relevant), width="stretch")
