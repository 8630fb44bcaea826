"""The tuning workbench: retrieve once, score once, re-sort for every setting.

:class:`Workbench` retrieves each query's top ``depth`` once per first stage and scores
every (query, candidate) pair of all stages once with the cross-encoder (through the
on-disk :mod:`core.search.scorestore`). Any :class:`~core.quality.tuning_grid.Config`
(first stage, rerank depth, fusion weight) is then a re-sort of numbers already at hand,
so hundreds of settings are evaluated in seconds. :func:`sabotage` makes a copy whose
cross-encoder hurts on purpose (an adversarial check of the selection rules)."""

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
from core.quality.tuning_grid import (
    DEFAULT_DEPTH,
    PASSAGE_LABELS,
    TUNE_METRICS,
    Config,
    FirstStage,
    short_model,
)
from core.search.index import build_index
from core.search.passages import PassageSettings
from core.search.retrievers import DEFAULT_RRF_K, check_retriever_kind, make_retriever
from core.search.scorestore import ScoreStore

ProgressFn = Callable[[int, int, str], None]


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
        from core.quality.runs import second_stage_order

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
    from core.quality.runs import retrieve_run, score_run, sorted_query_ids

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
