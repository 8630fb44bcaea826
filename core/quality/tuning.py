"""Choose a setting by cross-validation (:func:`tune`) and measure the selection rules
against each other (:func:`compare_rules`).

:func:`tune` chooses a setting without ever reporting on the queries it chose on:
the queries are split into ``folds`` parts (a seeded shuffle); for each part, the
setting a selection rule (:data:`~core.quality.tuning_rules.RULES`; default: the
cheapest setting within one standard error of the best) chooses on the *other* parts is
applied to it. :func:`compare_rules` measures the rules against each other over several
seeds and fold counts. The held-out figures are those per-query results put together,
compared with the baseline by a paired bootstrap. The recommended setting is the one
chosen on all queries (the held-out figures estimate how well that choosing procedure
does on unseen queries).

The parts, in the order a run uses them: :mod:`core.quality.tuning_grid` (the settings
compared), :mod:`core.quality.tuning_workbench` (retrieve and score once, then any
setting is a re-sort), :mod:`core.quality.tuning_rules` (how a setting is chosen, and
cross-validation), :mod:`core.quality.tuning_cost` (quality against measured cost),
this module (the run and its report), :mod:`core.quality.tuning_format` (text tables)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.models.errors import SettingsError
from core.quality.stats import PairedComparison, mean_interval, paired_bootstrap
from core.quality.tuning_cost import CostPoint, best_point, cheapest_within_noise, cost_points
from core.quality.tuning_grid import DEFAULT_FOLDS, TUNE_METRICS, Config
from core.quality.tuning_rules import (
    DEFAULT_RULE,
    RULES,
    FoldChoice,
    check_rule,
    cost_order,
    cross_validate,
)
from core.quality.tuning_workbench import ConfigResult, Workbench


@dataclass(frozen=True)
class TuneReport:
    """Recommended setting, its cross-validated (held-out) figures and the grid."""

    dataset: str
    num_queries: int
    folds: int
    seed: int
    recommended: ConfigResult
    baseline: ConfigResult
    heldout: dict[str, float]
    heldout_ci: tuple[float, float]
    heldout_vs_baseline: PairedComparison
    choices: tuple[FoldChoice, ...]
    grid: tuple[ConfigResult, ...]
    reranker: str | None
    seconds: dict[str, float]
    pairs_scored: int
    pairs_cached: int
    rule: str = DEFAULT_RULE
    alone_heldout: float | None = None
    alone_agreement: int = 0
    costs: tuple[CostPoint, ...] = ()
    note: str = ""
    rerank_sample: int = 0
    aggregates: tuple[str, ...] = ()
    split_docs: int = 0

    @property
    def agreement(self) -> int:
        """How many folds chose the recommended setting."""
        return sum(1 for c in self.choices if c.chosen == self.recommended.config)

    @property
    def best_cost(self) -> CostPoint | None:
        """The best setting in-sample, with its cost."""
        return best_point(self.costs) if self.costs else None

    @property
    def cheapest(self) -> CostPoint | None:
        """The cheapest setting within noise of the best (see :func:`cheapest_within_noise`)."""
        return cheapest_within_noise(self.costs)

    def best_per_stage(self) -> list[ConfigResult]:
        """For each first stage: alone, best pure rerank and best fusion (in-sample)."""
        out = []
        for stage in dict.fromkeys(r.config.stage for r in self.grid):
            rows = [r for r in self.grid if r.config.stage == stage]
            out += [r for r in rows if not r.config.reranked]
            for reading in dict.fromkeys(r.config.passages for r in rows if r.config.reranked):
                read = [r for r in rows if r.config.reranked and r.config.passages == reading]
                pure = [r for r in read if r.config.weight >= 1.0]
                fused = [r for r in read if r.config.weight < 1.0]
                for group in (pure, fused):
                    if group:
                        out.append(max(group, key=lambda r: r.means["ndcg@10"]))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the recommendation with held-out figures and interval, each
        fold's choice, and every setting of the grid with its in-sample figures."""
        cheapest = self.cheapest
        return {
            "dataset": self.dataset,
            "num_queries": self.num_queries,
            "folds": self.folds,
            "seed": self.seed,
            "rule": self.rule,
            "rule_text": RULES[self.rule],
            "note": self.note or None,
            "reranker": self.reranker,
            "recommended": {
                **self.recommended.config.to_dict(),
                "chosen_by_folds": f"{self.agreement}/{self.folds}",
                "heldout": dict(self.heldout),
                "heldout_ndcg@10_ci95": list(self.heldout_ci),
                "heldout_vs_baseline": self.heldout_vs_baseline.to_dict(),
                "in_sample": {m: self.recommended.means[m] for m in TUNE_METRICS},
            },
            "baseline": self.baseline.to_dict(),
            "first_stage_alone_heldout_ndcg@10": self.alone_heldout,
            "first_stage_alone_chosen_by_folds": f"{self.alone_agreement}/{self.folds}",
            "folds_detail": [
                {
                    "fold": c.fold,
                    "num_queries": c.num_queries,
                    "chosen": c.chosen.to_dict(),
                    "train_ndcg@10": c.train_ndcg,
                    "heldout_ndcg@10": c.heldout_ndcg,
                }
                for c in self.choices
            ],
            "configurations": [r.to_dict() for r in self.grid],
            "quality_vs_cost": [p.to_dict() for p in self.costs],
            "cheapest_within_noise_of_best": cheapest.to_dict() if cheapest else None,
            "rerank_cost_sample_queries": self.rerank_sample,
            "passage_readings": list(self.aggregates),
            "candidates_with_several_passages": self.split_docs,
            "seconds": dict(self.seconds),
            "pairs_scored": self.pairs_scored,
            "pairs_from_cache": self.pairs_cached,
        }


