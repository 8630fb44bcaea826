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
from dataclasses import asdict, dataclass, field
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


# --- preferences from votes: a share with a Wilson interval, and Bradley-Terry ----------
#
# Blind votes are pairwise preferences: "A's list is better", "B's", or a tie. Across the
# steps of a walkthrough they are summarised two ways:
#
# * :func:`preference_share`: the share of the decisive (non-tie) votes that prefer A,
#   with a Wilson score interval (Wilson 1927; Agresti & Coull 1998 on why it beats the
#   normal approximation for small counts). Ties are left out, as the sign test leaves
#   them out, and counted beside it.
# * :func:`bradley_terry`: when the steps compare several systems (A is the cross-encoder
#   throughout, B is the first stage on one step and a fused order on the next), one
#   strength per system from every vote (Bradley & Terry 1952), fitted by Hunter's (2004)
#   MM iteration. A tie counts as half a win for each side. A small prior (a virtual tie
#   of ``prior`` comparisons on every compared pair) keeps a system that never lost
#   finite; intervals come from the observed Fisher information (the pseudo-inverse of
#   the weighted comparison Laplacian, so systems in different connected groups are
#   never compared).

Z95 = 1.959964
DEFAULT_BT_PRIOR = 0.5


def wilson(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n``; ``(0, 1)`` when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * float(np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class PreferenceShare:
    """How many decisive votes preferred A over B, with a Wilson 95% interval on A's
    share; ties are counted but not in the share."""

    a: str
    b: str
    a_wins: int
    b_wins: int
    ties: int
    low: float
    high: float

    @property
    def decisive(self) -> int:
        """Votes that preferred one side (ties left out)."""
        return self.a_wins + self.b_wins

    @property
    def share(self) -> float | None:
        """A's share of the decisive votes (None without any)."""
        return self.a_wins / self.decisive if self.decisive else None

    @property
    def leader(self) -> Literal["A", "B", "neither"]:
        """The side the interval puts above one half, else ``"neither"``."""
        if self.decisive and self.low > 0.5:
            return "A"
        if self.decisive and self.high < 0.5:
            return "B"
        return "neither"

    def sentence(self) -> str:
        """``"A (x) preferred in 62% of non-tie votes (13 of 21), 95% CI [41%, 79%];
        3 ties not counted."`` told from the side with more votes."""
        ties = f"{self.ties} tie{'s' if self.ties != 1 else ''} not counted"
        if not self.decisive:
            return f"No decisive votes yet ({ties})."
        if self.a_wins >= self.b_wins:
            side, name, wins, low, high = "A", self.a, self.a_wins, self.low, self.high
        else:
            side, name, wins, low, high = "B", self.b, self.b_wins, 1 - self.high, 1 - self.low
        share = wins / self.decisive
        tail = "" if self.leader != "neither" else " (the interval includes 50%: no clear winner)"
        return (
            f"{side} ({name}) preferred in {share:.0%} of non-tie votes ({wins} of "
            f"{self.decisive}), 95% CI [{low:.0%}, {high:.0%}]{tail}; {ties}."
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with A's share and the leader."""
        return {**asdict(self), "a_share": self.share, "leader": self.leader}


def preference_share(
    a_wins: int, b_wins: int, ties: int = 0, *, a: str = "A", b: str = "B"
) -> PreferenceShare:
    """A's share of ``a_wins + b_wins`` decisive votes with its Wilson 95% interval."""
    low, high = wilson(a_wins, a_wins + b_wins)
    return PreferenceShare(a, b, a_wins, b_wins, ties, low, high)


Outcome = Literal["first", "second", "tie"]


@dataclass(frozen=True)
class BradleyTerry:
    """Bradley-Terry strengths: ``scores[i]`` is system ``i``'s log-strength (mean 0
    within its connected group), ``half_widths[i]`` its 95% half-interval; P(i beats j) is
    ``1 / (1 + exp(scores[j] - scores[i]))``."""

    systems: tuple[str, ...]
    scores: tuple[float, ...]
    half_widths: tuple[float, ...]
    groups: tuple[int, ...]
    comparisons: int
    prior: float
    iterations: int
    _cov: tuple[tuple[float, ...], ...] = field(default=(), repr=False, compare=False)

    def _index(self, system: str) -> int:
        try:
            return self.systems.index(system)
        except ValueError:
            raise KeyError(f"{system!r} was not compared") from None

    def comparable(self, first: str, second: str) -> bool:
        """Whether a chain of compared pairs links the two systems."""
        return self.groups[self._index(first)] == self.groups[self._index(second)]

    def win_probability(self, first: str, second: str) -> float:
        """The model's probability that ``first`` is preferred to ``second``."""
        if not self.comparable(first, second):
            raise ValueError(f"{first!r} and {second!r} were never linked by votes")
        i, j = self._index(first), self._index(second)
        return float(1.0 / (1.0 + np.exp(self.scores[j] - self.scores[i])))

    def win_interval(self, first: str, second: str) -> tuple[float, float]:
        """95% interval of :meth:`win_probability` (from the log-odds' standard error)."""
        p = self.win_probability(first, second)
        i, j = self._index(first), self._index(second)
        var = self._cov[i][i] + self._cov[j][j] - 2 * self._cov[i][j]
        logit = float(np.log(p / (1 - p)))
        half = Z95 * float(np.sqrt(max(var, 0.0)))
        return float(1 / (1 + np.exp(-(logit - half)))), float(1 / (1 + np.exp(-(logit + half))))

    def ranking(self) -> list[tuple[str, float, float]]:
        """``(system, score, half-width)`` from the strongest down."""
        rows = zip(self.systems, self.scores, self.half_widths, strict=True)
        return sorted(rows, key=lambda r: -r[1])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "systems": [
                {"system": s, "score": round(v, 4), "half_width_95": round(h, 4), "group": g}
                for s, v, h, g in zip(
                    self.systems, self.scores, self.half_widths, self.groups, strict=True
                )
            ],
            "comparisons": self.comparisons,
            "prior": self.prior,
            "ties": "half a win to each side",
        }


def bradley_terry(
    comparisons: Sequence[tuple[str, str, Outcome]],
    *,
    prior: float = DEFAULT_BT_PRIOR,
    tol: float = 1e-10,
    max_iter: int = 10_000,
) -> BradleyTerry:
    """Fit Bradley-Terry strengths to ``(first, second, outcome)`` comparisons.

    ``outcome`` is ``"first"``, ``"second"`` or ``"tie"`` (half a win each). Every pair
    of systems that was compared at least once also gets ``prior`` virtual comparisons
    split as a tie, so the fit stays finite when a system never lost. With two systems
    the fit is closed-form: P(first beats second) = (wins + ties/2 + prior/2) /
    (comparisons + prior).
    """
    systems = tuple(sorted({s for c in comparisons for s in c[:2]}))
    index = {s: i for i, s in enumerate(systems)}
    m = len(systems)
    wins = np.zeros((m, m))  # wins[i, j]: (fractional) wins of i over j
    for first, second, outcome in comparisons:
        if outcome not in ("first", "second", "tie"):
            raise ValueError(f"an outcome is first, second or tie, not {outcome!r}")
        if first == second:
            raise ValueError(f"{first!r} compared with itself")
        i, j = index[first], index[second]
        if outcome == "first":
            wins[i, j] += 1
        elif outcome == "second":
            wins[j, i] += 1
        else:
            wins[i, j] += 0.5
            wins[j, i] += 0.5
    games = wins + wins.T
    compared = games > 0
    wins = wins + compared * prior / 2
    games = wins + wins.T
    total = wins.sum(axis=1)
    groups = _groups(compared)
    strength = np.ones(m)
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007  (the count is reported)
        denom = (games / (strength[:, None] + strength[None, :])).sum(axis=1)
        new = np.where(denom > 0, total / np.where(denom > 0, denom, 1), 1.0)
        for g in set(groups):  # keep each group's geometric mean at 1
            members = [k for k in range(m) if groups[k] == g]
            new[members] /= np.exp(np.log(new[members]).mean())
        done = np.max(np.abs(np.log(new) - np.log(strength))) < tol if m else True
        strength = new
        if done:
            break
    scores = np.log(strength) if m else np.zeros(0)
    # Observed information of the log-strengths: a weighted Laplacian.
    p = 1 / (1 + np.exp(scores[None, :] - scores[:, None])) if m else np.zeros((0, 0))
    weight = games * p * p.T
    info = np.diag(weight.sum(axis=1)) - weight
    cov = np.linalg.pinv(info) if m else np.zeros((0, 0))
    half = Z95 * np.sqrt(np.clip(np.diag(cov), 0, None)) if m else np.zeros(0)
    return BradleyTerry(
        systems=systems,
        scores=tuple(float(x) for x in scores),
        half_widths=tuple(float(x) for x in half),
        groups=tuple(groups),
        comparisons=len(comparisons),
        prior=prior,
        iterations=iterations,
        _cov=tuple(tuple(float(x) for x in row) for row in cov),
    )


def _groups(compared: np.ndarray) -> list[int]:
    """Connected groups of the comparison graph, each named by its first member."""
    m = compared.shape[0]
    group = [-1] * m
    for start in range(m):
        if group[start] >= 0:
            continue
        group[start] = start
        stack = [start]
        while stack:
            k = stack.pop()
            for other in np.flatnonzero(compared[k]):
                if group[other] < 0:
                    group[other] = start
                    stack.append(int(other))
    return group
