"""An upload's or a dataset's dense index for the pages: from memory, the disk cache, a
build in this page's run (small corpora), or the process's background job (uploads of
``RERANK_BACKGROUND_MIN_DOCS`` records or more), which is priced before it starts: above
``RERANK_CONFIRM_SECONDS`` it waits for the visitor's click, and the visitor's budget is
charged for it (issue 29; the rule is :func:`core.search.background.start_gate`)."""

from __future__ import annotations

import streamlit as st

from core.data.documents import Dataset
from core.data.upload_store import is_upload_id
from core.models.base import Encoder
from core.models.errors import CoreError
from core.search.background import (
    EmbeddingJob,
    StartGate,
    background_min_docs,
    default_embedder,
    start_gate,
    vectors_on_disk,
)
from core.search.budget import embedding_estimate
from core.search.index import IndexBuild, build_index
from core.search.passages import PassageSettings
from pages.widgets.embedding_status import (
    gate_line,
    may_start,
    session_alive,
    session_user,
    waiting_line,
)


def get_index(
    dataset: Dataset,
    encoder: Encoder,
    fields: tuple[str, ...],
    passages: PassageSettings | None = None,
) -> IndexBuild:
    """The corpus index, from memory, else the disk cache, else encoded with a progress
    bar; with ``passages``, one vector per passage (dense passages). An upload's index is
    built in the background (:func:`index_or_job`): until it is ready this page shows the
    build's progress and stops, and runs again when it is; a build that waits for the
    visitor's click (or that the budget refuses) shows its estimate and stops."""
    ready = index_or_job(dataset, encoder, fields, passages)
    if isinstance(ready, StartGate):
        gate_line(ready, "This page needs the dense index. ")
        st.stop()
    if isinstance(ready, EmbeddingJob):
        waiting_line(ready)
        st.stop()
    return ready


def index_or_job(
    dataset: Dataset,
    encoder: Encoder,
    fields: tuple[str, ...],
    passages: PassageSettings | None = None,
) -> IndexBuild | EmbeddingJob | StartGate:
    """The corpus index if it is ready (memory, disk cache) or quick to make; for an
    upload not embedded yet, the background job building it, shared with every session
    that asks (this session joins it, and leaves the job it used before). A job that is
    not there yet is priced first (:func:`core.search.background.start_gate`): above
    ``RERANK_CONFIRM_SECONDS`` until this visitor clicks, or past the visitor's budget,
    nothing starts and the :class:`StartGate` comes back for the page to show
    (:func:`pages.widgets.embedding_status.gate_line`)."""
    key = (dataset.content_hash, getattr(encoder, "cache_key", encoder.name), fields, passages)
    cached = _index_cache().get(key)
    if cached is not None:
        return cached
    if (
        is_upload_id(dataset.name)
        and not _on_disk(dataset, encoder, fields, passages)
        and (len(dataset) >= background_min_docs() or _slow(dataset, encoder, fields, passages))
    ):
        embedder = default_embedder()
        user = session_user()
        previous = st.session_state.get("embedding_job")
        if previous is not None and previous != key:
            embedder.release(previous, user)
        st.session_state.embedding_job = key
        embedder.prune_users(session_alive)
        gate = start_gate(dataset, encoder, fields, passages, embedder=embedder)
        if gate.new and not may_start(gate):
            return gate
        job = embedder.start(dataset, encoder, fields, passages, user=user)
        if job.status().state != "done" or job.build is None:
            return job
        _index_cache().put(key, job.build)
        return job.build
    return _build_here(key, dataset, encoder, fields, passages)


def _on_disk(dataset: Dataset, encoder: Encoder, fields, passages) -> bool:
    """Whether the plain index is in the disk cache already (read in the page's run)."""
    if passages is not None:
        return False
    try:
        return vectors_on_disk(dataset, encoder, fields, None)
    except CoreError:
        return True  # the page's own build explains the error


def _slow(dataset: Dataset, encoder: Encoder, fields, passages) -> bool:
    """Whether a small upload's build is priced above the click threshold all the same
    (long texts cut into many dense passages): then it goes the background job's way."""
    try:
        return embedding_estimate(dataset, encoder, fields, passages).cost.needs_click
    except CoreError:
        return False  # the page's own build explains the error


def _build_here(key, dataset, encoder, fields, passages) -> IndexBuild:
    bar = st.progress(0.0, text=f"Embedding {len(dataset):,} records with {encoder.name}…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Embedding records: {done:,} / {total:,}")

    build = build_index(dataset, encoder, fields, progress=progress, passages=passages)
    bar.empty()
    _index_cache().put(key, build)
    return build


class _IndexCache:
    """A small LRU of built indexes, shared by all sessions (guarded by a lock)."""

    def __init__(self, size: int = 16) -> None:
        import threading
        from collections import OrderedDict

        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, key):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


@st.cache_resource
def _index_cache() -> _IndexCache:
    return _IndexCache()
