"""Streamlit glue shared by the pages: process-wide caches of models, datasets and
indexes (the dense index: :mod:`pages.widgets.dense_index`). Everything cached here is
read-only after construction and safe to share between sessions (see
core.models.encoders / core.models.cross_encoders for their locking)."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core.data.collection import Collection, is_collection_id, list_collections, open_collection
from core.data.datasets import load_dataset
from core.data.documents import Dataset
from core.data.upload_quality import ROW_POSITION, QualityReport, build_upload_dataset
from core.data.upload_store import UploadStore, is_upload_id
from core.data.uploads import parse_upload
from core.models.base import Encoder, Reranker
from core.models.registry import load_encoder, load_reranker
from core.models.together import TogetherEncoder, TogetherReranker, resolve_api_key, together_model
from core.present.views import ROW_IDS
from core.search.milvus import cached_collection
from core.search.milvus_reference import is_milvus_reference
from core.search.milvus_retrieval import MilvusRetriever
from pages.widgets.dense_index import get_index, index_or_job  # noqa: F401 (the pages' names)


@st.cache_resource(show_spinner="Loading the bi-encoder…")
def get_encoder(model_id: str) -> Encoder:
    """The bi-encoder ``model_id``, loaded once per process."""
    return load_encoder(model_id)


@st.cache_resource(show_spinner="Loading the reranker…")
def get_reranker(model_id: str) -> Reranker:
    """The reranker ``model_id``, loaded once per process."""
    return load_reranker(model_id)


@st.cache_resource(show_spinner="Loading the dataset…", max_entries=8)
def get_dataset(name: str) -> Dataset:
    """A built-in dataset by name (``movies``, ``sample``), loaded once per process."""
    return load_dataset(name)


def browser_text(key: str) -> str | None:
    """The text the browser sent for the keyed text box ``key`` before this session drew
    it, else None.

    A session's first run normally carries no widget values: the page is new. After the
    server restarts, the page reconnects to a fresh session and its first run carries
    what the browser still shows, e.g. a query typed since. Streamlit keeps those values
    (by widget id) until the widget is drawn; a value seeded through ``st.session_state``
    before that would override them, so the page asks here first. Reads Streamlit's
    widget states, which have no public accessor; None if their shape changes.
    """
    from streamlit.runtime.state.common import is_keyed_element_id, user_key_from_element_id
    from streamlit.runtime.state.session_state_proxy import get_session_state

    try:
        held = get_session_state()._state._new_widget_state.states
    except AttributeError:
        return None
    for widget_id, wstate in held.items():
        if not (is_keyed_element_id(widget_id) and user_key_from_element_id(widget_id) == key):
            continue
        proto = getattr(wstate, "value", None)
        if hasattr(proto, "WhichOneof") and proto.WhichOneof("value") == "string_value":
            return proto.string_value
        if isinstance(proto, str):
            return proto
    return None


def stage_progress():
    """A progress bar and the ``progress(done, total, stage)`` callback that fills it, for
    work reported stage by stage (evaluations, tuning, A vs B)."""
    bar = st.progress(0.0, text="Starting…")

    def progress(done: int, total: int, stage: str) -> None:
        bar.progress(done / max(total, 1), text=f"{stage}: {done:,} / {total:,}")

    return bar, progress


def together_api_key() -> str | None:
    """The Together key: the session's password field, Streamlit secrets, or the env."""
    try:
        secrets = dict(st.secrets)
    except Exception:  # no secrets.toml, or an unreadable one: fall back to the env
        secrets = None
    return resolve_api_key(st.session_state.get("together_key") or None, secrets)


def encoder_for(model_id: str, api_key: str | None) -> Encoder:
    """A local encoder (shared, loaded once) or a Together one (per session: its key)."""
    hosted = together_model(model_id)
    if hosted is not None:
        return TogetherEncoder(hosted, api_key=api_key, timeout=20.0, max_retries=2)
    return get_encoder(model_id)


def reranker_for(model_id: str, api_key: str | None) -> Reranker:
    """A local reranker (shared, loaded once) or a Together one (per session: its key)."""
    hosted = together_model(model_id)
    if hosted is not None:
        return TogetherReranker(hosted, api_key=api_key, timeout=20.0, max_retries=2)
    return get_reranker(model_id)


@dataclass(frozen=True)
class LoadedDataset:
    """A dataset ready to search, with what the UI says about it."""

    dataset: Dataset | Collection
    label: str
    report: QualityReport | None = None


@st.cache_resource
def get_upload_store() -> UploadStore:
    """The server's store of uploaded files (content-addressed, size-capped)."""
    return UploadStore()


def collection_labels() -> dict[str, str]:
    """Built collections (``collection:NAME`` -> label); read afresh, it is a few files."""
    return {info.dataset_id: info.label for info in list_collections()}


def load_named_dataset(name: str, id_field: str = "", title_field: str = "") -> LoadedDataset:
    """A built-in dataset, a built collection (``collection:NAME``, opened lazily, shared
    by every session) or a stored upload: see :func:`_load_named_dataset`."""
    if is_collection_id(name):
        collection = open_collection(name)
        return LoadedDataset(collection, collection_labels().get(name, name))
    return _load_named_dataset(name, id_field, title_field)


@st.cache_resource(show_spinner="Loading the dataset…", max_entries=8)
def _load_named_dataset(name: str, id_field: str = "", title_field: str = "") -> LoadedDataset:
    """A built-in dataset (``movies``, ``sample``) or a stored upload (``upload-<hex>``).

    Uploads are rebuilt from their exact stored bytes, so a shared link naming one works
    in any session on this server. For uploads, ``id_field`` and ``title_field``
    override the suggested fields (empty: the suggestion; ``ROW_IDS``: row positions).
    """
    if is_milvus_reference(name):
        collection = cached_collection(name)
        return LoadedDataset(collection.dataset(), f"Milvus: {collection.label}")
    if not is_upload_id(name):
        return LoadedDataset(get_dataset(name), BUILTIN_LABELS.get(name, name))
    data, filename = get_upload_store().get(name)
    parsed = parse_upload(data, filename)
    dataset, report = build_upload_dataset(
        parsed,
        id_field=ROW_POSITION if id_field == ROW_IDS else (id_field or None),
        title_field=title_field or None,
        name=name,
    )
    return LoadedDataset(dataset, f"{filename} ({len(dataset):,} records)", report)


def milvus_encoder(name: str) -> str:
    """The model id that made the vectors of the Milvus collection ``name``."""
    return cached_collection(name).fields.encoder


def milvus_retriever(
    name: str, kind: str, encoder: Encoder | None, rrf_k: int, model_id: str
) -> MilvusRetriever:
    """The first stage ``kind`` served by the Milvus collection ``name``."""
    return cached_collection(name).retriever(kind, encoder, rrf_k=rrf_k, model_id=model_id)


# Clearing the cache of datasets clears it for built-in datasets and uploads (collections
# are opened, and reopened after a rebuild, by core.data.collection.open_collection).
load_named_dataset.clear = _load_named_dataset.clear  # type: ignore[attr-defined]


BUILTIN_LABELS = {
    "movies": "Movies (1,000 films, Together cookbook)",
    "sample": "Sample (40 field-guide notes)",
}
