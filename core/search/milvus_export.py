"""Export into Milvus: a dataset (encoded here, or from a vector set) or a built
collection (its vectors as they are) written into a new collection with a BM25 function
and the field mapping stored as a collection property."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.data.documents import Dataset, embed_text
from core.models.base import Encoder, ProgressFn
from core.models.errors import (
    MilvusSchemaError,
    SettingsError,
)
from core.search.milvus import PROPERTY, FieldMap
from core.search.milvus_client import OPEN_COLLECTIONS, OPEN_COLLECTIONS_LOCK, call_milvus, connect
from core.search.milvus_reference import (
    MilvusReference,
    MilvusTarget,
    check_collection_name,
    parse_reference,
    resolve_target,
)

# Milvus limits: VARCHAR holds at most 65,535 bytes (JSON 65,536).
MAX_VARCHAR_BYTES = 65_535
MAX_JSON_BYTES = 65_536
BM25_K1 = 1.5
BM25_B = 0.75
INDEX_TYPES = ("FLAT", "HNSW", "IVF_FLAT", "AUTOINDEX")


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_dataset` wrote."""

    collection: str
    target: str
    reference: str
    rows: int
    dimension: int
    encoder: str
    index_type: str
    truncated_texts: int
    vectors_from: str
    seconds: float


def _truncate_utf8(text: str, limit: int) -> tuple[str, bool]:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text, False
    return data[:limit].decode("utf-8", errors="ignore"), True


def bm25_analyzer() -> dict[str, Any]:
    """The analyzer exports give the BM25 text field (see the module docstring)."""
    from bm25s.stopwords import STOPWORDS_EN

    return {
        "tokenizer": "standard",
        "filter": ["lowercase", {"type": "stop", "stop_words": list(STOPWORDS_EN)}],
    }


def export_dataset(
    dataset: Dataset,
    target: MilvusTarget,
    collection: str,
    *,
    encoder: Encoder,
    model_id: str,
    embed_fields: Sequence[str] | None = None,
    rerank_fields: Sequence[str] | None = None,
    vectors: np.ndarray | None = None,
    vectors_from: str = "",
    overwrite: bool = False,
    index_type: str = "FLAT",
    batch_size: int = 500,
    progress: ProgressFn | None = None,
) -> ExportReport:
    """Write ``dataset`` into a new Milvus collection (schema in the module docstring).

    ``vectors`` (rows in dataset order, made by ``encoder`` from ``embed_fields``) skip
    encoding; otherwise the corpus is embedded (reusing the embedding cache). An existing
    collection is replaced only with ``overwrite``. Texts longer than Milvus's VARCHAR
    limit are cut at 65,535 bytes and counted in the report.
    """
    from core.search.index import build_index

    started = time.perf_counter()
    check_collection_name(collection)
    embed = dataset.check_fields(embed_fields or dataset.default_embed_fields, "embed")
    rerank = dataset.check_fields(rerank_fields or dataset.default_rerank_fields, "rerank")
    if vectors is None:
        vectors = build_index(dataset, encoder, embed, progress=progress).index.vectors
        vectors_from = vectors_from or "embedding cache / in-process encoder"
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.shape != (len(dataset), encoder.dimension):
        raise SettingsError(
            f"{vectors.shape[0]}x{vectors.shape[1] if vectors.ndim == 2 else '?'} vectors for "
            f"{len(dataset)} records of dimension {encoder.dimension}"
        )
    fm = FieldMap(
        encoder=model_id,
        title=dataset.title_field,
        embed_fields=embed,
        rerank_fields=rerank,
        dataset=dataset.name,
    )
    batches = (
        (
            dataset.ids[i : i + batch_size],
            dataset.records[i : i + batch_size],
            vectors[i : i + batch_size],
        )
        for i in range(0, len(dataset), batch_size)
    )
    id_bytes = max(len(i.encode("utf-8")) for i in dataset.ids)
    return _export(
        target,
        collection,
        fm,
        encoder.dimension,
        batches,
        len(dataset),
        max_id_bytes=max(64, id_bytes),
        overwrite=overwrite,
        index_type=index_type,
        progress=progress,
        started=started,
        vectors_from=vectors_from,
    )


def export_built_collection(
    source: Any,
    target: MilvusTarget,
    collection: str,
    *,
    encoder: Encoder,
    overwrite: bool = False,
    index_type: str = "FLAT",
    batch_size: int = 2000,
    progress: ProgressFn | None = None,
) -> ExportReport:
    """Write a built on-disk collection (``collection:NAME``: its ``manifest`` and
    ``iter_batches``, format ``rerank-collection`` v1) into Milvus with its own vectors,
    streamed batch by batch. ``encoder`` must be the one that made them (its cache key
    equals the manifest's ``model_key``)."""
    started = time.perf_counter()
    check_collection_name(collection)
    manifest = source.manifest
    key = getattr(encoder, "cache_key", encoder.name)
    if manifest.get("model_key") not in (key, None) or manifest.get("dimension") != (
        encoder.dimension
    ):
        raise MilvusSchemaError(
            f"collection {manifest.get('name')} was embedded with {manifest.get('model')} "
            f"({manifest.get('dimension')} dimensions), not {encoder.name}"
        )
    fm = FieldMap(
        encoder=str(manifest.get("model") or encoder.name),
        title=manifest.get("title_field"),
        embed_fields=tuple(manifest.get("embed_fields") or ()),
        rerank_fields=tuple(manifest.get("rerank_fields") or ()),
        dataset=f"collection:{manifest.get('name')}",
    )
    batches = (
        (ids, records, vectors) for _, ids, records, vectors in source.iter_batches(batch_size)
    )
    return _export(
        target,
        collection,
        fm,
        encoder.dimension,
        batches,
        int(manifest.get("count") or len(source)),
        max_id_bytes=1024,
        overwrite=overwrite,
        index_type=index_type,
        progress=progress,
        started=started,
        vectors_from=f"built collection {manifest.get('name')}",
    )


