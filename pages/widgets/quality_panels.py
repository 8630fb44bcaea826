"""Panels of the Evaluate and Search pages about judgments: reading them in any format,
unjudged documents (judged@10, condensed figures, one click to judge), and quality
against cost of the tuned settings. Layout only; the figures come from core."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st

from core.data.beir import (
    FORMAT_LABELS,
    Qrels,
    check_uploaded_judgments,
    load_queries_file,
    map_doc_ids,
    read_judgments,
)
from core.data.documents import Dataset
from core.models.base import PACKAGED_CROSS_ENCODER
from core.models.errors import CoreError
from core.present.charts import cost_chart
from core.present.views import (
    SearchSettings,
    error_text,
    escape_markdown,
    unjudged_entered,
    unjudged_rows,
    unjudged_summary,
)
from core.quality.evaluation_report import CONDENSED_NOTE, EvaluationReport
from core.quality.metrics import GAIN_NOTE
from core.quality.tuning import TuneReport
from core.quality.tuning_rules import RULES
from core.search.pipeline import SearchResult
from pages.widgets.actions import switch_later

JUDGMENT_TYPES = ["csv", "tsv", "txt", "qrels"]
ID_AS_IS = ""


def judgments_upload(dataset: Dataset) -> Qrels | None:
    """The judgments uploader (our CSV, Quepid's export, or TREC qrels plus a queries
    file) and the field the judged ids are values of. Returns query text -> dataset doc
    id -> grade, None without a file; a bad file shows one line and stops the page."""
    state = st.session_state
    upload = st.file_uploader(
        "Judgments: CSV (query, doc_id, rating), Quepid export (Query Text, Doc ID, "
        "Rating) or TREC qrels (qid 0 docid rel); any whole-number grades",
        type=JUDGMENT_TYPES,
        key="eval_csv",
    )
    if upload is None:
        return None
    c1, c2 = st.columns(2)
    id_field = c1.selectbox(
        "Judged ids are values of",
        [ID_AS_IS, *dataset.fields],
        key="eval_id_field",
        format_func=lambda f: "the dataset's own ids" if f == ID_AS_IS else f"field '{f}'",
        help="Quepid and other tools name documents by their own id: pick the field that "
        "holds it (its values must be unique).",
    )
    topics = c2.file_uploader(
        "Queries for TREC qrels (id<TAB>text, or queries.jsonl)",
        type=["tsv", "txt", "jsonl"],
        key="eval_queries_file",
    )
    try:
        queries = load_queries_file(topics.getvalue()) if topics is not None else None
        read = check_uploaded_judgments(
            read_judgments(upload.getvalue(), queries=queries), upload.name
        )
        qrels, unknown = map_doc_ids(read.qrels, dataset, id_field or None)
    except CoreError as exc:
        st.error(error_text(exc), icon="🚫")
        st.stop()
    note = f"{FORMAT_LABELS[read.format]}: {read.scale}"
    if read.skipped:
        note += f", {read.skipped} unrated row(s) skipped"
    if unknown:
        note += f"; {len(unknown)} judged id(s) match no document (first: {unknown[0]})"
    st.caption(escape_markdown(note) + ".")
    judged = {d for docs in read.qrels.values() for d in docs}
    if not qrels or len(unknown) >= len(judged):
        st.error(
            f"No judged id matches a document of {escape_markdown(repr(dataset.name))}: were "
            "the judgments made on another dataset? If not, choose the field the ids are "
            "values of.",
            icon="🚫",
        )
        st.stop()
    state.eval_upload_format = read.format
    return qrels


def threshold_input(container) -> int:
    """The relevance threshold (lowest grade MRR / Recall / P count relevant)."""
    return int(
        container.number_input(
            "Relevant from grade",
            min_value=1,
            value=1,
            step=1,
            key="eval_threshold",
            help=f"MRR, Recall and P count a document relevant at this grade or above. "
            f"nDCG uses every grade: {GAIN_NOTE}.",
        )
    )


def unjudged_panel(report: EvaluationReport, *, dataset_name: str | None) -> None:
    """judged@10 and the condensed figures beside the standard ones, and the unjudged
    documents that entered the top 10, each query one click from judging (when the
    labelled set is judgments on a Search-page dataset: ``dataset_name``)."""
    st.subheader("Unjudged documents")
    st.caption(
        f"{report.settings.scale_note}. Condensed figures: {CONDENSED_NOTE}; the standard "
        "figures count unjudged documents as irrelevant."
    )
    summary = pd.DataFrame(unjudged_summary(report)).T.reset_index(names="run")
    summary.columns = ["run", "judged@10", "nDCG@10", "nDCG@10 condensed", "MRR@10", "MRR@10 cond."]
    st.dataframe(summary, hide_index=True, key="eval_judged")
    rows = unjudged_rows(report)
    if report.reranked is None:
        return
    if not rows:
        st.caption("No unjudged document entered any top 10.")
        return
    queries = len({r["qid"] for r in rows})
    st.warning(
        f"{len(rows)} unjudged document(s) entered the top 10 of {queries} quer"
        f"{'y' if queries == 1 else 'ies'} after the second stage.",
        icon="🔍",
    )
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="eval_unjudged")
    if dataset_name is None:
        st.caption("SciFact's qrels are fixed here; judge on a dataset of the Search page.")
        return
    by_query = dict.fromkeys(r["query"] for r in rows)
    pick = st.selectbox("Judge the new documents of", list(by_query), key="eval_judge_pick")
    st.button(
        "Judge them on the Search page",
        key="eval_judge_go",
        on_click=lambda: _open_for_judging(
            report, dataset_name, st.session_state.get("eval_judge_pick", pick)
        ),
    )


def _open_for_judging(report: EvaluationReport, dataset_name: str, query: str) -> None:
    state = st.session_state
    s = report.settings
    q = next(q for q in report.queries if q.query == query)
    ratings = state.setdefault("judgments", {}).setdefault(dataset_name, {})
    for doc_id, grade in state.get("eval_qrels", {}).get(query, {}).items():
        ratings.setdefault(query, {}).setdefault(doc_id, grade)
    view = state.get("view") or SearchSettings()
    state.view = replace(
        view,
        dataset=dataset_name,
        query=query,
        retriever=s.retriever,
        encoder=s.encoder if s.encoder != "none" else view.encoder,
        reranker=PACKAGED_CROSS_ENCODER,
        candidates=max(10, min(s.rerank_depth or s.candidates, 200)),
        results=10,
        embed_fields=tuple(s.embed_fields),
        rerank_fields=tuple(s.rerank_fields),
        fusion_weight=s.fusion_weight,
        fusion=s.fusion,
    )
    state.judge_focus = (query, tuple(d for d, _ in q.unjudged_entered))
    state.pop("query", None)  # the Search page re-seeds its widgets from state.view
    switch_later("pages/search.py", state.view.to_params())


def judge_prompt(result: SearchResult, ratings: dict[str, int]) -> set[str] | None:
    """On the Search page: the unjudged documents the reranker brought into the top N,
    with one click to show only them in the judging table. Returns the ids to show
    (None: show every result)."""
    state = st.session_state
    fresh = unjudged_entered(result, ratings) if ratings else []
    focus = state.get("judge_focus")
    if focus and focus[0] == result.query:
        wanted = set(focus[1]) | {c.id for c in fresh}
        pending = [d for d in wanted if d not in ratings]
        if pending:
            st.info(
                f"{len(pending)} unjudged document(s) entered the top {result.num_results}: "
                "rate them below.",
                icon="🔍",
            )
            st.button(
                "Show every result",
                key="judge_all",
                on_click=lambda: state.pop("judge_focus", None),
            )
            return wanted
        state.pop("judge_focus", None)
    if fresh:
        titles = ", ".join(c.title for c in fresh[:5]) + ("…" if len(fresh) > 5 else "")
        st.warning(
            f"{len(fresh)} document(s) the reranker brought into the top "
            f"{result.num_results} have no judgment ({titles}): the figures count them "
            "as irrelevant.",
            icon="🔍",
        )
        st.button(
            f"Judge the {len(fresh)} unjudged",
            key="judge_unjudged",
            on_click=lambda focus=(result.query, tuple(c.id for c in fresh)): state.update(
                judge_focus=focus
            ),
        )
    return None


def tune_panel(tuned: TuneReport) -> None:
    """The rule, the stability figures, and quality against measured cost."""
    st.caption(
        f"Rule: **{tuned.rule}**, {escape_markdown(RULES[tuned.rule])}. Plain first stage "
        f"{escape_markdown(tuned.baseline.config.label)}: nDCG@10 "
        f"{tuned.baseline.means['ndcg@10']:.3f}"
        + (
            f"; best first stage alone chosen by the same folds: held-out "
            f"{tuned.alone_heldout:.3f}."
            if tuned.alone_heldout is not None
            else "."
        )
    )
    if not tuned.costs:
        return
    st.subheader("Quality against cost")
    st.caption(
        "nDCG@10 of every setting on all queries (in-sample) with its 95% interval, against "
        "the time per query measured here (first stage over all queries; the cross-encoder "
        f"timed live on {tuned.rerank_sample} queries per depth). Ringed: the best, and the "
        "cheapest setting within noise of it (paired bootstrap)."
    )
    st.altair_chart(cost_chart(tuned.costs), width="stretch")
    best, cheapest = tuned.best_cost, tuned.cheapest
    if best is not None and cheapest is not None:
        st.info(
            f"Cheapest within noise of the best: **{escape_markdown(cheapest.config.label)}**, "
            f"nDCG@10 {cheapest.ndcg:.3f} ({cheapest.vs_best:+.3f}) at {cheapest.ms:.0f} ms "
            f"per query, vs {best.ndcg:.3f} at {best.ms or 0:.0f} ms for "
            f"{escape_markdown(best.config.label)}.",
            icon="⏱️",
        )