def tune(
    bench: Workbench,
    configs: Sequence[Config],
    baseline: Config,
    *,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    resamples: int = 10_000,
    rule: str = DEFAULT_RULE,
    with_costs: bool = True,
) -> TuneReport:
    """Choose a setting by nDCG@10 with k-fold cross-validation over the queries.

    ``rule`` (see :data:`RULES`) chooses on the training folds; the recommendation is
    its choice on all queries. ``baseline`` (usually the default first stage alone) is
    what the held-out figures are compared with; the best first stage alone, chosen by
    the same cross-validation, is reported beside them.
    """
    check_rule(rule)
    if not configs:
        raise SettingsError("no settings to choose from")
    started = time.perf_counter()
    n = len(bench.qids)
    table = np.stack([bench.scores(c) for c in configs])
    costs = cost_order(bench, configs)
    cv = cross_validate(bench, configs, rule=rule, folds=folds, seed=seed, table=table, costs=costs)
    heldout = {}
    for metric in TUNE_METRICS:
        values = [bench.scores(configs[cv.heldout_index[q]], metric)[q] for q in range(n)]
        heldout[metric] = float(np.mean(values))
    _, low, high = mean_interval(cv.heldout, resamples=resamples, seed=seed)
    alone = [i for i, c in enumerate(configs) if not c.reranked]
    alone_cv = None
    if alone:
        alone_cv = cross_validate(
            bench,
            [configs[i] for i in alone],
            rule="best",
            folds=folds,
            seed=seed,
            table=table[alone],
            costs=costs[alone],
        )
    grid = tuple(bench.result(c) for c in configs)
    points = tuple(cost_points(bench, configs)) if with_costs else ()
    seconds = dict(bench.seconds)
    seconds["choose"] = time.perf_counter() - started
    return TuneReport(
        dataset=bench.name,
        num_queries=n,
        folds=folds,
        seed=seed,
        recommended=bench.result(cv.recommended, resamples=resamples),
        baseline=bench.result(baseline),
        heldout=heldout,
        heldout_ci=(low, high),
        heldout_vs_baseline=paired_bootstrap(
            bench.scores(baseline), cv.heldout, resamples=resamples, seed=seed
        ),
        choices=cv.choices,
        grid=grid,
        reranker=bench.reranker,
        seconds=seconds,
        pairs_scored=bench.pairs_scored,
        pairs_cached=bench.pairs_cached,
        rule=rule,
        alone_heldout=alone_cv.heldout_ndcg if alone_cv else None,
        alone_agreement=alone_cv.agreement if alone_cv else 0,
        costs=points,
        note=bench.note,
        rerank_sample=bench.rerank_sample,
        aggregates=bench.aggregates,
        split_docs=bench.split_docs,
    )


