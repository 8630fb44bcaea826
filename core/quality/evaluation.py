"""Offline evaluation: score retrieval alone and retrieval + rerank against judgments.

One evaluation builds (or loads) the corpus index once, encodes every query in one
batch, retrieves ``candidates`` docs per query and, with a reranker, reorders exactly
those candidates. Both runs are scored with :func:`core.quality.metrics.evaluate_run`, so the
reranked run can only move docs within the retrieved set: Recall@candidates is the
same for both, and any gain in nDCG@10 or MRR@10 is the reranker's doing.

Two sources of judgments:

* :func:`evaluate_beir`: a BEIR dataset (corpus, queries, qrels). Documents are read
  as ``title + " " + text`` by both models, as BEIR and MTEB do.
* :func:`evaluate_judgments`: any :class:`~core.data.documents.Dataset` with judgments keyed
  by query text (the ``query,doc_id,rating`` CSV of :func:`core.data.beir.load_judgments_csv`).

Per query, reranking *wins* when it raises nDCG@10, *loses* when it lowers it, and
*ties* when the change is below :data:`TIE_TOLERANCE`. The mean change comes with a
paired bootstrap 95% interval (:mod:`core.quality.stats`), and the report says plainly whether
reranking helped, hurt, or changed nothing beyond noise.

The first stage is dense, BM25 or hybrid (:mod:`core.search.retrievers`); the second stage
can rerank only the top ``rerank_depth`` candidates (the rest keep their order below
them) and blend its scores with the first stage's (:mod:`core.search.fusion`). Cross-encoder
scores are kept on disk (:mod:`core.search.scorestore`), so re-evaluating with another depth,
weight or first stage only scores pairs never seen before.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from core.data.beir import BeirDataset
from core.data.csvsafe import LINE_END, spreadsheet_safe, spreadsheet_safe_row
from core.data.documents import Dataset, TextStyle, make_dataset, rerank_text
from core.models.base import Encoder, RerankDoc, Reranker
from core.models.errors import DatasetError, SettingsError
from core.quality.metrics import (
    DEFAULT_K_VALUES,
    DEFAULT_THRESHOLD,
    GAIN_NOTE,
    QueryQrels,
    check_threshold,
    evaluate_run,
    unjudged_in_top_k,
)
from core.quality.stats import PairedComparison, paired_bootstrap
from core.search.fusion import FusionMethod, check_fusion, fused_order
from core.search.index import build_index
from core.search.passages import PassageSettings, StoreScorer, rank_passages
from core.search.pipeline import MAX_CANDIDATES
from core.search.retrievers import DEFAULT_RRF_K, Retriever, check_retriever_kind, make_retriever
from core.search.scorestore import ScoreStore, cached_scores

EvalProgressFn = Callable[[int, int, str], None]
Outcome = Literal["win", "tie", "loss"]

BEIR_FIELDS: tuple[str, str] = ("title", "text")
PRIMARY_METRIC = "ndcg@10"
HEADLINE_METRICS: tuple[str, ...] = ("ndcg@10", "mrr@10", "recall@100", "precision@10")
# Judged share and the condensed-list figures (unjudged documents removed first).
UNJUDGED_METRICS: tuple[str, ...] = ("judged@10", "ndcg_cond@10", "mrr_cond@10")
METRIC_LABELS: dict[str, str] = {
    "ndcg@10": "nDCG@10",
    "mrr@10": "MRR@10",
    "recall@100": "Recall@100",
    "precision@10": "P@10",
    "judged@10": "judged@10",
    "ndcg_cond@10": "nDCG@10 (condensed)",
    "mrr_cond@10": "MRR@10 (condensed)",
}
CONDENSED_NOTE = "condensed: unjudged documents removed before scoring (Sakai 2007)"
UNJUDGED_K = 10
TIE_TOLERANCE = 1e-9

# Progress stages, in the order they run.
STAGE_INDEX = "index corpus"
STAGE_ENCODE = "encode queries"
STAGE_SEARCH = "search"
STAGE_RERANK = "rerank"


@dataclass(frozen=True)
class EvaluationSettings:
    """What was evaluated, and how."""

    dataset: str
    split: str | None
    encoder: str
    reranker: str | None
    candidates: int
    num_queries: int
    total_queries: int
    corpus_size: int
    k_values: tuple[int, ...]
    embed_fields: tuple[str, ...]
    rerank_fields: tuple[str, ...]
    rerank_style: TextStyle
    ignore_identical_ids: bool
    retriever: str = "dense"
    rerank_depth: int | None = None
    fusion_weight: float = 1.0
    fusion: str = "linear"
    relevance_threshold: int = DEFAULT_THRESHOLD
    grades: tuple[int, ...] = ()

    @property
    def scale_note(self) -> str:
        """The grades, the gain and the threshold, in one line."""
        grades = self.grades
        if not grades:
            scale = "no grades"
        elif set(grades) <= {0, 1}:
            scale = "binary grades (0/1)"
        else:
            scale = f"grades {grades[0]}-{grades[-1]}"
        return (
            f"{scale}; nDCG uses {GAIN_NOTE}; MRR, Recall and P count a document "
            f"relevant at grade >= {self.relevance_threshold}"
        )

    passages: str | None = None
    dense_passages: str | None = None


@dataclass(frozen=True)
class EvaluationTimings:
    """Seconds per stage. Query encoding ran as one batch; search and rerank per query."""

    index: float
    index_from_cache: bool
    query_encode: float
    search: float
    rerank: float
    num_queries: int
    pairs_scored: int = 0
    pairs_cached: int = 0
    docs_read_in_part: int = 0

    def per_query_ms(self, seconds: float) -> float:
        """``seconds`` spread over the evaluated queries, in milliseconds."""
        return 1000.0 * seconds / self.num_queries if self.num_queries else 0.0

    @property
    def query_encode_ms(self) -> float:
        """Query encoding time per query (ms): the batch time divided by the queries."""
        return self.per_query_ms(self.query_encode)

    @property
    def search_ms(self) -> float:
        """Mean exact-search time per query (ms)."""
        return self.per_query_ms(self.search)

    @property
    def rerank_ms(self) -> float:
        """Mean reranking time per query (ms); 0 without a reranker."""
        return self.per_query_ms(self.rerank)

    def to_dict(self) -> dict[str, Any]:
        """Totals in seconds and per-query means in milliseconds."""
        return {
            "index_seconds": self.index,
            "index_from_cache": self.index_from_cache,
            "query_encode_seconds": self.query_encode,
            "search_seconds": self.search,
            "rerank_seconds": self.rerank,
            "num_queries": self.num_queries,
            "query_encode_ms_per_query": self.query_encode_ms,
            "search_ms_per_query": self.search_ms,
            "rerank_ms_per_query": self.rerank_ms,
            "pairs_scored": self.pairs_scored,
            "pairs_from_cache": self.pairs_cached,
            "docs_read_in_part": self.docs_read_in_part,
        }


@dataclass(frozen=True)
class QueryEvaluation:
    """One query's scores: every metric for retrieval alone and, if run, after reranking.

    ``base_ranking`` is the retrieved candidates, best first; ``reranked_ranking`` the
    same docs in the reranker's order (None without a reranker). ``unjudged_entered``
    lists (doc id, title) of the unjudged documents the second stage brought into the
    top 10 (they were not in the first stage's top 10).
    """

    qid: str
    query: str
    base: dict[str, float]
    reranked: dict[str, float] | None = None
    base_ranking: tuple[str, ...] = ()
    reranked_ranking: tuple[str, ...] | None = None
    unjudged_entered: tuple[tuple[str, str], ...] = ()

    @property
    def delta(self) -> float | None:
        """Reranked minus retrieval nDCG@10; None without a reranker."""
        if self.reranked is None:
            return None
        return self.reranked[PRIMARY_METRIC] - self.base[PRIMARY_METRIC]

    @property
    def outcome(self) -> Outcome | None:
        """``"win"``, ``"tie"`` (|delta| < :data:`TIE_TOLERANCE`) or ``"loss"`` for reranking."""
        delta = self.delta
        if delta is None:
            return None
        if abs(delta) < TIE_TOLERANCE:
            return "tie"
        return "win" if delta > 0 else "loss"

    def row(self) -> dict[str, Any]:
        """The per-query row: ids, headline metrics of both runs, delta and outcome."""
        row: dict[str, Any] = {"qid": self.qid, "query": self.query}
        row[f"base_{PRIMARY_METRIC}"] = self.base[PRIMARY_METRIC]
        row[f"reranked_{PRIMARY_METRIC}"] = (
            self.reranked[PRIMARY_METRIC] if self.reranked is not None else None
        )
        row["delta"] = self.delta
        row["outcome"] = self.outcome
        for metric in HEADLINE_METRICS[1:] + UNJUDGED_METRICS:
            row[f"base_{metric}"] = self.base[metric]
            row[f"reranked_{metric}"] = self.reranked[metric] if self.reranked is not None else None
        row["unjudged_entered"] = len(self.unjudged_entered) if self.reranked is not None else None
        return row


@dataclass(frozen=True)
class EvaluationReport:
    """The outcome of an evaluation: settings, mean metrics, per-query rows, timings.

    ``base`` and ``reranked`` map metric keys (``"ndcg@10"``, ``"recall@100"``, ...) to
    their mean over the evaluated queries; ``reranked`` is None without a reranker.
    """

    settings: EvaluationSettings
    base: dict[str, float]
    reranked: dict[str, float] | None
    queries: tuple[QueryEvaluation, ...]
    timings: EvaluationTimings

    def _count(self, outcome: Outcome) -> int:
        return sum(1 for q in self.queries if q.outcome == outcome)

    @property
    def wins(self) -> int:
        """Queries whose nDCG@10 reranking raised."""
        return self._count("win")

    @property
    def ties(self) -> int:
        """Queries whose nDCG@10 reranking left unchanged (or no reranker ran: 0)."""
        return self._count("tie")

    @property
    def losses(self) -> int:
        """Queries whose nDCG@10 reranking lowered."""
        return self._count("loss")

    @property
    def comparison(self) -> PairedComparison | None:
        """Reranked minus retrieval nDCG@10 per query, with a paired bootstrap 95% CI."""
        if self.reranked is None:
            return None
        return paired_bootstrap(
            [q.base[PRIMARY_METRIC] for q in self.queries],
            [q.reranked[PRIMARY_METRIC] for q in self.queries if q.reranked is not None],
        )

    @property
    def second_stage_label(self) -> str:
        """ "Reranking" or "Fusion" (a fusion weight below 1), for sentences."""
        return "Fusion" if self.settings.fusion_weight < 1.0 else "Reranking"

    def unjudged_entered(self) -> list[QueryEvaluation]:
        """The queries whose second stage brought unjudged documents into the top 10."""
        return [q for q in self.queries if q.unjudged_entered]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per query, in evaluation order (see :meth:`QueryEvaluation.row`)."""
        return [q.row() for q in self.queries]

    def to_dict(self, *, with_rankings: bool = False) -> dict[str, Any]:
        """Everything, JSON-ready (plain dicts, lists, strings, numbers, None).

        ``with_rankings`` adds each query's candidate ids in both orders.
        """
        settings = asdict(self.settings)
        settings["k_values"] = list(self.settings.k_values)
        settings["embed_fields"] = list(self.settings.embed_fields)
        settings["rerank_fields"] = list(self.settings.rerank_fields)
        queries = []
        for q in self.queries:
            row = q.row()
            row["unjudged_entered_ids"] = [doc_id for doc_id, _ in q.unjudged_entered]
            if with_rankings:
                row["base_ranking"] = list(q.base_ranking)
                row["reranked_ranking"] = (
                    list(q.reranked_ranking) if q.reranked_ranking is not None else None
                )
            queries.append(row)
        reranked = self.reranked is not None
        comparison = self.comparison
        settings["grades"] = list(self.settings.grades)
        settings["gain"] = GAIN_NOTE
        return {
            "settings": settings,
            "condensed": CONDENSED_NOTE,
            "base": dict(self.base),
            "reranked": dict(self.reranked) if self.reranked is not None else None,
            "wins": self.wins if reranked else None,
            "ties": self.ties if reranked else None,
            "losses": self.losses if reranked else None,
            "ndcg@10_change": comparison.to_dict() if comparison is not None else None,
            "timings": self.timings.to_dict(),
            "queries": queries,
        }

    def per_query_csv(self) -> str:
        """Per-query rows as CSV text with a header; empty cells where no reranker ran."""
        rows = self.rows()
        columns = list(rows[0]) if rows else list(_empty_row_columns())
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator=LINE_END)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                spreadsheet_safe_row({k: "" if v is None else v for k, v in row.items()})
            )
        return out.getvalue()

    def write_per_query_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`per_query_csv` to ``path`` (parents created); return the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.per_query_csv(), encoding="utf-8")
        return target


