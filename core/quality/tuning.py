"""Compare first stages and second-stage settings on labelled queries, and pick one.

:class:`Workbench` retrieves each query's top ``depth`` once per first stage and scores
every (query, candidate) pair of all stages once with the cross-encoder (through the
on-disk :mod:`core.search.scorestore`). Any :class:`Config` (first stage, rerank depth,
fusion weight) is then a re-sort of numbers already at hand, so hundreds of settings
are evaluated in seconds.

:func:`tune` chooses a setting without ever reporting on the queries it chose on:
the queries are split into ``folds`` parts (a seeded shuffle); for each part, the
setting a selection rule (:data:`RULES`; default: the cheapest setting within one
standard error of the best) chooses on the *other* parts is applied to it.
:func:`compare_rules` measures the rules against each other over several seeds and
fold counts. The held-out figures are those per-query results put together, compared
with the baseline by a paired bootstrap. The recommended setting is the one chosen on
all queries (the held-out figures estimate how well that choosing procedure does on
unseen queries).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from core.data.documents import Dataset, TextStyle
from core.models.base import Encoder, Reranker
from core.models.errors import DatasetError, SettingsError
from core.quality.metrics import DEFAULT_THRESHOLD, QueryQrels, check_threshold, evaluate_run
from core.quality.stats import PairedComparison, mean_interval, paired_bootstrap
from core.search.fusion import FusionMethod
from core.search.index import build_index
from core.search.passages import PassageSettings
from core.search.retrievers import DEFAULT_RRF_K, check_retriever_kind, make_retriever
from core.search.scorestore import ScoreStore

TUNE_METRICS: tuple[str, ...] = ("ndcg@10", "mrr@10", "recall@100")
PASSAGE_LABELS: dict[str, str] = {
    "first": "first passage",
    "max": "best passage",
    "top2": "top-2 passages",
}
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
    reranks (0: none), the cross-encoder's weight in the fused score (1: pure) and,
    when the passage reading is tuned, how long documents are read (``passages``:
    ``"first"`` or an aggregate such as ``"max"``; None: the workbench's one reading)."""

    stage: FirstStage
    depth: int = 0
    weight: float = 1.0
    fusion: FusionMethod = "linear"
    passages: str | None = None

    @property
    def reranked(self) -> bool:
        """Whether the cross-encoder runs at all."""
        return self.depth > 0

    @property
    def second_stage(self) -> str:
        """E.g. "alone", "rerank top 50", "fuse top 50 w=0.6"."""
        if not self.reranked:
            return "alone"
        reading = f" {PASSAGE_LABELS.get(self.passages, self.passages)}" if self.passages else ""
        if self.weight >= 1.0:
            return f"rerank top {self.depth}{reading}"
        rrf = " rrf" if self.fusion == "rrf" else ""
        return f"fuse top {self.depth} w={self.weight:g}{rrf}{reading}"

    @property
    def label(self) -> str:
        """First stage and second stage in a few words."""
        return f"{self.stage.label} · {self.second_stage}"

    @property
    def cost(self) -> tuple[int, int, float]:
        """Cheaper settings first (fewer pairs to score, first passage before reading
        every passage, then purer): breaks ties."""
        return (self.depth, int(self.passages not in (None, "first")), -self.weight)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with labels."""
        return {
            "retriever": self.stage.retriever,
            "encoder": self.stage.encoder,
            "rerank_depth": self.depth,
            "fusion_weight": self.weight if self.reranked else None,
            "fusion": self.fusion if self.reranked and self.weight < 1.0 else None,
            "passages": self.passages if self.reranked else None,
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
    aggregates: Sequence[str] = (),
) -> list[Config]:
    """Every stage alone, and every stage x depth x weight (depths above ``max_depth``,
    the candidates prepared, are dropped; if none is left, ``max_depth`` is used);
    with ``aggregates`` (a workbench's :attr:`Workbench.aggregates`), x each passage
    reading too."""
    if max_depth is not None:
        depths = [d for d in depths if d <= max_depth] or [max_depth]
    readings: Sequence[str | None] = tuple(aggregates) or (None,)
    configs = []
    for stage in stages:
        configs.append(Config(stage))
        for reading in readings:
            for depth in depths:
                configs.extend(Config(stage, depth, w, fusion, reading) for w in weights)
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
    ``stage_ms`` is each first stage's measured time per query (query encoding, batched,
    plus search); ``rerank_ms`` the cross-encoder's measured time per query at each
    rerank depth (see :func:`measure_rerank_cost`). ``note`` says when the scores were
    altered on purpose (:func:`sabotage`).

    With the passage reading tuned, ``aggregates`` names the readings compared (e.g.
    ``("first", "max")``), ``ce_by[reading]`` holds each one's scores (``ce`` is the
    default reading's), ``passage_settings[reading]`` how it cuts documents, and
    ``rerank_ms`` is keyed by ``(depth, reading)``; ``split_docs`` counts the
    candidates with more than one passage.
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
    texts: dict[str, str] = field(default_factory=dict)
    stage_ms: dict[FirstStage, float] = field(default_factory=dict)
    rerank_ms: dict[int | tuple[int, str], float] = field(default_factory=dict)
    rerank_sample: int = 0
    threshold: int = DEFAULT_THRESHOLD
    note: str = ""
    aggregates: tuple[str, ...] = ()
    ce_by: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    passage_settings: dict[str, PassageSettings] = field(default_factory=dict)
    split_docs: int = 0
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
        ce = self.ce
        if config.passages is not None:
            if config.passages not in self.ce_by:
                raise SettingsError(f"passage reading '{config.passages}' was not prepared")
            ce = self.ce_by[config.passages]
        return {
            qid: second_stage_order(run[qid], ce[qid], config.depth, config.weight, config.fusion)
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
                threshold=self.threshold,
            )
            self._cache[config] = evaluated.per_query
        return self._cache[config]

    def scores(self, config: Config, metric: str = "ndcg@10") -> np.ndarray:
        """``metric`` per query, in :attr:`qids` order."""
        per_query = self.per_query(config)
        return np.array([per_query[q][metric] for q in self.qids], dtype=np.float64)

    def cost_ms(self, config: Config) -> float | None:
        """Measured time per query of ``config``: its first stage, plus the cross-encoder
        at its depth (fusion costs nothing more). None when not measured."""
        stage = self.stage_ms.get(config.stage)
        if stage is None:
            return None
        if not config.reranked:
            return stage
        key = config.depth if config.passages is None else (config.depth, config.passages)
        rerank = self.rerank_ms.get(key)
        return None if rerank is None else stage + rerank

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
    threshold: int = DEFAULT_THRESHOLD,
    cache_only: bool = False,
    passages: PassageSettings | None = None,
    dense_passages: PassageSettings | None = None,
    tune_passages: PassageSettings | None = None,
) -> Workbench:
    """Retrieve every query with every first stage, then score the union of their top
    ``depth`` with ``reranker`` (each pair once; pairs in ``store`` not at all).
    ``passages`` reads long documents passage by passage (None: whole, first passage).
    ``dense_passages`` embeds them by passage for the dense stages
    (:mod:`core.search.passage_index`).

    ``tune_passages`` (an aggregate other than ``"first"``) makes the passage reading a
    setting to tune: the candidates are scored both by the first passage and by that
    aggregate, and :attr:`Workbench.aggregates` names both, but only when some
    candidate has more than one passage (else the two readings are the same pairs, and
    ``note`` says the reading was left out of the grid).

    ``encoders`` maps the encoder ids named by ``stages`` to loaded encoders. With
    ``cache_only`` nothing is scored: queries with a pair missing from ``store`` are
    dropped (``note`` says how many), so a partly warmed cache can be used as it is.
    """
    from core.quality.evaluation import retrieve_run, score_run, sorted_query_ids

    if not stages:
        raise SettingsError("choose at least one first stage")
    if tune_passages is not None:
        tune_passages = tune_passages.checked()
        if tune_passages.aggregate == "first":
            raise SettingsError("tuning the passage reading compares first with another")
        if cache_only:
            raise SettingsError("cache-only evaluation cannot tune the passage reading")
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
        texts=dict(zip(qids, texts, strict=True)),
        threshold=check_threshold(threshold),
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
                    passages=dense_passages,
                ).index
            index = indexes[stage.encoder]
        retriever = make_retriever(kind, dataset, embed, encoder=encoder, index=index, rrf_k=rrf_k)
        run, encode_s, search_s = retrieve_run(
            retriever,
            qids,
            texts,
            depth,
            ignore_identical_ids=ignore_identical_ids,
            progress=stage_progress(f"retrieve ({stage.label})"),
        )
        bench.runs[stage] = run
        bench.stage_ms[stage] = 1000.0 * (encode_s + search_s) / max(len(qids), 1)
        bench.seconds[f"retrieve {stage.label}"] = time.perf_counter() - started

    if reranker is not None and cache_only:
        _keep_cached_queries(bench, reranker, dataset, rerank, rerank_style, store)
        qids, texts = bench.qids, [bench.texts[q] for q in bench.qids]
    if reranker is not None:
        started = time.perf_counter()
        union = {qid: [d for run in bench.runs.values() for d, _ in run[qid]] for qid in qids}

        def scores(reading: PassageSettings | None, label: str, split: list[int] | None = None):
            ce, scored, cached = score_run(
                reranker,
                dataset,
                qids,
                texts,
                union,
                fields=rerank,
                style=rerank_style,
                store=store,
                progress=stage_progress(label),
                passages=reading,
                split_docs=split,
            )
            bench.pairs_scored += scored
            bench.pairs_cached += cached
            return ce

        if tune_passages is None:
            bench.ce = scores(passages, "cross-encoder")
        else:
            _score_readings(bench, scores, passages, tune_passages)
        bench.seconds["cross-encoder"] = time.perf_counter() - started
    return bench


def _score_readings(
    bench: Workbench,
    scores: Callable[..., dict[str, dict[str, float]]],
    default: PassageSettings | None,
    tuned: PassageSettings,
) -> None:
    """Score the candidates by ``tuned`` and, when some are longer than one passage,
    by the first passage too; fill :attr:`Workbench.aggregates` and ``ce_by``."""
    split: list[int] = []
    label = PASSAGE_LABELS.get(tuned.aggregate, tuned.aggregate)
    ce_tuned = scores(tuned, f"cross-encoder ({label})", split)
    bench.split_docs = sum(split)
    default_how = default.aggregate if default is not None else "first"
    if bench.split_docs == 0:  # every candidate is one passage: the same pairs either way
        bench.ce = ce_tuned
        bench.note = (
            "passage reading not tuned: no candidate is longer than one passage, so "
            "every reading scores the same pairs"
        )
        return
    ce_first = scores(None, "cross-encoder (first passage)")
    bench.ce_by = {"first": ce_first, tuned.aggregate: ce_tuned}
    bench.passage_settings = {tuned.aggregate: tuned}
    bench.aggregates = ("first", tuned.aggregate)
    bench.ce = bench.ce_by.get(default_how, ce_first)


def _keep_cached_queries(
    bench: Workbench,
    reranker: Reranker,
    dataset: Dataset,
    fields: Sequence[str],
    style: TextStyle,
    store: ScoreStore | None,
) -> None:
    """Drop the queries whose candidates are not all in ``store`` (``cache_only``)."""
    from core.data.documents import rerank_text
    from core.models.base import RerankDoc
    from core.search.scorestore import missing_pairs

    if store is None:
        raise SettingsError("cache-only evaluation needs the score cache")
    keep = []
    for qid in bench.qids:
        ids = dict.fromkeys(d for run in bench.runs.values() for d, _ in run[qid])
        docs = [RerankDoc(id=d, text=rerank_text(dataset.record(d), fields, style)) for d in ids]
        if missing_pairs(reranker, bench.texts[qid], docs, store) == 0:
            keep.append(qid)
    dropped = len(bench.qids) - len(keep)
    if not keep:
        raise DatasetError("no query has all its cross-encoder scores in the cache yet")
    bench.qids = keep
    bench.qrels = {q: bench.qrels[q] for q in keep}
    bench.texts = {q: bench.texts[q] for q in keep}
    for stage, run in bench.runs.items():
        bench.runs[stage] = {q: run[q] for q in keep}
    if dropped:
        bench.note = f"cache only: {len(keep)} queries with every pair cached, {dropped} left out"


def compare(bench: Workbench, configs: Sequence[Config]) -> list[ConfigResult]:
    """Evaluate each setting on all queries (in-sample; for a table, not for choosing)."""
    return [bench.result(c) for c in configs]


# --- choosing a setting ----------------------------------------------------------------
#
# A rule sees a table of per-query nDCG@10 (settings x queries), the queries it may
# look at (a mask), and each setting's cost; it returns the index of the setting it
# chooses. Cross-validation applies it to the other folds and scores the chosen setting
# on the held-out fold.

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


# --- quality against cost ---------------------------------------------------------------


@dataclass(frozen=True)
class CostPoint:
    """One setting's mean nDCG@10 (95% interval, all queries) and measured ms/query,
    and whether it is within noise of the best setting (its paired interval against the
    best includes 0)."""

    config: Config
    ndcg: float
    low: float
    high: float
    ms: float | None
    within_noise: bool
    vs_best: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            **self.config.to_dict(),
            "ndcg@10": self.ndcg,
            "ndcg@10_ci95": [self.low, self.high],
            "ms_per_query": self.ms,
            "within_noise_of_best": self.within_noise,
            "vs_best": self.vs_best,
        }


def cost_points(
    bench: Workbench, configs: Sequence[Config], *, resamples: int = 2000
) -> list[CostPoint]:
    """Quality (in-sample nDCG@10 with its interval) and measured cost of every setting."""
    table = np.stack([bench.scores(c) for c in configs])
    means = table.mean(axis=1)
    best = int(np.argmax(means))
    points = []
    for i, c in enumerate(configs):
        _, low, high = mean_interval(table[i], resamples=resamples)
        if i == best:
            within, delta = True, 0.0
        else:
            cmp = paired_bootstrap(table[best], table[i], resamples=resamples)
            within, delta = cmp.high >= 0.0, cmp.mean_delta
        points.append(CostPoint(c, float(means[i]), low, high, bench.cost_ms(c), within, delta))
    return points


def best_point(points: Sequence[CostPoint]) -> CostPoint:
    """The setting with the highest mean nDCG@10."""
    return max(points, key=lambda p: p.ndcg)


def cheapest_within_noise(points: Sequence[CostPoint]) -> CostPoint | None:
    """The fastest measured setting whose nDCG@10 is within noise of the best."""
    timed = [p for p in points if p.within_noise and p.ms is not None]
    return min(timed, key=lambda p: (p.ms, -p.ndcg)) if timed else None


def measure_rerank_cost(
    bench: Workbench,
    reranker: Reranker,
    dataset: Dataset,
    depths: Sequence[int],
    *,
    fields: Sequence[str],
    style: TextStyle = "plain",
    sample: int = 5,
    stage: FirstStage | None = None,
    aggregates: Sequence[str] = (),
) -> dict[int | tuple[int, str], float]:
    """Time the cross-encoder live (no score cache, not even the model's in-memory
    one) on the first ``sample`` queries' top ``depth`` candidates of ``stage``
    (default: the first prepared), for each depth, and with ``aggregates`` for each
    passage reading (keys ``(depth, reading)``: reading every passage costs its
    pairs); store and return the mean ms per query."""
    from core.data.documents import rerank_text
    from core.models.base import RerankDoc
    from core.search.passages import rank_passages

    if sample < 1:
        return {}
    live = _uncached(reranker)
    stage = stage or bench.stages[0]
    qids = bench.qids[:sample]
    readings: Sequence[str | None] = tuple(aggregates) or (None,)
    out: dict[int | tuple[int, str], float] = {}
    head = bench.runs[stage][qids[0]][:1] if qids else []
    if head:  # untimed: the first call of a session pays one-off set-up costs
        live.rank(bench.texts[qids[0]], [RerankDoc(id=head[0][0], text="warm up")])
    for depth in sorted(set(depths)):
        for reading in readings:
            total = 0.0
            for qid in qids:
                docs = [
                    RerankDoc(id=d, text=rerank_text(dataset.record(d), fields, style))
                    for d, _ in bench.runs[stage][qid][:depth]
                ]
                started = time.perf_counter()
                if reading in (None, "first"):
                    live.rank(bench.texts[qid], docs)
                else:
                    rank_passages(live, bench.texts[qid], docs, bench.passage_settings[reading])
                total += time.perf_counter() - started
            key = depth if reading is None else (depth, reading)
            out[key] = 1000.0 * total / len(qids)
    bench.rerank_ms.update(out)
    bench.rerank_sample = len(qids)
    return out


def _uncached(reranker: Reranker) -> Reranker:
    """``reranker`` without its in-memory score cache (a shallow copy sharing the
    model; the shared instance is left untouched), so a timing is of live scoring."""
    import copy

    cache = getattr(reranker, "cache", None)
    if cache is None or not hasattr(cache, "maxsize"):
        return reranker
    live = copy.copy(reranker)
    live.cache = type(cache)(0)
    return live


# --- a set where the cross-encoder is known to hurt -------------------------------------

SABOTAGE: dict[str, str] = {
    "negate": "the cross-encoder's scores negated: it prefers what it thinks least relevant",
    "random": "the cross-encoder's scores replaced by seeded uniform noise",
}


def sabotage(bench: Workbench, how: str, seed: int = 0) -> Workbench:
    """A copy of ``bench`` whose cross-encoder is made harmful on purpose (an adversarial
    check of the selection rule): ``"negate"`` flips the sign of every score, ``"random"``
    replaces them by noise. Runs and judgments are untouched."""
    if how not in SABOTAGE:
        raise SettingsError(f"unknown sabotage '{how}' (choose: {', '.join(SABOTAGE)})")
    rng = np.random.default_rng(seed)

    def spoil(scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        return {
            qid: {
                d: (-v if how == "negate" else float(rng.uniform(-10.0, 10.0)))
                for d, v in docs.items()
            }
            for qid, docs in scores.items()
        }

    ce_by = {reading: spoil(scores) for reading, scores in bench.ce_by.items()}
    return replace(
        bench,
        ce=spoil(bench.ce),
        ce_by=ce_by,
        reranker=f"{bench.reranker} [{'negated' if how == 'negate' else 'randomised'} on purpose]",
        note=f"adversarial check: {SABOTAGE[how]}",
        _cache={},
    )


# --- the report -------------------------------------------------------------------------


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


def fold_of(num_queries: int, folds: int, seed: int) -> np.ndarray:
    """Fold number of each query: a seeded shuffle dealt round-robin (sizes differ by
    at most one)."""
    if not 2 <= folds <= num_queries:
        raise SettingsError(f"folds must be 2 to {num_queries} (the queries), not {folds}")
    order = np.random.default_rng(seed).permutation(num_queries)
    out = np.empty(num_queries, dtype=np.int64)
    out[order] = np.arange(num_queries) % folds
    return out


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


def format_rule_comparison(cmp: RuleComparison) -> str:
    """The comparison as text: per rule the mean held-out nDCG@10 and folds agreeing,
    then every run, then the first stages alone for reference."""
    seeds = sorted({r.seed for r in cmp.runs})
    folds = sorted({r.folds for r in cmp.runs})
    lines = [
        f"selection rules on {cmp.dataset}: {cmp.num_queries} queries, folds "
        f"{', '.join(map(str, folds))} x seeds {', '.join(map(str, seeds))} "
        "(held-out nDCG@10: each query scored by the setting chosen without it)",
    ]
    if cmp.note:
        lines.append(f"note: {cmp.note}")
    header = f"{'rule':<13}{'held-out nDCG@10':>18}{'min':>8}{'max':>8}{'folds agreeing':>17}"
    lines += ["", header, "-" * len(header)]
    for row in cmp.summary():
        lines.append(
            f"{row['rule']:<13}{row['mean_heldout_ndcg@10']:>18.4f}{row['min']:>8.4f}"
            f"{row['max']:>8.4f}{row['folds_agreeing']:>10} of {row['folds_total']:<4}"
        )
    lines += ["", f"best held-out: {cmp.winner()}", "", "per run:"]
    for r in cmp.runs:
        lines.append(
            f"  {r.rule:<12} k={r.folds:<3} seed {r.seed}: {r.heldout:.4f}  "
            f"{r.agreement:>2}/{r.folds:<3} folds agree  reranked {r.reranked_share:4.0%} of "
            f"queries  -> {r.recommended.label}"
        )
    lines += ["", "first stages alone (no choice made, so no held-out optimism):"]
    for label, value in cmp.alone.items():
        lines.append(f"  {label:<52}{value:.4f}")
    return "\n".join(lines)


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
    """The recommendation, its held-out figures and stability, each fold's choice, per
    first stage the best settings (in-sample), and quality against cost."""
    rec = report.recommended
    cmp = report.heldout_vs_baseline
    lines = [
        f"tuned on {report.dataset}: {report.num_queries} queries, {report.folds}-fold "
        f"cross-validation (seed {report.seed}), {len(report.grid)} settings, "
        f"reranker {report.reranker or 'none'}",
        f"rule: {report.rule}: {RULES[report.rule]}",
    ]
    if report.note:
        lines.append(f"note: {report.note}")
    if report.aggregates:
        lines.append(
            "passage reading tuned: "
            + " vs ".join(PASSAGE_LABELS.get(a, a) for a in report.aggregates)
            + f" ({report.split_docs:,} candidates, summed over queries, have more than one"
            " passage; reading by passage scores every one: see the cost table)"
        )
    lines += [
        "",
        f"recommended: {rec.config.label}",
        f"  held-out (each query scored by the setting chosen without it): "
        f"nDCG@10 {report.heldout['ndcg@10']:.4f} "
        f"[95% CI {report.heldout_ci[0]:.4f}, {report.heldout_ci[1]:.4f}], "
        f"MRR@10 {report.heldout['mrr@10']:.4f}, Recall@100 {report.heldout['recall@100']:.4f}",
        f"  chosen by {report.agreement} of {report.folds} folds",
        f"  plain first stage {report.baseline.config.label}: nDCG@10 "
        f"{report.baseline.means['ndcg@10']:.4f} (nothing chosen, so this is held-out too)",
    ]
    if report.alone_heldout is not None:
        lines.append(
            f"  best first stage alone, chosen by the same folds: held-out nDCG@10 "
            f"{report.alone_heldout:.4f} ({report.alone_agreement} of {report.folds} folds agree)"
        )
    lines += [
        "  vs the plain first stage: " + cmp.sentence("The tuned setting"),
        f"  in-sample (all queries, for reference only): nDCG@10 {rec.means['ndcg@10']:.4f}",
        "",
        "folds:",
    ]
    for c in report.choices:
        lines.append(
            f"  {c.fold}: {c.chosen.label:<52} train {c.train_ndcg:.4f}  "
            f"held-out {c.heldout_ndcg:.4f} ({c.num_queries} queries)"
        )
    lines += ["", format_results(report.best_per_stage(), "best per first stage (in-sample):")]
    if report.costs:
        lines += ["", format_costs(report)]
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items())
    lines += [
        "",
        f"time: {timing}; cross-encoder pairs: {report.pairs_scored:,} scored, "
        f"{report.pairs_cached:,} from cache",
    ]
    return "\n".join(lines)


def format_costs(report: TuneReport) -> str:
    """Quality against cost as text: for each first stage and rerank depth, the best
    weight's nDCG@10 with its interval and the measured ms per query; then the cheapest
    setting within noise of the best."""
    best, cheapest = report.best_cost, report.cheapest
    sample = report.rerank_sample
    lines = [
        "quality against cost (nDCG@10 on all queries with 95% CI; ms per query measured "
        f"here: first stage over all queries, cross-encoder on {sample or 'no'} queries "
        "per depth; fusion weights at one depth cost the same, the best is shown):",
        f"{'setting':<52}{'nDCG@10':>9}{'95% CI':>18}{'ms/query':>10}  within noise of best",
    ]
    groups: dict[tuple[FirstStage, int, str | None], list[CostPoint]] = {}
    for p in report.costs:
        groups.setdefault((p.config.stage, p.config.depth, p.config.passages), []).append(p)
    for points in groups.values():
        p = max(points, key=lambda q: q.ndcg)
        ms = f"{p.ms:>10.1f}" if p.ms is not None else f"{'-':>10}"
        mark = "best" if p is best else ("yes" if p.within_noise else "no")
        weights = f" ({len(points)} weights)" if len(points) > 1 else ""
        lines.append(
            f"{p.config.label + weights:<52}{p.ndcg:>9.4f}  [{p.low:.4f}, {p.high:.4f}]{ms}  {mark}"
        )
    if best is not None:
        lines.append(f"best: {best.config.label} (nDCG@10 {best.ndcg:.4f})")
    if cheapest is not None:
        lines.append(
            f"cheapest within noise of the best: {cheapest.config.label}, nDCG@10 "
            f"{cheapest.ndcg:.4f} ({cheapest.vs_best:+.4f} vs best), {cheapest.ms:.1f} ms/query"
            + (f" vs {best.ms:.1f} ms for the best" if best and best.ms is not None else "")
        )
    else:
        lines.append("cheapest within noise of the best: not measured (no timings)")
    return "\n".join(lines)
