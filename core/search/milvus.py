r"""Milvus as the first stage: dense, BM25 full-text and hybrid search through ``pymilvus``.

The same code talks to an embedded **Milvus Lite** database (a ``.db`` path: pymilvus
runs Milvus Lite inside this process) and to a **Milvus server** (``http(s)://host:port``
plus a token). Hits come back by id and become :class:`~core.search.index.Hit` rows of
the collection's :class:`~core.data.documents.Dataset`, so the pipeline and every view
work unchanged.

Where a collection is, and how to read it, is a *reference*
(:func:`~core.search.milvus_reference.parse_reference`)::

    milvus:<collection>                  URI from RERANK_MILVUS_URI, else <cache>/milvus.db
    milvus:<collection>@<uri>            <uri>: a Milvus Lite path (./movies.db) or
                                         http(s)://host:port of a server
    milvus://host:port/<collection>      the same as milvus:<collection>@http://host:port
    ...?id=pk&vector=emb&text=body&encoder=<model id>&title=name&sparse=bm25
                                         field mapping of a collection this project did
                                         not export (every key optional)

The token (``RERANK_MILVUS_TOKEN``, ``user:password`` or an API key) is sent only to
the URI named by ``RERANK_MILVUS_URI`` (or one given explicitly next to it), never to a
URI that arrived in a link. It is never part of a reference, a label or an error.

Collections this project exports (:func:`~core.search.milvus_export.export_dataset`)
hold, per record: ``id`` (VARCHAR primary key), ``text`` (the embed fields' text,
analyzer enabled), ``record`` (the whole record as JSON), ``vector`` (FLOAT_VECTOR, a
FLAT COSINE index by default, so dense search is exact) and ``sparse``
(SPARSE_FLOAT_VECTOR filled by a BM25 ``Function`` on ``text``). The field mapping and
the encoder that made the vectors are stored in the collection property
``rerank_workbench``, so opening one needs only its name.

Scores (each on its own scale):

* dense: Milvus's COSINE similarity (-1..1; for a collection indexed with IP, the inner
  product, equal to cosine when the stored vectors are unit length).
* BM25: Milvus's BM25 over its analyzer's tokens. Exports use the ``standard``
  tokenizer (``\w+``), a ``lowercase`` filter and the same 33 English stop words as our
  in-memory BM25, with ``bm25_k1=1.5`` and ``bm25_b=0.75`` (our values), so a score is
  ``sum idf * tf*(k1+1) / (tf + k1*(1-b+b*dl/avgdl))`` with
  ``idf = ln(1 + (N-df+0.5)/(df+0.5))``. Unlike our BM25 there is **no stemming**
  (Milvus Lite offers no stemmer; "cats" does not match "cat") and one-letter tokens
  count. Milvus Lite 3.2.2 reports BM25 distances negated; we return the magnitude,
  as Milvus servers do. Only documents matching a query term are returned.
* hybrid: Milvus ``hybrid_search`` with ``RRFRanker(k)`` over a dense and a BM25
  request (each read ``pool`` deep): ``sum 1/(k + rank)``, as our own hybrid.

Written against pymilvus 3.0.2 with milvus-lite 3.2.2, and the Milvus 2.5 / 2.6 server
API (BM25 functions and analyzers need a server of 2.5 or later).

The parts: :mod:`core.search.milvus_reference` (where a collection is: targets and
references), :mod:`core.search.milvus_client` (one client per target, errors made
clear), this module (the field mapping and an opened collection: :func:`open_collection`,
:func:`cached_collection`, :func:`describe`), :mod:`core.search.milvus_retrieval` (dense,
BM25 and hybrid search) and :mod:`core.search.milvus_export` (writing collections).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from core.data.documents import Dataset, make_dataset
from core.models.base import Encoder
from core.models.errors import (
    MilvusSchemaError,
    SettingsError,
)
from core.search.milvus_client import (
    CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    OPEN_COLLECTIONS,
    OPEN_COLLECTIONS_LOCK,
    call_milvus,
    connect,
)
from core.search.milvus_reference import (
    MilvusReference,
    MilvusTarget,
    parse_reference,
    resolve_target,
)
from core.search.milvus_retrieval import MilvusRetriever
from core.search.retrievers import (
    DEFAULT_RRF_K,
    HYBRID_POOL,
    check_retriever_kind,
)

PROPERTY = "rerank_workbench"
MAPPING_VERSION = 1
DENSE_METRICS = ("COSINE", "IP")


# --- the field mapping --------------------------------------------------------------------


@dataclass(frozen=True)
class FieldMap:
    """Which collection fields play which part, and which encoder made the vectors.

    ``text`` is the analyzer-enabled VARCHAR that BM25 reads (None: no BM25), ``sparse``
    the BM25 function's output, ``record`` a JSON field holding the whole record (None:
    the record is the collection's scalar fields), ``embed_fields`` the record fields the
    vectors and ``text`` were made from.
    """

    id: str = "id"
    vector: str = "vector"
    encoder: str = ""
    text: str | None = "text"
    sparse: str | None = "sparse"
    record: str | None = "record"
    title: str | None = None
    embed_fields: tuple[str, ...] = ()
    rerank_fields: tuple[str, ...] = ()
    dataset: str = ""

    def to_json(self) -> str:
        """The mapping as stored in the collection property."""
        return json.dumps({"version": MAPPING_VERSION, **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FieldMap:
        """Read a stored mapping; unknown keys are ignored."""
        data = json.loads(text)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("embed_fields", "rerank_fields"):
            known[key] = tuple(known.get(key) or ())
        return cls(**known)


@dataclass(frozen=True)
class _FieldInfo:
    name: str
    type: Any
    params: dict[str, Any]
    is_primary: bool = False


def _describe(client, target: MilvusTarget, name: str) -> dict[str, Any]:
    if not call_milvus(target, "listing collections", client.has_collection, name):
        existing = call_milvus(target, "listing collections", client.list_collections)
        listed = ", ".join(sorted(existing)[:10]) or "none"
        raise MilvusSchemaError(
            f"no collection '{name}' in Milvus at {target.label} (collections there: {listed})"
        )
    return call_milvus(target, f"describing '{name}'", client.describe_collection, name)


# --- an opened collection ---------------------------------------------------------------


class MilvusCollection:
    """An opened, loaded collection: where it is, its mapping, dimension and metric.

    Build with :func:`open_collection`. Shared between threads (it holds no per-query
    state); :meth:`dataset` reads every record once and keeps it.
    """

    def __init__(
        self,
        target: MilvusTarget,
        name: str,
        client: Any,
        fields: FieldMap,
        dimension: int,
        metric: str,
        scalar_fields: tuple[str, ...],
        reference: MilvusReference,
    ) -> None:
        self.target = target
        self.name = name
        self.client = client
        self.fields = fields
        self.dimension = dimension
        self.metric = metric
        self.scalar_fields = scalar_fields
        self.reference = reference
        self._dataset: Dataset | None = None
        self._lock = threading.Lock()

    @property
    def has_bm25(self) -> bool:
        """Whether the collection offers BM25 full-text search."""
        return self.fields.sparse is not None

    @property
    def label(self) -> str:
        """``<collection> @ <where>`` (never the token)."""
        return f"{self.name} @ {self.target.label}"

    def count(self) -> int:
        """Rows in the collection."""
        stats = call_milvus(
            self.target, "counting rows", self.client.get_collection_stats, self.name
        )
        return int(stats.get("row_count", 0))

    def check_encoder(self, encoder: Encoder, model_id: str | None = None) -> None:
        """Raise :class:`MilvusSchemaError` unless ``encoder`` made (or could have made)
        this collection's vectors: same dimension, and same model when one is recorded."""
        if encoder.dimension != self.dimension:
            raise MilvusSchemaError(
                f"collection '{self.name}' holds {self.dimension}-dimensional vectors but "
                f"the encoder {encoder.name} makes {encoder.dimension}: search it with the "
                f"encoder that made its vectors ({self.fields.encoder or 'unknown'})"
            )
        recorded = self.fields.encoder
        given = {model_id, encoder.name, getattr(encoder, "cache_key", None)} - {None}
        if recorded and recorded not in given:
            raise MilvusSchemaError(
                f"collection '{self.name}' was embedded with {recorded}, not {encoder.name}: "
                "vectors of different models are not comparable"
            )

    def dataset(self) -> Dataset:
        """Every record of the collection as a :class:`Dataset` (ids: the id field),
        read once with a query iterator and kept."""
        with self._lock:
            if self._dataset is None:
                self._dataset = self._read_dataset()
            return self._dataset

    def _read_dataset(self) -> Dataset:
        fm = self.fields
        wanted = [fm.id, fm.record] if fm.record else [fm.id, *self.scalar_fields]
        wanted = list(dict.fromkeys(wanted))
        ids: list[str] = []
        records: list[dict[str, Any]] = []
        iterator = call_milvus(
            self.target,
            f"reading '{self.name}'",
            self.client.query_iterator,
            self.name,
            batch_size=1000,
            output_fields=wanted,
            timeout=DEFAULT_TIMEOUT,
        )
        try:
            while True:
                batch = call_milvus(self.target, f"reading '{self.name}'", iterator.next)
                if not batch:
                    break
                for row in batch:
                    ids.append(str(row[fm.id]))
                    if fm.record:
                        record = row.get(fm.record)
                        if isinstance(record, str):
                            record = json.loads(record)
                        records.append(dict(record or {}))
                    else:
                        records.append({k: row.get(k) for k in self.scalar_fields})
        finally:
            iterator.close()
        if not records:
            raise MilvusSchemaError(f"collection '{self.name}' at {self.target.label} is empty")
        fields_seen = dict.fromkeys(k for r in records for k in r)
        embed = tuple(f for f in fm.embed_fields if f in fields_seen) or None
        rerank = tuple(f for f in fm.rerank_fields if f in fields_seen) or embed
        base = make_dataset(
            str(self.reference),
            records,
            title_field=fm.title if fm.title in fields_seen else None,
            embed_fields=embed,
            rerank_fields=rerank,
            source=f"Milvus collection {self.label}",
        )
        return replace(base, ids=tuple(ids), _positions={doc_id: i for i, doc_id in enumerate(ids)})

    def retriever(
        self,
        kind: str,
        encoder: Encoder | None = None,
        *,
        rrf_k: int = DEFAULT_RRF_K,
        pool: int = HYBRID_POOL,
        model_id: str | None = None,
    ) -> MilvusRetriever:
        """The first stage ``kind`` (dense, bm25, hybrid) served by this collection."""
        kind = check_retriever_kind(kind)
        if kind != "dense" and not self.has_bm25:
            raise MilvusSchemaError(
                f"collection '{self.name}' has no BM25 field (a SPARSE_FLOAT_VECTOR filled by "
                "a BM25 function): use dense search, or map it with sparse=<field>"
            )
        if kind != "bm25":
            if encoder is None:
                raise SettingsError(f"{kind} search on Milvus needs the collection's encoder")
            self.check_encoder(encoder, model_id)
        if rrf_k < 0:
            raise SettingsError(f"RRF k must be 0 or more, not {rrf_k}")
        return MilvusRetriever(self, kind, encoder if kind != "bm25" else None, rrf_k, pool)


