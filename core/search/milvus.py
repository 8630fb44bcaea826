"""Milvus as the first stage: dense, BM25 full-text and hybrid search through ``pymilvus``.

The same code talks to an embedded **Milvus Lite** database (a ``.db`` path: pymilvus
runs Milvus Lite inside this process) and to a **Milvus server** (``http(s)://host:port``
plus a token). Hits come back by id and become :class:`~core.search.index.Hit` rows of
the collection's :class:`~core.data.documents.Dataset`, so the pipeline and every view
work unchanged.

Where a collection is, and how to read it, is a *reference* (:func:`parse_reference`)::

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

Collections this project exports (:func:`export_dataset`) hold, per record: ``id``
(VARCHAR primary key), ``text`` (the embed fields' text, analyzer enabled), ``record``
(the whole record as JSON), ``vector`` (FLOAT_VECTOR, a FLAT COSINE index by default, so
dense search is exact) and ``sparse`` (SPARSE_FLOAT_VECTOR filled by a BM25 ``Function``
on ``text``). The field mapping and the encoder that made the vectors are stored in the
collection property ``rerank_workbench``, so opening one needs only its name.

Scores (each on its own scale):

* dense: Milvus's COSINE similarity (-1..1; for a collection indexed with IP, the inner
  product, equal to cosine when the stored vectors are unit length).
* BM25: Milvus's BM25 over its analyzer's tokens. Exports use the ``standard``
  tokenizer (``\\w+``), a ``lowercase`` filter and the same 33 English stop words as our
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
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import numpy as np

from core.data.documents import Dataset, embed_text, make_dataset
from core.models.base import Encoder, ProgressFn
from core.models.errors import (
    MilvusAuthError,
    MilvusError,
    MilvusSchemaError,
    MilvusUnavailableError,
    SettingsError,
)
from core.models.paths import cache_dir
from core.search.index import Hit
from core.search.retrievers import (
    DEFAULT_RRF_K,
    HYBRID_POOL,
    Retrieval,
    RetrievalScoreKind,
    RetrieverKind,
    check_retriever_kind,
)

URI_ENV = "RERANK_MILVUS_URI"
TOKEN_ENV = "RERANK_MILVUS_TOKEN"
REFERENCE_PREFIX = "milvus:"
PROPERTY = "rerank_workbench"
MAPPING_VERSION = 1
SERVER_SCHEMES = ("http", "https", "tcp", "grpc", "unix")
# Milvus limits: VARCHAR holds at most 65,535 bytes; a search reads at most 16,384 hits.
MAX_VARCHAR_BYTES = 65_535
MAX_JSON_BYTES = 65_536
MAX_TOPK = 16_384
BM25_K1 = 1.5
BM25_B = 0.75
DENSE_METRICS = ("COSINE", "IP")
INDEX_TYPES = ("FLAT", "HNSW", "IVF_FLAT", "AUTOINDEX")
DEFAULT_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
_COLLECTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
MAPPING_KEYS = ("id", "text", "vector", "sparse", "record", "title", "encoder")


# --- where: target and reference -------------------------------------------------------


def default_lite_path() -> Path:
    """The Milvus Lite database used when nothing else is named: ``<cache>/milvus.db``."""
    return cache_dir() / "milvus.db"


def is_server_uri(uri: str) -> bool:
    """True for a server address (``http://``, ``https://``, ...), False for a Lite path."""
    return urlsplit(uri).scheme.lower() in SERVER_SCHEMES


@dataclass(frozen=True)
class MilvusTarget:
    """A Milvus to talk to: a Lite ``.db`` path or a server URI, and its token.

    ``repr`` and :attr:`label` never show the token.
    """

    uri: str
    token: str = field(default="", repr=False)

    @property
    def is_lite(self) -> bool:
        """Whether this is an embedded Milvus Lite database (a local path)."""
        return not is_server_uri(self.uri)

    @property
    def label(self) -> str:
        """What to show a person: the URI (a Lite path made absolute), never the token."""
        return str(Path(self.uri).expanduser().resolve()) if self.is_lite else self.uri


def resolve_target(uri: str | None = None, token: str | None = None) -> MilvusTarget:
    """The target for ``uri`` (default: ``RERANK_MILVUS_URI``, else the Lite file in the
    cache folder). ``token`` defaults to ``RERANK_MILVUS_TOKEN`` only when ``uri`` is
    that of ``RERANK_MILVUS_URI`` (or not given): a URI from elsewhere gets no secret."""
    env_uri = (os.environ.get(URI_ENV) or "").strip()
    chosen = (uri or "").strip() or env_uri or str(default_lite_path())
    if token is None:
        same = not (uri or "").strip() or chosen == env_uri
        token = os.environ.get(TOKEN_ENV, "") if same else ""
    return MilvusTarget(chosen, token or "")


@dataclass(frozen=True)
class MilvusReference:
    """A collection by name, where it lives (``uri``; None: the default) and how to read
    it (``mapping``: field names and encoder of a collection we did not export)."""

    collection: str
    uri: str | None = None
    mapping: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        text = REFERENCE_PREFIX + self.collection
        if self.uri:
            text += "@" + self.uri
        if self.mapping:
            text += "?" + urlencode(self.mapping, safe="/,:")
        return text

    @property
    def mapping_dict(self) -> dict[str, str]:
        """The field mapping as a dict."""
        return dict(self.mapping)


def is_milvus_reference(name: object) -> bool:
    """True when ``name`` is a ``milvus:...`` dataset reference."""
    return isinstance(name, str) and name.startswith(REFERENCE_PREFIX)


def check_collection_name(name: str) -> str:
    """Return ``name`` if Milvus accepts it as a collection name; else raise."""
    if not _COLLECTION_NAME.match(name or ""):
        raise SettingsError(
            f"invalid Milvus collection name {name!r}: use letters, digits and _ "
            "(starting with a letter or _), at most 255 characters"
        )
    return name


def parse_reference(text: str) -> MilvusReference:
    """Parse a ``milvus:...`` reference (grammar in the module docstring)."""
    if not is_milvus_reference(text):
        raise SettingsError(f"not a Milvus reference (milvus:<collection>[@<uri>]): {text!r}")
    rest = text[len(REFERENCE_PREFIX) :]
    rest, _, query = rest.partition("?")
    if rest.startswith("//"):
        parts = urlsplit("milvus:" + rest)
        if not parts.netloc or not parts.path.strip("/"):
            raise SettingsError(f"a milvus:// reference needs host:port/collection: {text!r}")
        collection, uri = parts.path.strip("/"), f"http://{parts.netloc}"
    else:
        collection, _, uri = rest.partition("@")
    mapping = []
    for key, value in parse_qsl(query, keep_blank_values=False):
        if key not in MAPPING_KEYS:
            raise SettingsError(
                f"unknown Milvus mapping key {key!r}: use {', '.join(MAPPING_KEYS)}"
            )
        mapping.append((key, value.strip()))
    return MilvusReference(
        check_collection_name(collection.strip()), uri.strip() or None, tuple(mapping)
    )


def normalize_reference(text: str) -> str:
    """A reference as typed (``milvus:`` may be left out) in canonical form."""
    text = (text or "").strip()
    if not is_milvus_reference(text):
        text = REFERENCE_PREFIX + text
    return str(parse_reference(text))


ALLOWED_URIS_ENV = "RERANK_MILVUS_ALLOWED_URIS"


def link_refusal(reference: str) -> str | None:
    """Why a share link may not name this Milvus reference (None: it may).

    A link comes from outside the operator's hands, and opening a reference makes the
    server open a local folder (a Lite path) or connect to a host. A link may name a
    collection at the operator's Milvus (no URI, or the URI of ``RERANK_MILVUS_URI``) or
    at a URI listed in ``RERANK_MILVUS_ALLOWED_URIS`` (comma-separated, exact). Typed
    into the sidebar, any reference may be opened. Decided on the text alone.
    """
    try:
        ref = parse_reference(reference)
    except SettingsError as exc:
        return str(exc)
    if ref.uri is None:
        return None
    allowed = {u.strip() for u in os.environ.get(ALLOWED_URIS_ENV, "").split(",") if u.strip()}
    allowed.add((os.environ.get(URI_ENV) or "").strip())
    if ref.uri in allowed:
        return None
    return (
        f"a link may name only the operator's Milvus ({URI_ENV}) or a URI listed in "
        f"{ALLOWED_URIS_ENV}; open {ref.collection} from the sidebar's Milvus box instead"
    )


# --- talking to Milvus ------------------------------------------------------------------


def _message(exc: BaseException) -> str:
    details = getattr(exc, "details", None)
    text = getattr(exc, "message", None) or (details() if callable(details) else None) or exc
    return " ".join(str(text).split())[:300]


_AUTH_WORDS = (
    "authenticat",
    "auth check",
    "credential",
    "password",
    "privilege",
    "permission denied",
)


def _grpc_codes(exc: BaseException) -> set[Any]:
    """gRPC status codes anywhere in the exception's cause chain (pymilvus wraps them)."""
    import grpc

    codes, seen, current = set(), set(), exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, grpc.RpcError) and callable(getattr(current, "code", None)):
            codes.add(current.code())
        current = current.__cause__ or current.__context__
    return codes


