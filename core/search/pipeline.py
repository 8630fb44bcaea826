"""The search pipeline: retrieve candidates with a first stage, then rerank them.

:func:`search_with_rerank` returns a :class:`SearchResult` whose candidates each keep
both stages' ranks and scores, so any view (side by side lists, movement chart,
exports) is a projection of one object. Ranks are 1-based. The first stage is dense
retrieval by default, or any :class:`~core.search.retrievers.Retriever` (BM25, hybrid).

With a fusion weight below 1 the final order is a blend of both stages'
(:mod:`core.search.fusion`); ``rerank_rank`` and ``rerank_score`` stay the cross-encoder's own,
``fused_rank`` and ``fused_score`` hold the blend. Movement is
``retrieval_rank - final_rank``: positive means the second stage moved the item up.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from core.data.documents import Corpus, TextStyle, rerank_text
from core.models.base import Encoder, ProgressFn, RerankDoc, Reranker, ScoreKind
from core.models.errors import SettingsError
from core.models.registry import load_encoder
from core.search.fusion import FusionMethod, check_fusion, fused_order
from core.search.hits import PassageMatch
from core.search.index import VectorIndex, build_index
from core.search.passages import PassageRead, PassageSettings, rank_passages
from core.search.retrievers import DenseRetriever, Retriever

MAX_CANDIDATES = 1000


@dataclass(frozen=True)
class Candidate:
    """One retrieved item, with what each stage made of it."""

    id: str
    title: str
    record: dict[str, Any]
    retrieval_rank: int
    retrieval_score: float
    rerank_text: str
    num_results: int
    rerank_rank: int | None = None
    rerank_score: float | None = None
    rerank_normalized: float | None = None
    truncated: bool = False
    fused_rank: int | None = None
    fused_score: float | None = None
    passages: PassageRead | None = None
    retrieval_passage: PassageMatch | None = None

    @property
    def num_passages(self) -> int | None:
        """Passages the reranker scored for this document (None: not read by passage)."""
        return self.passages.num_passages if self.passages is not None else None

    @property
    def final_rank(self) -> int:
        """Rank in the order shown to the user: fused, else reranked, else retrieval."""
        if self.fused_rank is not None:
            return self.fused_rank
        return self.rerank_rank if self.rerank_rank is not None else self.retrieval_rank

    @property
    def movement(self) -> int | None:
        """``retrieval_rank - final_rank`` (positive: moved up); None without rerank."""
        if self.rerank_rank is None:
            return None
        return self.retrieval_rank - self.final_rank

    @property
    def in_retrieval_top(self) -> bool:
        """Whether retrieval alone put it in the top ``num_results``."""
        return self.retrieval_rank <= self.num_results

    @property
    def in_final_top(self) -> bool:
        """Whether it is in the top ``num_results`` shown after reranking."""
        return self.final_rank <= self.num_results

    @property
    def entered(self) -> bool:
        """Reranking brought it into the top ``num_results`` from below."""
        return self.in_final_top and not self.in_retrieval_top

    @property
    def left(self) -> bool:
        """Reranking pushed it out of the top ``num_results``."""
        return self.in_retrieval_top and not self.in_final_top

    def to_dict(self, *, with_record: bool = True) -> dict[str, Any]:
        """Every field and derived figure, JSON-ready."""
        data = asdict(self)
        if not with_record:
            data.pop("record")
        data.pop("num_results")
        data.update(
            movement=self.movement,
            final_rank=self.final_rank,
            in_retrieval_top=self.in_retrieval_top,
            in_final_top=self.in_final_top,
            entered_top=self.entered,
            left_top=self.left,
        )
        return data


@dataclass(frozen=True)
class Timings:
    """Seconds spent per stage of one query (``index`` is 0 when it was prebuilt)."""

    index: float = 0.0
    query_encode: float = 0.0
    search: float = 0.0
    rerank: float = 0.0
    total: float = 0.0
    index_from_cache: bool | None = None


@dataclass(frozen=True)
class SearchResult:
    """The outcome of one query: candidates in retrieval order, plus context."""

    query: str
    dataset: str
    encoder: str
    reranker: str | None
    score_kind: ScoreKind | None
    num_candidates: int
    num_results: int
    embed_fields: tuple[str, ...]
    rerank_fields: tuple[str, ...]
    candidates: tuple[Candidate, ...]
    timings: Timings = field(default_factory=Timings)
    notice: str | None = None
    retriever: str = "dense"
    retrieval_score_kind: str = "cosine"
    fusion_weight: float = 1.0
    fusion: str = "linear"
    passage_settings: PassageSettings | None = None
    dense_passages: PassageSettings | None = None

    @property
    def read_in_full(self) -> int:
        """Reranked candidates whose every token the reranker read."""
        return sum(1 for c in self.candidates if c.rerank_score is not None and not c.truncated)

    @property
    def read_in_part(self) -> int:
        """Reranked candidates of which part was never read (truncated, or capped)."""
        return sum(1 for c in self.candidates if c.rerank_score is not None and c.truncated)

    @property
    def fused(self) -> bool:
        """Whether the final order blends both stages (a fusion weight below 1)."""
        return self.reranker is not None and self.fusion_weight < 1.0

    @property
    def reranked(self) -> list[Candidate]:
        """All candidates in final order (reranked order, or retrieval order)."""
        return sorted(self.candidates, key=lambda c: c.final_rank)

    @property
    def top_retrieval(self) -> list[Candidate]:
        """The top ``num_results`` by retrieval alone."""
        return list(self.candidates[: self.num_results])

    @property
    def top_final(self) -> list[Candidate]:
        """The top ``num_results`` after reranking."""
        return self.reranked[: self.num_results]

    def to_dict(self, *, with_record: bool = True) -> dict[str, Any]:
        """JSON-ready dict with every candidate (final order) and the timings."""
        return {
            "query": self.query,
            "dataset": self.dataset,
            "encoder": self.encoder,
            "retriever": self.retriever,
            "retrieval_score_kind": self.retrieval_score_kind,
            "reranker": self.reranker,
            "fusion_weight": self.fusion_weight if self.reranker else None,
            "fusion": self.fusion if self.fused else None,
            "score_kind": self.score_kind,
            "num_candidates": self.num_candidates,
            "num_results": self.num_results,
            "embed_fields": list(self.embed_fields),
            "rerank_fields": list(self.rerank_fields),
            "timings": asdict(self.timings),
            "notice": self.notice,
            "passages": asdict(self.passage_settings) if self.passage_settings else None,
            "dense_passages": asdict(self.dense_passages) if self.dense_passages else None,
            "read_in_full": self.read_in_full if self.reranker else None,
            "read_in_part": self.read_in_part if self.reranker else None,
            "results": [c.to_dict(with_record=with_record) for c in self.reranked],
        }


def search_with_rerank(
    dataset: Corpus,
    query: str,
    *,
    encoder: Encoder | None = None,
    reranker: Reranker | None = None,
    embed_fields: Sequence[str] | None = None,
    rerank_fields: Sequence[str] | None = None,
    num_candidates: int = 50,
    num_results: int = 20,
    index: VectorIndex | None = None,
    rerank_style: TextStyle = "fields",
    rerank_top_n: int | None = None,
    fallback: Reranker | None = None,
    progress: ProgressFn | None = None,
    retriever: Retriever | None = None,
    fusion_weight: float = 1.0,
    fusion: FusionMethod = "linear",
    passages: PassageSettings | None = None,
    dense_passages: PassageSettings | None = None,
) -> SearchResult:
    """Retrieve ``num_candidates`` with the first stage, then rerank them all.

    The first stage is ``retriever`` if given (its fields are its own), else dense
    retrieval with ``encoder`` over ``embed_fields``. ``index`` skips building (or
    loading) the corpus index; it must have been built from ``embed_fields`` with
    ``encoder``. ``fusion_weight`` below 1 blends the first-stage and cross-encoder
    scores by ``fusion`` (:func:`core.search.fusion.fuse_scores`) into the final order.
    ``num_results`` larger than ``num_candidates`` is lowered to it. Without a reranker
    the final order is the retrieval order and rerank fields are empty.

    ``rerank_top_n`` asks the reranker for only its best n (hosted APIs); candidates it
    does not return are ranked after those it did, in retrieval order, with no rerank
    score. With ``fallback``, a :class:`~core.models.errors.RemoteAPIError` from ``reranker``
    makes ``fallback`` rerank instead, and the result's ``notice`` says so.

    ``passages`` reads long texts passage by passage (:mod:`core.search.passages`):
    every candidate keeps its passages' spans and scores, and its score is their
    aggregate. Then ``rerank_top_n`` keeps the best n documents after aggregation (the
    reranker scores every passage). None keeps the one-pair-per-document reading.

    ``dense_passages`` (when the index is built here) embeds long documents as one
    vector per passage and retrieves a document by its best
    (:mod:`core.search.passage_index`); a prebuilt ``index`` or ``retriever`` brings its
    own. Each candidate then keeps the passage that matched (``retrieval_passage``).
    """
    started = time.perf_counter()
    query = (query or "").strip()
    if not query:
        raise SettingsError("the query is empty: type what you are looking for")
    if not 1 <= num_candidates <= MAX_CANDIDATES:
        raise SettingsError(
            f"number of candidates must be 1 to {MAX_CANDIDATES}, not {num_candidates}"
        )
    if num_results < 1:
        raise SettingsError(f"number of results must be at least 1, not {num_results}")
    num_results = min(num_results, num_candidates)
    fusion_weight, fusion = check_fusion(fusion_weight, fusion)
    if passages is not None:
        passages = passages.checked()
    embed = dataset.check_fields(embed_fields or dataset.default_embed_fields, "embed")
    rerank = (
        dataset.check_fields(rerank_fields or dataset.default_rerank_fields, "rerank")
        if reranker is not None
        else ()
    )

    index_seconds, from_cache = 0.0, None
    if retriever is None:
        encoder = encoder or load_encoder()
        if index is None:
            build = build_index(dataset, encoder, embed, progress=progress, passages=dense_passages)
            index, index_seconds, from_cache = build.index, build.seconds, build.from_cache
        retriever = DenseRetriever(index, encoder)
    encoder = getattr(retriever, "encoder", None) or getattr(
        getattr(retriever, "dense", None), "encoder", None
    )

    t0 = time.perf_counter()
    retrieval = retriever.retrieve(query, num_candidates)
    hits = retrieval.hits
    t1 = t0 + retrieval.encode_seconds
    t2 = time.perf_counter()

    records = dataset.records_for([h.id for h in hits])  # a collection: one look-up
    texts = [rerank_text(r, rerank, rerank_style) for r in records]
    reranked = {}
    reads: dict[str, PassageRead] = {}
    used, notice = reranker, None
    if reranker is not None and hits:
        docs = [RerankDoc(id=h.id, text=t) for h, t in zip(hits, texts, strict=True)]
        if passages is not None:
            ranked, reads, used, notice = _rank_by_passages(
                reranker, fallback, query, docs, passages
            )
            if rerank_top_n is not None:
                ranked = ranked[: max(0, rerank_top_n)]
        elif fallback is not None:
            from core.models.together import rank_with_fallback

            ranked, notice = rank_with_fallback(reranker, fallback, query, docs, rerank_top_n)
            used = fallback if notice else reranker
        else:
            ranked = reranker.rank(query, docs, rerank_top_n)
        reranked = {r.id: r for r in ranked}
    t3 = time.perf_counter()

    candidates = []
    for hit, text, record in zip(hits, texts, records, strict=True):
        r = reranked.get(hit.id)
        candidates.append(
            Candidate(
                id=hit.id,
                title=dataset.title(hit.id),
                record=record,
                retrieval_rank=hit.rank,
                retrieval_score=hit.score,
                rerank_text=text,
                num_results=num_results,
                rerank_rank=r.rank if r else None,
                rerank_score=r.score if r else None,
                rerank_normalized=r.normalized if r else None,
                truncated=r.truncated if r else False,
                passages=reads.get(hit.id) if r else None,
                retrieval_passage=hit.passage,
            )
        )
    if reranked and len(reranked) < len(candidates):
        candidates = _rank_unscored_last(candidates, len(reranked))
    if reranked and fusion_weight < 1.0:
        candidates = _fuse(candidates, fusion_weight, fusion)

    return SearchResult(
        query=query,
        dataset=dataset.name,
        encoder=encoder.name if encoder is not None else "none",
        reranker=used.name if used is not None else None,
        score_kind=used.score_kind if used is not None else None,
        num_candidates=num_candidates,
        num_results=num_results,
        embed_fields=embed,
        rerank_fields=rerank,
        candidates=tuple(candidates),
        timings=Timings(
            index=index_seconds,
            query_encode=t1 - t0,
            search=t2 - t1,
            rerank=t3 - t2,
            total=time.perf_counter() - started,
            index_from_cache=from_cache,
        ),
        notice=notice,
        retriever=retriever.kind,
        retrieval_score_kind=retriever.score_kind,
        fusion_weight=fusion_weight,
        fusion=fusion,
        passage_settings=passages if reranker is not None else None,
        dense_passages=dense_passage_settings(retriever),
    )


def dense_passage_settings(retriever: Retriever) -> PassageSettings | None:
    """The dense-passage settings of ``retriever``'s index (dense, or the dense half of
    hybrid); None when it embeds one vector per document."""
    kind = getattr(retriever, "kind", "")
    dense = retriever if kind == "dense" else getattr(retriever, "dense", None)
    return getattr(getattr(dense, "index", None), "settings", None)


def _rank_by_passages(reranker, fallback, query, docs, settings):
    """Rank by passages with ``reranker``; on a hosted failure, with ``fallback``.

    Returns the ranked results, what was read per doc id, the model used and a notice.
    """
    if fallback is None:
        ranked, reads = rank_passages(reranker, query, docs, settings)
        return ranked, reads, reranker, None
    from core.models.together import rank_with_fallback

    class Scorer:
        score_kind = reranker.score_kind
        notice: str | None = None

        def __call__(self, q: str, flat: list[RerankDoc]):
            results, self.notice = rank_with_fallback(reranker, fallback, q, flat)
            if self.notice:
                self.score_kind = fallback.score_kind
            return results

    scorer = Scorer()
    ranked, reads = rank_passages(reranker, query, docs, settings, score=scorer)
    return ranked, reads, fallback if scorer.notice else reranker, scorer.notice


def _fuse(candidates: list[Candidate], weight: float, method: FusionMethod) -> list[Candidate]:
    """Set ``fused_rank``/``fused_score`` on scored candidates; unscored ones follow."""
    from dataclasses import replace

    scored = [c for c in candidates if c.rerank_score is not None]
    order, fused = fused_order(
        [c.retrieval_score for c in scored], [c.rerank_score for c in scored], weight, method
    )
    new = {}
    for rank, i in enumerate(order, start=1):
        new[scored[i].id] = replace(scored[i], fused_rank=rank, fused_score=float(fused[i]))
    next_rank = len(scored) + 1
    out = []
    for c in candidates:
        if c.id not in new:
            c = replace(c, fused_rank=next_rank)
            next_rank += 1
        out.append(new.get(c.id, c))
    return out


def _rank_unscored_last(candidates: list[Candidate], scored: int) -> list[Candidate]:
    """Give candidates a reranker did not return (a hosted ``top_n``) ranks after the
    scored ones, in retrieval order, so every candidate has a final rank."""
    from dataclasses import replace

    next_rank = scored + 1
    out = []
    for c in candidates:
        if c.rerank_rank is None:
            c = replace(c, rerank_rank=next_rank)
            next_rank += 1
        out.append(c)
    return out
