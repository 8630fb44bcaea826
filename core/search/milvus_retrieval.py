"""Retrieval from a Milvus collection: dense, BM25 full-text and hybrid (RRF) search,
hits returned as :class:`~core.search.index.Hit` rows (:class:`MilvusRetriever`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.models.base import Encoder
from core.search.index import Hit
from core.search.milvus_client import DEFAULT_TIMEOUT, call_milvus
from core.search.retrievers import (
    Retrieval,
    RetrievalScoreKind,
    RetrieverKind,
)

MAX_TOPK = 16_384  # Milvus reads at most 16,384 hits per search


class MilvusRetriever:
    """Dense, BM25 or hybrid (RRF) search in a Milvus collection, as a
    :class:`~core.search.retrievers.Retriever`. Hits are rows of
    :meth:`core.search.milvus.MilvusCollection.dataset` (matched by id)."""

    def __init__(
        self,
        collection: Any,  # an opened core.search.milvus.MilvusCollection
        kind: RetrieverKind,
        encoder: Encoder | None,
        rrf_k: int,
        pool: int,
    ) -> None:
        self.collection = collection
        self.kind: RetrieverKind = kind
        self.encoder = encoder
        self.rrf_k = int(rrf_k)
        self.pool = int(pool)
        self.score_kind: RetrievalScoreKind = {"dense": "cosine", "bm25": "bm25", "hybrid": "rrf"}[
            kind
        ]
        where = f"Milvus {collection.name}"
        model = encoder.name if encoder else ""
        self.name = {
            "dense": f"{where}: {model}",
            "bm25": f"{where}: BM25 (Milvus analyzer)",
            "hybrid": f"{where}: hybrid RRF k={self.rrf_k} ({model} + BM25)",
        }[kind]
        self._positions = collection.dataset()._positions

    def retrieve(self, query: str, k: int) -> Retrieval:
        """The ``k`` best documents for ``query``, best first."""
        return self.retrieve_many([query], k)[0]

    def retrieve_many(self, queries: Sequence[str], k: int) -> list[Retrieval]:
        """Search all queries in one request (dense queries embedded in one batch)."""
        if not queries:
            return []
        k = max(0, min(int(k), MAX_TOPK))
        if k == 0:
            return [Retrieval([]) for _ in queries]
        encode = 0.0
        vectors = None
        if self.encoder is not None:
            t0 = time.perf_counter()
            vectors = self.encoder.encode(list(queries), kind="query")
            encode = (time.perf_counter() - t0) / len(queries)
        t1 = time.perf_counter()
        if self.kind == "dense":
            raw = self._search(
                _as_lists(vectors), self.collection.fields.vector, self.collection.metric, k
            )
        elif self.kind == "bm25":
            raw = self._search(list(queries), self.collection.fields.sparse, "BM25", k)
        else:
            raw = self._hybrid(queries, _as_lists(vectors), k)
        search = (time.perf_counter() - t1) / len(queries)
        return [Retrieval(self._hits(rows), encode, search) for rows in raw]

    def _search(self, data: list, field: str | None, metric: str, k: int):
        c = self.collection
        return call_milvus(
            c.target,
            f"searching '{c.name}'",
            c.client.search,
            c.name,
            data=data,
            anns_field=field,
            limit=k,
            search_params={"metric_type": metric},
            output_fields=[c.fields.id],
            timeout=DEFAULT_TIMEOUT,
        )

    def _hybrid(self, queries: Sequence[str], vectors: list, k: int):
        from pymilvus import AnnSearchRequest, RRFRanker

        c = self.collection
        depth = min(max(k, self.pool), MAX_TOPK)
        out = []
        for query, vector in zip(queries, vectors, strict=True):
            requests = [
                AnnSearchRequest([vector], c.fields.vector, {"metric_type": c.metric}, depth),
                AnnSearchRequest([query], c.fields.sparse, {"metric_type": "BM25"}, depth),
            ]
            result = call_milvus(
                c.target,
                f"hybrid search in '{c.name}'",
                c.client.hybrid_search,
                c.name,
                requests,
                RRFRanker(self.rrf_k),
                limit=k,
                output_fields=[c.fields.id],
                timeout=DEFAULT_TIMEOUT,
            )
            out.append(result[0])
        return out

    def _hits(self, rows) -> list[Hit]:
        hits: list[Hit] = []
        for row in rows:
            doc_id = str(row.get("id", row.get("entity", {}).get(self.collection.fields.id)))
            position = self._positions.get(doc_id)
            if position is None:  # written after the dataset was read: not showable
                continue
            score = float(row.get("distance", 0.0))
            if self.kind == "bm25":
                score = abs(score)  # Milvus Lite 3.2.2 negates BM25 distances
            hits.append(Hit(id=doc_id, position=position, rank=len(hits) + 1, score=score))
        return hits


def _as_lists(vectors) -> list[list[float]]:
    return [list(map(float, v)) for v in np.asarray(vectors, dtype=np.float32)]
