"""Quality against cost: each setting's nDCG@10 with its interval beside its measured
ms per query (:func:`cost_points`), and the live timing of the cross-encoder that
measures it (:func:`measure_rerank_cost`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.data.documents import Dataset, TextStyle
from core.models.base import Reranker
from core.quality.stats import mean_interval, paired_bootstrap
from core.quality.tuning_grid import Config, FirstStage
from core.quality.tuning_workbench import Workbench


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
