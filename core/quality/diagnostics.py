"""Diagnostics of a reranker: the recall ceiling of retrieval, and field ablation.

**Recall ceiling.** Retrieval hands the reranker only the first ``k`` candidates, so
an item the reranker would put first can never be shown if retrieval ranked it below
``k``. :func:`score_corpus` reranks the *whole* corpus once for a query (small
datasets only, at most :data:`MAX_CEILING_DOCS` records), which gives the reranker's
ideal top-N; :func:`recall_ceiling` then says, for any retrieval order, how many of
those N items the first ``x`` candidates contain, which ones the current setting
misses, and what reranking ``x`` candidates costs, estimated from the measured time
per pair.

**Field ablation.** :func:`field_ablation` reranks the same candidates reading
different field sets (title only, the default rerank fields, every text field) and
measures how far the orders agree (Kendall tau, rank-biased overlap, overlap@N).

Items are always matched by id, never by text. Ranks are 1-based.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.data.documents import Dataset, TextStyle, rerank_text, value_to_text
from core.models.base import RerankDoc, Reranker, ScoreKind
from core.models.cross_encoders import tokens_per_second
from core.models.errors import RerankError, SettingsError
from core.models.paths import atomic_write, cache_dir
from core.quality.metrics import kendall_tau, overlap_at_k, rank_biased_overlap
from core.search.budget import Cost
from core.search.passages import PassageSettings, estimate_reading

ProgressFn = Callable[[int, int], None]

MAX_CEILING_DOCS = 5000
"""Largest corpus :func:`score_corpus` reranks whole (movies: 1,000 records)."""

CEILING_GRID: tuple[int, ...] = (
    1, 2, 3, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000,
)  # fmt: skip
"""Candidate counts at which the ceiling curve is evaluated (plus a few exact points)."""

RBO_P = 0.9
CHUNK_SIZE = 100
# Bump when the stored format or the text the reranker reads changes.
CEILING_FORMAT_VERSION = 1


# --- scoring the whole corpus -----------------------------------------------------------


@dataclass(frozen=True)
class CorpusScores:
    """One reranker's score for every record of a dataset against one query.

    ``ids`` and ``scores`` are aligned, in the dataset's row order. ``seconds`` is the
    wall time reranking all ``len(ids)`` pairs took when the scores were computed (not
    when they were read back from a cache: ``from_cache`` says which); pairs the
    reranker had already scored in its own score cache make it a little optimistic.
    """

    query: str
    reranker: str
    score_kind: ScoreKind
    rerank_fields: tuple[str, ...]
    ids: tuple[str, ...]
    scores: tuple[float, ...]
    seconds: float
    from_cache: bool = False

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def per_pair_seconds(self) -> float:
        """Measured seconds per (query, document) pair."""
        return self.seconds / max(len(self.ids), 1)

    def by_id(self) -> dict[str, float]:
        """Score of each document id."""
        return dict(zip(self.ids, self.scores, strict=True))


def ceiling_cache_key(
    reranker: Reranker,
    dataset: Dataset,
    rerank_fields: Sequence[str],
    query: str,
    style: TextStyle = "fields",
) -> str:
    """Hex key naming the whole-corpus scores of ``query`` under ``reranker``.

    Built from the reranker's ``cache_key`` (else its ``name``) and ``max_length``, the
    dataset's content hash, the fields and text style the reranker reads, and the query.
    """
    spec = json.dumps(
        {
            "reranker": str(getattr(reranker, "cache_key", None) or reranker.name),
            "max_length": getattr(reranker, "max_length", None),
            "content": dataset.content_hash,
            "fields": list(rerank_fields),
            "style": style,
            "query": query,
            "format": CEILING_FORMAT_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(spec.encode()).hexdigest()


class _Memory:
    """A small thread-safe LRU of computed :class:`CorpusScores`, shared by sessions."""

    def __init__(self, size: int = 64) -> None:
        self._items: OrderedDict[str, CorpusScores] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, key: str) -> CorpusScores | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: str, value: CorpusScores) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_MEMORY = _Memory()
_KEY_LOCKS: dict[str, threading.Lock] = {}
_KEY_LOCKS_GUARD = threading.Lock()


def _key_lock(key: str) -> threading.Lock:
    with _KEY_LOCKS_GUARD:
        return _KEY_LOCKS.setdefault(key, threading.Lock())


def clear_memory_cache() -> None:
    """Forget the in-memory whole-corpus scores (the disk cache stays)."""
    _MEMORY.clear()


def ceiling_cache_path(key: str) -> Path:
    """Where the whole-corpus scores named ``key`` are stored on disk."""
    return cache_dir() / "ceiling" / f"{key}.json"


def ceiling_cost(
    dataset: Dataset,
    query: str,
    reranker: Reranker,
    rerank_fields: Sequence[str] | None = None,
    *,
    style: TextStyle = "fields",
) -> Cost:
    """What :func:`score_corpus` would cost for this query: 0 when its scores are cached,
    else every record's pair at the reranker's measured (or this machine's) rate."""
    query = (query or "").strip()
    fields = dataset.check_fields(rerank_fields or dataset.default_rerank_fields, "rerank")
    what = f"Reranking all {len(dataset):,} records for this query"
    key = ceiling_cache_key(reranker, dataset, fields, query, style)
    if _MEMORY.get(key) is not None or ceiling_cache_path(key).is_file():
        return Cost(0.0, what)
    texts = dataset.texts(fields, "rerank", style)
    step = max(1, len(texts) // 200)
    sample = texts[::step]
    reading = estimate_reading(sample, PassageSettings(aggregate="first"), query=query or "x")
    rate, _ = tokens_per_second(reranker, reading.tokens_per_pair)
    return Cost(len(texts) * reading.tokens_per_pair / max(rate, 1.0), what)


def score_corpus(
    dataset: Dataset,
    query: str,
    reranker: Reranker,
    rerank_fields: Sequence[str] | None = None,
    *,
    style: TextStyle = "fields",
    use_cache: bool = True,
    progress: ProgressFn | None = None,
    chunk_size: int = CHUNK_SIZE,
    max_docs: int = MAX_CEILING_DOCS,
) -> CorpusScores:
    """Rerank every record of ``dataset`` against ``query``, or read a cached result.

    Cached in memory and on disk (``<cache dir>/ceiling/<key>.json``, written
    atomically; see :func:`ceiling_cache_key`), so a query is scored once per corpus,
    reranker and field set. Records are sent in chunks of ``chunk_size`` so that
    ``progress(done, total)`` can report; a cross-encoder scores each pair on its own,
    so chunking does not change any score. Raises :class:`SettingsError` for an empty
    query or a corpus above ``max_docs`` records.
    """
    query = (query or "").strip()
    if not query:
        raise SettingsError("the query is empty: type what you are looking for")
    if len(dataset) > max_docs:
        raise SettingsError(
            f"the recall ceiling reranks the whole corpus, which is limited to "
            f"{max_docs:,} records; this dataset has {len(dataset):,}"
        )
    fields = dataset.check_fields(rerank_fields or dataset.default_rerank_fields, "rerank")
    key = ceiling_cache_key(reranker, dataset, fields, query, style)
    path = ceiling_cache_path(key) if use_cache else None
    with _key_lock(key):
        if use_cache:
            cached = _MEMORY.get(key) or _read_cached(path, dataset)
            if cached is not None:
                _MEMORY.put(key, cached)
                return cached
        texts = dataset.texts(fields, "rerank", style)
        scores: list[float] = [0.0] * len(texts)
        total = len(texts)
        started = time.perf_counter()
        if progress is not None:
            progress(0, total)
        for start in range(0, total, max(1, chunk_size)):
            docs = [
                RerankDoc(id=dataset.ids[i], text=texts[i])
                for i in range(start, min(start + chunk_size, total))
            ]
            results = reranker.rank(query, docs)
            if len(results) != len(docs):
                raise RerankError(
                    f"{reranker.name} returned {len(results)} results for {len(docs)} documents"
                )
            for r in results:
                scores[start + r.index] = float(r.score)
            if progress is not None:
                progress(start + len(docs), total)
        seconds = time.perf_counter() - started
        computed = CorpusScores(
            query=query,
            reranker=reranker.name,
            score_kind=reranker.score_kind,
            rerank_fields=fields,
            ids=dataset.ids,
            scores=tuple(scores),
            seconds=seconds,
        )
        if use_cache:
            _write_cached(path, computed)
            _MEMORY.put(key, _as_cached(computed))
        return computed


def _as_cached(scores: CorpusScores) -> CorpusScores:
    from dataclasses import replace

    return replace(scores, from_cache=True)


def _write_cached(path: Path, scores: CorpusScores) -> None:
    payload = {
        "format": CEILING_FORMAT_VERSION,
        "query": scores.query,
        "reranker": scores.reranker,
        "score_kind": scores.score_kind,
        "rerank_fields": list(scores.rerank_fields),
        "ids": list(scores.ids),
        "scores": list(scores.scores),
        "seconds": scores.seconds,
    }
    atomic_write(path, json.dumps(payload).encode())


def _read_cached(path: Path, dataset: Dataset) -> CorpusScores | None:
    try:
        payload = json.loads(path.read_bytes())
        if payload.get("format") != CEILING_FORMAT_VERSION:
            return None
        ids = tuple(str(i) for i in payload["ids"])
        values = tuple(float(s) for s in payload["scores"])
        if ids != dataset.ids or len(values) != len(ids):
            return None
        return CorpusScores(
            query=str(payload["query"]),
            reranker=str(payload["reranker"]),
            score_kind=payload["score_kind"],
            rerank_fields=tuple(payload["rerank_fields"]),
            ids=ids,
            scores=values,
            seconds=float(payload["seconds"]),
            from_cache=True,
        )
    except (OSError, ValueError, KeyError, TypeError):  # missing, partial or foreign file
        return None


# --- the recall ceiling -----------------------------------------------------------------


@dataclass(frozen=True)
class CeilingItem:
    """One item of the reranker's ideal top-N.

    ``retrieval_rank`` is its position in the retrieval order (None: never retrieved).
    """

    id: str
    title: str
    ideal_rank: int
    retrieval_rank: int | None
    score: float

    def reached_with(self, candidates: int) -> bool:
        """Whether the first ``candidates`` retrieved include this item."""
        return self.retrieval_rank is not None and self.retrieval_rank <= candidates


@dataclass(frozen=True)
class CeilingPoint:
    """How many ideal top-N items ``candidates`` retrieved reach, and the rerank cost.

    ``estimated_ms`` is ``candidates`` times the measured time per pair: an estimate.
    """

    candidates: int
    reached: int
    estimated_ms: float


@dataclass(frozen=True)
class CeilingReport:
    """What the reranker could show with the whole corpus vs with ``num_candidates``.

    ``ideal`` is the reranker's top ``num_results`` over the whole corpus; ``curve``
    counts how many of them the first ``x`` retrieved contain, for growing ``x``.
    """

    query: str
    reranker: str
    corpus_size: int
    num_candidates: int
    num_results: int
    ideal: tuple[CeilingItem, ...]
    curve: tuple[CeilingPoint, ...]
    rerank_seconds: float
    from_cache: bool

    @property
    def per_pair_ms(self) -> float:
        """Measured milliseconds per reranked pair (whole corpus / its size)."""
        return 1000.0 * self.rerank_seconds / max(self.corpus_size, 1)

    @property
    def reached(self) -> int:
        """Ideal top-N items inside the current ``num_candidates``."""
        return sum(item.reached_with(self.num_candidates) for item in self.ideal)

    @property
    def missed(self) -> tuple[CeilingItem, ...]:
        """Ideal top-N items retrieval did not fetch with ``num_candidates``."""
        return tuple(i for i in self.ideal if not i.reached_with(self.num_candidates))

    @property
    def candidates_for_all(self) -> int | None:
        """Fewest candidates that reach the whole ideal top-N (None: some never retrieved)."""
        ranks = [i.retrieval_rank for i in self.ideal]
        if not ranks or any(r is None for r in ranks):
            return None
        return max(r for r in ranks if r is not None)

    def estimated_ms(self, candidates: int) -> float:
        """Estimated rerank time of ``candidates`` pairs, from the measured per-pair cost."""
        return self.per_pair_ms * candidates


def recall_ceiling(
    dataset: Dataset,
    scores: CorpusScores,
    retrieval_order: Sequence[str],
    *,
    num_candidates: int,
    num_results: int = 10,
    grid: Sequence[int] = CEILING_GRID,
) -> CeilingReport:
    """The reranker's ideal top-N over the whole corpus and how retrieval reaches it.

    ``retrieval_order`` is any retriever's order of doc ids, best first (it may leave
    documents out: those are never reached). The ideal order sorts the whole corpus by
    score, ties broken by retrieval position, then row order. A cross-encoder scores
    one (query, document) pair at a time, so a document's score does not depend on
    which other documents are scored with it: reranking the first ``x`` retrieved
    gives exactly the ideal order restricted to them (ties too, as rerankers keep input
    order on ties), and the reranked top-N of ``x`` candidates holds exactly the
    ideal top-N items found among them. The curve is therefore computed from the one
    whole-corpus scoring, at the ``grid`` points up to the corpus size plus the
    current setting, the corpus size and every count where another ideal item arrives.
    """
    if num_results < 1:
        raise SettingsError(f"number of results must be at least 1, not {num_results}")
    if num_candidates < 1:
        raise SettingsError(f"number of candidates must be at least 1, not {num_candidates}")
    if tuple(scores.ids) != tuple(dataset.ids):
        raise SettingsError("these scores were computed on another dataset")
    position: dict[str, int] = {}
    for rank, doc_id in enumerate(retrieval_order, start=1):
        position.setdefault(doc_id, rank)
    known = set(dataset.ids)
    unknown = [d for d in position if d not in known]
    if unknown:
        raise SettingsError(f"retrieval order names unknown document id {unknown[0]!r}")
    never = math.inf
    order = sorted(
        range(len(scores.ids)),
        key=lambda i: (-scores.scores[i], position.get(scores.ids[i], never), i),
    )
    ideal = tuple(
        CeilingItem(
            id=scores.ids[i],
            title=dataset.title(scores.ids[i]),
            ideal_rank=rank,
            retrieval_rank=position.get(scores.ids[i]),
            score=scores.scores[i],
        )
        for rank, i in enumerate(order[:num_results], start=1)
    )
    size = len(scores.ids)
    per_pair_ms = 1000.0 * scores.seconds / max(size, 1)
    xs = {x for x in grid if x <= size} | {size, min(num_candidates, size)}
    xs |= {i.retrieval_rank for i in ideal if i.retrieval_rank is not None}
    curve = tuple(
        CeilingPoint(
            candidates=x,
            reached=sum(item.reached_with(x) for item in ideal),
            estimated_ms=per_pair_ms * x,
        )
        for x in sorted(xs)
    )
    return CeilingReport(
        query=scores.query,
        reranker=scores.reranker,
        corpus_size=size,
        num_candidates=num_candidates,
        num_results=min(num_results, size),
        ideal=ideal,
        curve=curve,
        rerank_seconds=scores.seconds,
        from_cache=scores.from_cache,
    )


# --- field ablation ---------------------------------------------------------------------


@dataclass(frozen=True)
class FieldVariant:
    """A named set of fields the reranker reads."""

    name: str
    fields: tuple[str, ...]


def text_fields(dataset: Dataset, sample: int = 200) -> tuple[str, ...]:
    """Every field (but the id field) holding text in the first ``sample`` records."""
    out = []
    for name in dataset.fields:
        if name == dataset.id_field:
            continue
        for record in dataset.records[:sample]:
            value = record.get(name)
            if isinstance(value, list):
                value = [v for v in value if isinstance(v, str)]
            if isinstance(value, str | list) and value_to_text(value):
                out.append(name)
                break
    return tuple(out)


def field_variants(dataset: Dataset) -> tuple[FieldVariant, ...]:
    """Title only, the default rerank fields, and every text field (duplicates dropped).

    On movies: ``title``; ``title + overview``; all five fields.
    """
    defaults = tuple(dataset.default_rerank_fields)
    title = dataset.title_field if dataset.title_field in dataset.fields else None
    every = text_fields(dataset) or defaults
    candidates = []
    if title:
        candidates.append(FieldVariant("title only", (title,)))
    if defaults:
        label = " + ".join(defaults) if len(defaults) <= 3 else f"default ({len(defaults)} fields)"
        candidates.append(FieldVariant(label, defaults))
    if every:
        candidates.append(FieldVariant(f"all fields ({len(every)})", every))
    variants: list[FieldVariant] = []
    for v in candidates:
        if all(v.fields != seen.fields for seen in variants):
            variants.append(v)
    return tuple(variants)


@dataclass(frozen=True)
class VariantRanking:
    """The candidates reranked reading one field set: ids best first, their scores."""

    variant: FieldVariant
    order: tuple[str, ...]
    scores: tuple[float, ...]
    seconds: float

    def rank(self, doc_id: str) -> int:
        """1-based rank of ``doc_id`` under this variant."""
        return self.order.index(doc_id) + 1

    def score(self, doc_id: str) -> float:
        """The reranker's score of ``doc_id`` under this variant."""
        return self.scores[self.order.index(doc_id)]


@dataclass(frozen=True)
class Agreement:
    """How far two variants' orders agree over the same candidates."""

    a: str
    b: str
    kendall_tau: float
    rbo: float
    overlap: float


@dataclass(frozen=True)
class AblationReport:
    """The same candidates reranked under several field sets, and their agreement.

    ``candidates`` is the retrieval order of what was reranked; ``agreements`` holds
    one entry per pair of variants (Kendall tau over all candidates, RBO with
    p = :data:`RBO_P`, overlap of the two top-``num_results`` sets).
    """

    query: str
    reranker: str
    num_results: int
    candidates: tuple[str, ...]
    titles: tuple[str, ...]
    rankings: tuple[VariantRanking, ...]
    agreements: tuple[Agreement, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.variant.name for r in self.rankings)

    def ranking(self, name: str) -> VariantRanking:
        """The ranking of the variant called ``name``."""
        for r in self.rankings:
            if r.variant.name == name:
                return r
        raise KeyError(name)

    def title(self, doc_id: str) -> str:
        return self.titles[self.candidates.index(doc_id)]

    def top(self, name: str) -> tuple[str, ...]:
        """Top ``num_results`` ids under the variant ``name``."""
        return self.ranking(name).order[: self.num_results]

    def top_union(self) -> tuple[str, ...]:
        """Ids in any variant's top-N, in order of first appearance (variant by variant)."""
        return tuple(dict.fromkeys(d for r in self.rankings for d in self.top(r.variant.name)))

    def ranks(self, doc_id: str) -> dict[str, int]:
        """The rank of ``doc_id`` under every variant, by variant name."""
        return {r.variant.name: r.rank(doc_id) for r in self.rankings}

    def side_by_side(self, name: str) -> list[dict[str, object]]:
        """Rows of the top-N under ``name``: rank, title, score and ranks elsewhere."""
        ranking = self.ranking(name)
        rows = []
        for rank, doc_id in enumerate(self.top(name), start=1):
            row: dict[str, object] = {
                "#": rank,
                "title": self.title(doc_id),
                "score": ranking.score(doc_id),
                "retrieval #": self.candidates.index(doc_id) + 1,
            }
            for other in self.rankings:
                if other.variant.name != name:
                    row[f"{other.variant.name} #"] = other.rank(doc_id)
            row["id"] = doc_id
            rows.append(row)
        return rows

    def union_rows(self) -> list[dict[str, object]]:
        """One row per item in any variant's top-N: title, retrieval rank, and its rank
        and score under every variant (columns ``"<name> #"``, ``"<name> score"``)."""
        rows = []
        for doc_id in self.top_union():
            row: dict[str, object] = {
                "id": doc_id,
                "title": self.title(doc_id),
                "retrieval #": self.candidates.index(doc_id) + 1,
            }
            for r in self.rankings:
                row[f"{r.variant.name} #"] = r.rank(doc_id)
                row[f"{r.variant.name} score"] = r.score(doc_id)
            rows.append(row)
        return rows


def field_ablation(
    dataset: Dataset,
    query: str,
    reranker: Reranker,
    candidates: Sequence[str],
    *,
    variants: Sequence[FieldVariant] | None = None,
    num_results: int = 10,
    style: TextStyle = "fields",
) -> AblationReport:
    """Rerank the same ``candidates`` (ids, retrieval order) under each field variant.

    Each variant's text is built from its fields only (:func:`core.data.documents.rerank_text`),
    so a title-only rerank reads ``"title: The Dark Knight"`` and nothing else.
    """
    query = (query or "").strip()
    if not query:
        raise SettingsError("the query is empty: type what you are looking for")
    ids = tuple(dict.fromkeys(candidates))
    if not ids:
        raise SettingsError("there are no candidates to rerank")
    if num_results < 1:
        raise SettingsError(f"number of results must be at least 1, not {num_results}")
    variants = tuple(variants) if variants is not None else field_variants(dataset)
    if not variants:
        raise SettingsError("no field variants to compare")
    for v in variants:
        dataset.check_fields(v.fields, "rerank")
    records = [dataset.record(doc_id) for doc_id in ids]
    rankings = []
    for v in variants:
        docs = [
            RerankDoc(id=doc_id, text=rerank_text(record, v.fields, style))
            for doc_id, record in zip(ids, records, strict=True)
        ]
        started = time.perf_counter()
        results = reranker.rank(query, docs)
        seconds = time.perf_counter() - started
        if len(results) != len(docs):
            raise RerankError(
                f"{reranker.name} returned {len(results)} results for {len(docs)} documents"
            )
        rankings.append(
            VariantRanking(
                variant=v,
                order=tuple(r.id for r in results),
                scores=tuple(float(r.score) for r in results),
                seconds=seconds,
            )
        )
    n = min(num_results, len(ids))
    agreements = tuple(
        Agreement(
            a=a.variant.name,
            b=b.variant.name,
            kendall_tau=kendall_tau(a.order, b.order),
            rbo=rank_biased_overlap(a.order, b.order, RBO_P),
            overlap=overlap_at_k(a.order, b.order, n),
        )
        for i, a in enumerate(rankings)
        for b in rankings[i + 1 :]
    )
    return AblationReport(
        query=query,
        reranker=reranker.name,
        num_results=n,
        candidates=ids,
        titles=tuple(dataset.title(d) for d in ids),
        rankings=tuple(rankings),
        agreements=agreements,
    )