def _export(
    target: MilvusTarget,
    collection: str,
    fm: FieldMap,
    dimension: int,
    batches,
    total: int,
    *,
    max_id_bytes: int,
    overwrite: bool,
    index_type: str,
    progress: ProgressFn | None,
    started: float,
    vectors_from: str,
) -> ExportReport:
    """Create the collection (schema in the module docstring) and insert ``batches`` of
    ``(ids, records, vectors)``."""
    from pymilvus import DataType, Function, FunctionType

    index_type = index_type.upper()
    if index_type not in INDEX_TYPES:
        raise SettingsError(f"unknown index type {index_type}: choose {', '.join(INDEX_TYPES)}")
    client = connect(target, create=True)
    if call_milvus(target, "listing collections", client.has_collection, collection):
        if not overwrite:
            raise MilvusSchemaError(
                f"collection '{collection}' already exists at {target.label}: pass "
                "--overwrite to replace it, or choose another name"
            )
        call_milvus(target, f"dropping '{collection}'", client.drop_collection, collection)
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field(fm.id, DataType.VARCHAR, is_primary=True, max_length=max_id_bytes)
    schema.add_field(
        fm.text,
        DataType.VARCHAR,
        max_length=MAX_VARCHAR_BYTES,
        enable_analyzer=True,
        analyzer_params=bm25_analyzer(),
    )
    schema.add_field(fm.record, DataType.JSON)
    schema.add_field(fm.vector, DataType.FLOAT_VECTOR, dim=dimension)
    schema.add_field(fm.sparse, DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(
        Function(
            name="bm25",
            function_type=FunctionType.BM25,
            input_field_names=[fm.text],
            output_field_names=[fm.sparse],
        )
    )
    index = client.prepare_index_params()
    index.add_index(fm.vector, index_type=index_type, metric_type="COSINE")
    index.add_index(
        fm.sparse,
        index_type="SPARSE_INVERTED_INDEX",
        metric_type="BM25",
        params={"bm25_k1": BM25_K1, "bm25_b": BM25_B},
    )
    call_milvus(
        target,
        f"creating '{collection}'",
        client.create_collection,
        collection,
        schema=schema,
        index_params=index,
    )
    call_milvus(
        target,
        f"describing '{collection}'",
        client.alter_collection_properties,
        collection,
        properties={PROPERTY: fm.to_json()},
    )
    truncated = done = 0
    for ids, records, vectors in batches:
        rows = []
        for doc_id, record, vector in zip(ids, records, vectors, strict=True):
            text, cut = _truncate_utf8(embed_text(record, fm.embed_fields), MAX_VARCHAR_BYTES)
            truncated += cut
            payload = json.dumps(record, ensure_ascii=False, default=str)
            if len(payload.encode("utf-8")) > MAX_JSON_BYTES:
                raise SettingsError(
                    f"record {doc_id!r} is larger than Milvus's JSON field limit (64 KiB)"
                )
            if len(str(doc_id).encode("utf-8")) > max_id_bytes:
                raise SettingsError(f"id {str(doc_id)[:40]!r}… is longer than {max_id_bytes} bytes")
            rows.append(
                {
                    fm.id: str(doc_id),
                    fm.text: text,
                    fm.record: json.loads(payload),
                    fm.vector: np.asarray(vector, dtype=np.float32).tolist(),
                }
            )
        call_milvus(target, f"inserting into '{collection}'", client.insert, collection, rows)
        done += len(rows)
        if progress is not None:
            progress(done, total)
    call_milvus(target, f"flushing '{collection}'", client.flush, collection)
    uri_part = None if target.uri == resolve_target().uri else target.uri
    reference = MilvusReference(collection, uri_part)
    with OPEN_COLLECTIONS_LOCK:
        for key in [k for k in OPEN_COLLECTIONS if k[0] == target.uri]:
            if parse_reference(key[2]).collection == collection:
                OPEN_COLLECTIONS.pop(key)
    return ExportReport(
        collection=collection,
        target=target.label,
        reference=str(reference),
        rows=done,
        dimension=dimension,
        encoder=fm.encoder,
        index_type=index_type,
        truncated_texts=truncated,
        vectors_from=vectors_from,
        seconds=time.perf_counter() - started,
    )
