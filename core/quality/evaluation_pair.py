"""Two second stages head to head on the same candidates (``evaluate --compare A,B``
and the Evaluate page's A vs B): per-query nDCG@10 of each, the paired interval, the
verdict and the queries where they disagree most."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from core.data.csvsafe import spreadsheet_safe
from core.data.documents import Dataset, TextStyle
from core.models.base import Encoder, Reranker
from core.models.errors import DatasetError, SettingsError
from core.quality.evaluation_report import (
    METRIC_LABELS,
    PRIMARY_METRIC,
    STAGE_INDEX,
    STAGE_RERANK,
    STAGE_SEARCH,
    TIE_TOLERANCE,
    EvalProgressFn,
)
from core.quality.metrics import (
    QueryQrels,
    evaluate_run,
)
from core.quality.runs import retrieve_run, score_run, second_stage_order, sorted_query_ids
from core.quality.stats import PairedComparison, paired_bootstrap
from core.search.index import build_index
from core.search.pipeline import MAX_CANDIDATES
from core.search.retrievers import DEFAULT_RRF_K, check_retriever_kind, make_retriever
from core.search.scorestore import ScoreStore

PairOutcome = Literal["A", "tie", "B"]


@dataclass(frozen=True)
class PairQuery:
    """One query under A and under B (same candidates): metrics, orders, agreement."""

    qid: str
    query: str
    a: dict[str, float]
    b: dict[str, float]
    ranking_a: tuple[str, ...]
    ranking_b: tuple[str, ...]

    @property
    def delta(self) -> float:
        """B minus A nDCG@10 (positive: B better on this query)."""
        return self.b[PRIMARY_METRIC] - self.a[PRIMARY_METRIC]

    @property
    def outcome(self) -> PairOutcome:
        """``"A"``, ``"B"`` (the better one) or ``"tie"``."""
        if abs(self.delta) < TIE_TOLERANCE:
            return "tie"
        return "B" if self.delta > 0 else "A"

    @property
    def kendall_tau(self) -> float:
        """Agreement of the two orders over the candidates (1 = identical)."""
        from core.quality.metrics import kendall_tau

        return kendall_tau(self.ranking_a, self.ranking_b)

    def row(self) -> dict[str, Any]:
        """qid, query, nDCG@10 and MRR@10 of both, delta, winner and Kendall tau."""
        return {
            "qid": self.qid,
            "query": self.query,
            "a_ndcg@10": self.a[PRIMARY_METRIC],
            "b_ndcg@10": self.b[PRIMARY_METRIC],
            "delta": self.delta,
            "better": self.outcome,
            "a_mrr@10": self.a["mrr@10"],
            "b_mrr@10": self.b["mrr@10"],
            "kendall_tau": self.kendall_tau,
        }


@dataclass(frozen=True)
class PairReport:
    """A vs B on labelled data: means, per-query rows, the paired interval, timings.

    ``a_seconds`` / ``b_seconds`` are each side's second-stage time over all queries
    (model scoring, once per distinct model, plus fusion); ``shared_scores`` says A and B
    use the same model, so its scoring time is counted on both.
    """

    dataset: str
    split: str | None
    retriever: str
    encoder: str
    candidates: int
    a: str
    b: str
    mean_a: dict[str, float]
    mean_b: dict[str, float]
    queries: tuple[PairQuery, ...]
    first_stage_seconds: float
    a_seconds: float
    b_seconds: float
    pairs_scored: int = 0
    pairs_cached: int = 0
    shared_scores: bool = False

    @property
    def comparison(self) -> PairedComparison:
        """B minus A nDCG@10 per query, with a paired bootstrap 95% interval."""
        return paired_bootstrap(
            [q.a[PRIMARY_METRIC] for q in self.queries],
            [q.b[PRIMARY_METRIC] for q in self.queries],
        )

    @property
    def verdict(self) -> str:
        """``"B better"``, ``"A better"`` or ``"no difference beyond noise"``."""
        return {"better": "B better", "worse": "A better"}.get(
            self.comparison.verdict, "no difference beyond noise"
        )

    def sentence(self) -> str:
        """The verdict in one plain sentence, with the interval and the W/T/L counts."""
        c = self.comparison
        interval = f"{c.confidence:.0%} CI {c.low:+.4f} to {c.high:+.4f}"
        counts = f"B wins {c.wins} · ties {c.ties} · A wins {c.losses}"
        delta = f"nDCG@10 B − A = {c.mean_delta:+.4f} ({interval}; {counts})"
        if self.verdict == "B better":
            return f"B ({self.b}) is better than A ({self.a}): {delta}."
        if self.verdict == "A better":
            return f"A ({self.a}) is better than B ({self.b}): {delta}."
        return f"No difference beyond noise between A ({self.a}) and B ({self.b}): {delta}."

    def disagreements(self, n: int = 5) -> list[PairQuery]:
        """The ``n`` queries where A and B disagree most: largest |nDCG@10 change|, then
        least order agreement (lowest Kendall tau)."""
        return sorted(self.queries, key=lambda q: (-abs(q.delta), q.kendall_tau))[:n]

    def rows(self) -> list[dict[str, Any]]:
        """One row per query (see :meth:`PairQuery.row`)."""
        return [q.row() for q in self.queries]

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready."""
        c = self.comparison
        return {
            "dataset": self.dataset,
            "split": self.split,
            "retriever": self.retriever,
            "encoder": self.encoder,
            "candidates": self.candidates,
            "a": self.a,
            "b": self.b,
            "mean_a": dict(self.mean_a),
            "mean_b": dict(self.mean_b),
            "ndcg@10_b_minus_a": c.to_dict(),
            "verdict": self.verdict,
            "a_wins": c.losses,
            "ties": c.ties,
            "b_wins": c.wins,
            "disagreements": [q.row() for q in self.disagreements()],
            "timings": {
                "first_stage_seconds": self.first_stage_seconds,
                "a_seconds": self.a_seconds,
                "b_seconds": self.b_seconds,
                "shared_scores": self.shared_scores,
                "pairs_scored": self.pairs_scored,
                "pairs_from_cache": self.pairs_cached,
            },
            "queries": self.rows(),
        }

    def per_query_csv(self) -> str:
        """Per-query rows as CSV text with a header."""
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(_PAIR_COLUMNS), lineterminator="\n")
        writer.writeheader()
        for row in self.rows():
            writer.writerow({k: spreadsheet_safe(v) for k, v in row.items()})
        return out.getvalue()


