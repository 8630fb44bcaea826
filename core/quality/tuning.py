"""Compare first stages and second-stage settings on labelled queries, and pick one.

:class:`Workbench` retrieves each query's top ``depth`` once per first stage and scores
every (query, candidate) pair of all stages once with the cross-encoder (through the
on-disk :mod:`core.search.scorestore`). Any :class:`Config` (first stage, rerank depth,
fusion weight) is then a re-sort of numbers already at hand, so hundreds of settings
are evaluated in seconds.

:func:`tune` chooses a setting without ever reporting on the queries it chose on:
the queries are split into ``folds`` parts (a seeded shuffle); for each part, the
setting with the best mean nDCG@10 on the *other* parts is applied to it. The held-out
figures are those per-query results put together, compared with the baseline by a
paired bootstrap. The recommended setting is the one chosen on all queries (the
held-out figures estimate how well that choosing procedure does on unseen queries).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.data.documents import Dataset, TextStyle
from core.errors import DatasetError, SettingsError
from core.models.base import Encoder, Reranker
from core.quality.metrics import QueryQrels, evaluate_run
from core.quality.stats import PairedComparison, mean_interval, paired_bootstrap
from core.search.fusion import FusionMethod
from core.search.index import build_index
from core.search.passages import PassageSettings
from core.search.retrievers import DEFAULT_RRF_K, check_retriever_kind, make_retriever
from core.search.scorestore import ScoreStore

TUNE_METRICS: tuple[str, ...] = ("ndcg@10", "mrr@10", "recall@100")
TUNE_DEPTHS: tuple[int, ...] = (10, 20, 50, 100)
TUNE_WEIGHTS: tuple[float, ...] = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2)
DEFAULT_FOLDS = 5
DEFAULT_DEPTH = 100
BGE_SMALL = "BAAI/bge-small-en-v1.5"

ProgressFn = Callable[[int, int, str], None]


def short_model(model_id: str | None) -> str:
    """The last path part of a model id: "BAAI/bge-small-en-v1.5" -> "bge-small-en-v1.5"."""
    return (model_id or "").rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True, order=True)
class FirstStage:
    """A first stage: retriever kind and, for dense and hybrid, the bi-encoder id."""

    retriever: str
    encoder: str | None = None

    @property
    def label(self) -> str:
        """E.g. "dense all-MiniLM-L6-v2", "bm25", "hybrid all-MiniLM-L6-v2 + BM25"."""
        if self.retriever == "bm25":
            return "bm25"
        if self.retriever == "hybrid":
            return f"hybrid {short_model(self.encoder)} + BM25"
        return f"dense {short_model(self.encoder)}"


@dataclass(frozen=True)
class Config:
    """A whole setting: first stage, how many of its candidates the cross-encoder
    reranks (0: none), and the cross-encoder's weight in the fused score (1: pure)."""

    stage: FirstStage
    depth: int = 0
    weight: float = 1.0
    fusion: FusionMethod = "linear"

    @property
    def reranked(self) -> bool:
        """Whether the cross-encoder runs at all."""
        return self.depth > 0

    @property
    def second_stage(self) -> str:
        """E.g. "alone", "rerank top 50", "fuse top 50 w=0.6"."""
        if not self.reranked:
            return "alone"
        if self.weight >= 1.0:
            return f"rerank top {self.depth}"
        rrf = " rrf" if self.fusion == "rrf" else ""
        return f"fuse top {self.depth} w={self.weight:g}{rrf}"

    @property
    def label(self) -> str:
        """First stage and second stage in a few words."""
        return f"{self.stage.label} · {self.second_stage}"

    @property
    def cost(self) -> tuple[int, float]:
        """Cheaper settings first (fewer pairs to score, then purer): breaks ties."""
        return (self.depth, -self.weight)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with labels."""
        return {
            "retriever": self.stage.retriever,
            "encoder": self.stage.encoder,
            "rerank_depth": self.depth,
            "fusion_weight": self.weight if self.reranked else None,
            "fusion": self.fusion if self.reranked and self.weight < 1.0 else None,
            "label": self.label,
        }


def default_stages(encoder: str, second_encoder: str | None = BGE_SMALL) -> list[FirstStage]:
    """Dense with ``encoder`` (and ``second_encoder``), BM25, and hybrid with ``encoder``."""
    stages = [FirstStage("dense", encoder)]
    if second_encoder and second_encoder != encoder:
        stages.append(FirstStage("dense", second_encoder))
    return [*stages, FirstStage("bm25"), FirstStage("hybrid", encoder)]


def stages_for(retrievers: Sequence[str], encoders: Sequence[str]) -> list[FirstStage]:
    """First stages named on a command line: dense once per encoder, hybrid with the
    first encoder, BM25 once."""
    stages: list[FirstStage] = []
    for kind in retrievers:
        kind = check_retriever_kind(kind)
        if kind == "dense":
            stages += [FirstStage("dense", e) for e in encoders]
        elif kind == "hybrid":
            stages.append(FirstStage("hybrid", encoders[0]))
        else:
            stages.append(FirstStage("bm25"))
    return list(dict.fromkeys(stages))


def config_grid(
    stages: Sequence[FirstStage],
    depths: Sequence[int] = TUNE_DEPTHS,
    weights: Sequence[float] = TUNE_WEIGHTS,
    fusion: FusionMethod = "linear",
    max_depth: int | None = None,
) -> list[Config]:
    """Every stage alone, and every stage x depth x weight (depths above ``max_depth``,
    the candidates prepared, are dropped; if none is left, ``max_depth`` is used)."""
    if max_depth is not None:
        depths = [d for d in depths if d <= max_depth] or [max_depth]
    configs = []
    for stage in stages:
        configs.append(Config(stage))
        for depth in depths:
            configs.extend(Config(stage, depth, w, fusion) for w in weights)
    return configs


@dataclass(frozen=True)
class ConfigResult:
    """One setting's mean metrics over the queries, per-query nDCG@10, and its change
    against its own first stage alone (None for a first stage alone)."""

    config: Config
    means: dict[str, float]
    ndcg: tuple[float, ...]
    vs_first_stage: PairedComparison | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the setting, nDCG@10 / MRR@10 / Recall@100, the 95% interval of
        the mean nDCG@10 and the change against the first stage alone."""
        _, low, high = mean_interval(self.ndcg, resamples=2000)
        return {
            **self.config.to_dict(),
            **{m: self.means[m] for m in TUNE_METRICS},
            "ndcg@10_ci95": [low, high],
            "vs_first_stage": self.vs_first_stage.to_dict() if self.vs_first_stage else None,
        }


