"""Two second stages head to head over the same candidates.

The question in the room is rarely "reranked or not?" but "model A or model B?". A
:class:`RerankSpec` names one second stage: a reranker (the local cross-encoder, any
sentence-transformers id, ``together:<model>``), optionally fused with the first stage
(a weight below 1), or ``none`` (the first stage's own order). :func:`head_to_head`
retrieves the candidates ONCE and applies A and B to exactly those candidates, so every
difference between the two orders is the second stages' doing.

Each side keeps its own score on its own scale (logit, hosted relevance, fused score,
or the first stage's cosine/BM25/RRF); the two scales are never compared or drawn on
one axis. Movement between the sides is ``rank_a - rank_b``: positive means B ranks the
item higher than A does.

Spec strings (the CLI's ``--compare A,B`` and the app's links)::

    none                           first-stage order, no second stage
    local                          the packaged cross-encoder (ms-marco-MiniLM-L-12-v2)
    cross-encoder/ms-marco-...     any sentence-transformers cross-encoder id
    together:Salesforce/Llama-Rank-V1   Together's hosted rerank
    local@0.5                      fused: 0.5 x minmax(cross-encoder) + 0.5 x minmax(first)
    local@0.5/rrf                  fused by weighted reciprocal rank fusion
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from core.data.documents import Dataset, TextStyle, rerank_text
from core.models.base import PACKAGED_CROSS_ENCODER, RerankDoc, Reranker
from core.models.errors import SettingsError
from core.quality.metrics import kendall_tau, overlap_at_k, rank_biased_overlap
from core.search.fusion import FUSION_METHODS, check_fusion, fused_order
from core.search.pipeline import Candidate, SearchResult, search_with_rerank
from core.search.retrievers import SCORE_LABELS, Retriever

NONE = "none"
LOCAL_ALIAS = "local"
RBO_P = 0.9


@dataclass(frozen=True)
class RerankSpec:
    """One second stage: ``reranker`` (a model id, or ``"none"``) and its fusion.

    ``fusion_weight`` is the cross-encoder's weight (1 = pure rerank); ignored for none.
    """

    reranker: str = PACKAGED_CROSS_ENCODER
    fusion_weight: float = 1.0
    fusion: str = "linear"

    @property
    def is_none(self) -> bool:
        """True for the first stage's own order (no second stage)."""
        return self.reranker == NONE

    @property
    def fused(self) -> bool:
        """True when the order blends the first stage's scores in."""
        return not self.is_none and self.fusion_weight < 1.0

    @property
    def label(self) -> str:
        """Short human label, e.g. ``"cross-encoder"`` or ``"cross-encoder fused w=0.5"``."""
        if self.is_none:
            return "first stage only"
        name = "local cross-encoder" if self.reranker == PACKAGED_CROSS_ENCODER else self.reranker
        if not self.fused:
            return name
        how = "" if self.fusion == "linear" else f", {self.fusion}"
        return f"{name} fused w={self.fusion_weight:g}{how}"

    def to_string(self) -> str:
        """The spec string :func:`parse_spec` reads back (``local@0.5/rrf``)."""
        if self.is_none:
            return NONE
        name = LOCAL_ALIAS if self.reranker == PACKAGED_CROSS_ENCODER else self.reranker
        if not self.fused:
            return name
        return name + f"@{self.fusion_weight:g}" + ("" if self.fusion == "linear" else "/rrf")