def _empty_row_columns() -> list[str]:
    return list(QueryEvaluation("", "", dict.fromkeys(HEADLINE_METRICS, 0.0)).row())


def sorted_query_ids(query_ids: Sequence[str] | Mapping[str, Any]) -> list[str]:
    """Query ids in a deterministic natural order: numeric ids by value, then the rest."""
    return sorted(query_ids, key=_natural_key)


def _natural_key(query_id: str) -> tuple[int, int, str]:
    if query_id.isascii() and query_id.isdigit():
        return (0, int(query_id), query_id)
    return (1, 0, query_id)


def beir_to_dataset(beir: BeirDataset) -> Dataset:
    """The BEIR corpus as a :class:`Dataset` of ``{"_id", "title", "text"}`` records.

    Ids come from ``_id``; embed and rerank fields are ``("title", "text")``, whose
    plain-joined text is :func:`core.data.beir.document_text`, i.e. ``title + " " + text``.
    """
    records = [
        {"_id": doc_id, "title": doc.get("title") or "", "text": doc.get("text") or ""}
        for doc_id, doc in beir.corpus.items()
    ]
    return make_dataset(
        beir.name,
        records,
        id_field="_id",
        title_field="title",
        embed_fields=BEIR_FIELDS,
        rerank_fields=BEIR_FIELDS,
        source=f"BEIR {beir.name} ({beir.split} split)",
    )