_PAIR_COLUMNS = (
    "qid",
    "query",
    "a_ndcg@10",
    "b_ndcg@10",
    "delta",
    "better",
    "a_mrr@10",
    "b_mrr@10",
    "kendall_tau",
)


def evaluate_pair(
    dataset: Dataset,
    queries: Mapping[str, str],
    qrels: Mapping[str, QueryQrels],
    *,
    a: Any,
    b: Any,
    reranker_a: Reranker | None,
    reranker_b: Reranker | None,
    encoder: Encoder | None,
    retriever: str = "dense",
    rrf_k: int = DEFAULT_RRF_K,
    candidates: int = 100,
    embed_fields: Sequence[str] | None = None,
    rerank_fields: Sequence[str] | None = None,
    rerank_style: TextStyle = "fields",
    max_queries: int | None = None,
    ignore_identical_ids: bool = False,
    name: str | None = None,
    split: str | None = None,
    store: ScoreStore | None = None,
    progress: EvalProgressFn | None = None,
) -> PairReport:
    """Evaluate two second stages ``a`` and ``b`` (:class:`~core.quality.headtohead.RerankSpec`)
    on the same first-stage candidates of every judged query.

    Each distinct model scores each (query, candidate) pair once (through ``store``, the
    on-disk score cache, when given); A's and B's orders are built from those scores
    (:func:`second_stage_order`, with each spec's fusion). ``queries`` maps query id to
    text, ``qrels`` query id to doc id to grade.
    """
    if not 1 <= candidates <= MAX_CANDIDATES:
        raise SettingsError(f"number of candidates must be 1 to {MAX_CANDIDATES}, not {candidates}")
    if max_queries is not None and max_queries < 1:
        raise SettingsError(f"max queries must be at least 1, not {max_queries}")
    for spec, model in ((a, reranker_a), (b, reranker_b)):
        if not spec.is_none and model is None:
            raise SettingsError(f"no reranker loaded for {spec.label!r}")
    kind = check_retriever_kind(retriever)
    if not qrels:
        raise DatasetError("No judged queries: nothing to evaluate.")
    embed = dataset.check_fields(embed_fields or dataset.default_embed_fields, "embed")
    rerank = dataset.check_fields(rerank_fields or dataset.default_rerank_fields, "rerank")
    qids = sorted_query_ids(list(qrels))[:max_queries]
    missing = [qid for qid in qids if not (queries.get(qid) or "").strip()]
    if missing:
        raise DatasetError(
            f"{len(missing)} judged query id(s) have no text (first: '{missing[0]}')."
        )
    texts = [queries[qid].strip() for qid in qids]

    def report(stage: str) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        return lambda done, of: progress(done, of, stage)

    t0 = time.perf_counter()
    index = None
    if kind != "bm25":
        if encoder is None:
            raise SettingsError(f"{kind} retrieval needs an encoder")
        index = build_index(dataset, encoder, embed, progress=report(STAGE_INDEX)).index
    first = make_retriever(kind, dataset, embed, encoder=encoder, index=index, rrf_k=rrf_k)
    scored_run, _, _ = retrieve_run(
        first,
        qids,
        texts,
        candidates,
        ignore_identical_ids=ignore_identical_ids,
        progress=report(STAGE_SEARCH),
    )
    first_seconds = time.perf_counter() - t0
    doc_ids = {qid: [d for d, _ in scored_run[qid]] for qid in qids}

    model_scores: dict[int, tuple[dict[str, dict[str, float]], float]] = {}
    pairs_scored = pairs_cached = 0
    runs: list[dict[str, list[str]]] = []
    seconds: list[float] = []
    for spec, model in ((a, reranker_a), (b, reranker_b)):
        if spec.is_none or model is None:
            runs.append(doc_ids)
            seconds.append(0.0)
            continue
        if id(model) not in model_scores:
            started = time.perf_counter()
            ce, done, cached = score_run(
                model,
                dataset,
                qids,
                texts,
                doc_ids,
                fields=rerank,
                style=rerank_style,
                store=store,
                progress=report(f"{STAGE_RERANK} ({spec.label})"),
            )
            pairs_scored += done
            pairs_cached += cached
            model_scores[id(model)] = (ce, time.perf_counter() - started)
        ce, spent = model_scores[id(model)]
        started = time.perf_counter()
        runs.append(
            {
                qid: second_stage_order(
                    scored_run[qid], ce[qid], None, spec.fusion_weight, spec.fusion
                )
                for qid in qids
            }
        )
        seconds.append(spent + time.perf_counter() - started)

    judged = {qid: qrels[qid] for qid in qids}
    eval_a = evaluate_run(runs[0], judged, (10, 100), ignore_identical_ids=ignore_identical_ids)
    eval_b = evaluate_run(runs[1], judged, (10, 100), ignore_identical_ids=ignore_identical_ids)
    rows = tuple(
        PairQuery(
            qid=qid,
            query=texts[i],
            a=eval_a.per_query[qid],
            b=eval_b.per_query[qid],
            ranking_a=tuple(runs[0][qid]),
            ranking_b=tuple(runs[1][qid]),
        )
        for i, qid in enumerate(qids)
    )
    return PairReport(
        dataset=name or dataset.name,
        split=split,
        retriever=kind,
        encoder=encoder.name if encoder is not None and kind != "bm25" else "none",
        candidates=candidates,
        a=a.label,
        b=b.label,
        mean_a=eval_a.mean,
        mean_b=eval_b.mean,
        queries=rows,
        first_stage_seconds=first_seconds,
        a_seconds=seconds[0],
        b_seconds=seconds[1],
        pairs_scored=pairs_scored,
        pairs_cached=pairs_cached,
        shared_scores=(
            reranker_a is not None and reranker_a is reranker_b and not a.is_none and not b.is_none
        ),
    )


