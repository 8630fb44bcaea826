"""How a setting is chosen: the selection rules (:data:`RULES`, :func:`choose`) and
k-fold cross-validation of a rule (:func:`cross_validate`, :func:`fold_of`).

A rule sees a table of per-query nDCG@10 (settings x queries), the queries it may look
at (a mask), and each setting's cost; it returns the index of the setting it chooses.
Cross-validation applies it to the other folds and scores the chosen setting on the
held-out fold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.models.errors import SettingsError
from core.quality.tuning_grid import DEFAULT_FOLDS, Config
from core.quality.tuning_workbench import Workbench

RULES: dict[str, str] = {
    "best": "the highest mean nDCG@10 (ties: the cheaper)",
    "one-se": "the cheapest setting within one standard error (paired, per query) of the best",
    "first-stage": "the best first stage alone, unless the best rerank/fusion setting beats "
    "it by more than 1.96 standard errors of the paired difference",
    "coarse": "the best of a coarse grid (every other rerank depth from the deepest, e.g. "
    "20 and 100 of 10-100; weights 1, 0.7, 0.4)",
    "nested": "the rule (best, one-se, first-stage, coarse) that does best in an inner "
    "5-fold cross-validation on the training queries",
}
# Chosen by `evaluate --compare-rules` on SciFact (300 queries, seeds 0-2, 5 and 10 folds):
# one-se held out 0.7160 (coarse 0.7108, best 0.7045), 22 of 45 folds agreeing; with
# the cross-encoder sabotaged, 0.7122 and 44 of 45, never reranking.
DEFAULT_RULE = "one-se"
COARSE_WEIGHTS: tuple[float, ...] = (1.0, 0.7, 0.4)
NOISE_Z = 1.96
INNER_FOLDS = 5
_STAGE_ORDER = {"bm25": 0, "dense": 1, "hybrid": 2}


def check_rule(rule: str) -> str:
    """``rule`` if it names a selection rule, else :class:`SettingsError`."""
    if rule not in RULES:
        raise SettingsError(f"unknown selection rule '{rule}' (choose: {', '.join(RULES)})")
    return rule


def cost_order(bench: Workbench, configs: Sequence[Config]) -> np.ndarray:
    """Each setting's rank from cheapest to dearest: measured ms per query where known,
    then pairs scored (depth), first stage (BM25, dense, hybrid) and purer fusion."""
    keys = []
    for i, c in enumerate(configs):
        ms = bench.cost_ms(c)
        reads_all = int(c.passages not in (None, "first"))
        proxy = (c.depth, reads_all, _STAGE_ORDER.get(c.stage.retriever, 3), -c.weight, i)
        keys.append((ms if ms is not None else float("inf"), *proxy))
    order = sorted(range(len(configs)), key=lambda i: keys[i])
    ranks = np.empty(len(configs), dtype=np.int64)
    ranks[order] = np.arange(len(configs))
    return ranks


def _paired_se(table: np.ndarray, mask: np.ndarray, ref: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean difference of each setting to setting ``ref`` and its standard error."""
    diff = table[:, mask] - table[ref, mask]
    m = int(mask.sum())
    if m < 2:  # one query: no spread to measure
        return diff.mean(axis=1), np.zeros(len(table))
    return diff.mean(axis=1), diff.std(axis=1, ddof=1) / np.sqrt(m)


