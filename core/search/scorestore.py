"""An on-disk cache of cross-encoder scores, shared by evaluations and tuning.

A (query, document text) pair scored once by a model is never scored again, in any
process: evaluating the same benchmark with other first stages, depths or fusion
weights only scores the pairs it has not seen. Scores live in one SQLite file under
``<cache dir>/scores/``; a key is the sha256 of the reranker's ``cache_key`` (which
names its model, numerics and max length), the query and the text, so a changed
model, max length or text never reuses a stale score.

Only rerankers that declare a ``cache_key`` are cached: declaring one promises that a
pair's score does not depend on the other pairs scored with it (the packaged
cross-encoder scores one pair per call). Others are always scored afresh.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from core.models.base import RerankDoc, Reranker
from core.models.paths import cache_dir

SCHEMA = "CREATE TABLE IF NOT EXISTS scores (key BLOB PRIMARY KEY, score REAL, truncated INT)"


def reranker_key(reranker: Reranker) -> str | None:
    """The reranker's ``cache_key`` (its numerics), or None: then it is never cached."""
    key = getattr(reranker, "cache_key", None)
    return str(key) if key else None


def pair_key(model_key: str, query: str, text: str) -> bytes:
    """sha256 of the model key, query and text (NUL-separated)."""
    return hashlib.sha256("\0".join((model_key, query, text)).encode()).digest()


class ScoreStore:
    """Scores of (model, query, text) on disk; thread-safe, one connection per call."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else cache_dir() / "scores" / "scores.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, tuple[float, bool]]:
        """The stored (score, truncated) of each key found."""
        found: dict[bytes, tuple[float, bool]] = {}
        with self._lock, self._connect() as db:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT key, score, truncated FROM scores WHERE key IN ({marks})", chunk
                )
                for key, score, truncated in rows:
                    found[bytes(key)] = (float(score), bool(truncated))
        return found

    def put_many(self, items: Sequence[tuple[bytes, float, bool]]) -> None:
        """Store (key, score, truncated) rows, replacing any with the same key."""
        with self._lock, self._connect() as db:
            db.executemany(
                "INSERT OR REPLACE INTO scores VALUES (?, ?, ?)",
                [(k, float(s), int(t)) for k, s, t in items],
            )

    def __len__(self) -> int:
        with self._lock, self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM scores").fetchone()[0])


def cached_scores(
    reranker: Reranker,
    query: str,
    docs: Sequence[RerankDoc],
    store: ScoreStore | None,
) -> tuple[dict[str, tuple[float, bool]], int]:
    """Raw score and truncation flag per doc id, and how many pairs the model scored.

    Pairs found in ``store`` are not scored again; new scores are stored. Without a
    store, or for a reranker without a ``cache_key``, every pair is scored.
    """
    if not docs:
        return {}, 0
    model_key = reranker_key(reranker)
    if model_key is None:
        store = None
    keys = [pair_key(model_key or "", query, d.text) for d in docs]
    found = store.get_many(keys) if store is not None else {}
    out: dict[str, tuple[float, bool]] = {}
    todo: list[int] = []
    for i, (doc, key) in enumerate(zip(docs, keys, strict=True)):
        if key in found:
            out[doc.id] = found[key]
        else:
            todo.append(i)
    if todo:
        results = reranker.rank(query, [docs[i] for i in todo])
        new = []
        for r in results:
            i = todo[r.index]
            out[docs[i].id] = (r.score, r.truncated)
            new.append((keys[i], r.score, r.truncated))
        if store is not None:
            store.put_many(new)
    return out, len(todo)


def missing_pairs(
    reranker: Reranker, query: str, docs: Sequence[RerankDoc], store: ScoreStore
) -> int:
    """How many of ``docs`` have no score in ``store`` for ``query`` (all of them for a
    reranker without a ``cache_key``)."""
    model_key = reranker_key(reranker)
    if model_key is None:
        return len(docs)
    keys = [pair_key(model_key, query, d.text) for d in docs]
    return len(keys) - len(store.get_many(keys))