# --- comparing the rules ----------------------------------------------------------------


@dataclass(frozen=True)
class RuleRun:
    """One rule on one (folds, seed): held-out nDCG@10, agreement, recommendation."""

    rule: str
    folds: int
    seed: int
    heldout: float
    agreement: int
    recommended: Config
    reranked_share: float


@dataclass(frozen=True)
class RuleComparison:
    """Every rule over several seeds and fold counts, and the first stages alone."""

    dataset: str
    num_queries: int
    runs: tuple[RuleRun, ...]
    alone: dict[str, float]
    note: str = ""

    def summary(self) -> list[dict[str, Any]]:
        """Per rule: mean held-out nDCG@10, its range, folds agreeing in total."""
        out = []
        for rule in dict.fromkeys(r.rule for r in self.runs):
            rows = [r for r in self.runs if r.rule == rule]
            values = [r.heldout for r in rows]
            out.append(
                {
                    "rule": rule,
                    "mean_heldout_ndcg@10": float(np.mean(values)),
                    "min": float(np.min(values)),
                    "max": float(np.max(values)),
                    "folds_agreeing": sum(r.agreement for r in rows),
                    "folds_total": sum(r.folds for r in rows),
                    "recommendations": sorted({r.recommended.label for r in rows}),
                }
            )
        return out

    def winner(self) -> str:
        """The rule with the best mean held-out nDCG@10 (ties: more folds agreeing)."""
        rows = self.summary()
        top = max(rows, key=lambda r: (round(r["mean_heldout_ndcg@10"], 4), r["folds_agreeing"]))
        return str(top["rule"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "dataset": self.dataset,
            "num_queries": self.num_queries,
            "note": self.note or None,
            "first_stage_alone_ndcg@10": dict(self.alone),
            "summary": self.summary(),
            "winner": self.winner(),
            "runs": [
                {
                    "rule": r.rule,
                    "folds": r.folds,
                    "seed": r.seed,
                    "heldout_ndcg@10": r.heldout,
                    "chosen_by_folds": f"{r.agreement}/{r.folds}",
                    "recommended": r.recommended.label,
                    "queries_scored_by_a_reranking_setting": r.reranked_share,
                }
                for r in self.runs
            ],
        }


def compare_rules(
    bench: Workbench,
    configs: Sequence[Config],
    *,
    rules: Sequence[str] = tuple(RULES),
    seeds: Sequence[int] = (0, 1, 2),
    folds: Sequence[int] = (5, 10),
) -> RuleComparison:
    """Cross-validate every rule for every (fold count, seed) on the same table."""
    table = np.stack([bench.scores(c) for c in configs])
    costs = cost_order(bench, configs)
    runs = []
    for rule in rules:
        for k in folds:
            for seed in seeds:
                cv = cross_validate(
                    bench, configs, rule=rule, folds=k, seed=seed, table=table, costs=costs
                )
                reranked = np.array([configs[i].reranked for i in cv.heldout_index])
                runs.append(
                    RuleRun(
                        rule,
                        k,
                        seed,
                        cv.heldout_ndcg,
                        cv.agreement,
                        cv.recommended,
                        float(reranked.mean()),
                    )
                )
    alone = {c.label: float(table[i].mean()) for i, c in enumerate(configs) if not c.reranked}
    return RuleComparison(bench.name, len(bench.qids), tuple(runs), alone, bench.note)