def translate_error(exc: BaseException, target: MilvusTarget, doing: str) -> MilvusError:
    """A :class:`MilvusError` with a one-line message for a pymilvus/gRPC failure."""
    import grpc

    if isinstance(exc, MilvusError):
        return exc
    code = getattr(exc, "code", None)
    codes = _grpc_codes(exc)
    text = _message(exc)
    lowered = text.lower()
    refused = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
    if codes & refused or code == 1800 or any(w in lowered for w in _AUTH_WORDS):
        how = "no token was given" if not target.token else "the token was refused"
        return MilvusAuthError(
            f"Milvus at {target.label} refused the request ({how}); set {TOKEN_ENV} "
            "to user:password or an API key with access to it"
        )
    unreachable = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
    if codes & unreachable or code == 2 or "fail connecting" in lowered:
        return MilvusUnavailableError(
            f"cannot reach Milvus at {target.label} while {doing} ({text}); "
            f"check the URI ({URI_ENV}) and that the server is running"
        )
    return MilvusError(f"Milvus at {target.label} failed while {doing}: {text}")


_CLIENTS: dict[tuple[str, str], Any] = {}
_CLIENTS_LOCK = threading.Lock()


def connect(target: MilvusTarget, *, create: bool = False, timeout: float = CONNECT_TIMEOUT):
    """A ``MilvusClient`` for ``target``, shared per process (gRPC clients are
    thread-safe). A Lite database must exist unless ``create``; its folder must.

    Raises :class:`MilvusUnavailableError` (cannot reach / open) or
    :class:`MilvusAuthError` (token refused): the client is tried with one cheap call.
    """
    from pymilvus import MilvusClient

    key = (target.uri, target.token)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
    if client is not None:
        return client
    uri = target.uri
    if target.is_lite:
        path = Path(uri).expanduser()
        if path.suffix != ".db":
            raise MilvusUnavailableError(
                f"{uri!r} is neither a server URI (http://host:port) nor a Milvus Lite "
                "database (a path ending in .db)"
            )
        if not path.parent.is_dir():
            raise MilvusUnavailableError(f"cannot open Milvus Lite {path}: no folder {path.parent}")
        if not create and not _is_lite_database(path):
            raise MilvusUnavailableError(
                f"no Milvus Lite database at {path.resolve()}: export a collection into it "
                "first (python -m core milvus export --uri ...)"
            )
        uri = str(path.resolve())
    try:
        client = MilvusClient(uri, token=target.token, timeout=timeout)
        client.list_collections(timeout=timeout)
    except Exception as exc:
        if target.is_lite and "open local milvus failed" in _message(exc).lower():
            raise MilvusUnavailableError(
                f"cannot open Milvus Lite {target.label}: another process may hold it; "
                "serve it with `milvus-lite server --data-dir ...` and connect by URI"
            ) from exc
        raise translate_error(exc, target, "connecting") from exc
    with _CLIENTS_LOCK:
        client = _CLIENTS.setdefault(key, client)
    return client


