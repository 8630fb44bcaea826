"""Runs: each query's ranked candidates, shared by evaluation, tuning and A vs B.

:func:`retrieve_run` retrieves every query's top ``depth`` once; :func:`score_run`
scores the (query, candidate) pairs with the cross-encoder through the on-disk score
store, so a pair is never scored twice; :func:`second_stage_order` applies a rerank
depth and fusion weight (:class:`SecondStage`) to those numbers."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.data.documents import Dataset, TextStyle, rerank_text
from core.models.base import RerankDoc, Reranker
from core.search.fusion import FusionMethod, fused_order
from core.search.passages import PassageSettings, StoreScorer, rank_passages
from core.search.retrievers import DEFAULT_RRF_K, Retriever
from core.search.scorestore import ScoreStore, cached_scores


def sorted_query_ids(query_ids: Sequence[str] | Mapping[str, Any]) -> list[str]:
    """Query ids in a deterministic natural order: numeric ids by value, then the rest."""
    return sorted(query_ids, key=_natural_key)


def _natural_key(query_id: str) -> tuple[int, int, str]:
    if query_id.isascii() and query_id.isdigit():
        return (0, int(query_id), query_id)
    return (1, 0, query_id)


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
