"""The tables and one-line texts the pages show, shaped from results and reports.

Each function returns a pandas DataFrame (or a string) that a page hands to a
Streamlit element as is; column names are what the user reads.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import pandas as pd

from core.present.views import badge, escape_markdown, retrieval_score_label
from core.quality.diagnostics import AblationReport, CeilingReport
from core.quality.evaluation_report import (
    HEADLINE_METRICS,
    METRIC_LABELS,
    EvaluationReport,
    second_stage_name,
)
from core.quality.tuning import TuneReport
from core.search.fusion import FUSION_LABELS
from core.search.index import IndexBuild
from core.search.pipeline import Candidate, SearchResult
from core.search.retrievers import RETRIEVER_LABELS

# --- search -----------------------------------------------------------------------------


def rerank_score_label(result: SearchResult) -> str:
    """Name of the reranker's score: "relevance" (hosted, 0-1) or "logit"."""
    return "relevance" if result.score_kind == "relevance" else "logit"


def first_stage_caption(result: SearchResult) -> str:
    """The first stage and its score, e.g. "Dense (bi-encoder) · all-MiniLM · cosine score"."""
    stage = RETRIEVER_LABELS[result.retriever]
    if result.retriever != "bm25":
        stage += f" · {escape_markdown(result.encoder)}"
    return f"{stage} · {retrieval_score_label(result)} score"


def retrieval_table(result: SearchResult) -> pd.DataFrame:
    """The retrieval top-N, with each item's final rank (when reranked)."""
    top = result.top_retrieval
    return pd.DataFrame(
        {
            "#": [c.retrieval_rank for c in top],
            "title": [c.title for c in top],
            retrieval_score_label(result): [c.retrieval_score for c in top],
            "final #": [c.final_rank if result.reranker else None for c in top],
        }
    )


def final_heading(result: SearchResult) -> tuple[str, str]:
    """The final order's subheader and caption: fused, reranked, or retrieval only."""
    if result.fused:
        return "Fused order", (
            f"{escape_markdown(result.reranker)} · weight {result.fusion_weight:g} on the "
            "cross-encoder, "
            f"{1 - result.fusion_weight:g} on the first stage ({FUSION_LABELS[result.fusion]})"
        )
    if result.reranker:
        return (
            "Reranked order",
            f"{escape_markdown(result.reranker)} · {rerank_score_label(result)}",
        )
    return "Final order (no reranker)", "retrieval order"


def final_table(result: SearchResult) -> pd.DataFrame:
    """The final top-N: score, fused score and rerank rank (when fused), retrieval rank,
    and the movement badge."""
    top = result.top_final
    columns = {
        "#": [c.final_rank for c in top],
        "title": [c.title for c in top],
        rerank_score_label(result): [c.rerank_score for c in top],
    }
    if result.fused:
        columns["fused"] = [c.fused_score for c in top]
        columns["rerank #"] = [c.rerank_rank for c in top]
    columns["retrieval #"] = [c.retrieval_rank for c in top]
    columns["move"] = [badge(c) for c in top]
    return pd.DataFrame(columns)


def corpus_note(build: IndexBuild | None) -> str:
    """Where the corpus index came from: BM25 in memory, the disk cache, or encoding."""
    if build is None:
        return "BM25 index in memory"
    if build.from_cache:
        return "corpus embeddings from disk cache"
    return f"corpus embeddings encoded in {build.seconds:.1f} s"


def timings_caption(result: SearchResult, build: IndexBuild | None) -> str:
    """The search's timings, stage by stage, and where the corpus index came from."""
    from core.search.milvus_reference import is_milvus_reference

    t = result.timings
    where = (
        f"first stage in Milvus ({result.retriever})"
        if is_milvus_reference(result.dataset)
        else "collection on disk, memory-mapped"
        if result.dataset.startswith("collection:")
        else corpus_note(build)
    )
    return (
        f"Timings: query encoding **{t.query_encode * 1000:.0f} ms** · search "
        f"**{t.search * 1000:.1f} ms** · rerank **{t.rerank * 1000:.0f} ms** · total "
        f"**{t.total * 1000:.0f} ms** · {where}"
    )


def detail_scores(result: SearchResult, c: Candidate) -> str:
    """One item's ranks and scores in both orders (markdown; numbers and a badge only)."""
    text = (
        f"Retrieval **#{c.retrieval_rank}** ({retrieval_score_label(result)} "
        f"{c.retrieval_score:.3f})"
    )
    if c.rerank_score is not None:
        text += (
            f" → reranked **#{c.final_rank}** ({rerank_score_label(result)} "
            f"{c.rerank_score:.2f}, normalised {c.rerank_normalized:.3f}) {badge(c)}"
        )
    return text


def judging_table(
    result: SearchResult, ratings: Mapping[str, int], only: Collection[str] | None = None
) -> pd.DataFrame:
    """Every item shown in either top-N, by id, with its ranks and its rating (if any);
    with ``only``, just those candidates (e.g. the unjudged ones to rate)."""
    shown = {c.id: c for c in [*result.top_final, *result.top_retrieval]}
    if only is not None:
        shown = {c.id: c for c in result.candidates if c.id in only}
    return pd.DataFrame(
        {
            "id": list(shown),
            "title": [c.title for c in shown.values()],
            "retrieval #": [c.retrieval_rank for c in shown.values()],
            "final #": [c.final_rank for c in shown.values()],
            "rating": [ratings.get(doc_id) for doc_id in shown],
        }
    )


