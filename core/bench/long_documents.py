"""Section "SciFact agreement": the ONNX reranker graphs on long scientific documents
(max length 512), their speed and agreement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from core.bench.common import BenchSettings, agreement, ranked, stats, timed


def bench_scifact_agreement(
    settings: BenchSettings, encoder, reranker_dir: Path, corpus, fused=None
) -> dict[str, Any]:
    """The ONNX graphs on SciFact queries with long documents (max length 512).

    Candidates: the bi-encoder's top ``scifact_candidates`` among the documents encoded
    for the throughput measure (``corpus``: their texts and vectors).
    """
    from core.models.base import RerankDoc
    from core.models.cross_encoders import OnnxCrossEncoder

    if settings.scifact_path is None or corpus is None:
        return {"skipped": "SciFact not found (set RERANK_SCIFACT_PATH)"}
    texts, vectors = corpus
    queries = []
    with (settings.scifact_path / "queries.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                queries.append(json.loads(line)["text"])
            if len(queries) >= settings.scifact_queries:
                break
    pools = {}
    for query in queries:
        scores = vectors @ encoder.encode([query], kind="query")[0]
        top = np.argsort(-scores, kind="stable")[: settings.scifact_candidates]
        pools[query] = [RerankDoc(id=str(i), text=texts[i]) for i in top]
    rerankers = {
        "onnx_int8_optimised": OnnxCrossEncoder(reranker_dir, cache_size=0),
        "onnx_int8_unoptimised": OnnxCrossEncoder(
            reranker_dir, workers=1, threads=None, cache_size=0
        ),
    }
    if fused is not None:
        rerankers["onnx_int8_fused_requantised"] = fused
    rankings: dict[str, dict[str, list[tuple[str, float]]]] = {}
    rows: dict[str, Any] = {}
    for name, reranker in rerankers.items():
        times, rankings[name] = [], {}
        for query, docs in pools.items():
            t, rankings[name][query] = timed(lambda q=query, d=docs, r=reranker: ranked(r, q, d))
            times.append(t)
        rows[name] = stats(times)
    for name, row in rows.items():
        row |= agreement(rankings[name], rankings["onnx_int8_unoptimised"])
    lengths = [
        len(e.ids)
        for q, docs in pools.items()
        for e in rerankers["onnx_int8_optimised"]._tokenizer.encode_batch(
            [(q, d.text) for d in docs]
        )
    ]
    return {
        "queries": len(pools),
        "candidates": settings.scifact_candidates,
        "mean_tokens": round(float(np.mean(lengths)), 1),
        "truncated_to_512": sum(n >= 512 for n in lengths),
        "rows": rows,
    }
