"""The settings a tuning run compares: a first stage (:class:`FirstStage`), a full
setting (:class:`Config`: first stage, rerank depth, fusion weight, passage reading) and
the grid of them (:func:`config_grid`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.search.fusion import FusionMethod
from core.search.retrievers import check_retriever_kind

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
