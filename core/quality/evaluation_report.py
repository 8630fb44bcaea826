"""What an evaluation reports: its settings and timings, one row per query (both runs'
metrics, the change, win/tie/loss), and :class:`EvaluationReport` with its JSON and
per-query CSV; the metric names and labels every page and table shares."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from core.data.csvsafe import LINE_END, spreadsheet_safe_row
from core.data.documents import TextStyle
from core.quality.metrics import (
    DEFAULT_THRESHOLD,
    GAIN_NOTE,
)
from core.quality.stats import PairedComparison, paired_bootstrap
from core.search.passages import PassageSettings

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