def _is_lite_database(path: Path) -> bool:
    return path.is_dir() and (path / "collections").is_dir()


def release(target: MilvusTarget) -> None:
    """Forget the shared client of ``target``; for a Lite database, stop its in-process
    server so another process can open the file."""
    with _CLIENTS_LOCK:
        stale = [k for k in _CLIENTS if k[0] == target.uri]
        clients = [_CLIENTS.pop(k) for k in stale]
    for client in clients:
        with contextlib.suppress(Exception):  # a broken channel: nothing left to close
            client.close()
    if target.is_lite:
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(str(Path(target.uri).expanduser().resolve()))
    with _COLLECTIONS_LOCK:
        for k in [k for k in _COLLECTIONS if k[0] == target.uri]:
            _COLLECTIONS.pop(k)


def _call(target: MilvusTarget, doing: str, fn: Callable[..., Any], *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        raise translate_error(exc, target, doing) from exc


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
    if not _call(target, "listing collections", client.has_collection, name):
        existing = _call(target, "listing collections", client.list_collections)
        listed = ", ".join(sorted(existing)[:10]) or "none"
        raise MilvusSchemaError(
            f"no collection '{name}' in Milvus at {target.label} (collections there: {listed})"
        )
    return _call(target, f"describing '{name}'", client.describe_collection, name)


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
        stats = _call(self.target, "counting rows", self.client.get_collection_stats, self.name)
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
        iterator = _call(
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
                batch = _call(self.target, f"reading '{self.name}'", iterator.next)
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
    _call(target, f"loading '{ref.collection}'", client.load_collection, ref.collection)
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
    indexes = _call(target, f"listing indexes of '{name}'", client.list_indexes, name)
    for index_name in indexes:
        desc = _call(
            target, f"describing index '{index_name}'", client.describe_index, name, index_name
        )
        if desc.get("field_name") == vector:
            return str(desc.get("metric_type", "")).upper()
    raise MilvusSchemaError(
        f"the vector field '{vector}' of '{name}' has no index: Milvus searches only indexed "
        "fields (create one with metric COSINE)"
    )


_COLLECTIONS: dict[tuple[str, str, str], MilvusCollection] = {}
_COLLECTIONS_LOCK = threading.Lock()


def cached_collection(reference: str) -> MilvusCollection:
    """:func:`open_collection`, shared per process and reference (and token)."""
    ref = parse_reference(reference)
    target = resolve_target(ref.uri)
    key = (target.uri, target.token, str(ref))
    with _COLLECTIONS_LOCK:
        found = _COLLECTIONS.get(key)
    if found is not None:
        return found
    opened = open_collection(ref)
    with _COLLECTIONS_LOCK:
        return _COLLECTIONS.setdefault(key, opened)


# --- retrieval ----------------------------------------------------------------------------


class MilvusRetriever:
    """Dense, BM25 or hybrid (RRF) search in a Milvus collection, as a
    :class:`~core.search.retrievers.Retriever`. Hits are rows of
    :meth:`MilvusCollection.dataset` (matched by id)."""

    def __init__(
        self,
        collection: MilvusCollection,
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
        return _call(
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
            result = _call(
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


# --- export -------------------------------------------------------------------------------


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
    if _call(target, "listing collections", client.has_collection, collection):
        if not overwrite:
            raise MilvusSchemaError(
                f"collection '{collection}' already exists at {target.label}: pass "
                "--overwrite to replace it, or choose another name"
            )
        _call(target, f"dropping '{collection}'", client.drop_collection, collection)
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
    _call(
        target,
        f"creating '{collection}'",
        client.create_collection,
        collection,
        schema=schema,
        index_params=index,
    )
    _call(
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
        _call(target, f"inserting into '{collection}'", client.insert, collection, rows)
        done += len(rows)
        if progress is not None:
            progress(done, total)
    _call(target, f"flushing '{collection}'", client.flush, collection)
    uri_part = None if target.uri == resolve_target().uri else target.uri
    reference = MilvusReference(collection, uri_part)
    with _COLLECTIONS_LOCK:
        for key in [k for k in _COLLECTIONS if k[0] == target.uri]:
            if parse_reference(key[2]).collection == collection:
                _COLLECTIONS.pop(key)
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