@dataclass
class Workbench:
    """Candidates and cross-encoder scores for a set of labelled queries.

    Build it with :func:`prepare`. ``runs[stage][qid]`` is the first stage's top
    ``depth`` as (doc id, score); ``ce[qid][doc_id]`` the cross-encoder's logit.
    """

    name: str
    qids: list[str]
    qrels: dict[str, QueryQrels]
    depth: int
    ignore_identical_ids: bool
    runs: dict[FirstStage, dict[str, list[tuple[str, float]]]] = field(default_factory=dict)
    ce: dict[str, dict[str, float]] = field(default_factory=dict)
    reranker: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    pairs_scored: int = 0
    pairs_cached: int = 0
    _cache: dict[Config, dict[str, dict[str, float]]] = field(default_factory=dict, repr=False)

    @property
    def stages(self) -> list[FirstStage]:
        """The first stages prepared, in the order they were added."""
        return list(self.runs)

    def ranking(self, config: Config) -> dict[str, list[str]]:
        """Each query's final ranking under ``config`` (``depth`` docs long)."""
        from core.quality.evaluation import second_stage_order

        if config.stage not in self.runs:
            raise SettingsError(f"first stage '{config.stage.label}' was not prepared")
        if config.depth > self.depth:
            raise SettingsError(f"rerank depth {config.depth} is above the {self.depth} prepared")
        run = self.runs[config.stage]
        if not config.reranked:
            return {qid: [d for d, _ in run[qid]] for qid in self.qids}
        if not self.ce:
            raise SettingsError("no cross-encoder scores: prepare with a reranker")
        return {
            qid: second_stage_order(
                run[qid], self.ce[qid], config.depth, config.weight, config.fusion
            )
            for qid in self.qids
        }

    def per_query(self, config: Config) -> dict[str, dict[str, float]]:
        """Per-query metrics of ``config`` (all queries; cached)."""
        if config not in self._cache:
            evaluated = evaluate_run(
                self.ranking(config),
                {q: self.qrels[q] for q in self.qids},
                (10, 100),
                ignore_identical_ids=self.ignore_identical_ids,
            )
            self._cache[config] = evaluated.per_query
        return self._cache[config]

    def scores(self, config: Config, metric: str = "ndcg@10") -> np.ndarray:
        """``metric`` per query, in :attr:`qids` order."""
        per_query = self.per_query(config)
        return np.array([per_query[q][metric] for q in self.qids], dtype=np.float64)

    def result(self, config: Config, *, resamples: int = 2000) -> ConfigResult:
        """Mean metrics of ``config`` over all queries, and its change against its first
        stage alone."""
        means = {m: float(self.scores(config, m).mean()) for m in TUNE_METRICS}
        ndcg = self.scores(config)
        comparison = None
        if config.reranked:
            alone = self.scores(Config(config.stage))
            comparison = paired_bootstrap(alone, ndcg, resamples=resamples)
        return ConfigResult(config, means, tuple(ndcg.tolist()), comparison)


