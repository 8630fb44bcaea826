"""Shared fixtures: deterministic fakes, the real packaged models, the shared data.

Fakes stand in only where a test is about plumbing (movement, ties, caching); tests
about ranking quality use the real packaged models through session-scoped fixtures.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
MOVIES = SHARED / "movies.json"
SCIFACT = SHARED / "scifact"

# Tests never download: the product reads the shared copy, and real-model embeddings are
# cached between runs in a folder of their own.
os.environ.setdefault("RERANK_MOVIES_PATH", str(MOVIES))
os.environ.setdefault("RERANK_CACHE_DIR", str(ROOT / ".test-cache"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core.models.base import RerankDoc, RerankResult, ScoreKind, results_from_scores  # noqa: E402

_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class FakeEncoder:
    """Deterministic bag-of-words hashing encoder: shared words, higher cosine."""

    def __init__(self, name: str = "fake-encoder", dimension: int = 64) -> None:
        self.name = name
        self.dimension = dimension
        self.calls: list[int] = []

    def encode(self, texts: Sequence[str], *, kind: str = "document", progress=None) -> np.ndarray:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _words(text):
                slot = int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension
                out[row, slot] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        if progress is not None:
            progress(len(texts), len(texts))
        return out / norms


class FakeReranker:
    """Scores from a fixed table keyed by document id (default 0.0): exact and tie-able."""

    def __init__(
        self,
        scores: dict[str, float] | None = None,
        *,
        name: str = "fake-reranker",
        score_kind: ScoreKind = "logit",
        truncate_ids: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.score_kind = score_kind
        self.scores = scores or {}
        self.truncate_ids = set(truncate_ids)
        self.seen: list[tuple[str, list[RerankDoc]]] = []

    def rank(
        self, query: str, docs: Sequence[RerankDoc], top_n: int | None = None
    ) -> list[RerankResult]:
        self.seen.append((query, list(docs)))
        scores = [self.scores.get(d.id, 0.0) for d in docs]
        flags = [d.id in self.truncate_ids for d in docs]
        return results_from_scores(docs, scores, self.score_kind, top_n, flags)


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture(scope="session")
def movies_path() -> Path:
    if not MOVIES.is_file():
        pytest.skip(f"shared movies dataset missing at {MOVIES}")
    return MOVIES


@pytest.fixture(scope="session")
def movies(movies_path):
    from core.data.datasets import load_movies

    return load_movies(movies_path)


@pytest.fixture(scope="session")
def minilm():
    """The real packaged all-MiniLM-L6-v2 bi-encoder."""
    from core.models.registry import load_encoder

    return load_encoder()


@pytest.fixture(scope="session")
def cross_encoder():
    """The real packaged INT8 ONNX ms-marco-MiniLM-L-12-v2 cross-encoder."""
    from core.models.registry import load_reranker

    return load_reranker()


@pytest.fixture(scope="session")
def movies_index(movies, minilm):
    """The movies corpus embedded with the real bi-encoder (disk-cached across runs)."""
    from core.search.index import build_index

    return build_index(movies, minilm, movies.default_embed_fields).index