def open_collection(
    reference: MilvusReference | str,
    *,
    token: str | None = None,
    timeout: float = CONNECT_TIMEOUT,
) -> MilvusCollection:
    """Open (and load) the collection a reference names, checking its mapping.

    Raises :class:`MilvusUnavailableError`, :class:`MilvusAuthError` or
    :class:`MilvusSchemaError` (no such collection, a mapped field missing, a vector
    field that is not FLOAT_VECTOR, a metric other than COSINE/IP, no known encoder).
    """
    ref = parse_reference(reference) if isinstance(reference, str) else reference
    target = resolve_target(ref.uri, token)
    client = connect(target, timeout=timeout)
    info = _describe(client, target, ref.collection)
    fields = {
        f["name"]: _FieldInfo(
            f["name"], f["type"], dict(f.get("params") or {}), bool(f.get("is_primary"))
        )
        for f in info.get("fields", [])
    }
    stored = (info.get("properties") or {}).get(PROPERTY)
    mapping = FieldMap.from_json(stored) if stored else _guess_mapping(fields, info)
    overrides = ref.mapping_dict
    if overrides:
        mapping = _apply_overrides(mapping, overrides, fields, info)
    fm = _check_mapping(ref.collection, target, mapping, fields)
    from pymilvus import DataType

    dimension = int(fields[fm.vector].params.get("dim", 0))
    metric = _vector_metric(client, target, ref.collection, fm.vector)
    if metric not in DENSE_METRICS:
        raise MilvusSchemaError(
            f"the vector field '{fm.vector}' of '{ref.collection}' is indexed with metric "
            f"{metric}; the encoders here make unit vectors compared by cosine: index it "
            f"with COSINE (or IP)"
        )
    vector_types = {DataType.FLOAT_VECTOR, DataType.SPARSE_FLOAT_VECTOR, DataType.BINARY_VECTOR}
    vector_types |= {
        getattr(DataType, n)
        for n in ("FLOAT16_VECTOR", "BFLOAT16_VECTOR", "INT8_VECTOR")
        if hasattr(DataType, n)
    }
    scalar = tuple(n for n, f in fields.items() if f.type not in vector_types)
    call_milvus(target, f"loading '{ref.collection}'", client.load_collection, ref.collection)
    return MilvusCollection(target, ref.collection, client, fm, dimension, metric, scalar, ref)


