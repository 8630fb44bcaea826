"""What the cache holds for each upload, so it goes with the upload.

An upload's dense index (``embeddings/<key>.npy``), its partial chunks while it is built
(``embeddings/partial/<key>.f32``, ``.json``, ``.lock``) and anything else made from it
are named by hashes that do not say which upload they came from. Whoever writes such a
file for a dataset named ``upload-<16 hex>`` records it here (:func:`note`), in
``<cache dir>/upload-artefacts/<upload id>.json``; :class:`core.data.upload_store.
UploadStore` counts those files against its cap (``RERANK_UPLOAD_STORE_MB``) and
removes them with their upload (:func:`remove`). In-memory artefacts (a BM25 index) are
dropped by the hooks in :data:`EVICTION_HOOKS`, which higher layers register.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from core.models.paths import atomic_write, cache_dir

_ID = re.compile(r"^upload-[0-9a-f]{16}\Z")
_LOCK = threading.RLock()
# called with an upload id after its files were removed (e.g. to drop a BM25 index)
EVICTION_HOOKS: list[Callable[[str], None]] = []


def folder() -> Path:
    """Where the records are: ``<cache dir>/upload-artefacts``."""
    return cache_dir() / "upload-artefacts"


def _record(upload: str) -> Path:
    return folder() / f"{upload}.json"


def note(upload: str, paths: Iterable[Path]) -> None:
    """Record ``paths`` (files in the cache folder) as made from ``upload``; a name that
    is not an upload id is ignored (built-in datasets, collections)."""
    if not isinstance(upload, str) or not _ID.match(upload):
        return
    root = cache_dir().resolve()
    names = []
    for path in paths:
        with contextlib.suppress(ValueError):
            names.append(str(Path(path).resolve().relative_to(root)))
    if not names:
        return
    with _LOCK:
        known = recorded(upload)
        merged = sorted(set(known) | set(names))
        if merged != known:
            folder().mkdir(parents=True, exist_ok=True)
            atomic_write(_record(upload), json.dumps(merged).encode())


def recorded(upload: str) -> list[str]:
    """The cache files recorded for ``upload`` (relative to the cache folder)."""
    try:
        names = json.loads(_record(upload).read_text("utf-8"))
    except (OSError, ValueError):
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def uploads() -> list[str]:
    """Every upload id with a record."""
    if not folder().is_dir():
        return []
    return sorted(p.stem for p in folder().glob("upload-*.json") if _ID.match(p.stem))


def size(upload: str) -> int:
    """Bytes of the recorded files of ``upload`` that exist."""
    root = cache_dir()
    total = 0
    for name in recorded(upload):
        with contextlib.suppress(OSError):
            total += (root / name).stat().st_size
    return total


def remove(upload: str) -> int:
    """Delete the recorded files of ``upload`` and its record, then run the eviction
    hooks; returns the bytes freed."""
    root = cache_dir().resolve()
    freed = 0
    with _LOCK:
        for name in recorded(upload):
            path = (root / name).resolve()
            if root not in path.parents:  # a record never reaches outside the cache
                continue
            with contextlib.suppress(OSError):
                freed += path.stat().st_size
                path.unlink()
        _record(upload).unlink(missing_ok=True)
    for hook in list(EVICTION_HOOKS):
        with contextlib.suppress(Exception):
            hook(upload)
    return freed
