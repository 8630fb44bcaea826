"""Plain-text tables of an evaluation report, for the command line."""

from __future__ import annotations

from core.quality.evaluation_report import (
    CONDENSED_NOTE,
    HEADLINE_METRICS,
    METRIC_LABELS,
    EvaluationReport,
    second_stage_name,
)


def format_report(report: EvaluationReport) -> str:
    """A plain-text table: one row per run, headline metrics and ms/query per stage,
    then the per-query change with its bootstrap interval and a verdict."""
    s, t = report.settings, report.timings
    split = f" ({s.split} split)" if s.split else ""
    first_stage = s.retriever if s.retriever == "bm25" else f"{s.retriever} ({s.encoder})"
    if s.dense_passages:
        first_stage += f" by passage ({s.dense_passages})"
    lines = [
        f"dataset: {s.dataset}{split}   queries: {s.num_queries} of {s.total_queries}   "
        f"corpus: {s.corpus_size:,} docs   candidates: {s.candidates}",
        f"first stage: {first_stage}   reranker: {s.reranker or 'none (retrieval only)'}"
        + (f" reading {','.join(s.rerank_fields)}, {second_stage_name(s)}" if s.reranker else ""),
        f"corpus index: {'loaded from cache' if t.index_from_cache else 'encoded'} "
        f"in {t.index:.1f} s"
        + (
            f"   cross-encoder pairs: {t.pairs_scored:,} scored, {t.pairs_cached:,} from cache"
            f"   documents read in part: {t.docs_read_in_part:,}"
            if s.reranker
            else ""
        ),
        "",
    ]
    labels = [METRIC_LABELS[m] for m in HEADLINE_METRICS]
    header = (
        f"{'run':<20}"
        + "".join(f"{label:>12}" for label in labels)
        + f"{'encode ms/q':>13}{'search ms/q':>13}{'rerank ms/q':>13}{'total ms/q':>12}"
    )
    lines += [header, "-" * len(header)]
    base_total = t.query_encode_ms + t.search_ms
    runs: list[tuple[str, dict[str, float], str, float]] = [
        ("retrieval only", report.base, f"{'-':>13}", base_total)
    ]
    if report.reranked is not None:
        runs.append(
            (
                "retrieval + fusion" if s.fusion_weight < 1.0 else "retrieval + rerank",
                report.reranked,
                f"{t.rerank_ms:>13.1f}",
                base_total + t.rerank_ms,
            )
        )
    for label, means, rerank_cell, total in runs:
        lines.append(
            f"{label:<20}"
            + "".join(f"{means[m]:>12.4f}" for m in HEADLINE_METRICS)
            + f"{t.query_encode_ms:>13.1f}{t.search_ms:>13.2f}{rerank_cell}{total:>12.1f}"
        )
    comparison = report.comparison
    if comparison is not None:
        lines += ["", comparison.sentence(report.second_stage_label)]
    lines += ["", f"judgments: {s.scale_note}", *format_unjudged(report)]
    return "\n".join(lines)


def format_unjudged(report: EvaluationReport, max_queries: int = 10) -> list[str]:
    """judged@10 and the condensed-list figures of each run, beside the standard ones;
    then the unjudged documents the second stage brought into the top 10."""
    runs = [("retrieval only", report.base)]
    if report.reranked is not None:
        runs.append(("after second stage", report.reranked))
    lines = [
        "",
        f"unjudged documents: the standard figures count them irrelevant; {CONDENSED_NOTE}",
        f"{'run':<20}{'judged@10':>11}{'nDCG@10':>10}{'condensed':>11}"
        f"{'MRR@10':>9}{'condensed':>11}",
    ]
    for label, means in runs:
        lines.append(
            f"{label:<20}{means['judged@10']:>11.3f}{means['ndcg@10']:>10.4f}"
            f"{means['ndcg_cond@10']:>11.4f}{means['mrr@10']:>9.4f}{means['mrr_cond@10']:>11.4f}"
        )
    if report.reranked is None:
        return lines
    entered = report.unjudged_entered()
    total = sum(len(q.unjudged_entered) for q in entered)
    lines += [
        "",
        f"unjudged documents that entered the top 10 after the second stage: {total} in "
        f"{len(entered)} of {len(report.queries)} queries"
        + (" (judge them to make the figures complete):" if entered else "."),
    ]
    for q in entered[:max_queries]:
        after = q.reranked["judged@10"] if q.reranked is not None else 0.0
        name = q.query[:60] if q.qid == q.query else f"{q.qid} {q.query[:60]}"
        lines.append(f"  {name}: judged@10 {q.base['judged@10']:.1f} -> {after:.1f}")
        for doc_id, title in q.unjudged_entered:
            lines.append(f"    {doc_id:>10}  {title[:70]}")
    if len(entered) > max_queries:
        lines.append(f"  ... and {len(entered) - max_queries} more queries (see --json)")
    return lines
