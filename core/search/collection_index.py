"""Search a built collection: dense (exact or faiss IVF-SQ8, memory-mapped) and BM25.

Dense search below :data:`EXACT_THRESHOLD` documents is exhaustive over the
memory-mapped vectors (exact cosine, like :class:`~core.search.index.VectorIndex`).
Above it a faiss ``IVF{nlist},SQ8`` index, opened with ``IO_FLAG_MMAP |
IO_FLAG_READ_ONLY``, proposes ``RESCORE_FACTOR * k`` candidates from ``nprobe`` lists;
they are then rescored exactly from the float32 vectors, so every score shown is the
true cosine and only *which* documents are found is approximate. The recall@100 of
that against exact search is measured when the collection is built (and by
``python -m core collection bench`` on real queries) and shown by the app.

Why 50,000: measured here (2 shared cores, load average ~7), exhaustive float32 top-100
search with numpy took 24 ms p50 at 20k documents, 45 ms at 50k, 64 ms at 100k and 110 ms
at 200k; the IVF index with rescoring answered 60k documents in ~3-6 ms p50 at
recall@100 0.98 (``collection bench``). Below 50k exact search is affordable and needs no
index to build; above it the exact cost grows past the 20 ms first-stage budget.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.data.collection import ANN_INDEX, Collection
from core.models.base import Encoder
from core.models.errors import SettingsError
from core.search.hits import Hit, top_k

EXACT_THRESHOLD = 50_000
RESCORE_FACTOR = 2
IVF_KIND = "ivf-sq8"


def open_faiss_index(path: Path, nprobe: int):
    """Read a faiss index memory-mapped and read-only, with ``nprobe`` lists probed."""
    import faiss

    index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    faiss.extract_index_ivf(index).nprobe = int(nprobe)
    return index


class DiskVectorIndex:
    """Top-k cosine search over memory-mapped unit vectors (a collection's).

    ``ann`` (a faiss IVF index whose ids are row positions) makes it approximate;
    without it the search is exact. ``ids_at(positions)`` names the rows (for
    :meth:`search`). Thread-safe: faiss search and numpy reads mutate nothing shared.
    """

    def __init__(
        self, vectors: np.ndarray, ann=None, *, rescore: int = RESCORE_FACTOR, ids_at=None
    ) -> None:
        self.vectors = vectors
        self.ann = ann
        self.rescore = int(rescore)
        self.approximate = ann is not None
        self._ids_at = ids_at

    def __len__(self) -> int:
        return len(self.vectors)

    def search_positions(self, query_vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row positions and exact cosine scores of the ``k`` best rows, best first."""
        q = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        n = len(self.vectors)
        k = max(0, min(int(k), n))
        if k == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if self.ann is None:
            scores = _matvec(self.vectors, q)
            order = top_k(scores, k)
            return order, scores[order]
        fetch = min(n, max(k * self.rescore, k + 10))
        _, found = self.ann.search(q.reshape(1, -1), fetch)
        rows = np.unique(found[0][found[0] >= 0])  # ascending: ties keep row order
        scores = np.asarray(self.vectors[rows], dtype=np.float32) @ q
        order = top_k(scores, k)
        return rows[order], scores[order]

    def search(self, query_vector: np.ndarray, k: int) -> list[Hit]:
        """The ``k`` documents most similar to ``query_vector``, best first."""
        rows, scores = self.search_positions(query_vector, k)
        ids = self._ids_at(rows.tolist())
        return [
            Hit(id=doc_id, position=int(row), rank=r, score=float(score))
            for r, (doc_id, row, score) in enumerate(zip(ids, rows, scores, strict=True), start=1)
        ]


def _matvec(vectors: np.ndarray, q: np.ndarray, block: int = 65_536) -> np.ndarray:
    """``vectors @ q`` in blocks, so a memory-mapped matrix is never copied whole."""
    out = np.empty(len(vectors), dtype=np.float32)
    for start in range(0, len(vectors), block):
        out[start : start + block] = vectors[start : start + block] @ q
    return out


def exact_search_many(
    vectors: np.ndarray, queries: np.ndarray, k: int, block: int = 65_536
) -> np.ndarray:
    """Exact top-``k`` row positions for each query (one pass over ``vectors``)."""
    queries = np.asarray(queries, dtype=np.float32)
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(vectors), block):
        part = np.asarray(vectors[start : start + block], dtype=np.float32) @ queries.T
        rows = np.arange(start, start + len(part))
        scores = np.concatenate([best_scores, part.T], axis=1)
        allrows = np.concatenate([best_rows, np.broadcast_to(rows, (len(queries), len(rows)))], 1)
        keep = min(k, scores.shape[1])
        pick = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
        best_scores = np.take_along_axis(scores, pick, 1)
        best_rows = np.take_along_axis(allrows, pick, 1)
    order = np.argsort(-best_scores, axis=1, kind="stable")
    return np.take_along_axis(best_rows, order, 1)


def recall_at(approx: Sequence[Sequence[int]], exact: np.ndarray, k: int) -> float:
    """Mean share of each query's exact top ``k`` that the approximate top ``k`` found."""
    shares = [
        len(set(map(int, a[:k])) & set(map(int, e[:k]))) / max(1, min(k, len(e)))
        for a, e in zip(approx, exact, strict=True)
    ]
    return float(np.mean(shares)) if shares else 1.0


def check_built_with(collection: Collection, encoder: Encoder, fields: Sequence[str]) -> None:
    """Raise :class:`SettingsError` unless ``encoder`` and ``fields`` are the ones the
    collection's vectors were built with."""
    m = collection.manifest
    key = getattr(encoder, "cache_key", encoder.name)
    if key != m["model_key"]:
        raise SettingsError(
            f"collection '{collection.collection_name}' was embedded with {m['model']}; "
            f"pick that bi-encoder (or rebuild it with --encoder {encoder.name})"
        )
    if tuple(fields) != tuple(m["embed_fields"]):
        raise SettingsError(
            f"collection '{collection.collection_name}' was embedded from the fields "
            f"{', '.join(m['embed_fields'])}; choose exactly those to embed (or rebuild it "
            "with other --embed-fields)"
        )


_OPEN_LOCK = threading.Lock()


def collection_vector_index(
    collection: Collection, encoder: Encoder, fields: Sequence[str]
) -> DiskVectorIndex:
    """The collection's dense index (opened once per collection object)."""
    check_built_with(collection, encoder, fields)

    def open_index() -> DiskVectorIndex:
        info = collection.manifest.get("index") or {}
        ann = None
        if info.get("kind") == IVF_KIND:
            ann = open_faiss_index(collection.folder / ANN_INDEX, int(info["nprobe"]))
        return DiskVectorIndex(
            collection.vectors,
            ann,
            rescore=int(info.get("rescore", RESCORE_FACTOR)),
            ids_at=collection.ids_at,
        )

    return collection.resource("dense", open_index)
