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


class KeyLock:
    """A lock that counts the threads waiting for it (all keys together): background
    builds do not pause for visitors while someone waits for a key they may hold, since
    that someone is usually a visitor's page run (see :func:`waiting_for_keys`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> KeyLock:
        global _WAITING
        if not self._lock.acquire(blocking=False):
            with _KEY_LOCKS_GUARD:
                _WAITING += 1
            try:
                self._lock.acquire()
            finally:
                with _KEY_LOCKS_GUARD:
                    _WAITING -= 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def locked(self) -> bool:
        """Whether some thread holds it."""
        return self._lock.locked()


_KEY_LOCKS: dict[str, KeyLock] = {}
_KEY_LOCKS_GUARD = threading.Lock()
_WAITING = 0


def key_lock(key: str) -> KeyLock:
    """The in-process lock of one embedding cache key (a context manager)."""
    with _KEY_LOCKS_GUARD:
        return _KEY_LOCKS.setdefault(key, KeyLock())


def waiting_for_keys() -> int:
    """Threads waiting now for some embedding cache key's lock."""
    with _KEY_LOCKS_GUARD:
        return _WAITING
