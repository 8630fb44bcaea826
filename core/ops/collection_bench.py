"""``python -m core collection bench``: build and query a 1,000,000-document collection.

How the corpus is made (real text at that size is not on this machine):

* **Text.** Sentences of real documents — the SciFact abstracts (BEIR) and the 1,000
  movie overviews — are split out (only sentences ending in ``.``/``!``/``?`` and
  starting with a capital or digit, 25-300 characters). A *pool* of source documents
  is drawn (seeded); each generated document takes a run of 2-4 consecutive sentences
  of one pool document and 1-2 sentences of another pool document of the same kind,
  with the first document's title. Every generated document is a new combination; the
  words, sentence lengths and topics are real.
* **Vectors.** Encoding a million texts here takes hours, so every distinct pool
  sentence is encoded for real with the default bi-encoder (all-MiniLM-L6-v2, ONNX), and
  a document's vector is the normalised mean of its sentences' real vectors plus
  Gaussian noise (sigma 0.0128 per dimension: cosine ~0.97 to the clean mean). How
  close that is to the real encoder is *measured*: ``--sample`` generated documents are
  encoded for real and compared (cosine). The same sample gives the encoding rate, from
  which the real encoding time of the whole corpus is extrapolated (and printed as
  such; it is not part of the measured build time).
* **Queries** are real and encoded for real: SciFact test queries and the movie example
  queries. Recall@100 of the approximate index is measured against exact search on them.

Everything after the vectors is the real build and serving path (``build_collection``
from a JSONL file, ``open_collection``, the dense/BM25/hybrid retrievers,
``search_with_rerank`` with the packaged cross-encoder). Serving is measured in a fresh
process (open time, resident memory). The CPU is shared: load averages are printed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.data.collection import collection_path, open_collection
from core.data.documents import embed_text
from core.models.base import DEFAULT_ENCODER, normalize_rows
from core.models.errors import CoreError
from core.models.paths import PROJECT_ROOT

NOISE_SIGMA = 0.0128
POOL_SCIFACT = 500  # source documents per kind
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")
SEED = 18


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (split after . ! ? before a capital or digit)."""
    return [s.strip() for s in _SENTENCE_END.split(text or "") if s.strip()]


def _usable(sentence: str) -> bool:
    return (
        25 <= len(sentence) <= 300
        and sentence[-1] in ".!?"
        and (sentence[0].isupper() or sentence[0].isdigit())
        and split_sentences(sentence) == [sentence]
    )