def evaluate_beir(
    beir: BeirDataset,
    *,
    encoder: Encoder | None,
    reranker: Reranker | None = None,
    candidates: int = 100,
    max_queries: int | None = None,
    k_values: Sequence[int] = DEFAULT_K_VALUES,
    rerank_fields: Sequence[str] = BEIR_FIELDS,
    ignore_identical_ids: bool = True,
    use_cache: bool = True,
    progress: EvalProgressFn | None = None,
    dataset: Dataset | None = None,
    options: SecondStage | None = None,
    threshold: int = DEFAULT_THRESHOLD,
) -> EvaluationReport:
    """Evaluate retrieval and retrieval + rerank on the judged queries of a BEIR split.

    Documents are embedded and reranked as ``title + " " + text`` (``rerank_fields``
    may narrow what the reranker reads). ``max_queries`` keeps the first N queries in
    :func:`sorted_query_ids` order. With ``ignore_identical_ids`` (BEIR's default) a
    doc whose id equals the query id is never a candidate: one more doc is retrieved
    in its place, and the metrics drop it too. ``k_values`` always gains 10 and 100,
    for the headline metrics. ``dataset`` reuses a prebuilt :func:`beir_to_dataset`.
    ``options`` picks the first stage, rerank depth and fusion (default: dense, rerank
    every candidate, no fusion). ``encoder`` may be None for BM25.
    """
    corpus = dataset if dataset is not None else beir_to_dataset(beir)
    return _evaluate(
        corpus,
        beir.queries,
        beir.qrels,
        name=beir.name,
        split=beir.split,
        encoder=encoder,
        reranker=reranker,
        embed_fields=BEIR_FIELDS,
        rerank_fields=rerank_fields,
        rerank_style="plain",
        candidates=candidates,
        max_queries=max_queries,
        k_values=k_values,
        ignore_identical_ids=ignore_identical_ids,
        use_cache=use_cache,
        progress=progress,
        options=options or SecondStage(),
        threshold=threshold,
    )


