"""Dense passages: a long document embedded as several vectors, retrieved by its best.

A bi-encoder reads at most ``max_seq_length`` tokens (256 for all-MiniLM-L6-v2); the
rest of a longer text never reaches its vector. With dense passages each document's
embedded text is cut into overlapping windows by :func:`core.search.passages.split_text`
(the same window, stride and per-document cap as the reranker's passages), with the
*bi-encoder's own* tokenizer and its own limit (``max_seq_length`` minus its two special
tokens), and every window gets a vector. A query then scores every passage, and a
document's score is its best passage's cosine (max over its passages): a document
appears once among the candidates, and its hit says which passage matched
(:class:`~core.search.hits.PassageMatch`).

A text that fits is one passage, the text itself, so its vector is the one plain
indexing gives. Cost: one vector per passage, so encoding the corpus and searching it
take about (passages / documents) times as long, and the index that much memory.

Vectors are cached on disk like plain embeddings (:mod:`core.search.index`), in a file
whose key adds the passage settings and the encoder's limit to the usual (model,
content, fields, format): the same corpus cut differently is never confused.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.data import upload_artefacts
from core.data.collection import Collection
from core.data.documents import Dataset
from core.models.base import Encoder, ProgressFn
from core.models.errors import SettingsError
from core.models.paths import atomic_write, cache_dir
from core.search.embedding_cache import embedding_cache_key, key_lock
from core.search.hits import Hit, PassageMatch, top_k
from core.search.passages import PassageSettings, split_text

# Bump when the layout or the cutting of dense passages changes.
DENSE_PASSAGE_VERSION = 1
# [CLS] text [SEP]: the special tokens a bi-encoder adds to one text.
SPECIAL_TOKENS = 2
DEFAULT_ENCODER_MAX_LENGTH = 512


def encoder_tokenizer(encoder: Encoder) -> tuple[Any, int, bool]:
    """The tokenizer that cuts passages for ``encoder``, its maximum length in tokens,
    and whether the tokenizer is the encoder's own.

    A local encoder gives its own (``passage_tokenizer()``) and ``max_seq_length``; one
    that has none (a hosted API) gets the packaged MiniLM WordPiece tokenizer and 512
    tokens, an approximation.
    """
    from core.models.cross_encoders import reranker_tokenizer

    length = int(getattr(encoder, "max_seq_length", 0) or DEFAULT_ENCODER_MAX_LENGTH)
    own = getattr(encoder, "passage_tokenizer", None)
    tokenizer = own() if callable(own) else None
    if tokenizer is not None:
        return tokenizer, length, True
    return reranker_tokenizer(None), length, False


def dense_budget(max_length: int) -> int:
    """Tokens of text one vector reads: the encoder's limit less its special tokens."""
    return max_length - SPECIAL_TOKENS


class PassageVectorIndex:
    """Exact cosine search over passage vectors, scored per document by the best passage.

    Rows are grouped by document in corpus order: document ``i`` owns ``counts[i]``
    consecutive rows starting at ``starts[i]``; ``spans`` are each row's character span
    in its document's embedded text; ``windows[i]`` how many windows the text had before
    the per-document cap. Same interface as :class:`~core.search.index.VectorIndex`.
    """

    def __init__(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        counts: np.ndarray,
        spans: np.ndarray,
        windows: np.ndarray,
        settings: PassageSettings,
    ) -> None:
        counts = np.asarray(counts, dtype=np.int64)
        if len(counts) != len(ids) or len(windows) != len(ids):
            raise ValueError(f"{len(ids)} ids for {len(counts)} passage counts")
        if len(ids) and (counts.min() < 1 or int(counts.sum()) != len(vectors)):
            raise ValueError("every document needs at least one passage vector")
        if len(spans) != len(vectors):
            raise ValueError(f"{len(spans)} spans for {len(vectors)} passage vectors")
        self.ids = tuple(ids)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.vectors.setflags(write=False)
        self.counts = counts
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
        self.windows = np.asarray(windows, dtype=np.int64)
        self.settings = settings

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_passages(self) -> int:
        """Passage vectors in the index."""
        return len(self.vectors)

    @property
    def passages_per_document(self) -> float:
        """Mean vectors per document: the factor on encoding and search cost."""
        return self.num_passages / max(1, len(self.ids))

    @property
    def documents_cut(self) -> int:
        """Documents with more than one passage (longer than one vector reads)."""
        return int((self.counts > 1).sum())

    @property
    def documents_in_part(self) -> int:
        """Documents the per-document cap left partly unembedded."""
        return int((self.windows > self.counts).sum())

    def document_scores(self, query_vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every document's score (its best passage's cosine) and every passage's."""
        q = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        passage = self.vectors @ q
        if not len(self.ids):
            return np.zeros(0, dtype=np.float32), passage
        return np.maximum.reduceat(passage, self.starts), passage

    def search(self, query_vector: np.ndarray, k: int) -> list[Hit]:
        """The ``k`` documents whose best passage is most similar, best first; each
        once, with the passage that matched. Equal scores keep corpus order."""
        k = max(0, min(k, len(self.ids)))
        if k == 0:
            return []
        docs, passage = self.document_scores(query_vector)
        order = top_k(docs, k)
        hits = []
        for rank, i in enumerate(order, start=1):
            start, count = int(self.starts[i]), int(self.counts[i])
            best = int(np.argmax(passage[start : start + count]))  # first of equals
            a, b = self.spans[start + best]
            match = PassageMatch(
                index=best,
                count=count,
                start=int(a),
                end=int(b),
                complete=bool(self.windows[i] <= count),
            )
            hits.append(Hit(self.ids[i], int(i), rank, float(docs[i]), match))
        return hits


