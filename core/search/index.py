"""Exact cosine search over unit-length vectors, and the on-disk embedding cache.

Corpus embeddings are cached under ``<cache dir>/embeddings/`` in a file named by the
sha256 of (model id, dataset content hash, chosen fields, text format version, and for
dense passages the passage settings and the encoder's limit): the
same data embedded the same way is never encoded twice, across runs and processes.
Writes are atomic (write to a temporary file, then rename), and one lock per key keeps
concurrent sessions from encoding the same corpus twice. Encoding goes chunk by chunk
through :func:`core.search.chunked_embedding.encode_chunked`, so an interrupted build
resumes from its last chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.data.collection import Collection
from core.data.documents import Dataset
from core.models.base import Encoder, ProgressFn
from core.models.paths import cache_dir
from core.search.chunked_embedding import encode_chunked
from core.search.embedding_cache import TEXT_FORMAT_VERSION, embedding_cache_key
from core.search.hits import Hit, top_k

__all__ = ["TEXT_FORMAT_VERSION", "IndexBuild", "VectorIndex", "build_index", "embedding_cache_key"]

if TYPE_CHECKING:
    from core.search.collection_index import DiskVectorIndex
    from core.search.passage_index import PassageVectorIndex
    from core.search.passages import PassageSettings


class VectorIndex:
    """Exact top-k cosine search over a fixed matrix of unit-length rows."""

    def __init__(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        self.ids = tuple(ids)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.vectors.setflags(write=False)

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query_vector: np.ndarray, k: int) -> list[Hit]:
        """The ``k`` rows most similar to ``query_vector``, best first.

        ``argpartition`` finds the winners in linear time; only they are sorted. Equal
        scores keep row order (a stable sort on the winners).
        """
        n = len(self.ids)
        k = max(0, min(k, n))
        if k == 0:
            return []
        scores = self.vectors @ np.asarray(query_vector, dtype=np.float32).reshape(-1)
        order = top_k(scores, k)
        return [
            Hit(id=self.ids[i], position=int(i), rank=r, score=float(scores[i]))
            for r, i in enumerate(order, start=1)
        ]


@dataclass(frozen=True)
class IndexBuild:
    """A built index and how it was obtained (``from_cache``) and how long it took."""

    index: VectorIndex | DiskVectorIndex | PassageVectorIndex
    from_cache: bool
    seconds: float
    cache_path: Path | None


def build_index(
    dataset: Dataset,
    encoder: Encoder,
    fields: Sequence[str],
    *,
    use_cache: bool = True,
    progress: ProgressFn | None = None,
    passages: PassageSettings | None = None,
) -> IndexBuild:
    """Index ``dataset`` embedded from ``fields``, reusing cached embeddings when present.

    ``passages`` embeds long texts as several vectors, one per passage, and scores a
    document by its best (:mod:`core.search.passage_index`); None: one vector per
    document, of what fits in the encoder.
    """
    import time

    if passages is not None:
        from core.search.passage_index import build_passage_index

        started = time.perf_counter()
        index, from_cache, path = build_passage_index(
            dataset, encoder, fields, passages, use_cache=use_cache, progress=progress
        )
        return IndexBuild(index, from_cache, time.perf_counter() - started, path)
    started = time.perf_counter()
    fields = dataset.check_fields(fields, "embed")
    if isinstance(dataset, Collection):  # built on disk: open its index, never re-encode
        from core.search.collection_index import collection_vector_index

        index = collection_vector_index(dataset, encoder, fields)
        return IndexBuild(index, True, time.perf_counter() - started, dataset.folder)
    key = embedding_cache_key(getattr(encoder, "cache_key", encoder.name), dataset, fields)
    path = cache_dir() / "embeddings" / f"{key}.npy" if use_cache else None
    if path is not None:  # chunked: an interrupted build resumes from its last chunk
        texts = dataset.texts(fields, "embed")
        done = encode_chunked(key, texts, encoder, progress=progress, owner=dataset.name)
        vectors, from_cache = done.vectors, done.from_cache
    else:
        vectors = encoder.encode(dataset.texts(fields, "embed"), progress=progress)
        from_cache = False
    return IndexBuild(
        index=VectorIndex(dataset.ids, vectors),
        from_cache=from_cache,
        seconds=time.perf_counter() - started,
        cache_path=path,
    )