def parse_spec(text: str) -> RerankSpec:
    """Read a spec string (see the module docstring); :class:`SettingsError` if malformed."""
    raw = (text or "").strip()
    if not raw:
        raise SettingsError("empty reranker spec: use none, local, a model id, or local@0.5")
    name, _, tail = raw.partition("@")
    name = name.strip()
    if not name:
        raise SettingsError(f"reranker spec {raw!r} names no model")
    if name.lower() == NONE:
        if tail:
            raise SettingsError(f"spec {raw!r}: 'none' has no fusion weight")
        return RerankSpec(NONE)
    if name.lower() == LOCAL_ALIAS:
        name = PACKAGED_CROSS_ENCODER
    if not tail:
        return RerankSpec(name)
    weight_text, _, method = tail.partition("/")
    try:
        weight = float(weight_text)
    except ValueError:
        raise SettingsError(
            f"spec {raw!r}: the fusion weight after @ must be a number 0-1, not {weight_text!r}"
        ) from None
    method = method.strip().lower() or "linear"
    if method not in FUSION_METHODS:
        raise SettingsError(f"spec {raw!r}: fusion must be {' or '.join(FUSION_METHODS)}")
    weight, method = check_fusion(weight, method)
    return RerankSpec(name, weight, method)


def parse_pair(text: str) -> tuple[RerankSpec, RerankSpec]:
    """``"A,B"`` as two specs; :class:`SettingsError` unless exactly two are given."""
    parts = [p for p in (text or "").split(",") if p.strip()]
    if len(parts) != 2:
        raise SettingsError(f"--compare needs exactly two specs A,B, got {len(parts)}: {text!r}")
    return parse_spec(parts[0]), parse_spec(parts[1])


@dataclass(frozen=True)
class Side:
    """One side of a head-to-head: its spec and the result it made of the candidates.

    ``result`` is a full :class:`SearchResult` (retrieval order plus this side's ranks
    and scores), so every single-result view works on it. ``seconds`` is this side's
    second-stage time; ``shared_scores`` says the cross-encoder scores were computed
    once for both sides (same model) and only the fusion differs. ``cached_pairs`` counts
    pairs the model answered from its in-memory score cache (another session, or an
    earlier run, scored them), which is why a time can be near 0.
    """

    spec: RerankSpec
    result: SearchResult
    seconds: float
    shared_scores: bool = False
    cached_pairs: int = 0

    @property
    def order(self) -> list[str]:
        """Candidate ids in this side's final order."""
        return [c.id for c in self.result.reranked]

    @property
    def ranks(self) -> dict[str, int]:
        """Final rank per candidate id."""
        return {c.id: c.final_rank for c in self.result.candidates}

    @property
    def score_label(self) -> str:
        """Name of the score that orders this side (its own scale)."""
        return side_score_label(self.spec, self.result)

    def score(self, c: Candidate) -> float | None:
        """The score that ordered ``c`` on this side."""
        if self.spec.is_none:
            return c.retrieval_score
        if self.spec.fused:
            return c.fused_score
        return c.rerank_score


def side_score_label(spec: RerankSpec, result: SearchResult) -> str:
    """``"logit"``, ``"relevance"``, ``"fused (linear, 0-1)"``, ``"fused (RRF)"`` or the
    first stage's score name."""
    if spec.is_none:
        return SCORE_LABELS.get(result.retrieval_score_kind, result.retrieval_score_kind)
    if spec.fused:
        return "fused (0–1)" if spec.fusion == "linear" else "fused (weighted RRF)"
    return "relevance" if result.score_kind == "relevance" else "logit"


@dataclass(frozen=True)
class Agreement:
    """How much A and B agree: Kendall tau over all candidates, RBO (p=0.9),
    overlap of the two top-N sets, and whether they put the same item first."""

    kendall_tau: float
    rbo: float
    overlap: float
    n: int
    top_same: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "kendall_tau": self.kendall_tau,
            "rbo": self.rbo,
            "rbo_p": RBO_P,
            f"overlap@{self.n}": self.overlap,
            "top_same": self.top_same,
        }


def agreement(a: Sequence[str], b: Sequence[str], n: int) -> Agreement:
    """Agreement figures of two rankings of the same candidates (ids, best first)."""
    return Agreement(
        kendall_tau=kendall_tau(a, b),
        rbo=rank_biased_overlap(a, b, RBO_P),
        overlap=overlap_at_k(a, b, n) if n >= 1 else 0.0,
        n=n,
        top_same=bool(a) and bool(b) and a[0] == b[0],
    )


