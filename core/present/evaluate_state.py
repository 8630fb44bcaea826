"""The Evaluate page's state, without Streamlit: the labelled set an evaluation runs
on, the keys that tell whether a stored run still matches the widgets, the rerank depth
that follows the candidates, and the Search view a tuned setting opens.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, replace

from core.data.beir import BeirDataset
from core.data.documents import Dataset
from core.models.base import PACKAGED_CROSS_ENCODER
from core.present.views import NO_RERANK, SearchSettings
from core.quality.evaluation_report import BEIR_FIELDS
from core.quality.runs import SecondStage
from core.quality.tuning_grid import Config


@dataclass(frozen=True)
class LabelledSet:
    """Queries with relevance labels over a dataset, and how its records are read.

    ``max_queries``: the first N judged queries (a BEIR set), or None (every judged
    query of a judgments CSV). ``ignore_identical_ids``: BEIR's rule that a document
    with the query's own id is never counted.
    """

    source: str
    dataset: Dataset
    qrels: Mapping[str, Mapping[str, int]]
    queries: Mapping[str, str]
    embed_fields: tuple[str, ...]
    rerank_fields: tuple[str, ...]
    rerank_style: str
    ignore_identical_ids: bool
    max_queries: int | None = None
    beir: BeirDataset | None = None

    @classmethod
    def from_beir(
        cls, source: str, beir: BeirDataset, dataset: Dataset, max_queries: int
    ) -> LabelledSet:
        """A BEIR set (title + text read plainly), its first ``max_queries`` queries."""
        return cls(
            source,
            dataset,
            beir.qrels,
            beir.queries,
            BEIR_FIELDS,
            BEIR_FIELDS,
            "plain",
            True,
            int(max_queries),
            beir,
        )

    @classmethod
    def from_judgments(
        cls, source: str, dataset: Dataset, judgments: Mapping[str, Mapping[str, int]]
    ) -> LabelledSet:
        """Graded judgments (query text -> doc id -> grade, any whole number) over a
        workbench dataset."""
        return cls(
            source,
            dataset,
            judgments,
            {q: q for q in judgments},
            dataset.default_embed_fields,
            dataset.default_rerank_fields,
            "fields",
            False,
        )

    @property
    def num_judged(self) -> int:
        """How many judged queries an evaluation of this set uses."""
        return len(self.qrels) if self.max_queries is None else self.max_queries

    @property
    def labels_key(self) -> Hashable:
        """The labels, hashable: judgments can change between runs (a BEIR set cannot)."""
        if self.beir is not None:
            return None
        return tuple(sorted((q, tuple(sorted(d.items()))) for q, d in self.qrels.items()))

    def run_key(
        self, candidates: int, rerank: bool, encoder: str | None, options: SecondStage
    ) -> Hashable:
        """What decides an evaluation's report: a stored report with another key is stale."""
        return (
            self.source,
            self.dataset.content_hash,
            candidates,
            self.max_queries,
            rerank,
            encoder,
            options,
            self.labels_key,
        )

    def tune_key(self, candidates: int) -> Hashable:
        """What decides a tuning's result: a stored result with another key is stale."""
        return (
            self.source,
            self.dataset.content_hash,
            self.max_queries,
            candidates,
            self.labels_key,
        )


def judgments_of(session_judgments: Mapping[str, Mapping[str, Mapping[str, int]]], name: str):
    """The queries rated on the Search page for dataset ``name`` (queries with ratings)."""
    return {q: dict(d) for q, d in session_judgments.get(name, {}).items() if d}


def follow_depth(depth: int | None, depth_max: int, candidates: int) -> int:
    """The rerank depth after the candidates changed: never above them, and moved up
    with them while it was at the maximum (or unset)."""
    if depth is None or depth >= depth_max:
        depth = candidates
    return min(depth, candidates)


def applied_view(view: SearchSettings, config: Config) -> SearchSettings:
    """The Search page's view with a tuned setting applied (the rest of it kept)."""
    return replace(
        view,
        retriever=config.stage.retriever,
        encoder=config.stage.encoder or view.encoder,
        candidates=config.depth if config.reranked else view.candidates,
        reranker=PACKAGED_CROSS_ENCODER if config.reranked else NO_RERANK,
        fusion_weight=config.weight if config.reranked else 1.0,
        fusion=config.fusion,
    )
