"""How `make test` runs the suite: pytest-xdist workers, one cache folder per worker seeded
from the shared one, heaviest test files first, the slowest tests printed at the end."""

from __future__ import annotations

import os
import re
from pathlib import Path

from conftest import HEAVIEST_FIRST, ROOT, seed_worker_cache


def test_make_test_runs_workers_by_file_and_prints_the_slowest_15() -> None:
    makefile = (ROOT / "Makefile").read_text()
    (command,) = re.findall(r"^\t\$\(PY\) -m pytest (.*)$", makefile, flags=re.MULTILINE)
    assert "-n $(TEST_WORKERS)" in command
    assert "--dist loadgroup" in command and "--no-loadscope-reorder" in command
    assert "--durations=15" in command
    assert "pytest-xdist==" in (ROOT / "requirements-dev.txt").read_text()


def test_every_file_named_heaviest_first_exists() -> None:
    missing = [path for path in HEAVIEST_FIRST if not (ROOT / path).is_file()]
    assert missing == [], "rename or drop these in tests/conftest.py's HEAVIEST_FIRST"
    assert len(set(HEAVIEST_FIRST)) == len(HEAVIEST_FIRST)


def test_a_worker_cache_gets_finished_exports_and_embeddings_only(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    export = shared / "models" / "encoder-onnx"
    export.mkdir(parents=True)
    (export / "model.onnx").write_bytes(b"graph")
    (shared / "models" / ".encoder-onnx.tmp123").mkdir()  # an export in progress
    (shared / "embeddings" / "partial").mkdir(parents=True)  # a resumable build
    (shared / "embeddings" / "partial" / "chunk-0.npy").write_bytes(b"part")
    (shared / "embeddings" / "movies.npy").write_bytes(b"vectors")
    (shared / "embeddings" / ".movies.npy.x1").write_bytes(b"half")  # a write in progress
    (shared / "scores").mkdir()
    (shared / "scores" / "scores.sqlite").write_bytes(b"db")  # changed in place: not shared
    (shared / "uploads").mkdir()

    folder = seed_worker_cache(shared, "gw1")

    assert folder == shared / "workers" / "gw1"
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == ["embeddings/movies.npy", "models/encoder-onnx/model.onnx"]
    assert (folder / "models" / "encoder-onnx" / "model.onnx").read_bytes() == b"graph"

    # Seeding again keeps what the worker has and adds what the shared folder gained.
    (folder / "embeddings" / "movies.npy").unlink()
    (folder / "embeddings" / "movies.npy").write_bytes(b"the worker's own")
    (shared / "embeddings" / "scifact.npy").write_bytes(b"more")
    seed_worker_cache(shared, "gw1")
    assert (folder / "embeddings" / "movies.npy").read_bytes() == b"the worker's own"
    assert (folder / "embeddings" / "scifact.npy").read_bytes() == b"more"
    assert not [p for p in folder.rglob(".*")]  # no temporary names left behind


def test_this_process_uses_its_own_cache_folder_under_xdist() -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    cache = Path(os.environ["RERANK_CACHE_DIR"])
    shared = Path(os.environ["RERANK_TEST_SHARED_CACHE"])
    if worker:
        assert cache == shared / "workers" / worker
    else:
        assert cache == shared