@dataclass(frozen=True)
class HeadToHead:
    """A and B over the same candidates of one query."""

    query: str
    a: Side
    b: Side
    retrieval_seconds: float

    @property
    def num_results(self) -> int:
        """The top-N compared."""
        return self.a.result.num_results

    @property
    def agreement(self) -> Agreement:
        """Agreement of A's and B's final orders."""
        return agreement(self.a.order, self.b.order, self.num_results)

    def rows(self) -> list[dict[str, Any]]:
        """One row per item in A's or B's top-N, in A's order then B's newcomers.

        ``move`` is ``rank_a - rank_b`` (positive: B puts it higher). Scores keep their
        own scales under ``score_a`` / ``score_b`` (see :attr:`Side.score_label`).
        """
        n = self.num_results
        ranks_a, ranks_b = self.a.ranks, self.b.ranks
        by_id_a = {c.id: c for c in self.a.result.candidates}
        by_id_b = {c.id: c for c in self.b.result.candidates}
        ids = [i for i in self.a.order[:n]] + [i for i in self.b.order[:n]]
        rows = []
        for doc_id in dict.fromkeys(ids):
            ca, cb = by_id_a[doc_id], by_id_b[doc_id]
            rows.append(
                {
                    "id": doc_id,
                    "title": ca.title,
                    "rank_a": ranks_a[doc_id],
                    "rank_b": ranks_b[doc_id],
                    "move": ranks_a[doc_id] - ranks_b[doc_id],
                    "score_a": self.a.score(ca),
                    "score_b": self.b.score(cb),
                    "retrieval_rank": ca.retrieval_rank,
                    "in_top_a": ranks_a[doc_id] <= n,
                    "in_top_b": ranks_b[doc_id] <= n,
                    "truncated": ca.truncated or cb.truncated,
                }
            )
        return rows

    def top(self, side: str) -> list[Candidate]:
        """The top-N candidates of side ``"a"`` or ``"b"``, in its order."""
        chosen = self.a if side == "a" else self.b
        return chosen.result.top_final

    def to_dict(self) -> dict[str, Any]:
        """Settings, both sides, agreement, timings and rows; JSON-ready."""
        r = self.a.result
        return {
            "query": self.query,
            "dataset": r.dataset,
            "retriever": r.retriever,
            "encoder": r.encoder,
            "num_candidates": r.num_candidates,
            "num_results": r.num_results,
            "rerank_fields": list(self.a.result.rerank_fields or self.b.result.rerank_fields),
            "a": _side_dict(self.a),
            "b": _side_dict(self.b),
            "agreement": self.agreement.to_dict(),
            "retrieval_seconds": self.retrieval_seconds,
            "rows": self.rows(),
        }


def _side_dict(side: Side) -> dict[str, Any]:
    return {
        "spec": side.spec.to_string(),
        "label": side.spec.label,
        "reranker": side.result.reranker,
        "score": side.score_label,
        "seconds": side.seconds,
        "shared_scores": side.shared_scores,
        "pairs_from_memory_cache": side.cached_pairs,
        "notice": side.result.notice,
        "truncated": sum(c.truncated for c in side.result.candidates),
    }


