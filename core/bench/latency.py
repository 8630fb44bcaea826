"""Sections "latency", "parallelism" and "cold start": per-stage query latency, the
reranker's and encoder's workers x threads, and a fresh process to a first answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.bench.common import BenchSettings, candidates, stats, timed
from core.bench.encoding import throughput
from core.models.paths import PROJECT_ROOT


def bench_parallelism(
    settings: BenchSettings, movies, index, encoder, reranker_dir: Path, queries: Sequence[str]
) -> dict[str, Any]:
    """How the reranker and the encoder were set up: workers x threads, measured."""
    from core.models.cross_encoders import OnnxCrossEncoder
    from core.models.onnx_encoder import OnnxSentenceEncoder

    few = list(queries[: settings.baseline_queries])
    pools = {q: candidates(movies, index, encoder, q, 50) for q in few}
    configs = {"1x1": (1, 1), "1x2": (1, 2), "2x1": (2, 1)}
    rerank: dict[str, Any] = {}
    for label, (workers, threads) in configs.items():
        reranker = OnnxCrossEncoder(reranker_dir, workers=workers, threads=threads, cache_size=0)
        reranker.rank(few[0], pools[few[0]][:5])
        times = [timed(lambda q=q, r=reranker: r.rank(q, pools[q]))[0] for q in few]
        rerank[label] = stats(times)
    out: dict[str, Any] = {"rerank50_workers_x_threads": rerank, "queries": len(few)}
    onnx = getattr(encoder, "_onnx", None)
    if onnx is not None:
        texts = movies.texts(movies.default_embed_fields, "embed")[: settings.bf16_docs]
        encode: dict[str, Any] = {}
        for label, (workers, threads) in configs.items():
            runner = OnnxSentenceEncoder(onnx.folder, workers=workers, threads=threads)
            encode[label] = throughput(runner, texts)[0]["docs_per_s"]
        out["encode_docs_per_s_workers_x_threads"] = encode
        out["encode_docs"] = len(texts)
    return out


def bench_latency(
    settings: BenchSettings, movies, index, encoder, reranker_dir: Path, queries: Sequence[str]
) -> dict[str, Any]:
    """Per-stage latency over ``queries`` x ``repeats`` (the score cache off)."""
    from core.models.cross_encoders import OnnxCrossEncoder
    from core.models.registry import load_reranker
    from core.search.pipeline import search_with_rerank

    uncached = OnnxCrossEncoder(reranker_dir, cache_size=0)
    cached = load_reranker()
    samples: dict[str, list[float]] = {
        k: [] for k in ("encode", "search", "rerank25", "rerank50", "rerank100", "query")
    }
    samples["rerank50_cache_hit"] = []
    pools = {q: candidates(movies, index, encoder, q, 100) for q in queries}
    uncached.rank(queries[0], pools[queries[0]][:10])  # warm-up
    for _ in range(settings.repeats):
        for query in queries:
            t, vector = timed(lambda q=query: encoder.encode([q], kind="query")[0])
            samples["encode"].append(t)
            samples["search"].append(timed(lambda v=vector: index.search(v, 100))[0])
            for k in (25, 50, 100):
                docs = pools[query][:k]
                samples[f"rerank{k}"].append(timed(lambda d=docs, q=query: uncached.rank(q, d))[0])
            docs = pools[query][:50]
            cached.rank(query, docs)
            samples["rerank50_cache_hit"].append(
                timed(lambda d=docs, q=query: cached.rank(q, d))[0]
            )
            result = search_with_rerank(
                movies, query, encoder=encoder, reranker=uncached, index=index, num_candidates=50
            )
            samples["query"].append(result.timings.total)
    out = {name: stats(values) for name, values in samples.items()}
    out["queries"] = len(queries)
    out["repeats"] = settings.repeats
    out["workers"] = uncached.workers
    out["threads_per_call"] = uncached.threads
    return out


_COLD_START = r"""
import json, sys, time
t0 = time.perf_counter()
from core.data.datasets import load_movies
from core.models.registry import load_encoder
from core.search.index import build_index
from core.search.pipeline import search_with_rerank
from core.models.registry import load_reranker
from core.bench.machine import peak_rss_mb
t1 = time.perf_counter()
encoder = load_encoder()
reranker = load_reranker()
t2 = time.perf_counter()
movies = load_movies()
build = build_index(movies, encoder, movies.default_embed_fields)
t3 = time.perf_counter()
result = search_with_rerank(movies, sys.argv[1], encoder=encoder, reranker=reranker,
                            index=build.index, num_candidates=50)
t4 = time.perf_counter()
print(json.dumps({
    "import_s": t1 - t0, "load_models_s": t2 - t1, "read_index_s": t3 - t2,
    "first_query_s": t4 - t3, "in_process_s": t4 - t0, "embeddings_from_cache": build.from_cache,
    "torch_imported": "torch" in sys.modules, "top1": result.top_final[0].title,
    "peak_rss_mb": peak_rss_mb(),
}))
"""


def bench_cold_start(query: str, runs: int = 2) -> dict[str, Any]:
    """A fresh process to a first answer, with the disk cache warm (best of ``runs``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    best: dict[str, Any] | None = None
    for attempt in range(runs + 1):  # the first run warms the page cache; not counted
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _COLD_START, query],
            capture_output=True,
            text=True,
            env=env,
            cwd=str(PROJECT_ROOT),
            timeout=600,
            check=False,
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
        data = json.loads(done.stdout.strip().splitlines()[-1]) | {"wall_s": wall}
        if attempt > 0 and (best is None or wall < best["wall_s"]):
            best = data
    assert best is not None
    rounded = {k: round(v, 3) if isinstance(v, float) else v for k, v in best.items()}
    return rounded | {"runs": runs}
