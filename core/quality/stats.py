"""Paired comparisons of two runs over the same queries, with bootstrap intervals.

A mean gain in nDCG@10 over 300 queries can be noise. :func:`paired_bootstrap`
resamples the queries with replacement (the same resample for both runs, so the
comparison stays paired), takes the mean per-query difference of each resample, and
reports the 2.5th and 97.5th percentiles as a 95% confidence interval (the percentile
bootstrap; Efron & Tibshirani 1993; Sakai 2006 for IR evaluation). The seed is fixed,
so the same inputs always give the same interval.

The verdict is read off the interval: ``"better"`` when it lies above 0, ``"worse"``
when it lies below 0, and ``"within noise"`` when it contains 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

Verdict = Literal["better", "worse", "within noise"]
DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0
TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class PairedComparison:
    """``other - base`` over paired per-query values, with a bootstrap interval."""

    mean_delta: float
    low: float
    high: float
    confidence: float
    wins: int
    ties: int
    losses: int
    num_queries: int
    resamples: int

    @property
    def verdict(self) -> Verdict:
        """Better / worse when the interval excludes 0, else within noise."""
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "within noise"

    def sentence(
        self,
        what: str = "Reranking",
        metric: str = "nDCG@10",
        keep: str = "the first stage's order",
    ) -> str:
        """One plain sentence: the change, its interval and what it means (when it hurts:
        keep ``keep``)."""
        interval = f"{self.confidence:.0%} CI {self.low:+.4f} to {self.high:+.4f}"
        counts = f"{self.wins} wins / {self.ties} ties / {self.losses} losses"
        if self.verdict == "better":
            verdict = f"{what} helps: {metric} {self.mean_delta:+.4f} ({interval}; {counts})."
        elif self.verdict == "worse":
            verdict = (
                f"{what} hurts: {metric} {self.mean_delta:+.4f} ({interval}; {counts}). "
                f"Keep {keep} here."
            )
        else:
            verdict = (
                f"{what} changes {metric} by {self.mean_delta:+.4f}, within noise "
                f"({interval} includes 0; {counts})."
            )
        return verdict

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the verdict."""
        return {**asdict(self), "verdict": self.verdict}


def paired_bootstrap(
    base: Sequence[float],
    other: Sequence[float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = DEFAULT_SEED,
) -> PairedComparison:
    """Compare ``other`` with ``base`` (same queries, same order) by a paired bootstrap.

    Raises ValueError for lists of different lengths. An empty comparison has a zero
    interval and no queries.
    """
    a = np.asarray(base, dtype=np.float64)
    b = np.asarray(other, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired lists differ in length: {a.size} and {b.size}")
    delta = b - a
    n = delta.size
    wins = int((delta > TIE_TOLERANCE).sum())
    losses = int((delta < -TIE_TOLERANCE).sum())
    if n == 0:
        return PairedComparison(0.0, 0.0, 0.0, confidence, 0, 0, 0, 0, 0)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    # Chunked so 10,000 resamples of thousands of queries stay small in memory.
    step = max(1, 2_000_000 // n)
    for start in range(0, resamples, step):
        count = min(step, resamples - start)
        picks = rng.integers(0, n, size=(count, n))
        means[start : start + count] = delta[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return PairedComparison(
        mean_delta=float(delta.mean()),
        low=float(low),
        high=float(high),
        confidence=confidence,
        wins=wins,
        ties=n - wins - losses,
        losses=losses,
        num_queries=n,
        resamples=resamples,
    )


def mean_interval(
    values: Sequence[float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float, float]:
    """Mean of ``values`` and its bootstrap interval (low, high)."""
    zeros = np.zeros(len(values))
    c = paired_bootstrap(zeros, values, resamples=resamples, confidence=confidence, seed=seed)
    return c.mean_delta, c.low, c.high
