"""What every section of the benchmark shares: the queries, the settings, timing and
statistics helpers, and how candidates and rerankings are compared."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.models.paths import PROJECT_ROOT

BENCH_QUERIES = (
    "super hero mystery action movie about bats",
    "a heist in a big city",
    "space exploration to save humanity",
    "a love story set during a war",
    "animated film about a family of monsters",
    "dinosaurs escape in a theme park",
    "a detective hunts a serial killer",
    "pirates searching for cursed treasure",
    "robots take over the world",
    "a boxer fights for a comeback",
    "teenagers survive a deadly game",
    "a wizard school and dark magic",
    "time travel paradox thriller",
    "a mafia family crime saga",
    "friendship between a boy and an alien",
    "zombie apocalypse survival",
    "a drummer chasing perfection at a music school",
    "prison escape drama",
    "a comedy about a wedding gone wrong",
    "mountain climbing disaster true story",
)


@dataclass(frozen=True)
class BenchSettings:
    """How much to measure. ``quick`` is for tests: tiny, seconds not minutes."""

    queries: int = 20
    repeats: int = 3
    baseline_queries: int = 5  # the plain onnxruntime loop padded to 512 tokens
    compare_candidates: int = 50
    scifact_docs: int = 2000
    movies_docs: int | None = None  # None: all 1,000
    bf16_docs: int = 300
    cold_runs: int = 2
    scifact_path: Path | None = None
    scifact_queries: int = 8  # reranking agreement on long documents
    scifact_candidates: int = 30

    @classmethod
    def quick(cls, scifact_path: Path | None = None) -> BenchSettings:
        return cls(
            queries=2,
            repeats=1,
            baseline_queries=1,
            compare_candidates=10,
            scifact_docs=20,
            movies_docs=120,
            bf16_docs=16,
            cold_runs=1,
            scifact_path=scifact_path,
            scifact_queries=1,
            scifact_candidates=4,
        )


def default_scifact_path() -> Path | None:
    """``RERANK_SCIFACT_PATH``, else the shared copy beside the project, if present."""
    configured = os.environ.get("RERANK_SCIFACT_PATH")
    paths = [Path(configured)] if configured else []
    paths.append(PROJECT_ROOT.parent / "shared" / "datasets" / "scifact")
    for path in paths:
        if (path / "corpus.jsonl").is_file():
            return path
    return None


def ms(seconds: float) -> float:
    """Seconds as milliseconds, rounded to 0.01."""
    return round(seconds * 1000.0, 2)


def stats(samples: Sequence[float]) -> dict[str, float]:
    """Median and p90 in milliseconds of samples given in seconds."""
    values = np.asarray(samples, dtype=np.float64) * 1000.0
    return {
        "median_ms": round(float(np.median(values)), 2),
        "p90_ms": round(float(np.percentile(values, 90)), 2),
        "n": len(values),
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """``(seconds, value)`` of one call of ``fn``."""
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def candidates(movies, index, encoder, query: str, k: int):
    from core.data.documents import rerank_text
    from core.models.base import RerankDoc

    hits = index.search(encoder.encode([query], kind="query")[0], k)
    fields = movies.default_rerank_fields
    return [RerankDoc(id=h.id, text=rerank_text(movies.records[h.position], fields)) for h in hits]


def ranked(reranker, query: str, docs) -> list[tuple[str, float]]:
    """The bi-encoder's top ``k`` movies for ``query``, as the reranker reads them."""
    return [(r.id, r.score) for r in reranker.rank(query, docs)]


def agreement(
    rankings: dict[str, list[tuple[str, float]]], reference: dict[str, list[tuple[str, float]]]
) -> dict[str, Any]:
    """Top-10 order / set agreement and max |logit difference| against ``reference``."""
    same = same_set = 0
    diff = 0.0
    for query, order in rankings.items():
        ref = reference[query]
        mine, theirs = [i for i, _ in order[:10]], [i for i, _ in ref[:10]]
        same += mine == theirs
        same_set += set(mine) == set(theirs)
        ref_scores = dict(ref)
        diff = max([diff, *(abs(v - ref_scores[i]) for i, v in order if i in ref_scores)])
    n = len(rankings)
    return {
        "top10_same_order": f"{same}/{n}",
        "top10_same_set": f"{same_set}/{n}",
        "max_abs_logit_diff": round(float(diff), 4),
    }


def log_stderr(message: str) -> None:
    """A progress line on stderr (stdout carries the report)."""
    print(message, file=sys.stderr, flush=True)


def emit(report: dict[str, Any], json_output: bool, formatter: Callable[[dict], str]) -> int:
    """Print ``report`` as JSON or through ``formatter``; the command's exit status."""
    if json_output:
        json.dump(report, sys.stdout, indent=2, default=str)
        print()
    else:
        print(formatter(report))
    return 0