def evaluate_judgments(
    dataset: Dataset,
    judgments_by_query_text: Mapping[str, Mapping[str, int]],
    *,
    encoder: Encoder | None,
    reranker: Reranker | None = None,
    embed_fields: Sequence[str] | None = None,
    rerank_fields: Sequence[str] | None = None,
    rerank_style: TextStyle = "fields",
    candidates: int = 100,
    max_queries: int | None = None,
    k_values: Sequence[int] = DEFAULT_K_VALUES,
    use_cache: bool = True,
    progress: EvalProgressFn | None = None,
    options: SecondStage | None = None,
    threshold: int = DEFAULT_THRESHOLD,
) -> EvaluationReport:
    """Evaluate on any dataset with judgments keyed by query text (doc id -> grade, any
    non-negative integer; ``threshold`` is the lowest grade MRR/Recall count relevant).

    The query text is its id in the report. Fields default to the dataset's defaults.
    Raises :class:`DatasetError` when no judged doc id exists in the dataset (judgments
    made on another dataset).
    """
    if not judgments_by_query_text:
        raise DatasetError("No judgments to evaluate: load a judgments CSV first.")
    judged = {doc_id for docs in judgments_by_query_text.values() for doc_id in docs}
    if judged and not any(dataset.has_id(doc_id) for doc_id in judged):
        raise DatasetError(
            f"None of the {len(judged)} judged doc ids exist in dataset '{dataset.name}'"
            f" (first: '{sorted(judged)[0]}'); were the judgments made on another dataset?"
        )
    qrels = {query: dict(docs) for query, docs in judgments_by_query_text.items()}
    queries = {query: query for query in qrels}
    return _evaluate(
        dataset,
        queries,
        qrels,
        name=dataset.name,
        split=None,
        encoder=encoder,
        reranker=reranker,
        embed_fields=embed_fields or dataset.default_embed_fields,
        rerank_fields=rerank_fields or dataset.default_rerank_fields,
        rerank_style=rerank_style,
        candidates=candidates,
        max_queries=max_queries,
        k_values=k_values,
        ignore_identical_ids=False,
        use_cache=use_cache,
        progress=progress,
        options=options or SecondStage(),
        threshold=threshold,
    )