def _guess_mapping(fields: Mapping[str, _FieldInfo], info: Mapping[str, Any]) -> FieldMap:
    from pymilvus import DataType

    primary = next((f.name for f in fields.values() if f.is_primary), "id")
    dense = [f.name for f in fields.values() if f.type == DataType.FLOAT_VECTOR]
    text, sparse = _bm25_fields(info, None)
    return FieldMap(
        id=primary,
        vector=dense[0] if len(dense) == 1 else "",
        encoder="",
        text=text,
        sparse=sparse,
        record="record" if "record" in fields and fields["record"].type == DataType.JSON else None,
    )


def _bm25_fields(info: Mapping[str, Any], sparse: str | None) -> tuple[str | None, str | None]:
    """(input text field, output sparse field) of the collection's BM25 function."""
    from pymilvus import FunctionType

    for fn in info.get("functions") or []:
        if fn.get("type") != FunctionType.BM25:
            continue
        out = (fn.get("output_field_names") or [None])[0]
        if sparse is None or out == sparse:
            return (fn.get("input_field_names") or [None])[0], out
    return None, None


def _apply_overrides(
    mapping: FieldMap,
    overrides: Mapping[str, str],
    fields: Mapping[str, _FieldInfo],
    info: Mapping[str, Any],
) -> FieldMap:
    changes: dict[str, Any] = {}
    for key in ("id", "vector", "encoder", "title"):
        if overrides.get(key):
            changes[key] = overrides[key]
    if "record" in overrides:
        changes["record"] = overrides["record"] or None
    if "sparse" in overrides:
        text, sparse = _bm25_fields(info, overrides["sparse"])
        if sparse is None:
            raise MilvusSchemaError(
                f"no BM25 function writes the field '{overrides['sparse']}' of this collection"
            )
        changes.update(text=text, sparse=sparse)
    if "text" in overrides:
        names = tuple(n.strip() for n in overrides["text"].split(",") if n.strip())
        missing = [n for n in names if n not in fields]
        if missing:
            raise MilvusSchemaError(
                f"the collection has no text field(s) {', '.join(missing)}; "
                f"its fields: {', '.join(fields)}"
            )
        changes.update(embed_fields=names, rerank_fields=names)
    return replace(mapping, **changes)


