"""Where the app keeps what it caches (downloads, embeddings)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """``RERANK_CACHE_DIR`` if set, else ``data/cache`` in the project."""
    configured = os.environ.get("RERANK_CACHE_DIR")
    return Path(configured).expanduser() if configured else PROJECT_ROOT / "data" / "cache"