def prepare(
    dataset: Dataset,
    queries: Mapping[str, str],
    qrels: Mapping[str, QueryQrels],
    stages: Sequence[FirstStage],
    encoders: Mapping[str, Encoder],
    *,
    reranker: Reranker | None,
    embed_fields: Sequence[str],
    rerank_fields: Sequence[str],
    rerank_style: TextStyle = "plain",
    depth: int = DEFAULT_DEPTH,
    max_queries: int | None = None,
    ignore_identical_ids: bool = True,
    rrf_k: int = DEFAULT_RRF_K,
    store: ScoreStore | None = None,
    use_cache: bool = True,
    progress: ProgressFn | None = None,
    passages: PassageSettings | None = None,
) -> Workbench:
    """Retrieve every query with every first stage, then score the union of their top
    ``depth`` with ``reranker`` (each pair once; pairs in ``store`` not at all).
    ``passages`` reads long documents passage by passage (None: whole, first passage).

    ``encoders`` maps the encoder ids named by ``stages`` to loaded encoders.
    """
    from core.quality.evaluation import retrieve_run, score_run, sorted_query_ids

    if not stages:
        raise SettingsError("choose at least one first stage")
    if not qrels:
        raise DatasetError("no judged queries: nothing to evaluate")
    embed = dataset.check_fields(embed_fields, "embed")
    rerank = dataset.check_fields(rerank_fields, "rerank") if reranker is not None else ()
    qids = sorted_query_ids(list(qrels))[:max_queries]
    missing = [qid for qid in qids if not (queries.get(qid) or "").strip()]
    if missing:
        raise DatasetError(
            f"{len(missing)} judged query id(s) have no text (first: '{missing[0]}')"
        )
    texts = [queries[qid].strip() for qid in qids]
    bench = Workbench(
        name=dataset.name,
        qids=qids,
        qrels={q: qrels[q] for q in qids},
        depth=depth,
        ignore_identical_ids=ignore_identical_ids,
        reranker=reranker.name if reranker is not None else None,
    )

    def stage_progress(stage: str) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        return lambda done, total: progress(done, total, stage)

    indexes = {}
    for stage in dict.fromkeys(stages):
        kind = check_retriever_kind(stage.retriever)
        started = time.perf_counter()
        index = encoder = None
        if kind != "bm25":
            if stage.encoder not in encoders:
                raise SettingsError(f"no encoder loaded for '{stage.label}'")
            encoder = encoders[stage.encoder]
            if stage.encoder not in indexes:
                indexes[stage.encoder] = build_index(
                    dataset,
                    encoder,
                    embed,
                    use_cache=use_cache,
                    progress=stage_progress(f"index corpus ({short_model(stage.encoder)})"),
                ).index
            index = indexes[stage.encoder]
        retriever = make_retriever(kind, dataset, embed, encoder=encoder, index=index, rrf_k=rrf_k)
        run, _, _ = retrieve_run(
            retriever,
            qids,
            texts,
            depth,
            ignore_identical_ids=ignore_identical_ids,
            progress=stage_progress(f"retrieve ({stage.label})"),
        )
        bench.runs[stage] = run
        bench.seconds[f"retrieve {stage.label}"] = time.perf_counter() - started

    if reranker is not None:
        started = time.perf_counter()
        union = {qid: [d for run in bench.runs.values() for d, _ in run[qid]] for qid in qids}
        bench.ce, bench.pairs_scored, bench.pairs_cached = score_run(
            reranker,
            dataset,
            qids,
            texts,
            union,
            fields=rerank,
            style=rerank_style,
            store=store,
            progress=stage_progress("cross-encoder"),
            passages=passages,
        )
        bench.seconds["cross-encoder"] = time.perf_counter() - started
    return bench