def update_ratings(ratings: dict[str, int], edited: pd.DataFrame) -> None:
    """Take the ratings of an edited judging table into ``ratings`` (by id); an
    emptied cell removes its rating."""
    for doc_id, rating in zip(edited["id"], edited["rating"], strict=True):
        if pd.notna(rating):
            ratings[str(doc_id)] = int(rating)
        else:
            ratings.pop(str(doc_id), None)


# --- evaluate ---------------------------------------------------------------------------


def fold_table(tuned: TuneReport) -> pd.DataFrame:
    """Per fold: the setting chosen on the other folds, and its nDCG@10 there and here."""
    return pd.DataFrame(
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
    )


def best_per_stage_table(tuned: TuneReport) -> pd.DataFrame:
    """The best setting of each first stage on all queries (in-sample)."""
    return pd.DataFrame(
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
    )


def evaluation_stages(report: EvaluationReport) -> str:
    """The evaluated pipeline, e.g. "BM25 → cross-encoder (top 50)"."""
    s = report.settings
    text = RETRIEVER_LABELS[s.retriever] + ("" if s.retriever == "bm25" else f" · {s.encoder}")
    if report.reranked is not None:
        text += f" → {second_stage_name(s)}"
    return text


def headline_figures(report: EvaluationReport) -> list[tuple[str, str, str | None]]:
    """(label, value, delta) per headline metric: the base alone, or base → after."""
    after_label = "fused" if report.settings.fusion_weight < 1.0 else "reranked"
    figures = []
    for metric in HEADLINE_METRICS:
        base = report.base[metric]
        if report.reranked is None:
            figures.append((METRIC_LABELS[metric], f"{base:.3f}", None))
        else:
            after = report.reranked[metric]
            figures.append(
                (
                    f"{METRIC_LABELS[metric]}: base → {after_label}",
                    f"{base:.3f} → {after:.3f}",
                    f"{after - base:+.3f}",
                )
            )
    return figures


def evaluation_timings(report: EvaluationReport) -> str:
    """Per-query timings, pairs scored and cached, and where the corpus index came from."""
    t = report.timings
    index = "from the disk cache" if t.index_from_cache else f"encoded in {t.index:.1f} s"
    return (
        f"Per query: encoding {t.query_encode_ms:.1f} ms · search {t.search_ms:.2f} ms · "
        f"rerank {t.rerank_ms:.0f} ms ({t.pairs_scored:,} pairs scored, {t.pairs_cached:,} "
        f"from the score cache). Corpus index {index}."
    )


def marked_order(items, rank: str, relevant: Mapping[str, int]) -> pd.DataFrame:
    """One order's items with their rank (attribute ``rank``) and ★ on relevant ones."""
    return pd.DataFrame(
        {
            "#": [getattr(c, rank) for c in items],
            "relevant": ["★" if c.id in relevant else "" for c in items],
            "title": [c.title for c in items],
        }
    )


# --- ceiling & fields -------------------------------------------------------------------


def missed_table(report: CeilingReport) -> pd.DataFrame:
    """The ideal top-N items the current candidates miss, with both ranks and the score."""
    missed = report.missed
    return pd.DataFrame(
        {
            "title": [i.title for i in missed],
            "reranker #": [i.ideal_rank for i in missed],
            "retrieval #": [i.retrieval_rank for i in missed],
            "score": [i.score for i in missed],
        }
    )


def ideal_table(report: CeilingReport, candidates: int) -> pd.DataFrame:
    """The reranker's ideal top-N, each marked reached or not with ``candidates``."""
    return pd.DataFrame(
        {
            "reranker #": [i.ideal_rank for i in report.ideal],
            "title": [i.title for i in report.ideal],
            "retrieval #": [i.retrieval_rank for i in report.ideal],
            "score": [i.score for i in report.ideal],
            f"within {candidates}": [
                "yes" if i.reached_with(candidates) else "no" for i in report.ideal
            ],
        }
    )


def variant_letters(ablation: AblationReport) -> dict[str, str]:
    """A letter per field set (A, B, ...): short rank-column names."""
    return {name: chr(ord("A") + i) for i, name in enumerate(ablation.names)}


def variant_table(ablation: AblationReport, name: str) -> pd.DataFrame:
    """One field set's top-N with the items' ranks under every field set (by letter)."""
    letters = variant_letters(ablation)
    rows = pd.DataFrame(ablation.side_by_side(name))
    return rows.drop(columns=["id", "score", "retrieval #"]).rename(
        columns={f"{other} #": f"{letters[other]} #" for other in ablation.names}
    )


def agreement_table(ablation: AblationReport) -> pd.DataFrame:
    """Agreement of each pair of field sets: Kendall τ, RBO and top-N overlap."""
    n = ablation.num_results
    return pd.DataFrame(
        {
            "field sets": [f"{a.a} vs {a.b}" for a in ablation.agreements],
            "Kendall τ": [a.kendall_tau for a in ablation.agreements],
            "RBO (p=0.9)": [a.rbo for a in ablation.agreements],
            f"overlap@{n}": [a.overlap for a in ablation.agreements],
        }
    )


def ablation_scores_table(ablation: AblationReport) -> pd.DataFrame:
    """Every item in any field set's top-N: its score and rank under each, and its
    retrieval rank."""
    return pd.DataFrame(ablation.union_rows()).drop(columns=["id"])