@dataclass(frozen=True)
class SecondStage:
    """First-stage choice and how the second stage is applied in an evaluation.

    ``rerank_depth`` None reranks every candidate; ``fusion_weight`` 1 is pure reranking.
    ``score_store`` keeps cross-encoder scores on disk (None: the default store when
    ``use_cache`` is on). ``passages`` reads long documents passage by passage
    (:mod:`core.search.passages`); None sends each document whole (first passage).
    ``dense_passages`` embeds long documents as one vector per passage and retrieves a
    document by its best (:mod:`core.search.passage_index`); None: one vector each.
    """

    retriever: str = "dense"
    rrf_k: int = DEFAULT_RRF_K
    rerank_depth: int | None = None
    fusion_weight: float = 1.0
    fusion: FusionMethod = "linear"
    score_store: ScoreStore | None = None
    passages: PassageSettings | None = None
    dense_passages: PassageSettings | None = None


ScoredRun = dict[str, list[tuple[str, float]]]


def retrieve_run(
    retriever: Retriever,
    qids: Sequence[str],
    texts: Sequence[str],
    depth: int,
    *,
    ignore_identical_ids: bool,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[ScoredRun, float, float]:
    """Each query's top ``depth`` (doc id, first-stage score), best first; and the
    seconds spent encoding and searching. With ``ignore_identical_ids`` a doc whose id
    equals the query id is skipped and one more is fetched in its place."""
    results = retriever.retrieve_many(list(texts), depth + (1 if ignore_identical_ids else 0))
    run: ScoredRun = {}
    encode = search = 0.0
    for i, (qid, result) in enumerate(zip(qids, results, strict=True)):
        encode += result.encode_seconds
        search += result.search_seconds
        hits = [h for h in result.hits if not (ignore_identical_ids and h.id == qid)]
        run[qid] = [(h.id, h.score) for h in hits[:depth]]
        if progress is not None:
            progress(i + 1, len(qids))
    return run, encode, search


def score_run(
    reranker: Reranker,
    dataset: Dataset,
    qids: Sequence[str],
    texts: Sequence[str],
    doc_ids: Mapping[str, Sequence[str]],
    *,
    fields: Sequence[str],
    style: TextStyle,
    store: ScoreStore | None,
    progress: Callable[[int, int], None] | None = None,
    passages: PassageSettings | None = None,
    read_in_part: list[int] | None = None,
    split_docs: list[int] | None = None,
) -> tuple[dict[str, dict[str, float]], int, int]:
    """Cross-encoder score of every (query, doc) in ``doc_ids``; and how many pairs the
    model scored and how many came from ``store``.

    With ``passages`` a doc's score is its passages' aggregate (every passage cached in
    ``store``); ``read_in_part``, if given, gains one count per doc not read in full,
    ``split_docs`` one count per query: its docs read as more than one passage.
    """
    scores: dict[str, dict[str, float]] = {}
    scored = cached = 0
    for i, qid in enumerate(qids):
        docs = [
            RerankDoc(id=d, text=rerank_text(dataset.record(d), fields, style))
            for d in dict.fromkeys(doc_ids[qid])
        ]
        if passages is not None:
            scorer = StoreScorer(reranker, store)
            ranked, reads = rank_passages(reranker, texts[i], docs, passages, score=scorer)
            scores[qid] = {r.id: r.score for r in ranked}
            if split_docs is not None:
                split_docs.append(sum(1 for r in reads.values() if r.num_passages > 1))
            scored += scorer.scored
            cached += scorer.cached
            if read_in_part is not None:
                read_in_part.append(sum(1 for r in ranked if r.truncated))
        else:
            found, computed = cached_scores(reranker, texts[i], docs, store)
            scores[qid] = {d: s for d, (s, _) in found.items()}
            scored += computed
            cached += len(docs) - computed
            if read_in_part is not None:
                read_in_part.append(sum(1 for _, t in found.values() if t))
        if progress is not None:
            progress(i + 1, len(qids))
    return scores, scored, cached


def second_stage_order(
    ranked: Sequence[tuple[str, float]],
    ce: Mapping[str, float],
    depth: int | None,
    weight: float = 1.0,
    fusion: FusionMethod = "linear",
) -> list[str]:
    """The final ranking: the top ``depth`` of ``ranked`` reordered by cross-encoder
    (or fused) score, then the rest in first-stage order. Docs without a score keep
    their first-stage place after the scored ones of the top ``depth``."""
    depth = len(ranked) if depth is None else depth
    head = [(d, s) for d, s in ranked[:depth] if d in ce]
    unscored = [d for d, _ in ranked[:depth] if d not in ce]
    order, _ = fused_order([s for _, s in head], [ce[d] for d, _ in head], weight, fusion)
    return [head[i][0] for i in order] + unscored + [d for d, _ in ranked[depth:]]


def _evaluate(
    dataset: Dataset,
    queries: Mapping[str, str],
    qrels: Mapping[str, QueryQrels],
    *,
    name: str,
    split: str | None,
    encoder: Encoder | None,
    reranker: Reranker | None,
    embed_fields: Sequence[str],
    rerank_fields: Sequence[str],
    rerank_style: TextStyle,
    candidates: int,
    max_queries: int | None,
    k_values: Sequence[int],
    ignore_identical_ids: bool,
    use_cache: bool,
    progress: EvalProgressFn | None,
    options: SecondStage,
    threshold: int = DEFAULT_THRESHOLD,
) -> EvaluationReport:
    threshold = check_threshold(threshold)
    if not 1 <= candidates <= MAX_CANDIDATES:
        raise SettingsError(f"number of candidates must be 1 to {MAX_CANDIDATES}, not {candidates}")
    if max_queries is not None and max_queries < 1:
        raise SettingsError(f"max queries must be at least 1, not {max_queries}")
    depth = options.rerank_depth
    if depth is not None and not 1 <= depth <= candidates:
        raise SettingsError(f"rerank depth must be 1 to {candidates} (the candidates), not {depth}")
    weight, fusion = check_fusion(options.fusion_weight, options.fusion)
    kind = check_retriever_kind(options.retriever)
    if not qrels:
        raise DatasetError(f"No judged queries in '{name}': nothing to evaluate.")
    ks = tuple(sorted({int(k) for k in k_values} | {10, 100}))
    if ks[0] < 1:
        raise SettingsError(f"cut-offs k must be positive, not {ks[0]}")
    embed = dataset.check_fields(embed_fields, "embed")
    rerank = dataset.check_fields(rerank_fields, "rerank") if reranker is not None else ()

    qids = sorted_query_ids(list(qrels))
    if max_queries is not None:
        qids = qids[:max_queries]
    missing = [qid for qid in qids if not (queries.get(qid) or "").strip()]
    if missing:
        raise DatasetError(
            f"{len(missing)} judged query id(s) have no text (first: '{missing[0]}')."
        )
    texts = [queries[qid].strip() for qid in qids]
    total = len(qids)

    last: dict[str, int] = {}

    def report(stage: str) -> Callable[[int, int], None]:
        def call(done: int, of: int) -> None:
            if progress is not None and last.get(stage) != done:
                last[stage] = done
                progress(done, of, stage)

        return call

    index_seconds, from_cache, index = 0.0, True, None
    if kind != "bm25":
        if encoder is None:
            raise SettingsError(f"{kind} retrieval needs an encoder")
        build = build_index(
            dataset,
            encoder,
            embed,
            use_cache=use_cache,
            progress=report(STAGE_INDEX),
            passages=options.dense_passages,
        )
        index, index_seconds, from_cache = build.index, build.seconds, build.from_cache
    report(STAGE_INDEX)(len(dataset), len(dataset))
    retriever = make_retriever(
        kind, dataset, embed, encoder=encoder, index=index, rrf_k=options.rrf_k
    )
    base_scored, encode_seconds, search_seconds = retrieve_run(
        retriever,
        qids,
        texts,
        candidates,
        ignore_identical_ids=ignore_identical_ids,
        progress=report(STAGE_SEARCH),
    )
    report(STAGE_ENCODE)(total, total)
    base_run = {qid: [d for d, _ in base_scored[qid]] for qid in qids}

    reranked_run: dict[str, list[str]] | None = None
    rerank_seconds, pairs_scored, pairs_cached = 0.0, 0, 0
    part: list[int] = []
    if reranker is not None:
        store = options.score_store
        if store is None and use_cache:
            store = ScoreStore()
        t0 = time.perf_counter()
        ce, pairs_scored, pairs_cached = score_run(
            reranker,
            dataset,
            qids,
            texts,
            {qid: base_run[qid][:depth] for qid in qids},
            fields=rerank,
            style=rerank_style,
            store=store,
            progress=report(STAGE_RERANK),
            passages=options.passages,
            read_in_part=part,
        )
        rerank_seconds = time.perf_counter() - t0
        reranked_run = {
            qid: second_stage_order(base_scored[qid], ce[qid], depth, weight, fusion)
            for qid in qids
        }

    judged = {qid: qrels[qid] for qid in qids}
    scoring = {"ignore_identical_ids": ignore_identical_ids, "threshold": threshold}
    base_eval = evaluate_run(base_run, judged, ks, **scoring)
    reranked_eval = (
        evaluate_run(reranked_run, judged, ks, **scoring) if reranked_run is not None else None
    )

    def entered(qid: str) -> tuple[tuple[str, str], ...]:
        if reranked_run is None:
            return ()

        def top(run: dict[str, list[str]]) -> list[str]:
            ranking = [d for d in run[qid] if not (ignore_identical_ids and d == qid)]
            return unjudged_in_top_k(ranking, judged[qid], UNJUDGED_K)

        before = set(top(base_run))
        return tuple((d, dataset.title(d)) for d in top(reranked_run) if d not in before)

    rows = tuple(
        QueryEvaluation(
            qid=qid,
            query=texts[i],
            base=base_eval.per_query[qid],
            reranked=reranked_eval.per_query[qid] if reranked_eval is not None else None,
            base_ranking=tuple(base_run[qid]),
            reranked_ranking=tuple(reranked_run[qid]) if reranked_run is not None else None,
            unjudged_entered=entered(qid),
        )
        for i, qid in enumerate(qids)
    )
    return EvaluationReport(
        settings=EvaluationSettings(
            dataset=name,
            split=split,
            encoder=encoder.name if encoder is not None and kind != "bm25" else "none",
            reranker=reranker.name if reranker is not None else None,
            candidates=candidates,
            num_queries=total,
            total_queries=len(qrels),
            corpus_size=len(dataset),
            k_values=ks,
            embed_fields=tuple(embed),
            rerank_fields=tuple(rerank),
            rerank_style=rerank_style,
            ignore_identical_ids=ignore_identical_ids,
            retriever=kind,
            rerank_depth=depth if reranker is not None else None,
            fusion_weight=weight,
            fusion=fusion,
            relevance_threshold=threshold,
            grades=tuple(sorted({g for docs in judged.values() for g in docs.values()})),
            passages=options.passages.label()
            if reranker is not None and options.passages is not None
            else None,
            dense_passages=dense_label(options.dense_passages) if kind != "bm25" else None,
        ),
        base=base_eval.mean,
        reranked=reranked_eval.mean if reranked_eval is not None else None,
        queries=rows,
        timings=EvaluationTimings(
            index=index_seconds,
            index_from_cache=from_cache,
            query_encode=encode_seconds,
            search=search_seconds,
            rerank=rerank_seconds,
            num_queries=total,
            pairs_scored=pairs_scored,
            pairs_cached=pairs_cached,
            docs_read_in_part=sum(part),
        ),
    )


def dense_label(settings: PassageSettings | None) -> str | None:
    """How dense passages cut documents, e.g. "window fit, stride half, up to 8"; None
    when documents are embedded whole."""
    if settings is None:
        return None
    window = "fit" if settings.window is None else str(settings.window)
    stride = "half" if settings.stride is None else str(settings.stride)
    return f"best of passages: window {window}, stride {stride}, up to {settings.max_per_doc}"


def second_stage_name(settings: EvaluationSettings) -> str:
    """What the second stage did, e.g. "rerank top 50" or "fusion 0.6 (linear), top 100"."""
    depth = settings.rerank_depth or settings.candidates
    by = f", passages {settings.passages}" if settings.passages else ""
    if settings.fusion_weight < 1.0:
        return f"fused w={settings.fusion_weight:g} ({settings.fusion}), top {depth}{by}"
    return f"rerank top {depth}{by}"


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


# --- two second stages head to head ------------------------------------------------------

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