def _check_mapping(
    name: str, target: MilvusTarget, fm: FieldMap, fields: Mapping[str, _FieldInfo]
) -> FieldMap:
    from pymilvus import DataType

    listed = ", ".join(fields)
    if not fm.vector:
        dense = [n for n, f in fields.items() if f.type == DataType.FLOAT_VECTOR]
        raise MilvusSchemaError(
            f"say which vector field of '{name}' to search (vector=<field>); its float "
            f"vector fields: {', '.join(dense) or 'none'}"
        )
    for role, value in (
        ("id", fm.id),
        ("vector", fm.vector),
        ("text", fm.text),
        ("sparse", fm.sparse),
        ("record", fm.record),
    ):
        if value and value not in fields:
            raise MilvusSchemaError(
                f"collection '{name}' at {target.label} has no field '{value}' (mapped as "
                f"its {role} field); its fields: {listed}"
            )
    if fields[fm.vector].type != DataType.FLOAT_VECTOR:
        raise MilvusSchemaError(
            f"the field '{fm.vector}' of '{name}' is {fields[fm.vector].type.name}, "
            "not FLOAT_VECTOR"
        )
    if fm.sparse and fields[fm.sparse].type != DataType.SPARSE_FLOAT_VECTOR:
        raise MilvusSchemaError(f"the field '{fm.sparse}' of '{name}' is not SPARSE_FLOAT_VECTOR")
    if not fm.encoder:
        raise MilvusSchemaError(
            f"say which encoder made the vectors of '{name}' (encoder=<model id>, e.g. "
            "sentence-transformers/all-MiniLM-L6-v2)"
        )
    return fm


def _vector_metric(client, target: MilvusTarget, name: str, vector: str) -> str:
    indexes = call_milvus(target, f"listing indexes of '{name}'", client.list_indexes, name)
    for index_name in indexes:
        desc = call_milvus(
            target, f"describing index '{index_name}'", client.describe_index, name, index_name
        )
        if desc.get("field_name") == vector:
            return str(desc.get("metric_type", "")).upper()
    raise MilvusSchemaError(
        f"the vector field '{vector}' of '{name}' has no index: Milvus searches only indexed "
        "fields (create one with metric COSINE)"
    )


def cached_collection(reference: str) -> MilvusCollection:
    """:func:`open_collection`, shared per process and reference (and token)."""
    ref = parse_reference(reference)
    target = resolve_target(ref.uri)
    key = (target.uri, target.token, str(ref))
    with OPEN_COLLECTIONS_LOCK:
        found = OPEN_COLLECTIONS.get(key)
    if found is not None:
        return found
    opened = open_collection(ref)
    with OPEN_COLLECTIONS_LOCK:
        return OPEN_COLLECTIONS.setdefault(key, opened)


def describe(collection: MilvusCollection) -> dict[str, Any]:
    """What the CLI prints about an opened collection."""
    return {
        "collection": collection.name,
        "where": collection.target.label,
        "reference": str(collection.reference),
        "rows": collection.count(),
        "dimension": collection.dimension,
        "metric": collection.metric,
        "bm25": collection.has_bm25,
        "mapping": asdict(collection.fields),
    }
