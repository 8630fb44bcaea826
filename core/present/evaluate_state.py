"""The Evaluate page's state, without Streamlit: the labelled set an evaluation runs
on, the keys that tell whether a stored run still matches the widgets, the rerank depth
that follows the candidates, the Search view a tuned setting opens, and what a run was
computed from (its manifest, and the script that recomputes it with :mod:`core.api`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.data.beir import BeirDataset
from core.data.documents import Dataset
from core.models.base import PACKAGED_CROSS_ENCODER
from core.present.manifest import Manifest, make_manifest
from core.present.reproduce import evaluate_script
from core.present.views import NO_RERANK, SearchSettings
from core.quality.evaluation_report import BEIR_FIELDS
from core.quality.runs import SecondStage
from core.quality.stats import DEFAULT_SEED
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


def evaluation_options(
    labelled: LabelledSet,
    *,
    retriever: str,
    encoder: str,
    candidates: int,
    rerank: bool,
    depth: int | None,
    weight: float,
    threshold: int,
) -> dict[str, Any]:
    """The Evaluate page's widgets as the keyword arguments of :func:`core.api.evaluate`
    (what a manifest records and the emitted script passes back, unchanged)."""
    return {
        "encoder": encoder,
        "reranker": PACKAGED_CROSS_ENCODER if rerank else None,
        "candidates": int(candidates),
        "max_queries": labelled.max_queries,
        "retriever": retriever,
        "rrf_k": SecondStage().rrf_k,
        "depth": int(depth) if rerank and depth else None,
        "fusion_weight": float(weight) if rerank else 1.0,
        "fusion": "linear",
        "threshold": int(threshold),
        "rerank_fields": list(labelled.rerank_fields),
    }


def evaluation_manifest_of(
    labelled: LabelledSet, options: Mapping[str, Any], *, name: str, label: str
) -> Manifest:
    """The manifest of an evaluation of ``labelled`` with ``options``
    (:func:`evaluation_options`): the dataset's sha256, the judgments' sha256, each model
    file's key, the options, package versions and the bootstrap's seed."""
    bm25 = options["retriever"] == "bm25"
    return make_manifest(
        "evaluation",
        labelled.dataset,
        options,
        encoder=None if bm25 else options["encoder"],
        reranker=options["reranker"],
        judgments=labelled.qrels,
        seed=DEFAULT_SEED,
        name=name,
        label=label,
    )


def evaluation_script(
    labelled: LabelledSet, manifest: Manifest, *, beir_folder: str | Path | None = None
) -> str:
    """The script recomputing the evaluation of ``manifest`` with :func:`core.api.evaluate`:
    from the BEIR folder (``beir_folder``), else from the dataset's name with the
    judgments written into the script (uploaded and rated ones have no file)."""
    if labelled.beir is not None and beir_folder is not None:
        source: dict[str, Any] = {"beir": str(beir_folder), "split": labelled.beir.split}
    else:
        qrels = {q: {d: int(g) for d, g in docs.items()} for q, docs in labelled.qrels.items()}
        source = {"dataset": manifest.dataset.name, "qrels": qrels}
    return evaluate_script(manifest, source)
