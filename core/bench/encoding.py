"""Section "encode": corpus encoding throughput of the default bi-encoder on movies and
SciFact, and of its alternatives (PyTorch fp32, bf16 autocast, int8 ONNX)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.bench.common import BenchSettings, timed


def throughput(encoder, texts: Sequence[str]) -> tuple[dict[str, Any], np.ndarray]:
    """Docs per second of one ``encode`` of ``texts`` (after a warm-up), and the vectors."""
    encoder.encode(list(texts[:8]))  # warm-up: first-call allocations
    seconds, vectors = timed(lambda: encoder.encode(list(texts)))
    return {
        "docs": len(texts),
        "seconds": round(seconds, 3),
        "docs_per_s": round(len(texts) / seconds, 1),
    }, vectors


def bench_encoding(settings: BenchSettings, movies, queries: Sequence[str]) -> dict[str, Any]:
    """Corpus encoding throughput, default encoder and its alternatives."""
    from core.models.encoders import SentenceTransformerEncoder
    from core.models.registry import load_encoder

    encoder = load_encoder()
    texts = movies.texts(movies.default_embed_fields, "embed")
    out: dict[str, Any] = {"default_backend": getattr(encoder, "backend", "?")}
    out["movies"], default_vectors = throughput(encoder, texts)
    out["movies"]["backend"] = out["default_backend"]

    scifact = settings.scifact_path
    if scifact is not None:
        from core.data.beir import document_text

        corpus = read_corpus_head(scifact / "corpus.jsonl", settings.scifact_docs)
        sci_texts = [document_text(doc) for doc in corpus]
        out["scifact"], sci_vectors = throughput(encoder, sci_texts)
        out["scifact"]["note"] = f"first {len(sci_texts)} of the SciFact corpus (5,183 docs)"
        out["_scifact"] = (sci_texts, sci_vectors)
    else:
        out["scifact"] = {"skipped": "SciFact not found (set RERANK_SCIFACT_PATH)"}

    torch_encoder = SentenceTransformerEncoder(backend="torch")
    out["movies_torch_fp32"], torch_vectors = throughput(torch_encoder, texts)
    out["movies_torch_fp32"]["note"] = "sentence-transformers encode, batch 64 (the seed path)"
    out["max_abs_diff_default_vs_torch"] = float(np.abs(default_vectors - torch_vectors).max())
    out["movies_torch_bf16_autocast"] = _bf16_throughput(torch_encoder, texts[: settings.bf16_docs])

    int8 = SentenceTransformerEncoder(backend="onnx-int8")
    out["movies_onnx_int8"], int8_vectors = throughput(int8, texts)
    cosine = (int8_vectors * torch_vectors).sum(axis=1)
    out["movies_onnx_int8"]["cosine_to_fp32_mean"] = round(float(cosine.mean()), 5)
    out["movies_onnx_int8"]["cosine_to_fp32_min"] = round(float(cosine.min()), 5)
    out["_encoders"] = {"torch": torch_encoder, "int8": int8}
    out["_vectors"] = {"torch": torch_vectors, "int8": int8_vectors}
    return out


def _bf16_throughput(torch_encoder, texts: Sequence[str]) -> dict[str, Any]:
    import torch

    model = torch_encoder._model

    def run() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model.encode(list(texts), batch_size=64, show_progress_bar=False)

    run()
    seconds, _ = timed(run)
    return {
        "docs": len(texts),
        "seconds": round(seconds, 3),
        "docs_per_s": round(len(texts) / seconds, 1),
        "note": "torch.autocast bf16 on the PyTorch model (AVX512-BF16, no AMX here)",
    }


def read_corpus_head(path: Path, limit: int) -> list[dict[str, str]]:
    """The first ``limit`` documents (title, text) of a BEIR ``corpus.jsonl``."""
    docs = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            record = json.loads(line)
            docs.append({"title": record.get("title") or "", "text": record.get("text") or ""})
            if len(docs) >= limit:
                break
    return docs
