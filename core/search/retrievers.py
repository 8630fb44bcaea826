"""First-stage retrievers: dense (bi-encoder), lexical (BM25) and hybrid (RRF of both).

Every retriever answers :meth:`Retriever.retrieve` with a :class:`Retrieval`: hits best
first (:class:`core.search.index.Hit`, 1-based ranks, matched by id) and how long encoding and
searching took. Scores are on each retriever's own scale, named by ``score_kind``:

* ``"cosine"``: dense retrieval, cosine similarity of unit vectors, -1 to 1.
* ``"bm25"``: BM25 (Lucene variant, k1=1.5, b=0.75) over lower-cased, stop-word
  filtered, Snowball-stemmed English tokens; unbounded, 0 means no query term matched.
  Documents that match no query term are never returned.
* ``"rrf"``: reciprocal rank fusion, ``sum(1 / (k + rank))`` over the dense and BM25
  lists (k defaults to 60, as in Cormack et al. 2009); at most ``2 / (k + 1)``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from core.data import upload_artefacts
from core.data.collection import BM25_DIR, Collection
from core.data.documents import Dataset
from core.models.base import Encoder
from core.models.errors import SettingsError
from core.search.bm25_build import BM25_METHOD
from core.search.hits import Hit, PassageMatch, top_k
from core.search.index import VectorIndex

RetrieverKind = Literal["dense", "bm25", "hybrid"]
RetrievalScoreKind = Literal["cosine", "bm25", "rrf"]
RETRIEVER_KINDS: tuple[RetrieverKind, ...] = ("dense", "bm25", "hybrid")
RETRIEVER_LABELS: dict[str, str] = {
    "dense": "Dense (bi-encoder)",
    "bm25": "BM25 (lexical)",
    "hybrid": "Hybrid (RRF of dense + BM25)",
}
SCORE_LABELS: dict[str, str] = {"cosine": "cosine", "bm25": "BM25", "rrf": "RRF"}
DEFAULT_RRF_K = 60
# Each list fused by hybrid retrieval is read this deep (or to k, if deeper).
HYBRID_POOL = 1000


@dataclass(frozen=True)
class Retrieval:
    """One query's first-stage result and its cost in seconds."""

    hits: list[Hit]
    encode_seconds: float = 0.0
    search_seconds: float = 0.0


@runtime_checkable
class Retriever(Protocol):
    """What every first stage offers."""

    kind: RetrieverKind
    name: str
    score_kind: RetrievalScoreKind

    def retrieve(self, query: str, k: int) -> Retrieval:
        """The ``k`` best documents for ``query``, best first."""
        ...

    def retrieve_many(self, queries: Sequence[str], k: int) -> list[Retrieval]:
        """:meth:`retrieve` for many queries (dense encodes them in one batch)."""
        ...


def check_retriever_kind(kind: str) -> RetrieverKind:
    """Return ``kind`` if it names a retriever; raise :class:`SettingsError` otherwise."""
    if kind not in RETRIEVER_KINDS:
        raise SettingsError(
            f"unknown retriever '{kind}': choose one of {', '.join(RETRIEVER_KINDS)}"
        )
    return kind  # type: ignore[return-value]


class DenseRetriever:
    """Cosine search of a :class:`VectorIndex` with queries embedded by ``encoder``."""

    kind: RetrieverKind = "dense"
    score_kind: RetrievalScoreKind = "cosine"

    def __init__(self, index: VectorIndex, encoder: Encoder) -> None:
        self.index = index
        self.encoder = encoder
        self.name = encoder.name

    def retrieve(self, query: str, k: int) -> Retrieval:
        """Embed ``query``, then return the ``k`` nearest documents."""
        return self.retrieve_many([query], k)[0]

    def retrieve_many(self, queries: Sequence[str], k: int) -> list[Retrieval]:
        """Embed all queries in one batch, then search each; encoding time is shared out."""
        if not queries:
            return []
        t0 = time.perf_counter()
        vectors = self.encoder.encode(list(queries), kind="query")
        encode = (time.perf_counter() - t0) / len(queries)
        out = []
        for vector in vectors:
            t1 = time.perf_counter()
            hits = self.index.search(vector, k)
            out.append(Retrieval(hits, encode, time.perf_counter() - t1))
        return out


def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def _tokenize(texts: Sequence[str], *, return_ids: bool):
    import bm25s

    return bm25s.tokenize(
        list(texts),
        stopwords="en",
        stemmer=_stemmer(),
        return_ids=return_ids,
        show_progress=False,
    )


