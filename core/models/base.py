"""The interfaces every model backend implements, and the types they return.

Imports nothing from the project but :mod:`core.models.errors`: backends import this module,
never the reverse, and :mod:`core.models.registry` is the one place that knows them all.

Score scales (documented, never mixed silently):

* ``"logit"``: cross-encoders trained with a binary objective (the ms-marco family)
  output an unbounded logit, roughly -11 to +10. The normalised score is
  ``sigmoid(logit)``, the model's own estimate of P(relevant).
* ``"relevance"``: hosted rerank APIs return a relevance score already in [0, 1];
  the normalised score is the same number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from core.models.errors import RerankError

TextKind = Literal["query", "document"]
ProgressFn = Callable[[int, int], None]

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


@runtime_checkable
class Encoder(Protocol):
    """What every bi-encoder backend offers."""

    name: str
    dimension: int

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: TextKind = "document",
        progress: ProgressFn | None = None,
    ) -> np.ndarray:
        """Encode texts to unit-length float32 rows; call ``progress(done, total)``."""
        ...


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Scale each row to unit length (zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


ScoreKind = Literal["logit", "relevance"]

PACKAGED_CROSS_ENCODER = "cross-encoder/ms-marco-MiniLM-L-12-v2"
DEFAULT_RERANKER = PACKAGED_CROSS_ENCODER
SEED_CROSS_ENCODER = "cross-encoder/ms-marco-MiniLM-L-6-v2"
DEFAULT_MAX_LENGTH = 512


@dataclass(frozen=True, slots=True)
class RerankDoc:
    """A document to rerank: a stable id and exactly the text the model reads."""

    id: str
    text: str


@dataclass(frozen=True, slots=True)
class RerankResult:
    """One reranked document.

    ``rank`` is 1-based in the reranked order; ``index`` points into the input list.
    """

    id: str
    index: int
    rank: int
    score: float
    normalized: float
    truncated: bool = False


@runtime_checkable
class Reranker(Protocol):
    """What every reranker backend offers."""

    name: str
    score_kind: ScoreKind

    def rank(
        self, query: str, docs: Sequence[RerankDoc], top_n: int | None = None
    ) -> list[RerankResult]:
        """Score every doc against ``query``; return the best ``top_n`` (all if None)."""
        ...


def sigmoid(x: float) -> float:
    """Numerically stable logistic function."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def normalize_score(score: float, kind: ScoreKind) -> float:
    """Map a raw score of the given kind to [0, 1] (see the module docstring)."""
    return sigmoid(score) if kind == "logit" else float(score)


def results_from_scores(
    docs: Sequence[RerankDoc],
    scores: Sequence[float],
    kind: ScoreKind,
    top_n: int | None = None,
    truncated: Sequence[bool] | None = None,
) -> list[RerankResult]:
    """Order docs by score, best first; ties keep input order (a stable sort)."""
    if len(scores) != len(docs):
        raise RerankError(f"reranker returned {len(scores)} scores for {len(docs)} documents")
    order = sorted(range(len(docs)), key=lambda i: -float(scores[i]))
    if top_n is not None:
        order = order[: max(0, top_n)]
    flags = truncated if truncated is not None else [False] * len(docs)
    return [
        RerankResult(
            id=docs[i].id,
            index=i,
            rank=r,
            score=float(scores[i]),
            normalized=normalize_score(float(scores[i]), kind),
            truncated=bool(flags[i]),
        )
        for r, i in enumerate(order, start=1)
    ]
