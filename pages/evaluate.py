"""Evaluate page: does the reranker help on labelled data? Base -> Reranked figures."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.beir import load_beir, load_judgments_csv
from core.charts import movement_chart, outcome_chart
from core.datasets import scifact_path
from core.encoders import DEFAULT_ENCODER
from core.errors import CoreError
from core.evaluation import (
    HEADLINE_METRICS,
    METRIC_LABELS,
    PRIMARY_METRIC,
    beir_to_dataset,
    evaluate_beir,
    evaluate_judgments,
)
from core.pipeline import search_with_rerank
from core.rerankers import PACKAGED_CROSS_ENCODER
from core.views import escape_markdown
from pages.common import BUILTIN_LABELS, get_encoder, get_index, get_reranker, load_named_dataset

st.title("Does reranking help?")
st.caption(
    "Retrieval alone vs retrieval + rerank on labelled data: the same candidates, scored "
    "against relevance judgments. A gain shows up here, not in how the results look."
)
state = st.session_state
scifact = scifact_path()
sources = (["SciFact (BEIR)"] if scifact else []) + ["Judgments CSV on a dataset"]
source = st.radio("Labelled set", sources, horizontal=True, key="eval_source")

c1, c2, c3 = st.columns(3)
candidates = c1.slider("Candidates per query", 10, 200, 100, key="eval_candidates")
rerank_on = c3.toggle("Rerank", value=True, key="eval_rerank")

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
        help=f"The first N of {total} judged test queries (all {total} take a few minutes).",
    )
    qrels_by_id = beir.qrels
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
    st.caption(f"{len(judgments)} judged queries, {sum(map(len, judgments.values()))} ratings.")

run_key = (
    source,
    getattr(dataset, "content_hash", None),
    candidates,
    max_queries,
    rerank_on,
    tuple(sorted((q, tuple(sorted(d.items()))) for q, d in qrels_by_id.items()))
    if not source.startswith("SciFact")
    else None,
)
if st.button("Run evaluation", type="primary"):
    encoder = get_encoder(DEFAULT_ENCODER)
    reranker = get_reranker(PACKAGED_CROSS_ENCODER) if rerank_on else None
    bar = st.progress(0.0, text="Starting…")

    def progress(done: int, total: int, stage: str) -> None:
        bar.progress(done / max(total, 1), text=f"{stage}: {done:,} / {total:,}")

    try:
        if source.startswith("SciFact"):
            report = evaluate_beir(
                beir,
                encoder=encoder,
                reranker=reranker,
                candidates=candidates,
                max_queries=int(max_queries),
                progress=progress,
                dataset=dataset,
            )
        else:
            report = evaluate_judgments(
                dataset,
                qrels_by_id,
                encoder=encoder,
                reranker=reranker,
                candidates=candidates,
                progress=progress,
            )
    except CoreError as exc:
        bar.empty()
        st.error(str(exc), icon="🚫")
        st.stop()
    bar.empty()
    state.eval_report = (run_key, report, dataset)

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
cols = st.columns(len(HEADLINE_METRICS))
for col, metric in zip(cols, HEADLINE_METRICS, strict=True):
    base = report.base[metric]
    if report.reranked is None:
        col.metric(METRIC_LABELS[metric], f"{base:.3f}")
    else:
        after = report.reranked[metric]
        col.metric(
            f"{METRIC_LABELS[metric]}: base → reranked",
            f"{base:.3f} → {after:.3f}",
            delta=f"{after - base:+.3f}",
        )
st.caption(
    f"Per query: encoding {t.query_encode_ms:.1f} ms · search {t.search_ms:.2f} ms · "
    f"rerank {t.rerank_ms:.0f} ms. Corpus index "
    f"{'from the disk cache' if t.index_from_cache else f'encoded in {t.index:.1f} s'}."
)
if report.reranked is not None:
    gain = report.reranked[PRIMARY_METRIC] - report.base[PRIMARY_METRIC]
    verdict = "helps" if gain > 0 else "hurts" if gain < 0 else "changes nothing"
    st.markdown(
        f"Reranking **{verdict}** here: nDCG@10 {gain:+.3f} on average; it won on "
        f"**{report.wins}** queries, tied on **{report.ties}**, lost on **{report.losses}**."
    )
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
    encoder = get_encoder(DEFAULT_ENCODER)
    build = get_index(dataset, encoder, tuple(s.embed_fields))
    result = search_with_rerank(
        dataset,
        picked.query,
        encoder=encoder,
        reranker=get_reranker(PACKAGED_CROSS_ENCODER),
        embed_fields=s.embed_fields,
        rerank_fields=s.rerank_fields,
        num_candidates=s.candidates,
        num_results=10,
        index=build.index,
        rerank_style=s.rerank_style,
    )
    st.caption(f"{len(relevant)} relevant document(s); ★ marks them.")
    left, right = st.columns(2)
    for col, title, items, rank in (
        (left, "Retrieval order", result.top_retrieval, "retrieval_rank"),
        (right, "Reranked order", result.top_final, "final_rank"),
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