class BM25Index:
    """BM25 over ``fields`` of a dataset, built in memory (:mod:`core.search.bm25_build`:
    ``bm25s``' tokens and scores, vectorised; about 2 s of CPU for 100,000 movie-length
    records here, so it is rebuilt rather than cached on disk), or a collection's saved
    index loaded memory-mapped (:meth:`load`). Queries go through ``bm25s``."""

    kind: RetrieverKind = "bm25"
    score_kind: RetrievalScoreKind = "bm25"
    name = f"BM25 ({BM25_METHOD}, English stemming)"

    def __init__(self, dataset: Dataset, fields: Sequence[str]) -> None:
        from core.search.bm25_build import bm25s_index

        self.fields = dataset.check_fields(fields, "embed")
        self.ids = dataset.ids
        self._retriever, self.avgdl = bm25s_index(dataset.texts(self.fields, "embed"))
        self._vocab = self._retriever.vocab_dict
        self._lock = threading.Lock()

    @classmethod
    def load(cls, folder, ids: Sequence[str], fields: Sequence[str]) -> BM25Index:
        """A saved ``bm25s`` index (``bm25s.BM25.load(folder, mmap=True)``) over documents
        whose ids are ``ids`` (row order; a lazy sequence with ``take`` is fine)."""
        import bm25s

        self = cls.__new__(cls)
        self.fields = tuple(fields)
        self.ids = ids
        self._retriever = bm25s.BM25.load(str(folder), mmap=True)
        self._vocab = self._retriever.vocab_dict
        self.avgdl = None  # not saved with the index: explanations count it from the texts
        self._lock = threading.Lock()
        return self

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (0 where no term matches)."""
        terms = [t for t in _tokenize([query], return_ids=False)[0] if t in self._vocab]
        if not terms:
            return np.zeros(len(self.ids), dtype=np.float32)
        with self._lock:
            return np.asarray(self._retriever.get_scores(terms), dtype=np.float32)

    def retrieve(self, query: str, k: int) -> Retrieval:
        """The ``k`` best-scoring documents that match at least one query term."""
        t0 = time.perf_counter()
        scores = self.scores(query)
        matched = np.flatnonzero(scores > 0)
        # Stable: equal scores keep corpus order.
        order = top_k(scores[matched], k, matched)
        ids = take_ids(self.ids, order)
        hits = [
            Hit(id=doc_id, position=int(i), rank=r, score=float(scores[i]))
            for r, (doc_id, i) in enumerate(zip(ids, order, strict=True), start=1)
        ]
        return Retrieval(hits, 0.0, time.perf_counter() - t0)

    def retrieve_many(self, queries: Sequence[str], k: int) -> list[Retrieval]:
        """:meth:`retrieve` for each query."""
        return [self.retrieve(q, k) for q in queries]


def take_ids(ids: Sequence[str], positions) -> list[str]:
    """The ids at row ``positions``: one look-up for a collection's lazy ids."""
    take = getattr(ids, "take", None)
    positions = [int(i) for i in positions]
    return take(positions) if take is not None else [ids[i] for i in positions]


def rrf_fuse(lists: Sequence[Sequence[Hit]], k: int, rrf_k: int = DEFAULT_RRF_K) -> list[Hit]:
    """Reciprocal rank fusion: score ``sum(1 / (rrf_k + rank))`` over the lists a doc is in.

    Ties (same fused score) go to the doc first seen in list order, so the result is
    deterministic. Returns the best ``k``.
    """
    if rrf_k < 0:
        raise SettingsError(f"RRF k must be 0 or more, not {rrf_k}")
    fused: dict[str, float] = {}
    positions: dict[str, int] = {}
    passages: dict[str, PassageMatch] = {}
    for hits in lists:
        for hit in hits:
            fused[hit.id] = fused.get(hit.id, 0.0) + 1.0 / (rrf_k + hit.rank)
            positions.setdefault(hit.id, hit.position)
            if hit.passage is not None:
                passages.setdefault(hit.id, hit.passage)
    order = sorted(fused, key=lambda doc_id: -fused[doc_id])[: max(0, k)]
    return [
        Hit(doc_id, positions[doc_id], r, fused[doc_id], passages.get(doc_id))
        for r, doc_id in enumerate(order, start=1)
    ]


