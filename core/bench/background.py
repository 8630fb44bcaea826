"""Bench "background": an upload searchable in seconds while its dense index is built.

For each size (10k / 50k / 100k synthetic records of movie length), from the bytes of a
JSON upload:

* ``parse_s``: the upload parsed into a dataset (the app's own parser);
* ``first_results_s``: from parsed to the first reranked results: the background job
  started, BM25 built over the fields, one search reranked by the packaged
  cross-encoder (what the Search page shows while the index is built);
* ``dense_ready_s`` and ``docs_per_s``: until the job's index is ready, and its own rate;
  ``pure_encode_docs_per_s``: plain ``encode`` calls of a sample just before and just
  after the build (the machine's load changes), so ``dense_vs_pure`` says how much the
  chunked background build costs over pure encoding;
* ``search_during_p50_ms`` / ``search_idle_p50_ms``: the same BM25 + rerank searches
  made while the build runs (they pause it) and on the idle machine after it (other
  query texts, so the reranker's score cache does not answer them).

Embeddings go to a temporary cache folder, so every run encodes from zero.

Dense ready takes 15-35 minutes for 50k/100k records on this 2-core CPU. Sizes above
``full_dense_max`` (default 10,000) are therefore measured in a *projected* mode: the job
builds its first ``project_chunks`` chunks (searches are made meanwhile), is cancelled,
and dense ready is projected as the time spent so far plus the records left at the
job's measured rate; such rows say ``dense_ready: "projected"`` and the table marks the
number with ``~``. Everything else (parse, first results, searches during the build and
idle, the rates) is measured as in the full mode.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from typing import Any

SIZES = (10_000, 50_000, 100_000)
QUERIES = (
    "a heist in a big city",
    "a robot falls in love",
    "soldiers stranded behind enemy lines",
    "a detective hunts a serial killer",
    "a family road trip goes wrong",
    "ghosts haunt an old house",
)
_NAMES = [
    "Anna",
    "Ben",
    "Clara",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Iris",
    "Jonas",
    "Kira",
    "Leo",
    "Mara",
    "Nils",
    "Omar",
]
_NOUNS = [
    "heist",
    "city",
    "robot",
    "love",
    "war",
    "soldier",
    "river",
    "ghost",
    "train",
    "island",
    "storm",
    "band",
    "detective",
    "killer",
    "family",
    "village",
    "ship",
    "planet",
    "doctor",
    "school",
    "painter",
    "farmer",
    "king",
    "queen",
    "spy",
    "journalist",
    "secret",
    "treasure",
    "mountain",
    "desert",
    "lighthouse",
    "circus",
    "prison",
    "hotel",
]
_VERBS = [
    "discovers",
    "hunts",
    "escapes",
    "joins",
    "betrays",
    "rescues",
    "hides",
    "follows",
    "builds",
    "loses",
    "finds",
    "protects",
    "leaves",
    "chases",
    "fights",
    "returns",
    "to",
]
_GLUE = [
    "a",
    "the",
    "an",
    "his",
    "her",
    "their",
    "an",
    "old",
    "a",
    "young",
    "a",
    "small",
    "a",
    "forgotten",
    "a",
    "dangerous",
]
_GENRES = [
    "Drama",
    "Comedy",
    "Thriller",
    "Action",
    "Romance",
    "Horror",
    "Adventure",
    "Crime",
    "Family",
    "Fantasy",
]


def synthetic_movies(count: int, seed: int = 0, words: int = 48) -> list[dict[str, Any]]:
    """``count`` movie-like records (title, overview of about ``words`` words, genres,
    director), deterministic for ``seed``; the default is about as long as the movies
    dataset's (~86 tokens)."""
    rng = random.Random(seed)
    records = []
    for i in range(count):
        overview: list[str] = []
        while len(overview) < words:
            overview += [
                rng.choice(_NAMES),
                rng.choice(_VERBS),
                rng.choice(_GLUE),
                rng.choice(_NOUNS),
                "and",
                rng.choice(_GLUE),
                rng.choice(_NOUNS) + rng.choice([",", ".", ""]),
            ]
        title = f"The {rng.choice(_NOUNS).title()} of {rng.choice(_NOUNS).title()} {i}"
        records.append(
            {
                "id": f"syn-{i:06d}",
                "title": title,
                "overview": " ".join(overview) + ".",
                "genres": " ".join(rng.sample(_GENRES, 2)),
                "director": f"{rng.choice(_NAMES)} {rng.choice(_NAMES)}son",
            }
        )
    return records


