"""Sections "rerank comparison" and "quality": the same candidates through the optimised,
unoptimised, fused and plain-loop ONNX rerankers and PyTorch fp32, with speed ratios and
agreement; and whole-query top 10s against the seed path."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.bench.common import BenchSettings, agreement, candidates, ranked, stats, timed


def _plain_ort_loop(reranker_dir: Path):
    """A plain onnxruntime loop: the packaged tokenizer as shipped (pads to 512), default
    session, one pair per call. Returns ``(id, logit)`` best first."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(reranker_dir / "tokenizer.json"))
    session = ort.InferenceSession(
        str(reranker_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )

    def rank(query: str, docs) -> list[tuple[str, float]]:
        scores = []
        for enc in tokenizer.encode_batch([(query, d.text) for d in docs]):
            feed = {
                "input_ids": np.asarray([enc.ids], dtype=np.int64),
                "attention_mask": np.asarray([enc.attention_mask], dtype=np.int64),
                "token_type_ids": np.asarray([enc.type_ids], dtype=np.int64),
            }
            scores.append(float(session.run(None, feed)[0][0, 0]))
        order = sorted(range(len(docs)), key=lambda i: -scores[i])
        return [(docs[i].id, scores[i]) for i in order]

    return rank


def _fused_reranker(reranker_dir: Path) -> tuple[Any, dict[str, Any]]:
    """The fused-and-requantised graph (:mod:`core.models.onnx_optimize`), built once,
    or why not."""
    from core.models.cross_encoders import OnnxCrossEncoder
    from core.models.errors import ModelUnavailableError
    from core.models.onnx_optimize import FUSED_RECIPE, FUSED_VERSION, build_fused_cross_encoder

    try:
        seconds, path = timed(lambda: build_fused_cross_encoder(reranker_dir / "model.onnx"))
    except ModelUnavailableError as exc:
        return None, {"error": str(exc)}
    reranker = OnnxCrossEncoder(
        reranker_dir, model_path=path, graph=f"fused-v{FUSED_VERSION}", cache_size=0
    )
    return reranker, {
        "path": str(path),
        "recipe": FUSED_RECIPE,
        "build_or_load_seconds": round(seconds, 2),
        "cache_key": reranker.cache_key,
    }


def bench_rerank_comparison(
    settings: BenchSettings, movies, index, encoder, reranker_dir: Path, queries: Sequence[str]
) -> dict[str, Any]:
    """Candidates (50) of each query through five rerankers; speed ratios, agreement."""
    from core.models.cross_encoders import OnnxCrossEncoder
    from core.models.torch_cross_encoder import (
        build_dequantized_cross_encoder,
        load_dequantized_cross_encoder,
    )

    k = settings.compare_candidates
    pools = {q: candidates(movies, index, encoder, q, k) for q in queries}
    few = list(queries[: settings.baseline_queries])
    build_seconds, _ = timed(build_dequantized_cross_encoder)
    optimised = OnnxCrossEncoder(reranker_dir, cache_size=0)
    unoptimised = OnnxCrossEncoder(reranker_dir, workers=1, threads=None, cache_size=0)
    fused, fused_info = _fused_reranker(reranker_dir)
    st_fp32 = load_dequantized_cross_encoder()
    plain = _plain_ort_loop(reranker_dir)

    Runner = Callable[[str], list[tuple[str, float]]]
    runners: dict[str, tuple[Runner, list[str]]] = {
        "onnx_int8_optimised": (lambda q: ranked(optimised, q, pools[q]), list(queries)),
        "onnx_int8_unoptimised": (lambda q: ranked(unoptimised, q, pools[q]), list(queries)),
    }
    if fused is not None:
        runners["onnx_int8_fused_requantised"] = (
            lambda q: ranked(fused, q, pools[q]),
            list(queries),
        )
    runners["plain_ort_pad512"] = (lambda q: plain(q, pools[q]), few)
    runners["st_crossencoder_fp32"] = (lambda q: ranked(st_fp32, q, pools[q]), list(queries))
    for runner, _ in runners.values():  # warm-up
        runner(queries[0])
    rows: dict[str, Any] = {}
    rankings: dict[str, dict[str, list[tuple[str, float]]]] = {}
    for name, (runner, on) in runners.items():
        times, rankings[name] = [], {}
        for query in on:
            t, order = timed(lambda q=query, r=runner: r(q))
            times.append(t)
            rankings[name][query] = order
        rows[name] = stats(times) | {"queries": len(on)}
    reference = rankings["onnx_int8_unoptimised"]
    for name, row in rows.items():
        row |= agreement(rankings[name], reference)
    fast = rows["onnx_int8_optimised"]["median_ms"]
    for row in rows.values():
        row["slower_than_optimised"] = round(row["median_ms"] / fast, 2)
    return {
        "candidates": k,
        "rows": rows,
        "reference": "onnx_int8_unoptimised (one pair per call: the seed code's scores)",
        "cache_key": optimised.cache_key,
        "fused": fused_info,
        "st_model_dir": str(build_dequantized_cross_encoder()),
        "st_build_seconds": round(build_seconds, 2),
        "berlin_logits": _berlin(optimised, st_fp32),
        "_fused": fused,
    }


def _berlin(onnx_reranker, st_reranker) -> dict[str, list[float]]:
    from core.models.base import RerankDoc

    query = "How many people live in Berlin?"
    docs = [
        RerankDoc("berlin", "Berlin has a population of 3,520,031 registered inhabitants."),
        RerankDoc("ny", "New York City is famous for the Metropolitan Museum of Art."),
    ]
    out = {}
    for name, reranker in (("onnx_int8", onnx_reranker), ("st_fp32", st_reranker)):
        scores = {r.id: round(r.score, 3) for r in reranker.rank(query, docs)}
        out[name] = [scores["berlin"], scores["ny"]]
    return out


def bench_pipeline_agreement(
    movies, index, encoder, torch_index, torch_encoder, reranker_dir: Path, queries, int8=None
) -> dict[str, Any]:
    """Reranked top 10 of whole queries: optimised path vs the unoptimised (seed) path."""
    from core.models.cross_encoders import OnnxCrossEncoder
    from core.models.registry import load_reranker
    from core.search.pipeline import search_with_rerank

    seed_reranker = OnnxCrossEncoder(reranker_dir, workers=1, threads=None, cache_size=0)
    reranker = load_reranker()

    def top(ds_index, enc, rr, query):
        result = search_with_rerank(
            movies, query, encoder=enc, reranker=rr, index=ds_index, num_candidates=50
        )
        return [c.id for c in result.top_final[:10]]

    same = same_set = 0
    int8_same = 0
    for query in queries:
        new = top(index, encoder, reranker, query)
        old = top(torch_index, torch_encoder, seed_reranker, query)
        same += new == old
        same_set += set(new) == set(old)
        if int8 is not None:
            int8_same += top(int8[0], int8[1], reranker, query) == old
    out = {
        "queries": len(queries),
        "top10_same_order": f"{same}/{len(queries)}",
        "top10_same_set": f"{same_set}/{len(queries)}",
        "reference": "PyTorch bi-encoder + one-pair-per-call ONNX reranker (seed code)",
    }
    if int8 is not None:
        out["int8_encoder_top10_same_order"] = f"{int8_same}/{len(queries)}"
    return out
