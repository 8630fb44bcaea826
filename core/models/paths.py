"""Where the app keeps what it caches (downloads, embeddings)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """``RERANK_CACHE_DIR`` if set, else ``data/cache`` in the project."""
    configured = os.environ.get("RERANK_CACHE_DIR")
    return Path(configured).expanduser() if configured else PROJECT_ROOT / "data" / "cache"


def atomic_write(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` via a temporary file and a rename.

    Readers (other sessions, other processes) see the old file or the new one, never a
    half-written one. Parent folders are created.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