class HybridRetriever:
    """Reciprocal rank fusion of a dense and a BM25 retriever (each read ``pool`` deep)."""

    kind: RetrieverKind = "hybrid"
    score_kind: RetrievalScoreKind = "rrf"

    def __init__(
        self,
        dense: DenseRetriever,
        bm25: BM25Index,
        *,
        rrf_k: int = DEFAULT_RRF_K,
        pool: int = HYBRID_POOL,
    ) -> None:
        if rrf_k < 0:
            raise SettingsError(f"RRF k must be 0 or more, not {rrf_k}")
        self.dense = dense
        self.bm25 = bm25
        self.rrf_k = int(rrf_k)
        self.pool = int(pool)
        self.name = f"hybrid RRF k={self.rrf_k}: {dense.name} + BM25"

    def retrieve(self, query: str, k: int) -> Retrieval:
        """Fuse the dense and BM25 lists for ``query``; return the best ``k``."""
        return self.retrieve_many([query], k)[0]

    def retrieve_many(self, queries: Sequence[str], k: int) -> list[Retrieval]:
        """Fuse per query; dense queries are embedded in one batch."""
        depth = max(k, self.pool)
        dense = self.dense.retrieve_many(queries, depth)
        out = []
        for query, d in zip(queries, dense, strict=True):
            b = self.bm25.retrieve(query, depth)
            t0 = time.perf_counter()
            hits = rrf_fuse([d.hits, b.hits], k, self.rrf_k)
            fuse = time.perf_counter() - t0
            out.append(
                Retrieval(hits, d.encode_seconds, d.search_seconds + b.search_seconds + fuse)
            )
        return out


_BM25_CACHE: OrderedDict[tuple[str, tuple[str, ...]], BM25Index] = OrderedDict()
_BM25_NAMES: dict[tuple[str, tuple[str, ...]], str] = {}  # key -> dataset name
_BM25_LOCK = threading.Lock()
BM25_CACHE_SIZE = 4


def forget_bm25(dataset_name: str) -> int:
    """Drop the BM25 indexes built from the dataset named ``dataset_name`` (an evicted
    upload's: :data:`core.data.upload_artefacts.EVICTION_HOOKS`); returns how many."""
    with _BM25_LOCK:
        keys = [k for k, name in _BM25_NAMES.items() if name == dataset_name]
        for key in keys:
            _BM25_CACHE.pop(key, None)
            _BM25_NAMES.pop(key, None)
    return len(keys)


upload_artefacts.EVICTION_HOOKS.append(forget_bm25)


def bm25_index(dataset: Dataset, fields: Sequence[str]) -> BM25Index:
    """A :class:`BM25Index`, reused per process for the same content and fields."""
    if isinstance(dataset, Collection):  # saved on disk: loaded memory-mapped, once
        return collection_bm25_index(dataset, dataset.check_fields(fields, "embed"))
    key = (dataset.content_hash, tuple(dataset.check_fields(fields, "embed")))
    with _BM25_LOCK:
        if key in _BM25_CACHE:
            _BM25_CACHE.move_to_end(key)
            return _BM25_CACHE[key]
    built = BM25Index(dataset, key[1])
    with _BM25_LOCK:
        _BM25_CACHE[key] = built
        _BM25_NAMES[key] = dataset.name
        while len(_BM25_CACHE) > BM25_CACHE_SIZE:
            _BM25_NAMES.pop(_BM25_CACHE.popitem(last=False)[0], None)
    return built


def make_retriever(
    kind: str,
    dataset: Dataset,
    fields: Sequence[str],
    *,
    encoder: Encoder | None = None,
    index: VectorIndex | None = None,
    rrf_k: int = DEFAULT_RRF_K,
) -> Retriever:
    """Build the retriever named by ``kind`` over ``fields`` of ``dataset``.

    Dense and hybrid need ``encoder`` and the ``index`` built from the same fields with it.
    """
    kind = check_retriever_kind(kind)
    if kind == "bm25":
        return bm25_index(dataset, fields)
    if encoder is None or index is None:
        raise SettingsError(f"{kind} retrieval needs an encoder and its index")
    dense = DenseRetriever(index, encoder)
    if kind == "dense":
        return dense
    return HybridRetriever(dense, bm25_index(dataset, fields), rrf_k=rrf_k)


def collection_bm25_index(collection: Collection, fields: Sequence[str]):
    """The collection's BM25 index, loaded memory-mapped once per collection object."""
    built = tuple(collection.manifest["embed_fields"])
    if tuple(fields) != built:
        raise SettingsError(
            f"collection '{collection.collection_name}' has BM25 over the fields "
            f"{', '.join(built)}; choose exactly those (or rebuild it with other --embed-fields)"
        )
    return collection.resource(
        "bm25",
        lambda: BM25Index.load(collection.folder / BM25_DIR, collection.ids, built),
    )
