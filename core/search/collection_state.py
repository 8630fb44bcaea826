"""What the stages of a collection build share: the progress callback's type, the
resumable build state (``build/state.json``: options, stages done, checkpoints, timings)
and the stored records' embed text, read back by position."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.data.documents import embed_text
from core.models.paths import atomic_write

# progress(stage, done, total or None)
BuildProgress = Callable[[str, int, int | None], None]


class BuildState:
    """``build/state.json``: options, stages done, checkpoints and timings."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    def save(self) -> None:
        atomic_write(self.path, json.dumps(self.data, indent=1).encode())

    def done(self, stage: str) -> bool:
        return stage in self.data["done"]

    def finish(self, stage: str, seconds: float) -> None:
        self.data["done"].append(stage)
        self.add_time(stage, seconds)
        self.save()

    def add_time(self, stage: str, seconds: float) -> None:
        timings = self.data.setdefault("timings", {})
        timings[stage] = timings.get(stage, 0.0) + seconds


def embed_texts(db, start: int, stop: int, fields) -> list[str]:
    """The embed text of the stored records at positions ``start`` to ``stop``."""
    rows = db.execute(
        "SELECT record FROM records WHERE pos >= ? AND pos < ? ORDER BY pos", (start, stop)
    )
    return [embed_text(json.loads(r[0]), fields) for r in rows]


class StoredTexts:
    """The stored records' embed texts as a sequence that slices (one query per slice),
    for the chunked encoder (:func:`core.search.chunked_embedding.encode_chunks`);
    ``empty[start]`` counts the texts without any text in the slice from ``start``."""

    def __init__(self, db, count: int, fields) -> None:
        self.db = db
        self.count = int(count)
        self.fields = fields
        self.empty: dict[int, int] = {}

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, where: slice) -> list[str]:
        if not isinstance(where, slice):
            raise TypeError("stored texts are read by slices of rows")
        start, stop, _ = where.indices(self.count)
        texts = embed_texts(self.db, start, stop, self.fields)
        self.empty[start] = sum(1 for t in texts if not t)
        return texts
