"""The on-disk embedding cache's keys and per-key locks (see :mod:`core.search.index`)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from core.data.documents import Dataset

# Bump when embed_text() changes, so old cache files are not reused.
TEXT_FORMAT_VERSION = 1


def embedding_cache_key(
    model_id: str,
    dataset: Dataset,
    fields: Sequence[str],
    *,
    passages: Mapping[str, Any] | None = None,
) -> str:
    """Hex key naming the cached embeddings of ``dataset`` under ``model_id`` and
    ``fields``; ``passages`` (dense passages: window, stride, cap, the encoder's limit,
    see :func:`core.search.passage_index.passage_spec`) enters the key when given."""
    parts: dict[str, Any] = {
        "model": model_id,
        "content": dataset.content_hash,
        "fields": list(fields),
        "format": TEXT_FORMAT_VERSION,
    }
    if passages is not None:
        parts["passages"] = dict(passages)
    spec = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(spec.encode()).hexdigest()


_KEY_LOCKS: dict[str, threading.Lock] = {}
_KEY_LOCKS_GUARD = threading.Lock()


def key_lock(key: str) -> threading.Lock:
    """The in-process lock of one embedding cache key."""
    with _KEY_LOCKS_GUARD:
        return _KEY_LOCKS.setdefault(key, threading.Lock())