def cut_corpus(
    texts: Sequence[str], tokenizer: Any, budget: int, settings: PassageSettings
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Every text's passages (flat, in order), passages per text, their character
    spans and each text's window count before the cap."""
    flat: list[str] = []
    counts, spans, windows = [], [], []
    for i, text in enumerate(texts):
        plan = split_text(str(i), text, tokenizer, budget, settings)
        counts.append(len(plan.passages))
        windows.append(plan.windows)
        for p in plan.passages:
            flat.append(p.text)
            spans.append((p.start, p.end))
    return (
        flat,
        np.asarray(counts, dtype=np.int64),
        np.asarray(spans, dtype=np.int64).reshape(-1, 2),
        np.asarray(windows, dtype=np.int64),
    )


def passage_spec(settings: PassageSettings, max_length: int, own_tokenizer: bool) -> dict:
    """What, besides model, content and fields, decides the passage vectors (cache key)."""
    return {
        "window": settings.window,
        "stride": settings.stride,
        "max_per_doc": settings.max_per_doc,
        "max_length": max_length,
        "tokenizer": "own" if own_tokenizer else "packaged-wordpiece",
        "version": DENSE_PASSAGE_VERSION,
    }


def build_passage_index(
    dataset: Dataset,
    encoder: Encoder,
    fields: Sequence[str],
    settings: PassageSettings,
    *,
    use_cache: bool = True,
    progress: ProgressFn | None = None,
):
    """A :class:`PassageVectorIndex` of ``dataset`` embedded from ``fields`` by passage,
    reusing cached vectors; whether they came from the cache, and the cache file (use
    :func:`core.search.index.build_index` with ``passages`` for an ``IndexBuild``)."""
    settings = settings.checked()
    fields = dataset.check_fields(fields, "embed")
    if isinstance(dataset, Collection):
        raise SettingsError(
            f"collection '{dataset.collection_name}' keeps one vector per document: dense "
            "passages work on datasets and uploads embedded in process"
        )
    tokenizer, max_length, own = encoder_tokenizer(encoder)
    spec = passage_spec(settings, max_length, own)
    model = getattr(encoder, "cache_key", encoder.name)
    key = embedding_cache_key(model, dataset, fields, passages=spec)
    path = cache_dir() / "embeddings" / f"{key}.npz" if use_cache else None
    with key_lock(key):
        loaded = _read(path, len(dataset), encoder.dimension) if path else None
        from_cache = loaded is not None
        if loaded is None:
            texts = dataset.texts(fields, "embed")
            flat, counts, spans, windows = cut_corpus(
                texts, tokenizer, dense_budget(max_length), settings
            )
            vectors = encoder.encode(flat, progress=progress)
            loaded = (vectors, counts, spans, windows)
            if path is not None:
                _write(path, *loaded)
                upload_artefacts.note(dataset.name, [path])  # an upload's: evicted with it
    return PassageVectorIndex(dataset.ids, *loaded, settings=settings), from_cache, path


def _read(path: Path, rows: int, dimension: int):
    try:
        with np.load(path, allow_pickle=False) as data:
            vectors, counts = data["vectors"], data["counts"]
            spans, windows = data["spans"], data["windows"]
    except (OSError, ValueError, EOFError, KeyError):
        return None
    if (
        vectors.dtype != np.float32
        or vectors.ndim != 2
        or vectors.shape[1] != dimension
        or counts.shape != (rows,)
        or windows.shape != (rows,)
        or int(counts.sum()) != len(vectors)
        or spans.shape != (len(vectors), 2)
    ):
        return None
    return vectors, counts, spans, windows


def _write(path: Path, vectors, counts, spans, windows) -> None:
    buffer = io.BytesIO()
    np.savez(
        buffer,
        vectors=np.asarray(vectors, dtype=np.float32),
        counts=counts,
        spans=spans,
        windows=windows,
    )
    atomic_write(path, buffer.getvalue())