def compare(bench: Workbench, configs: Sequence[Config]) -> list[ConfigResult]:
    """Evaluate each setting on all queries (in-sample; for a table, not for choosing)."""
    return [bench.result(c) for c in configs]


@dataclass(frozen=True)
class FoldChoice:
    """The setting chosen on the other folds, and how it did on this one."""

    fold: int
    num_queries: int
    chosen: Config
    train_ndcg: float
    heldout_ndcg: float


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

    @property
    def agreement(self) -> int:
        """How many folds chose the recommended setting."""
        return sum(1 for c in self.choices if c.chosen == self.recommended.config)

    def best_per_stage(self) -> list[ConfigResult]:
        """For each first stage: alone, best pure rerank and best fusion (in-sample)."""
        out = []
        for stage in dict.fromkeys(r.config.stage for r in self.grid):
            rows = [r for r in self.grid if r.config.stage == stage]
            alone = [r for r in rows if not r.config.reranked]
            pure = [r for r in rows if r.config.reranked and r.config.weight >= 1.0]
            fused = [r for r in rows if r.config.reranked and r.config.weight < 1.0]
            out += alone
            for group in (pure, fused):
                if group:
                    out.append(max(group, key=lambda r: r.means["ndcg@10"]))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the recommendation with held-out figures and interval, each
        fold's choice, and every setting of the grid with its in-sample figures."""
        return {
            "dataset": self.dataset,
            "num_queries": self.num_queries,
            "folds": self.folds,
            "seed": self.seed,
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
            "seconds": dict(self.seconds),
            "pairs_scored": self.pairs_scored,
            "pairs_from_cache": self.pairs_cached,
        }


def fold_of(num_queries: int, folds: int, seed: int) -> np.ndarray:
    """Fold number of each query: a seeded shuffle dealt round-robin (sizes differ by
    at most one)."""
    if not 2 <= folds <= num_queries:
        raise SettingsError(f"folds must be 2 to {num_queries} (the queries), not {folds}")
    order = np.random.default_rng(seed).permutation(num_queries)
    out = np.empty(num_queries, dtype=np.int64)
    out[order] = np.arange(num_queries) % folds
    return out


def _best(configs: Sequence[Config], table: np.ndarray, mask: np.ndarray) -> int:
    """Index of the config with the best mean over ``mask``; ties go to the cheaper."""
    means = table[:, mask].mean(axis=1)
    best = float(means.max())
    tied = [i for i in range(len(configs)) if means[i] >= best - 1e-12]
    return min(tied, key=lambda i: (configs[i].cost, i))


