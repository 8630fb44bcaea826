"""Collections: datasets built once on disk, opened lazily, read by id.

A collection is what a corpus too large for memory becomes: ``python -m core collection
build FILE --name NAME`` streams the file once and writes one folder,
``<cache dir>/collections/NAME/`` (see :func:`collections_dir`). Opening it reads only
the manifest; records are fetched by id for the candidates a query needs, and vectors
and indexes are memory-mapped.

On-disk format, version 1 (stable: other tools, e.g. a Milvus exporter, read it)
-------------------------------------------------------------------------------

``manifest.json``
    Written last, atomically: a folder without it is an unfinished build. Keys:
    ``format`` (``"rerank-collection"``), ``format_version`` (1), ``name``, ``count``
    (records), ``dimension``, ``model`` (encoder display name) and ``model_key`` (the
    encoder's cache key, which names its numerics), ``embed_fields`` (what was embedded
    and BM25-indexed, joined as :func:`core.data.documents.embed_text` does),
    ``rerank_fields`` (default for the reranker), ``fields`` (every top-level key seen,
    in order of first appearance), ``id_field`` (null: ids are row positions ``"0"``,
    ``"1"``, ...), ``title_field``, ``content_hash`` (the same sha256 a
    :class:`~core.data.documents.Dataset` of the same records has), ``source`` (path,
    format, bytes), ``vectors``, ``index``, ``bm25`` (below), ``versions`` (library
    versions that wrote it), ``timings`` (seconds per build stage) and ``created``.

``records.sqlite``
    SQLite table ``records(pos INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL)``: ``pos`` is the 0-based row (the same row in every other
    file), ``id`` the record's string id, ``record`` its canonical JSON (keys sorted,
    UTF-8, non-JSON values as strings). Table ``meta(key TEXT PRIMARY KEY, value TEXT)``
    holds build bookkeeping only.

``vectors.npy``
    float32 array of shape ``(count, dimension)``: row ``pos`` is the unit-length
    embedding of record ``pos`` (cosine similarity = dot product). Open with
    ``numpy.load(path, mmap_mode="r")``.

``ann.faiss`` (only when ``index.kind`` is ``"ivf-sq8"``)
    A faiss ``IndexIVFScalarQuantizer`` (inner product, 8-bit codes) over the vectors,
    whose faiss ids are row positions; written with ``faiss.write_index`` and read with
    ``IO_FLAG_MMAP | IO_FLAG_READ_ONLY``. ``index`` records ``nlist``, the ``nprobe``
    chosen at build time and the recall@100 measured against exact search then.
    ``index.kind`` ``"exact"``: no file; search is exhaustive over ``vectors.npy``.

``bm25/``
    A ``bm25s`` index in bm25s' own save format (``data/indices/indptr.csc.index.npy``,
    ``vocab.index.json``, ``params.index.json``), loadable with
    ``bm25s.BM25.load(path, mmap=True)``; document ``pos`` is column ``pos``. Tokens:
    lower-cased, English stop words removed, Snowball-stemmed (as the in-memory BM25).

Reader API (everything another tool needs; no faiss or bm25s import)
--------------------------------------------------------------------

* :func:`list_collections` / :func:`open_collection` (by name) / :class:`Collection`.
* :attr:`Collection.manifest` (a dict, as above), :attr:`Collection.vectors` (memmap).
* :meth:`Collection.record`, :meth:`Collection.records_for`, :meth:`Collection.ids_at`,
  :meth:`Collection.position`, :meth:`Collection.has_id`.
* :meth:`Collection.iter_batches` — ``(positions, ids, records, vectors)`` in row order,
  for exports.

A :class:`Collection` is also a drop-in for :class:`~core.data.documents.Dataset`
wherever the search pipeline and views read one (see :class:`core.data.documents.Corpus`).
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.data.documents import TextStyle, embed_text, rerank_text, value_to_text
from core.models.errors import DatasetError, DatasetUnavailableError, FieldError
from core.models.paths import cache_dir

FORMAT = "rerank-collection"
FORMAT_VERSION = 1
PREFIX = "collection:"
MANIFEST = "manifest.json"
RECORDS = "records.sqlite"
VECTORS = "vectors.npy"
ANN_INDEX = "ann.faiss"
BM25_DIR = "bm25"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def collections_dir() -> Path:
    """Where collections live: ``<cache dir>/collections``."""
    return cache_dir() / "collections"


def check_name(name: str) -> str:
    """Return ``name`` if it can name a collection folder; raise :class:`DatasetError`."""
    if not _NAME_RE.match(name or ""):
        raise DatasetError(
            f"invalid collection name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def collection_path(name: str) -> Path:
    """The folder of collection ``name`` (it may not exist)."""
    return collections_dir() / check_name(name)


def is_collection_id(dataset: str) -> bool:
    """Whether a dataset id names a collection (``collection:NAME``)."""
    return dataset.startswith(PREFIX)


def collection_id(name: str) -> str:
    """The dataset id of collection ``name``, as used in links and the CLI."""
    return PREFIX + name


@dataclass(frozen=True)
class CollectionInfo:
    """What a listing shows about one built collection."""

    name: str
    count: int
    model: str
    index_kind: str
    recall_at_100: float | None

    @property
    def dataset_id(self) -> str:
        """``collection:NAME``."""
        return collection_id(self.name)

    @property
    def label(self) -> str:
        """A one-line label for pickers."""
        index = (
            "exact search"
            if self.index_kind == "exact"
            else f"approximate, recall@100 {self.recall_at_100:.3f}"
            if self.recall_at_100 is not None
            else "approximate"
        )
        return f"Collection {self.name} ({self.count:,} records, {index})"


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of the collection in ``folder``; :class:`DatasetUnavailableError` if
    it is missing (an unfinished build), unreadable or of another format."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DatasetUnavailableError(
            f"collection '{folder.name}' is not built (no manifest in {folder}); "
            "run: python -m core collection build FILE --name " + folder.name
        ) from exc
    except (OSError, ValueError) as exc:
        raise DatasetUnavailableError(f"cannot read {path}: {exc}") from exc
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise DatasetUnavailableError(
            f"{path} is not a version-{FORMAT_VERSION} collection manifest; rebuild it"
        )
    return manifest


def list_collections() -> list[CollectionInfo]:
    """Every built collection (a folder with a valid manifest), by name."""
    root = collections_dir()
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            m = read_manifest(folder)
        except DatasetUnavailableError:
            continue
        index = m.get("index") or {}
        found.append(
            CollectionInfo(
                name=m["name"],
                count=int(m["count"]),
                model=m.get("model", ""),
                index_kind=index.get("kind", "exact"),
                recall_at_100=index.get("recall_at_100"),
            )
        )
    return found


class _Rows(Sequence):
    """A read-only, lazy sequence over a collection's rows (ids or records)."""

    def __init__(self, owner: Collection, column: Literal["id", "record"]) -> None:
        self._owner = owner
        self._column = column

    def __len__(self) -> int:
        return len(self._owner)

    def __getitem__(self, index):  # type: ignore[override]
        n = len(self)
        if isinstance(index, slice):
            return self.take(range(n)[index])
        i = int(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(index)
        return self.take([i])[0]

    def __iter__(self) -> Iterator:
        for start in range(0, len(self), 10_000):
            yield from self.take(range(start, min(start + 10_000, len(self))))

    def take(self, positions: Sequence[int]) -> list:
        """Values at ``positions``, in that order (one query per 900 positions)."""
        if self._column == "id":
            return self._owner.ids_at(positions)
        return self._owner.records_at(positions)


class Collection:
    """A built collection, opened lazily: a :class:`~core.data.documents.Dataset` look-alike.

    Opening reads the manifest only. ``ids`` and ``records`` are lazy sequences by row
    position; :meth:`record` and :meth:`records_for` fetch by id (recent records are kept
    in a small cache). Safe to share between threads: SQLite is used under a lock.
    """

    CACHE_RECORDS = 4096

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        m = self.manifest
        self.collection_name: str = m["name"]
        self.name = collection_id(self.collection_name)
        self.fields: tuple[str, ...] = tuple(m["fields"])
        self.id_field: str | None = m.get("id_field")
        self.title_field: str | None = m.get("title_field")
        self.default_embed_fields: tuple[str, ...] = tuple(m["embed_fields"])
        self.default_rerank_fields: tuple[str, ...] = tuple(m["rerank_fields"])
        self.source = str(self.folder)
        self.content_hash: str = m["content_hash"]
        self._count = int(m["count"])
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._cache: OrderedDict[str, tuple[int, dict[str, Any]]] = OrderedDict()
        self._resources: dict[str, Any] = {}
        self.ids = _Rows(self, "id")
        self.records = _Rows(self, "record")

    # --- the Dataset look-alike ----------------------------------------------------
    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"Collection({self.collection_name!r}, {self._count:,} records)"

    @property
    def index_kind(self) -> str:
        """``"exact"`` or ``"ivf-sq8"`` (approximate)."""
        return (self.manifest.get("index") or {}).get("kind", "exact")

    @property
    def approximate(self) -> bool:
        """Whether dense search is approximate (an ANN index) rather than exhaustive."""
        return self.index_kind != "exact"

    def position(self, doc_id: str) -> int:
        """Row position of the record with id ``doc_id`` (KeyError if absent)."""
        return self._fetch([doc_id])[doc_id][0]

    def has_id(self, doc_id: str) -> bool:
        """Whether a record has id ``doc_id``."""
        return doc_id in self._fetch([doc_id], missing_ok=True)

    def record(self, doc_id: str) -> dict[str, Any]:
        """The record with id ``doc_id`` (KeyError if absent)."""
        return self._fetch([doc_id])[doc_id][1]

    def records_for(self, doc_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Records of ``doc_ids``, in that order, in one round trip."""
        found = self._fetch(doc_ids)
        return [found[d][1] for d in doc_ids]

    def title(self, doc_id: str) -> str:
        """A short display title for a record (its title field, else its id)."""
        if self.title_field:
            text = value_to_text(self.record(doc_id).get(self.title_field))
            if text:
                return text
        return f"#{doc_id}"

    def check_fields(self, fields, role: str) -> tuple[str, ...]:
        """Validate chosen fields; raise :class:`FieldError` naming the unknown ones."""
        chosen = tuple(fields)
        if not chosen:
            raise FieldError(f"choose at least one field to {role}")
        unknown = [f for f in chosen if f not in self.fields]
        if unknown:
            raise FieldError(
                f"unknown field(s) to {role}: {', '.join(unknown)}; "
                f"this collection has: {', '.join(self.fields)}"
            )
        return chosen

    def texts(
        self,
        fields: Sequence[str],
        kind: Literal["embed", "rerank"] = "embed",
        style: TextStyle = "fields",
    ) -> list[str]:
        """Texts of every record, in row order (reads the whole store: small ones only)."""
        if kind == "embed":
            return [embed_text(r, fields) for r in self.records]
        return [rerank_text(r, fields, style) for r in self.records]

    # --- reader API ----------------------------------------------------------------
    @cached_property
    def vectors(self) -> np.ndarray:
        """The ``(count, dimension)`` float32 unit vectors, memory-mapped read-only."""
        return np.load(self.folder / VECTORS, mmap_mode="r", allow_pickle=False)

    def ids_at(self, positions: Sequence[int]) -> list[str]:
        """Ids of the records at row ``positions``, in that order."""
        return [value for value, _ in self._by_positions(positions, "id")]

    def records_at(self, positions: Sequence[int]) -> list[dict[str, Any]]:
        """Records at row ``positions``, in that order."""
        return [json.loads(value) for value, _ in self._by_positions(positions, "record")]

    def iter_batches(
        self, batch_size: int = 10_000
    ) -> Iterator[tuple[range, list[str], list[dict[str, Any]], np.ndarray]]:
        """``(positions, ids, records, vectors)`` for every row, in row order."""
        for start in range(0, len(self), batch_size):
            stop = min(start + batch_size, len(self))
            with self._lock:
                rows = (
                    self._conn()
                    .execute(
                        "SELECT id, record FROM records WHERE pos >= ? AND pos < ? ORDER BY pos",
                        (start, stop),
                    )
                    .fetchall()
                )
            yield (
                range(start, stop),
                [r[0] for r in rows],
                [json.loads(r[1]) for r in rows],
                np.asarray(self.vectors[start:stop]),
            )

    def resource(self, key: str, factory):
        """A per-collection object built once by ``factory()`` (indexes opened lazily)."""
        with self._lock:
            if key in self._resources:
                return self._resources[key]
        built = factory()
        with self._lock:
            return self._resources.setdefault(key, built)

    def close(self) -> None:
        """Close the SQLite connection (it reopens on the next read)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # --- internals -------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            uri = f"file:{self.folder / RECORDS}?mode=ro"
            try:
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            except sqlite3.Error as exc:
                path = self.folder / RECORDS
                raise DatasetUnavailableError(f"cannot open {path}: {exc}") from exc
        return self._db

    def _by_positions(self, positions: Sequence[int], column: str) -> list[tuple[str, int]]:
        wanted = [int(p) for p in positions]
        found: dict[int, str] = {}
        with self._lock:
            conn = self._conn()
            for start in range(0, len(wanted), 900):
                part = wanted[start : start + 900]
                marks = ",".join("?" * len(part))
                found.update(
                    (pos, value)
                    for pos, value in conn.execute(
                        f"SELECT pos, {column} FROM records WHERE pos IN ({marks})", part
                    )
                )
        missing = [p for p in wanted if p not in found]
        if missing:
            raise IndexError(f"no row {missing[0]} in collection {self.collection_name}")
        return [(found[p], p) for p in wanted]

    def _fetch(
        self, doc_ids: Sequence[str], *, missing_ok: bool = False
    ) -> dict[str, tuple[int, dict[str, Any]]]:
        out: dict[str, tuple[int, dict[str, Any]]] = {}
        with self._lock:
            todo = []
            for doc_id in dict.fromkeys(doc_ids):
                hit = self._cache.get(doc_id)
                if hit is not None:
                    self._cache.move_to_end(doc_id)
                    out[doc_id] = hit
                else:
                    todo.append(doc_id)
            conn = self._conn()
            for start in range(0, len(todo), 900):
                part = todo[start : start + 900]
                marks = ",".join("?" * len(part))
                for pos, doc_id, text in conn.execute(
                    f"SELECT pos, id, record FROM records WHERE id IN ({marks})", part
                ):
                    out[doc_id] = self._cache[doc_id] = (pos, json.loads(text))
            while len(self._cache) > self.CACHE_RECORDS:
                self._cache.popitem(last=False)
        if not missing_ok:
            for doc_id in doc_ids:
                if doc_id not in out:
                    raise KeyError(doc_id)
        return out


_OPEN: dict[str, Collection] = {}
_OPEN_LOCK = threading.Lock()


def open_collection(name: str) -> Collection:
    """The built collection ``name`` (or ``collection:NAME``), opened once per process
    and reopened when its manifest changed (a rebuild)."""
    name = name.removeprefix(PREFIX)
    folder = collection_path(name)
    manifest = folder / MANIFEST
    try:
        stamp = f"{manifest.stat().st_mtime_ns}"
    except OSError:
        stamp = ""
    key = f"{name}@{stamp}"
    with _OPEN_LOCK:
        found = _OPEN.get(key)
        if found is not None:
            return found
    if not folder.is_dir():  # other collections' names are not told to a link's visitor
        raise DatasetUnavailableError(
            f"no collection named '{name}' on this server (python -m core collection list "
            f"shows them; build one with: python -m core collection build FILE --name {name})"
        )
    opened = Collection(folder)
    with _OPEN_LOCK:
        _close_open(name)
        return _OPEN.setdefault(key, opened)


def _close_open(name: str) -> None:
    """Close and forget every opened copy of collection ``name`` (hold ``_OPEN_LOCK``)."""
    for key in [k for k in _OPEN if k.startswith(f"{name}@")]:
        _OPEN.pop(key).close()


def unfinished_builds() -> list[str]:
    """Names of collection folders holding a build that has not finished (no manifest):
    the same ``collection build`` command resumes them; ``collection remove`` drops them."""
    root = collections_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not (p / MANIFEST).is_file())


def remove_collection(name: str) -> int:
    """Delete collection ``name`` (built or unfinished) from disk; the bytes it held.
    :class:`DatasetUnavailableError` if there is no such folder."""
    name = name.removeprefix(PREFIX)
    folder = collection_path(name)
    if not folder.is_dir():
        known = ", ".join([c.name for c in list_collections()] + unfinished_builds())
        raise DatasetUnavailableError(
            f"no collection named '{name}' to remove (on disk: {known or 'none'})"
        )
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    with _OPEN_LOCK:
        _close_open(name)
    shutil.rmtree(folder)
    return size