def format_pair_report(report: PairReport, disagreements: int = 5) -> str:
    """Plain text: settings, both runs' headline metrics and time, the verdict, and the
    queries where A and B disagree most."""
    r = report
    split = f" ({r.split} split)" if r.split else ""
    stage = r.retriever if r.retriever == "bm25" else f"{r.retriever} ({r.encoder})"
    lines = [
        f"dataset: {r.dataset}{split}   queries: {len(r.queries)}   candidates: {r.candidates}"
        f"   first stage: {stage} ({r.first_stage_seconds:.1f} s)",
        f"A: {r.a}",
        f"B: {r.b}" + ("   (same model as A: scores computed once)" if r.shared_scores else ""),
        "",
    ]
    metrics = ("ndcg@10", "mrr@10", "recall@100", "precision@10")
    header = f"{'run':<6}" + "".join(f"{METRIC_LABELS[m]:>12}" for m in metrics) + f"{'s':>10}"
    lines += [header, "-" * len(header)]
    for label, means, secs in (("A", r.mean_a, r.a_seconds), ("B", r.mean_b, r.b_seconds)):
        lines.append(
            f"{label:<6}" + "".join(f"{means[m]:>12.4f}" for m in metrics) + f"{secs:>10.1f}"
        )
    lines += ["", f"verdict: {r.verdict}", r.sentence(), "", "queries where A and B disagree most:"]
    for q in r.disagreements(disagreements):
        text = q.query if len(q.query) <= 60 else q.query[:59] + "…"
        lines.append(
            f"  {q.qid:<10} A {q.a[PRIMARY_METRIC]:.3f}  B {q.b[PRIMARY_METRIC]:.3f}  "
            f"Δ {q.delta:+.3f}  τ {q.kendall_tau:+.2f}  {text}"
        )
    return "\n".join(lines)
