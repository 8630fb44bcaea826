"""Section "profile": onnxruntime's per-operator time for one rerank, and the int8 GEMM
throughput it implies."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.bench.common import ms


def bench_profile(
    reranker_dir: Path, query: str, docs, model_path: Path | None = None
) -> dict[str, Any]:
    """onnxruntime's per-operator time (all pairs of one rerank, one thread)."""
    import tempfile

    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(reranker_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(512)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.gettempdir()) / "rerank-bench-profile")
    session = ort.InferenceSession(
        str(model_path or reranker_dir / "model.onnx"),
        options,
        providers=["CPUExecutionProvider"],
    )
    names = {i.name for i in session.get_inputs()}
    started = time.perf_counter()
    tokens = 0
    for enc in tokenizer.encode_batch([(query, d.text) for d in docs]):
        feed = {
            "input_ids": np.asarray([enc.ids], dtype=np.int64),
            "attention_mask": np.asarray([enc.attention_mask], dtype=np.int64),
            "token_type_ids": np.asarray([enc.type_ids], dtype=np.int64),
        }
        tokens += len(enc.ids)
        session.run(None, {k: v for k, v in feed.items() if k in names})
    wall = time.perf_counter() - started
    path = Path(session.end_profiling())
    try:
        events = json.loads(path.read_text())
    finally:
        path.unlink(missing_ok=True)
    per_op: dict[str, float] = {}
    calls: dict[str, int] = {}
    for event in events:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            op = event.get("args", {}).get("op_name", "?")
            per_op[op] = per_op.get(op, 0.0) + event.get("dur", 0) / 1000.0
            calls[op] = calls.get(op, 0) + 1
    total = sum(per_op.values()) or 1.0
    top = sorted(per_op.items(), key=lambda kv: -kv[1])[:10]
    gemm = sum(v for k, v in per_op.items() if k in _INT8_GEMM_OPS)
    return {
        "pairs": len(docs),
        "tokens": tokens,
        "wall_ms_one_thread": ms(wall),
        "kernel_ms": round(total, 1),
        "overhead_ms": round(wall * 1000 - total, 1),
        "int8_gemm_share": round(gemm / total, 3),
        "int8_gemm_gops": round(_GEMM_OPS_PER_TOKEN * tokens / (gemm / 1000) / 1e9, 1)
        if gemm
        else None,
        "top_ops": [
            {
                "op": op,
                "ms": round(op_ms, 1),
                "share": round(op_ms / total, 3),
                "calls": calls[op],
                "us_per_call": round(op_ms * 1000 / calls[op], 1),
            }
            for op, op_ms in top
        ],
    }


# Integer GEMMs of the projections (QAttention also holds the fp32 attention itself).
_INT8_GEMM_OPS = {"DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulInteger", "QAttention"}


# MiniLM-L12-H384 projections: 12 x (384x1152 + 384x384 + 2 x 384x1536) MACs, 2 ops each.
_GEMM_OPS_PER_TOKEN = 2 * 12 * (384 * 1152 + 384 * 384 + 2 * 384 * 1536)