def tune(
    bench: Workbench,
    configs: Sequence[Config],
    baseline: Config,
    *,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    resamples: int = 10_000,
) -> TuneReport:
    """Choose a setting by nDCG@10 with k-fold cross-validation over the queries.

    ``baseline`` (usually the default first stage alone) is what the held-out figures
    are compared with.
    """
    if not configs:
        raise SettingsError("no settings to choose from")
    started = time.perf_counter()
    n = len(bench.qids)
    assignment = fold_of(n, folds, seed)
    table = np.stack([bench.scores(c) for c in configs])
    heldout_index = np.empty(n, dtype=np.int64)
    choices = []
    for fold in range(folds):
        test = assignment == fold
        pick = _best(configs, table, ~test)
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
    heldout = {}
    for metric in TUNE_METRICS:
        values = [bench.scores(configs[heldout_index[q]], metric)[q] for q in range(n)]
        heldout[metric] = float(np.mean(values))
    heldout_ndcg = table[heldout_index, np.arange(n)]
    _, low, high = mean_interval(heldout_ndcg, resamples=resamples, seed=seed)
    recommended = configs[_best(configs, table, np.ones(n, dtype=bool))]
    grid = tuple(bench.result(c) for c in configs)
    seconds = dict(bench.seconds)
    seconds["choose"] = time.perf_counter() - started
    return TuneReport(
        dataset=bench.name,
        num_queries=n,
        folds=folds,
        seed=seed,
        recommended=bench.result(recommended, resamples=resamples),
        baseline=bench.result(baseline),
        heldout=heldout,
        heldout_ci=(low, high),
        heldout_vs_baseline=paired_bootstrap(
            bench.scores(baseline), heldout_ndcg, resamples=resamples, seed=seed
        ),
        choices=tuple(choices),
        grid=grid,
        reranker=bench.reranker,
        seconds=seconds,
        pairs_scored=bench.pairs_scored,
        pairs_cached=bench.pairs_cached,
    )


def format_results(results: Sequence[ConfigResult], title: str = "") -> str:
    """A plain-text table: one row per setting, metrics and change vs its first stage."""
    header = (
        f"{'setting':<52}{'nDCG@10':>9}{'MRR@10':>9}{'R@100':>8}"
        f"   {'vs first stage alone (nDCG@10, 95% CI)':<44}"
    )
    lines = [title, header, "-" * len(header)] if title else [header, "-" * len(header)]
    for r in results:
        change = ""
        if r.vs_first_stage is not None:
            c = r.vs_first_stage
            change = (
                f"{c.mean_delta:+.4f} [{c.low:+.4f}, {c.high:+.4f}] {c.verdict}"
                f"  {c.wins}/{c.ties}/{c.losses}"
            )
        lines.append(
            f"{r.config.label:<52}{r.means['ndcg@10']:>9.4f}{r.means['mrr@10']:>9.4f}"
            f"{r.means['recall@100']:>8.4f}   {change}"
        )
    return "\n".join(lines)


def format_tune(report: TuneReport) -> str:
    """The recommendation, its held-out figures, each fold's choice, and per first
    stage the best settings (in-sample)."""
    rec = report.recommended
    cmp = report.heldout_vs_baseline
    lines = [
        f"tuned on {report.dataset}: {report.num_queries} queries, {report.folds}-fold "
        f"cross-validation (seed {report.seed}), {len(report.grid)} settings, "
        f"reranker {report.reranker or 'none'}",
        "",
        f"recommended: {rec.config.label}",
        f"  held-out (each query scored by the setting chosen without it): "
        f"nDCG@10 {report.heldout['ndcg@10']:.4f} "
        f"[95% CI {report.heldout_ci[0]:.4f}, {report.heldout_ci[1]:.4f}], "
        f"MRR@10 {report.heldout['mrr@10']:.4f}, Recall@100 {report.heldout['recall@100']:.4f}",
        f"  vs baseline {report.baseline.config.label} "
        f"(nDCG@10 {report.baseline.means['ndcg@10']:.4f}): " + cmp.sentence("The tuned setting"),
        f"  in-sample (all queries, for reference only): nDCG@10 {rec.means['ndcg@10']:.4f}",
        f"  chosen by {report.agreement} of {report.folds} folds",
        "",
        "folds:",
    ]
    for c in report.choices:
        lines.append(
            f"  {c.fold}: {c.chosen.label:<52} train {c.train_ndcg:.4f}  "
            f"held-out {c.heldout_ndcg:.4f} ({c.num_queries} queries)"
        )
    lines += ["", format_results(report.best_per_stage(), "best per first stage (in-sample):")]
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items())
    lines += [
        "",
        f"time: {timing}; cross-encoder pairs: {report.pairs_scored:,} scored, "
        f"{report.pairs_cached:,} from cache",
    ]
    return "\n".join(lines)