def head_to_head(
    dataset: Dataset,
    query: str,
    *,
    retriever: Retriever,
    a: RerankSpec,
    b: RerankSpec,
    reranker_a: Reranker | None,
    reranker_b: Reranker | None,
    rerank_fields: Sequence[str] | None = None,
    num_candidates: int = 50,
    num_results: int = 10,
    rerank_style: TextStyle = "fields",
) -> HeadToHead:
    """Retrieve ``num_candidates`` once and apply A and B to exactly those candidates.

    ``reranker_a`` / ``reranker_b`` are the loaded models named by the specs (None for a
    ``none`` spec; a missing model for another spec raises :class:`SettingsError`).
    When both sides use the same model object its scores are computed once and only
    the fusion differs; both sides then report that one scoring time.
    """
    for spec, model in ((a, reranker_a), (b, reranker_b)):
        if not spec.is_none and model is None:
            raise SettingsError(f"no reranker loaded for {spec.label!r}")
    base = search_with_rerank(
        dataset,
        query,
        retriever=retriever,
        num_candidates=num_candidates,
        num_results=num_results,
    )
    fields = (
        dataset.check_fields(rerank_fields or dataset.default_rerank_fields, "rerank")
        if not (a.is_none and b.is_none)
        else ()
    )
    texts = [rerank_text(c.record, fields, rerank_style) for c in base.candidates]
    scored: dict[int, tuple[dict[str, Any], float, int]] = {}
    sides = []
    for spec, model in ((a, reranker_a), (b, reranker_b)):
        if spec.is_none or model is None:
            sides.append(Side(spec, base, 0.0))
            continue
        shared = id(model) in scored
        if not shared:
            docs = [RerankDoc(id=c.id, text=t) for c, t in zip(base.candidates, texts, strict=True)]
            cache = getattr(model, "cache", None)
            hits_before = getattr(cache, "hits", 0)
            started = time.perf_counter()
            ranked = {r.id: r for r in model.rank(base.query, docs)} if docs else {}
            spent = time.perf_counter() - started
            hits = min(max(getattr(cache, "hits", 0) - hits_before, 0), len(docs))
            scored[id(model)] = (ranked, spent, hits)
        ranked, seconds, hits = scored[id(model)]
        started = time.perf_counter()
        result = _apply_side(base, spec, model, ranked, texts, fields)
        seconds += time.perf_counter() - started
        timings = replace(result.timings, rerank=seconds, total=result.timings.total + seconds)
        result = replace(result, timings=timings)
        sides.append(Side(spec, result, seconds, shared_scores=shared, cached_pairs=hits))
    return HeadToHead(base.query, sides[0], sides[1], base.timings.total)


def _apply_side(
    base: SearchResult,
    spec: RerankSpec,
    model: Reranker,
    ranked: dict[str, Any],
    texts: Sequence[str],
    fields: Sequence[str],
) -> SearchResult:
    """``base`` with ``model``'s ranks and scores (and ``spec``'s fusion) on each candidate."""
    candidates = []
    for c, text in zip(base.candidates, texts, strict=True):
        r = ranked.get(c.id)
        candidates.append(
            replace(
                c,
                rerank_text=text,
                rerank_rank=r.rank if r else None,
                rerank_score=r.score if r else None,
                rerank_normalized=r.normalized if r else None,
                truncated=r.truncated if r else False,
            )
        )
    next_rank = len(ranked) + 1
    for i, c in enumerate(candidates):  # unscored (never, for local models): after scored
        if c.rerank_rank is None:
            candidates[i] = replace(c, rerank_rank=next_rank)
            next_rank += 1
    if spec.fused:
        scored = [c for c in candidates if c.rerank_score is not None]
        order, fused = fused_order(
            [c.retrieval_score for c in scored],
            [c.rerank_score for c in scored],
            spec.fusion_weight,
            spec.fusion,  # type: ignore[arg-type]
        )
        new = {
            scored[i].id: replace(scored[i], fused_rank=rank, fused_score=float(fused[i]))
            for rank, i in enumerate(order, start=1)
        }
        tail = len(scored) + 1
        out = []
        for c in candidates:
            if c.id not in new:
                c = replace(c, fused_rank=tail)
                tail += 1
            out.append(new.get(c.id, c))
        candidates = out
    return replace(
        base,
        reranker=model.name,
        score_kind=model.score_kind,
        rerank_fields=tuple(fields),
        candidates=tuple(candidates),
        fusion_weight=spec.fusion_weight,
        fusion=spec.fusion,
    )