def source_documents(scifact: Path | None) -> list[dict[str, Any]]:
    """Real source documents: ``{"kind", "title", "sentences"}`` from SciFact and movies."""
    from core.data.datasets import load_movies

    docs = []
    for movie in load_movies().records:
        sentences = [s for s in split_sentences(movie.get("overview") or "") if _usable(s)]
        if sentences:
            title = movie.get("title") or ""
            docs.append({"kind": "movie", "title": title, "sentences": sentences})
    if scifact is not None:
        with (scifact / "corpus.jsonl").open(encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                sentences = [s for s in split_sentences(row.get("text") or "") if _usable(s)]
                if len(sentences) >= 2:
                    docs.append(
                        {"kind": "scifact", "title": row.get("title") or "", "sentences": sentences}
                    )
    return docs


def choose_pool(
    docs: list[dict[str, Any]], per_kind: int = POOL_SCIFACT, seed: int = SEED
) -> list[dict[str, Any]]:
    """A seeded pool of source documents: up to ``per_kind`` abstracts and movies."""
    rng = np.random.default_rng(seed)
    pool = []
    for kind, size in (("scifact", per_kind), ("movie", per_kind)):
        of_kind = [d for d in docs if d["kind"] == kind]
        picks = rng.choice(len(of_kind), size=min(size, len(of_kind)), replace=False)
        pool.extend(of_kind[i] for i in sorted(picks))
    return pool


def generate(pool: list[dict[str, Any]], count: int, seed: int = SEED):
    """``count`` generated records ``{"id", "title", "text", "kind"}`` (see the module
    docstring); deterministic for a seed."""
    rng = np.random.default_rng(seed + 1)
    by_kind: dict[str, list[int]] = {}
    for i, doc in enumerate(pool):
        by_kind.setdefault(doc["kind"], []).append(i)
    anchors = rng.integers(0, len(pool), size=count)
    for n in range(count):
        anchor = pool[int(anchors[n])]
        sents = anchor["sentences"]
        run = int(rng.integers(2, 5))
        start = int(rng.integers(0, max(1, len(sents) - run + 1)))
        chosen = list(sents[start : start + run])
        others = by_kind[anchor["kind"]]
        for _ in range(int(rng.integers(1, 3))):
            other = pool[others[int(rng.integers(0, len(others)))]]
            chosen.append(other["sentences"][int(rng.integers(0, len(other["sentences"])))])
        yield {
            "id": f"g{n:07d}",
            "title": anchor["title"],
            "text": " ".join(chosen),
            "kind": anchor["kind"],
        }


class DerivedEncoder:
    """An :class:`~core.models.base.Encoder` for generated documents: the normalised
    mean of the real vectors of a text's sentences, plus seeded Gaussian noise.

    Only texts made of pool sentences can be encoded (anything else raises): it is a
    stand-in for the real encoder at a scale this machine cannot encode, never a model.
    """

    def __init__(self, sentences: Sequence[str], vectors: np.ndarray, base_name: str) -> None:
        self.rows = {s: i for i, s in enumerate(sentences)}
        self.matrix = np.asarray(vectors, dtype=np.float64)
        self.dimension = int(self.matrix.shape[1])
        self.name = f"derived from {base_name} (sentence mean + noise)"
        self.cache_key = f"derived:{base_name}:sigma={NOISE_SIGMA}"
        self.backend = "derived"

    def encode(self, texts, *, kind="document", progress=None) -> np.ndarray:
        """Derived vectors of ``texts`` (noise seeded by the texts: deterministic)."""
        rows, owner = [], []
        for i, text in enumerate(texts):
            for sentence in split_sentences(text):
                row = self.rows.get(sentence)
                if row is None:
                    raise CoreError(f"derived encoder: unknown sentence {sentence[:60]!r}")
                rows.append(row)
                owner.append(i)
        sums = np.zeros((len(texts), self.dimension), dtype=np.float64)
        np.add.at(sums, np.asarray(owner, dtype=np.int64), self.matrix[np.asarray(rows)])
        seed = zlib.crc32("\x1e".join(texts).encode())
        noise = np.random.default_rng(seed).normal(0.0, NOISE_SIGMA, sums.shape)
        out = normalize_rows(sums) + noise
        if progress is not None:
            progress(len(texts), len(texts))
        return normalize_rows(out)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _real_queries(scifact: Path | None, limit: int) -> list[str]:
    from core.present.views import EXAMPLE_QUERIES

    queries = list(EXAMPLE_QUERIES["movies"])
    if scifact is not None:
        from core.data.beir import load_beir

        beir = load_beir(scifact)
        queries.extend(beir.queries[q] for q in sorted(beir.queries))
    return queries[:limit]


def _tuning_queries(scifact: Path | None, limit: int) -> list[str]:
    """Real queries not used for measuring: SciFact queries outside the test split."""
    if scifact is None:
        return list(split_sentences("A heist. A toy. Space."))
    from core.data.beir import load_beir

    test = set(load_beir(scifact).queries)
    out = []
    with (scifact / "queries.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if str(row["_id"]) not in test and row.get("text"):
                out.append(row["text"])
    return out[:limit]


def _stats(samples: Sequence[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1000
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p95_ms": round(float(np.percentile(a, 95)), 2),
        "n": len(a),
    }


def main(args) -> int:
    """Run the benchmark (``args`` from the CLI); print the report."""
    from core.data.datasets import scifact_path
    from core.models.registry import load_encoder
    from core.search.collection_build import build_collection, disk_usage, print_progress

    scifact = Path(args.scifact) if args.scifact else scifact_path()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    report: dict[str, Any] = {"docs": args.docs, "load_avg_start": _load(), "cpus": os.cpu_count()}
    t0 = time.perf_counter()
    sources = source_documents(scifact)
    pool = choose_pool(sources, args.pool)
    sentences = sorted({s for d in pool for s in d["sentences"]})
    report["corpus"] = {
        "source_documents": {k: sum(d["kind"] == k for d in pool) for k in ("scifact", "movie")},
        "distinct_sentences": len(sentences),
        "how": "each document = 2-4 consecutive sentences of one real source document + 1-2 "
        "sentences of another of the same kind (SciFact abstract or movie overview), "
        "titled after the first; seeded",
    }
    encoder = load_encoder(DEFAULT_ENCODER)
    cache = collection_path(args.name).parent / f".{args.name}-sentences-{len(sentences)}.npy"
    vectors = None
    if cache.is_file():
        vectors = np.load(cache)
        if vectors.shape != (len(sentences), encoder.dimension):
            vectors = None
    if vectors is None:
        log(f"encoding {len(sentences):,} real sentences with {encoder.name} (real encoder)")
        t = time.perf_counter()
        vectors = encoder.encode(sentences, progress=_bar("sentences"))
        report["sentence_encoding_s"] = round(time.perf_counter() - t, 1)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, vectors)
    derived = DerivedEncoder(sentences, vectors, encoder.name)

    # Real encoding rate and fidelity of the derived vectors, on a sample.
    sample = list(generate(pool, args.sample, seed=SEED + 7))
    texts = [embed_text(r, ("text",)) for r in sample]
    log(f"encoding {len(texts)} generated documents for real (rate and fidelity)")
    t = time.perf_counter()
    real = encoder.encode(texts, progress=_bar("sample"))
    rate = len(texts) / (time.perf_counter() - t)
    cos = (real * derived.encode(texts)).sum(axis=1)
    report["encoding"] = {
        "sample_docs": len(texts),
        "real_docs_per_s": round(rate, 1),
        "extrapolated_real_encoding_s": round(args.docs / rate, 0),
        "extrapolated_real_encoding_h": round(args.docs / rate / 3600, 2),
        "derived_vs_real_cosine_mean": round(float(cos.mean()), 4),
        "derived_vs_real_cosine_p5": round(float(np.percentile(cos, 5)), 4),
        "load_avg": _load(),
    }
    report["prep_s"] = round(time.perf_counter() - t0, 1)

    folder = collection_path(args.name)
    jsonl = folder.parent / f".{args.name}.jsonl"
    built = (folder / "manifest.json").is_file() and not args.rebuild
    if not built:
        if args.rebuild or not jsonl.is_file():
            t = time.perf_counter()
            tmp = jsonl.with_suffix(".tmp")
            with tmp.open("w", encoding="utf-8") as out:
                for i, rec in enumerate(generate(pool, args.docs)):
                    out.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    if (i + 1) % 100_000 == 0:
                        log(f"generated {i + 1:,}")
            os.replace(tmp, jsonl)
            report["generate_jsonl_s"] = round(time.perf_counter() - t, 1)
        tune = _tuning_queries(scifact, 200)
        log(f"encoding {len(tune)} other real queries (SciFact train) to choose nprobe")
        tune_vectors = encoder.encode(tune, kind="query")
        build = build_collection(
            jsonl,
            args.name,
            encoder=derived,
            embed_fields=("text",),
            rerank_fields=("title", "text"),
            title_field="title",
            restart=args.rebuild,
            progress=print_progress(),
            recall_queries=(
                f"{len(tune)} real SciFact train queries (the test queries measure it below)",
                tune_vectors,
            ),
        )
        report["build"] = {
            "seconds": {k: round(v, 1) for k, v in build.seconds.items()},
            "note": "encode = derived vectors (see corpus.how); real encoding extrapolated "
            "under encoding",
        }
    else:
        manifest = open_collection(args.name).manifest
        report["build"] = {
            "seconds": {k: round(v, 1) for k, v in manifest["timings"].items()},
            "note": "read from the manifest of the earlier build",
        }
        if manifest.get("encoder_backend") != derived.backend:
            report["real_vectors"] = f"{manifest['model']} ({manifest.get('encoder_backend')})"
    report["jsonl_bytes"] = jsonl.stat().st_size if jsonl.is_file() else None
    report["disk_bytes"] = disk_usage(folder)
    report["disk_total_mb"] = round(sum(report["disk_bytes"].values()) / 1e6, 1)
    report["index"] = {
        k: v for k, v in open_collection(args.name).manifest["index"].items() if k != "recall_curve"
    }

    queries = _real_queries(scifact, args.queries)
    log(f"encoding {len(queries)} real queries")
    qvec = encoder.encode(queries)
    qfile = folder.parent / f".{args.name}-queries.npz"
    np.savez(qfile, vectors=qvec, texts=np.asarray(queries))
    log("serving in a fresh process")
    serve = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from core.ops.collection_bench import serve; serve({args.name!r}, "
            f"{str(qfile)!r}, {args.rerank_queries})",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )
    if serve.returncode != 0:
        raise CoreError(f"serving benchmark failed: {serve.stderr.strip()[-800:]}")
    report["serving"] = json.loads(serve.stdout.strip().splitlines()[-1])
    if args.compare_ann:
        vectors = open_collection(args.name).vectors
        report["ann_comparison"] = compare_ann(vectors, qvec, args.compare_ann)
    report["load_avg_end"] = _load()
    report["targets"] = _targets(report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0


def _bar(label: str):
    def show(done: int, total: int) -> None:
        print(f"\r{label}: {done:,}/{total:,}", end="\n" if done >= total else "", file=sys.stderr)

    return show


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def serve(name: str, query_file: str, rerank_queries: int) -> None:
    """Open collection ``name`` in this (fresh) process and measure serving; print JSON."""
    from core.models.base import DEFAULT_RERANKER
    from core.models.registry import load_encoder, load_reranker
    from core.search.collection_index import DiskVectorIndex, exact_search_many, recall_at
    from core.search.index import build_index
    from core.search.pipeline import search_with_rerank
    from core.search.retrievers import BM25Index, DenseRetriever, HybridRetriever, bm25_index

    data = np.load(query_file)
    qvec, texts = data["vectors"], [str(t) for t in data["texts"]]
    out: dict[str, Any] = {"rss_before_open_mb": _rss_mb(), "load_avg": _load()}
    t = time.perf_counter()
    collection = open_collection(name)
    fields = collection.default_embed_fields

    class _Probe:  # what the index check reads: the collection's own model key
        name = collection.manifest["model"]
        cache_key = collection.manifest["model_key"]
        dimension = collection.manifest["dimension"]

    dense_index = build_index(collection, _Probe(), fields).index
    bm25: BM25Index = bm25_index(collection, fields)
    out["open_s"] = round(time.perf_counter() - t, 3)
    out["rss_after_open_mb"] = _rss_mb()

    # Dense first stage (search only: queries are pre-encoded), top 100.
    times, found = [], []
    for q in qvec:
        t = time.perf_counter()
        rows, _ = dense_index.search_positions(q, 100)
        times.append(time.perf_counter() - t)
        found.append(rows)
    out["dense_top100_search"] = _stats(times)
    t = time.perf_counter()
    exact = exact_search_many(collection.vectors, qvec, 100)
    out["exact_top100_per_query_ms"] = round((time.perf_counter() - t) * 1000 / len(qvec), 1)
    out["recall_at_100_vs_exact"] = round(recall_at(found, exact, 100), 4)
    ids_t = []
    for q in qvec[:50]:
        t = time.perf_counter()
        dense_index.search(q, 100)
        ids_t.append(time.perf_counter() - t)
    out["dense_top100_with_ids"] = _stats(ids_t)
    if isinstance(dense_index, DiskVectorIndex) and dense_index.ann is not None:
        no_rescore = DiskVectorIndex(dense_index.vectors, dense_index.ann, rescore=1)
        found1 = [no_rescore.search_positions(q, 100)[0] for q in qvec]
        out["recall_at_100_without_rescoring"] = round(recall_at(found1, exact, 100), 4)

    # BM25 and hybrid (query encoding included for hybrid: it is part of the first stage).
    encoder = load_encoder(DEFAULT_ENCODER)
    b_t = []
    for text in texts:
        t = time.perf_counter()
        bm25.retrieve(text, 100)
        b_t.append(time.perf_counter() - t)
    out["bm25_top100"] = _stats(b_t)
    dense = DenseRetriever(dense_index, encoder)
    hybrid = HybridRetriever(dense, bm25)
    e_t, h_t = [], []
    for text in texts[:100]:
        t = time.perf_counter()
        r = hybrid.retrieve(text, 100)
        h_t.append(time.perf_counter() - t)
        e_t.append(r.encode_seconds)
    out["hybrid_top100_incl_query_encoding"] = _stats(h_t)
    out["query_encoding"] = _stats(e_t)
    out["hybrid_pool"] = hybrid.pool
    out["rss_serving_mb"] = _rss_mb()

    reranker = load_reranker(DEFAULT_RERANKER)
    whole, rerank, first = [], [], []
    for text in texts[:rerank_queries]:
        result = search_with_rerank(
            collection, text, retriever=dense, reranker=reranker, num_candidates=50
        )
        whole.append(result.timings.total)
        rerank.append(result.timings.rerank)
        first.append(result.timings.query_encode + result.timings.search)
    out["whole_query_rerank50"] = _stats(whole)
    out["whole_query_rerank50_parts"] = {
        "rerank": _stats(rerank),
        "first_stage": _stats(first),
        "rerank_share": round(float(np.sum(rerank) / np.sum(whole)), 3),
    }
    out["rss_end_mb"] = _rss_mb()
    out["rss_peak_mb"] = _hwm_mb()
    out["load_avg_end"] = _load()
    print(json.dumps(out))


def compare_ann(vectors: np.ndarray, qvec: np.ndarray, n: int) -> dict[str, Any]:
    """faiss IVF-SQ8 against usearch HNSW (i8) on the first ``n`` vectors, both
    proposing 2*k candidates rescored with exact cosine: build seconds, p50 search ms
    and recall@100 against exact, same queries."""
    import faiss
    from usearch.index import Index

    from core.search.collection_ann import nlist_for
    from core.search.collection_index import DiskVectorIndex, exact_search_many, recall_at

    vectors = np.ascontiguousarray(vectors[:n], dtype=np.float32)
    exact = exact_search_many(vectors, qvec, 100)
    out: dict[str, Any] = {"vectors": n, "queries": len(qvec)}
    t = time.perf_counter()
    nlist = nlist_for(n)
    ivf = faiss.index_factory(vectors.shape[1], f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
    ivf.train(vectors[np.random.default_rng(0).choice(n, min(n, nlist * 30), replace=False)])
    ivf.add(vectors)
    out["faiss_build_s"] = round(time.perf_counter() - t, 1)
    for nprobe in (16, 32, 64):
        ivf.nprobe = nprobe
        idx = DiskVectorIndex(vectors, ivf)
        times, found = [], []
        for q in qvec:
            t = time.perf_counter()
            found.append(idx.search_positions(q, 100)[0])
            times.append(time.perf_counter() - t)
        out[f"faiss_ivf{nlist}_sq8_nprobe{nprobe}"] = {
            **_stats(times),
            "recall": round(recall_at(found, exact, 100), 4),
        }
    t = time.perf_counter()
    hnsw = Index(ndim=vectors.shape[1], metric="ip", dtype="i8", connectivity=16)
    hnsw.add(np.arange(n), vectors, threads=os.cpu_count() or 1)
    out["usearch_build_s"] = round(time.perf_counter() - t, 1)
    for ef in (64, 128, 256):
        hnsw.expansion_search = ef
        times, found = [], []
        for q in qvec:
            # Like the faiss side: 2*k candidates, rescored with exact cosine.
            t = time.perf_counter()
            rows = np.unique(np.asarray(hnsw.search(q, 200).keys, dtype=np.int64))
            scores = vectors[rows] @ q
            found.append(rows[np.argsort(-scores, kind="stable")[:100]])
            times.append(time.perf_counter() - t)
        out[f"usearch_hnsw_i8_ef{ef}_rescored"] = {
            **_stats(times),
            "recall": round(recall_at(found, exact, 100), 4),
        }
    times = []
    for q in qvec[:50]:
        t = time.perf_counter()
        np.argpartition(-(vectors @ q), 99)[:100]
        times.append(time.perf_counter() - t)
    out["exact_numpy"] = _stats(times)
    return out


def _targets(report: dict[str, Any]) -> dict[str, Any]:
    s = report["serving"]
    checks = {
        "dense_top100_p50_le_20ms": s["dense_top100_search"]["p50_ms"] <= 20,
        "recall_at_100_ge_0.95": s["recall_at_100_vs_exact"] >= 0.95,
        "open_le_5s": s["open_s"] <= 5,
        "serving_memory_le_4GB": s["rss_peak_mb"] <= 4096,
        "whole_query_dominated_by_reranker": s["whole_query_rerank50_parts"]["rerank_share"] >= 0.5,
    }
    return {k: "met" if v else "MISSED" for k, v in checks.items()}


def format_report(r: dict[str, Any]) -> str:
    """The report as readable lines."""
    s = r["serving"]
    enc = r["encoding"]
    lines = [
        f"collection bench: {r['docs']:,} documents   cpus: {r['cpus']}   "
        f"load avg at start {r['load_avg_start']}, end {r['load_avg_end']}",
        f"corpus: {r['corpus']['how']}; sources {r['corpus']['source_documents']}, "
        f"{r['corpus']['distinct_sentences']:,} distinct real sentences",
        (
            f"vectors: real, made by `collection build` with {r['real_vectors']} "
            f"(encode {r['build']['seconds'].get('encode', 0):,.0f} s)"
            if "real_vectors" in r
            else f"vectors: derived (mean of real sentence vectors + noise sigma {NOISE_SIGMA}); "
            f"cosine to the real encoder on {enc['sample_docs']} docs: mean "
            f"{enc['derived_vs_real_cosine_mean']}, 5th pct {enc['derived_vs_real_cosine_p5']}"
        ),
        f"real encoding rate (sample): {enc['real_docs_per_s']} docs/s (load {enc['load_avg']}) "
        f"-> {r['docs']:,} docs would take ~{enc['extrapolated_real_encoding_h']} h"
        + ("" if "real_vectors" in r else " (extrapolated, not run)"),
        "build (s): " + ", ".join(f"{k} {v}" for k, v in r["build"]["seconds"].items()),
        f"disk: {r['disk_total_mb']:,} MB "
        + str({k: round(v / 1e6, 1) for k, v in r["disk_bytes"].items()})
        + (f"; source JSONL {r['jsonl_bytes'] / 1e6:,.0f} MB" if r.get("jsonl_bytes") else ""),
        f"index: {r['index']}",
        f"open: {s['open_s']} s (fresh process, warm page cache); RSS before open "
        f"{s['rss_before_open_mb']} MB, after {s['rss_after_open_mb']} MB, while serving "
        f"{s['rss_serving_mb']} MB, peak {s['rss_peak_mb']} MB (models loaded)",
        f"dense top-100 (search only): {s['dense_top100_search']}; with id look-up "
        f"{s['dense_top100_with_ids']}",
        f"recall@100 vs exact on {s['dense_top100_search']['n']} real queries: "
        f"{s['recall_at_100_vs_exact']}"
        + (
            f" (without exact rescoring {s['recall_at_100_without_rescoring']})"
            if "recall_at_100_without_rescoring" in s
            else ""
        )
        + f"; exact search costs {s['exact_top100_per_query_ms']} ms/query",
        f"BM25 top-100: {s['bm25_top100']}",
        f"hybrid top-100 (RRF of dense + BM25, each {s['hybrid_pool']} deep, incl. query "
        f"encoding {s['query_encoding']['p50_ms']} ms p50): "
        f"{s['hybrid_top100_incl_query_encoding']}",
        f"whole query, dense + rerank 50: {s['whole_query_rerank50']}; rerank "
        f"{s['whole_query_rerank50_parts']['rerank']}, first stage "
        f"{s['whole_query_rerank50_parts']['first_stage']}, reranker share "
        f"{s['whole_query_rerank50_parts']['rerank_share']:.0%}",
    ]
    if "ann_comparison" in r:
        lines.append(f"ANN comparison: {json.dumps(r['ann_comparison'])}")
    lines.append("targets: " + ", ".join(f"{k}: {v}" for k, v in r["targets"].items()))
    return "\n".join(lines)