def choose(
    rule: str,
    configs: Sequence[Config],
    table: np.ndarray,
    mask: np.ndarray,
    costs: np.ndarray,
    *,
    seed: int = 0,
) -> int:
    """Index of the setting ``rule`` chooses, looking only at the queries in ``mask``."""
    means = table[:, mask].mean(axis=1)

    def best_of(indices: Sequence[int]) -> int:
        top = max(means[i] for i in indices)
        return min((i for i in indices if means[i] >= top - 1e-12), key=lambda i: costs[i])

    everything = list(range(len(configs)))
    if rule == "best":
        return best_of(everything)
    if rule == "one-se":
        best = best_of(everything)
        delta, se = _paired_se(table, mask, best)
        near = [i for i in everything if delta[i] >= -se[i] - 1e-12]
        return min(near, key=lambda i: costs[i])
    if rule == "first-stage":
        alone = [i for i in everything if not configs[i].reranked]
        second = [i for i in everything if configs[i].reranked]
        if not alone or not second:
            return best_of(everything)
        a, r = best_of(alone), best_of(second)
        delta, se = _paired_se(table, mask, a)
        return r if delta[r] > NOISE_Z * se[r] else a
    if rule == "coarse":
        depths = sorted({c.depth for c in configs if c.reranked}, reverse=True)[::2]
        coarse = [
            i
            for i in everything
            if not configs[i].reranked
            or (configs[i].depth in depths and configs[i].weight in COARSE_WEIGHTS)
        ]
        return best_of(coarse or everything)
    if rule == "nested":
        inner_rules = ("best", "one-se", "first-stage", "coarse")
        train = np.flatnonzero(mask)
        folds = min(INNER_FOLDS, len(train))
        if folds < 2:
            return best_of(everything)
        inner = fold_of(len(train), folds, seed + 7919)
        scores = {}
        for name in inner_rules:
            got = np.empty(len(train))
            for f in range(folds):
                sub = np.zeros_like(mask)
                sub[train[inner != f]] = True
                pick = choose(name, configs, table, sub, costs)
                got[inner == f] = table[pick, train[inner == f]]
            scores[name] = float(got.mean())
        top = max(scores.values())
        winner = next(name for name in inner_rules if scores[name] >= top - 1e-12)
        return choose(winner, configs, table, mask, costs)
    raise SettingsError(f"unknown selection rule '{rule}' (choose: {', '.join(RULES)})")


@dataclass(frozen=True)
class FoldChoice:
    """The setting chosen on the other folds, and how it did on this one."""

    fold: int
    num_queries: int
    chosen: Config
    train_ndcg: float
    heldout_ndcg: float


@dataclass(frozen=True)
class CrossValidation:
    """One rule, cross-validated: each query's held-out nDCG@10 and each fold's choice."""

    rule: str
    folds: int
    seed: int
    heldout: np.ndarray
    heldout_index: np.ndarray
    choices: tuple[FoldChoice, ...]
    recommended: Config

    @property
    def heldout_ndcg(self) -> float:
        """Mean held-out nDCG@10."""
        return float(self.heldout.mean())

    @property
    def agreement(self) -> int:
        """How many folds chose the setting the rule chooses on all queries."""
        return sum(1 for c in self.choices if c.chosen == self.recommended)


def cross_validate(
    bench: Workbench,
    configs: Sequence[Config],
    *,
    rule: str = DEFAULT_RULE,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    table: np.ndarray | None = None,
    costs: np.ndarray | None = None,
) -> CrossValidation:
    """Apply ``rule`` on all folds but one and score its choice on that one, k times."""
    check_rule(rule)
    if not configs:
        raise SettingsError("no settings to choose from")
    n = len(bench.qids)
    assignment = fold_of(n, folds, seed)
    if table is None:
        table = np.stack([bench.scores(c) for c in configs])
    if costs is None:
        costs = cost_order(bench, configs)
    heldout_index = np.empty(n, dtype=np.int64)
    choices = []
    for fold in range(folds):
        test = assignment == fold
        pick = choose(rule, configs, table, ~test, costs, seed=seed)
        heldout_index[test] = pick
        choices.append(
            FoldChoice(
                fold=fold + 1,
                num_queries=int(test.sum()),
                chosen=configs[pick],
                train_ndcg=float(table[pick, ~test].mean()),
                heldout_ndcg=float(table[pick, test].mean()),
            )
        )
    everything = np.ones(n, dtype=bool)
    recommended = configs[choose(rule, configs, table, everything, costs, seed=seed)]
    return CrossValidation(
        rule=rule,
        folds=folds,
        seed=seed,
        heldout=table[heldout_index, np.arange(n)],
        heldout_index=heldout_index,
        choices=tuple(choices),
        recommended=recommended,
    )


def fold_of(num_queries: int, folds: int, seed: int) -> np.ndarray:
    """Fold number of each query: a seeded shuffle dealt round-robin (sizes differ by
    at most one)."""
    if not 2 <= folds <= num_queries:
        raise SettingsError(f"folds must be 2 to {num_queries} (the queries), not {folds}")
    order = np.random.default_rng(seed).permutation(num_queries)
    out = np.empty(num_queries, dtype=np.int64)
    out[order] = np.arange(num_queries) % folds
    return out