def synthetic_upload(count: int, seed: int = 0) -> bytes:
    """The bytes of a JSON upload of :func:`synthetic_movies`."""
    return json.dumps(synthetic_movies(count, seed)).encode()


def bench_background(
    sizes: Sequence[int] = SIZES,
    *,
    searches_during: int = 5,
    gap_s: float = 3.0,
    pure_sample: int = 1_000,
    full_dense_max: int | None = 10_000,
    project_chunks: int = 3,
    chunk: int | None = None,
    log=print,
) -> list[dict[str, Any]]:
    """Run the measurements above for each of ``sizes``; one dict per size. Sizes above
    ``full_dense_max`` (None: none) get a projected dense-ready time (module docstring);
    ``chunk``: documents per chunk of the job (default the app's, 1,024)."""
    from core.models.registry import load_encoder, load_reranker

    encoder, reranker = load_encoder(), load_reranker()  # from the usual cache
    rows = []
    previous = os.environ.get("RERANK_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="bench-background-") as folder:
        os.environ["RERANK_CACHE_DIR"] = folder
        try:
            for size in sizes:
                project = full_dense_max is not None and size > full_dense_max
                chunks = max(1, project_chunks) if project else None
                rows.append(
                    _one_size(
                        size,
                        encoder,
                        reranker,
                        searches_during,
                        gap_s,
                        pure_sample,
                        chunks,
                        log,
                        chunk=chunk,
                    )
                )
        finally:
            if previous is None:
                os.environ.pop("RERANK_CACHE_DIR", None)
            else:
                os.environ["RERANK_CACHE_DIR"] = previous
    return rows


def _one_size(
    size, encoder, reranker, searches_during, gap_s, pure_sample, project_chunks, log, *, chunk
) -> dict:
    """One size; ``project_chunks``: stop the build after that many chunks and project."""
    from core.data.upload_quality import build_upload_dataset
    from core.data.upload_store import upload_id
    from core.data.uploads import parse_upload
    from core.search.activity import SearchActivity
    from core.search.background import BackgroundEmbedder
    from core.search.retrievers import bm25_index

    data = synthetic_upload(size, seed=size)
    started = time.perf_counter()
    parsed = parse_upload(data, f"synthetic-{size}.json")
    dataset, _ = build_upload_dataset(parsed, id_field="id", name=upload_id(data))
    parse_s = time.perf_counter() - started
    fields = dataset.default_embed_fields

    sample = dataset.texts(fields, "embed")[:pure_sample]
    half = len(sample) // 2
    pure_before = _rate(encoder, sample[:half])  # the machine's load before and after
    visitors = SearchActivity()
    embedder = (
        BackgroundEmbedder(visitors=visitors)
        if chunk is None
        else BackgroundEmbedder(visitors=visitors, chunk=max(1, int(chunk)))
    )
    started = time.perf_counter()
    job = embedder.start(dataset, encoder, fields, user="bench")  # hashes the content
    start_s = time.perf_counter() - started
    with visitors.search():  # what the page's first search does: BM25 built, then searched
        bm25_started, bm25_cpu = time.perf_counter(), time.thread_time()
        bm25_index(dataset, fields)
        bm25_s = time.perf_counter() - bm25_started
        bm25_cpu_s = time.thread_time() - bm25_cpu  # this thread's CPU: the load aside
    first = _search(dataset, reranker, QUERIES[0], visitors)
    first_results_s = time.perf_counter() - started
    log(
        f"{size:,}: parsed in {parse_s:.1f} s; first reranked results {first_results_s:.2f} s "
        f"(job started in {start_s:.2f} s, BM25 built in {bm25_s:.2f} s wall / "
        f"{bm25_cpu_s:.2f} s CPU, first search {first:.2f} s)"
    )

    def built_enough() -> bool:
        status = job.status()
        return status.finished or (
            project_chunks is not None and status.chunks_encoded >= project_chunks
        )

    during = []
    for number in range(searches_during):
        time.sleep(gap_s)
        if built_enough():
            break
        query = QUERIES[(number + 1) % len(QUERIES)]
        during.append(_search(dataset, reranker, query, visitors))
        where = job.status().progress_text()
        log(f"  search during the build: {during[-1] * 1000:.0f} ms ({where})")
    while not built_enough():
        time.sleep(0.2)
    if project_chunks is not None and not job.status().finished:
        job.cancel()
    job.wait()
    elapsed_s = time.perf_counter() - started
    status = job.status()
    rate = status.docs_per_second or 0.0
    projected = status.state != "done"
    if projected:
        left = max(0, size - status.done)
        dense_ready_s = elapsed_s + (left / rate if rate else float("nan"))
        log(
            f"  dense ready PROJECTED at {dense_ready_s:.1f} s: {status.chunks_encoded} "
            f"chunks ({status.done:,} records) built in {elapsed_s:.1f} s, "
            f"{left:,} left at {rate:.1f} docs/s"
        )
    else:
        dense_ready_s = elapsed_s
        log(f"  dense ready after {dense_ready_s:.1f} s: {status.state}, {status.chunks} chunks")
    # new queries (the reranker's score cache would answer repeated ones): same work
    idle = [
        _search(dataset, reranker, f"{QUERIES[n % len(QUERIES)]} at night", visitors)
        for n in range(max(3, len(during)))
    ]

    pure_after = _rate(encoder, sample[half:])
    pure_rate = (pure_before + pure_after) / 2
    return {
        "records": size,
        "parse_s": round(parse_s, 2),
        "first_results_s": round(first_results_s, 2),
        "job_start_s": round(start_s, 2),
        "bm25_build_s": round(bm25_s, 2),
        "bm25_build_cpu_s": round(bm25_cpu_s, 2),
        "first_search_ms": round(first * 1000),
        "dense_ready": "projected" if projected else "measured",
        "dense_ready_s": round(dense_ready_s, 1),
        "built_s": round(elapsed_s, 1),
        "records_embedded": status.done if projected else size,
        "docs_per_s": round(rate, 1),
        "pure_encode_docs_per_s": round(pure_rate, 1),
        "pure_before_after": [round(pure_before, 1), round(pure_after, 1)],
        "pure_encode_s": round(size / pure_rate, 1),
        "dense_vs_pure": round(dense_ready_s / (size / pure_rate), 3),
        "chunks": status.chunks or -(-size // embedder.chunk),
        "chunk_docs": embedder.chunk,
        "pure_sample": len(sample),
        "chunks_encoded": status.chunks_encoded,
        "search_during_p50_ms": round(statistics.median(during) * 1000) if during else None,
        "searches_during": len(during),
        "search_idle_p50_ms": round(statistics.median(idle) * 1000),
        "state": status.state,
    }


def _rate(encoder, texts: Sequence[str]) -> float:
    """Docs/s of one plain ``encode`` of ``texts`` (no chunks, no job)."""
    started = time.perf_counter()
    encoder.encode(list(texts))
    return len(texts) / (time.perf_counter() - started)


def _search(dataset, reranker, query: str, visitors) -> float:
    """Seconds for one BM25 + rerank search of 50 candidates (counted as a visitor's)."""
    from core.search.pipeline import search_with_rerank
    from core.search.retrievers import bm25_index

    started = time.perf_counter()
    with visitors.search():
        search_with_rerank(
            dataset,
            query,
            encoder=None,
            reranker=reranker,
            embed_fields=dataset.default_embed_fields,
            rerank_fields=dataset.default_rerank_fields,
            num_candidates=50,
            num_results=10,
            retriever=bm25_index(dataset, dataset.default_embed_fields),
        )
    return time.perf_counter() - started


def format_rows(rows: Sequence[dict[str, Any]]) -> str:
    """A plain table of the bench's rows (``~``: a projected dense-ready time)."""
    columns = (
        ("records", "records"),
        ("first_results_s", "first results s"),
        ("bm25_build_s", "BM25 build s"),
        ("bm25_build_cpu_s", "BM25 CPU s"),
        ("dense_ready_s", "dense ready s"),
        ("pure_encode_s", "pure encode s"),
        ("docs_per_s", "docs/s"),
        ("pure_encode_docs_per_s", "pure docs/s"),
        ("dense_vs_pure", "ready/pure"),
        ("chunks_encoded", "chunks"),
        ("search_during_p50_ms", "p50 during ms"),
        ("search_idle_p50_ms", "p50 idle ms"),
    )
    lines = [" | ".join(title for _, title in columns)]
    projected = False
    for row in rows:
        cells = []
        for key, _ in columns:
            value = row.get(key)
            if key == "dense_ready_s" and row.get("dense_ready") == "projected":
                value, projected = f"~{value}", True
            elif key == "chunks_encoded":
                value = f"{value}/{row.get('chunks')}"
            cells.append(f"{value}")
        lines.append(" | ".join(cells))
    if projected:
        lines.append(
            "~ dense ready PROJECTED, not measured: the first chunks were built, then the "
            "rest projected at the job's measured docs/s (time so far + records left / rate)"
        )
    return "\n".join(lines)
