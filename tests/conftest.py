"""Shared fixtures: deterministic fakes, the real packaged models, the shared data.

Fakes stand in only where a test is about plumbing (movement, ties, caching); tests
about ranking quality use the real packaged models through session-scoped fixtures.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
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
# Work above RERANK_CONFIRM_SECONDS waits for a click, priced at the reranker's measured
# rate, which a loaded test machine makes slow: the suite's pages run without the click
# (tests/test_budget.py sets the threshold itself to test it).
os.environ.setdefault("RERANK_CONFIRM_SECONDS", "3600")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Under pytest-xdist (`make test` runs `pytest -n ...`) each worker gets a cache folder of
# its own inside the shared one: uploads, collections, milvus.db and the score store live
# in the cache folder and must never be shared by two processes. It is seeded with the
# shared folder's model exports and corpus embeddings, which the controller fills once
# before the workers start (pytest_configure), so no worker embeds the corpus again.
# (This module is imported twice per process, as `conftest` and as `tests.conftest`: the
# shared folder is remembered in its own variable so both imports agree.)
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
os.environ.setdefault("RERANK_TEST_SHARED_CACHE", os.environ["RERANK_CACHE_DIR"])
SHARED_CACHE = Path(os.environ["RERANK_TEST_SHARED_CACHE"])
SEEDED = ("models", "embeddings")  # files written once under a final name, never changed


def _link_or_copy(source: Path | str, target: Path | str) -> None:
    """A hard link (the seeded files are replaced by rename, never rewritten in place),
    or a copy where links are not possible."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def seed_worker_cache(shared: Path, worker: str) -> Path:
    """``shared/workers/<worker>``, given a copy of each entry of ``shared``'s SEEDED
    folders that it lacks (each copied under a temporary name, then renamed); returns it."""
    folder = shared / "workers" / worker
    for name in SEEDED:
        source = shared / name
        entries = sorted(source.iterdir()) if source.is_dir() else []
        for entry in entries:
            target = folder / name / entry.name
            if entry.name.startswith(".") or entry.name == "partial" or target.exists():
                continue  # a write in progress, a resumable part, or already there
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{entry.name}.seed-{os.getpid()}")
            if entry.is_dir():
                shutil.copytree(entry, tmp, copy_function=_link_or_copy)
            else:
                _link_or_copy(entry, tmp)
            os.replace(tmp, target)
    return folder


if WORKER:
    os.environ["RERANK_CACHE_DIR"] = str(seed_worker_cache(SHARED_CACHE, WORKER))
CACHE = Path(os.environ["RERANK_CACHE_DIR"])  # this process's cache folder

from core.models.base import RerankDoc, RerankResult, ScoreKind, results_from_scores  # noqa: E402

_WORD = re.compile(r"[a-z0-9]+")


# Under xdist each test file is one unit of work (its module-scoped models, servers and
# Milvus files are set up once, on one worker), and units start heaviest first so that no
# long file starts last and runs alone at the end (`--no-loadscope-reorder` keeps this
# order). Rough order of wall time measured on the 2-core machine; the rest follow in
# collection order.
HEAVIEST_FIRST = (
    "tests/test_reproduce.py",
    "tests/e2e/test_hosting_e2e.py",
    "tests/test_bench.py",
    "tests/e2e/test_background_e2e.py",
    "tests/e2e/test_search_e2e.py",
    "tests/e2e/test_room_e2e.py",
    "tests/test_app_uploads.py",
    "tests/e2e/test_diagnostics_e2e.py",
    "tests/test_cli.py",
    "tests/e2e/test_restart_e2e.py",
    "tests/test_rerankers.py",
    "tests/e2e/test_evaluate_e2e.py",
    "tests/test_app.py",
    "tests/e2e/test_compare_e2e.py",
    "tests/test_explain.py",
    "tests/e2e/test_collection_e2e.py",
    "tests/test_app_evaluate.py",
    "tests/e2e/test_upload_e2e.py",
    "tests/test_app_compare.py",
    "tests/e2e/test_milvus_e2e.py",
    "tests/test_background_embedding.py",
    "tests/e2e/test_passages_e2e.py",
    "tests/test_app_background.py",
    "tests/e2e/test_hostile_e2e.py",
    "tests/test_collections.py",
    "tests/test_milvus.py",
    "tests/test_encoders.py",
    "tests/test_evaluation.py",
)


@pytest.hookimpl(tryfirst=True)  # before xdist's worker reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist worker: one ``xdist_group`` per test file (unless a test names its
    own group), files in HEAVIEST_FIRST order. A plain run keeps pytest's order."""
    if not WORKER:
        return
    rank = {path: number for number, path in enumerate(HEAVIEST_FIRST)}

    def file_of(item: pytest.Item) -> str:
        return item.nodeid.split("::", 1)[0]

    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(Path(file_of(item)).stem))
    items.sort(key=lambda item: rank.get(file_of(item), len(rank)))  # stable


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under xdist, in the controller (before the workers start): fill the shared cache
    with what nearly every worker would otherwise compute for itself, the bi-encoder's
    ONNX export and the movies embeddings (``python -m core warmup --if-needed``, as
    ``make app`` does; seconds when they are already there)."""
    config = session.config
    if WORKER or not getattr(config.option, "numprocesses", None) or config.option.collectonly:
        return
    if not MOVIES.is_file():
        return  # the tests that need it skip
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "core", "warmup", "--if-needed"],
        cwd=ROOT,
        env={**os.environ, "RERANK_CACHE_DIR": str(SHARED_CACHE)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    line = f"shared test cache warmed in {time.monotonic() - started:.1f} s ({SHARED_CACHE})"
    if done.returncode != 0:
        line = (
            f"warm-up of {SHARED_CACHE} failed, workers fill their own caches:\n"
            + (done.stdout + done.stderr)[-2000:]
        )
    if reporter is not None:
        reporter.write_line(line)


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
