"""Score fusion: combine the first-stage order with the cross-encoder's.

Pure reranking throws the first stage's evidence away; where the cross-encoder is out
of its domain, blending the two often does better than either. Both methods take a
``weight`` in [0, 1] for the cross-encoder (1 = pure rerank, 0 = first stage only):

* ``"linear"``: ``weight * minmax(ce) + (1 - weight) * minmax(first)``, each score
  min-max normalised over the candidates being fused (so raw logits, cosines, BM25 and
  RRF scores become comparable); a constant list normalises to 0.
* ``"rrf"``: weighted reciprocal rank fusion of the two orders,
  ``weight / (k + ce_rank) + (1 - weight) / (k + first_rank)``; scales never meet.

Ties keep first-stage order, so weight 1 reproduces the cross-encoder's order exactly
and weight 0 the first stage's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from core.models.errors import SettingsError

FusionMethod = Literal["linear", "rrf"]
FUSION_METHODS: tuple[FusionMethod, ...] = ("linear", "rrf")
FUSION_LABELS: dict[str, str] = {
    "linear": "weighted sum of min-max normalised scores",
    "rrf": "weighted reciprocal rank fusion",
}
DEFAULT_FUSION_RRF_K = 60


def check_fusion(weight: float, method: str) -> tuple[float, FusionMethod]:
    """Validate a fusion setting; raise :class:`SettingsError` for a bad one."""
    if method not in FUSION_METHODS:
        raise SettingsError(f"unknown fusion '{method}': choose {' or '.join(FUSION_METHODS)}")
    weight = float(weight)
    if not 0.0 <= weight <= 1.0:
        raise SettingsError(f"fusion weight must be between 0 and 1, not {weight}")
    return weight, method  # type: ignore[return-value]


def minmax(values: Sequence[float]) -> np.ndarray:
    """Scale to [0, 1] by the list's own min and max; a constant list becomes zeros."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return array
    low, high = float(array.min()), float(array.max())
    if high <= low:
        return np.zeros_like(array)
    return (array - low) / (high - low)


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1-based ranks by descending score; ties by position."""
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return ranks


def fuse_scores(
    first_scores: Sequence[float],
    ce_scores: Sequence[float],
    weight: float,
    method: FusionMethod = "linear",
    rrf_k: int = DEFAULT_FUSION_RRF_K,
) -> np.ndarray:
    """Fused score per candidate (same order as the inputs, which is first-stage order)."""
    weight, method = check_fusion(weight, method)
    if len(first_scores) != len(ce_scores):
        raise SettingsError(f"{len(first_scores)} first-stage scores for {len(ce_scores)} reranked")
    first = np.asarray(first_scores, dtype=np.float64)
    ce = np.asarray(ce_scores, dtype=np.float64)
    if method == "linear":
        return weight * minmax(ce) + (1.0 - weight) * minmax(first)
    return weight / (rrf_k + _ranks(ce)) + (1.0 - weight) / (rrf_k + _ranks(first))


def fused_order(
    first_scores: Sequence[float],
    ce_scores: Sequence[float],
    weight: float,
    method: FusionMethod = "linear",
) -> tuple[list[int], np.ndarray]:
    """Indices best first by fused score (ties keep input order), and the fused scores."""
    fused = fuse_scores(first_scores, ce_scores, weight, method)
    return [int(i) for i in np.argsort(-fused, kind="stable")], fused
