"""Chunked, resumable embedding and the background job registry, with the real MiniLM.

Small data (300 short records, chunks of 64) keeps each build to a few seconds.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from core.data.documents import make_dataset
from core.search.activity import SearchActivity
from core.search.background import BackgroundEmbedder, JobStatus
from core.search.chunked_embedding import (
    EmbeddingCancelled,
    encode_chunked,
    final_path,
    partial_paths,
    partial_progress,
    write_npy,
)
from core.search.embedding_cache import embedding_cache_key
from core.search.index import build_index

WORDS = [
    "heist",
    "city",
    "robot",
    "love",
    "war",
    "space",
    "river",
    "ghost",
    "train",
    "island",
    "storm",
    "music",
    "detective",
]


def records(n: int, salt: str = "") -> list[dict]:
    """``n`` short movie-like records (deterministic)."""
    out = []
    for i in range(n):
        a, b, c = WORDS[i % 13], WORDS[(i * 7) % 13], WORDS[(i * 5 + 3) % 13]
        out.append({"id": f"m{i}", "title": f"The {a} {salt}{i}", "overview": f"A {b} and a {c}."})
    return out


class Wrapped:
    """The real encoder, counting its calls; ``after(calls)`` runs after each, ``fail``
    raises instead of encoding."""

    def __init__(self, encoder, after=None, fail: str | None = None) -> None:
        self.inner, self.after, self.fail = encoder, after, fail
        self.name, self.dimension = encoder.name, encoder.dimension
        self.cache_key = getattr(encoder, "cache_key", encoder.name)
        self.calls = 0

    def encode(self, texts, *, kind="document", progress=None):
        if self.fail:
            raise OSError(self.fail)
        vectors = self.inner.encode(texts, kind=kind, progress=progress)
        self.calls += 1
        if self.after is not None:
            self.after(self.calls)
        return vectors


@pytest.fixture
def cache(minilm, tmp_path, monkeypatch):
    """A fresh cache dir (the encoder is loaded before, from the shared test cache)."""
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def dataset():
    return make_dataset("upload-00000000000000aa", records(300), id_field="id")


def test_interrupted_build_resumes_to_the_one_shot_file(cache, minilm, dataset):
    fields = ("title", "overview")
    texts = dataset.texts(fields, "embed")
    key = embedding_cache_key(minilm.cache_key, dataset, fields)
    one_shot = minilm.encode(texts)

    stop_after = {"chunks": 0}
    with pytest.raises(EmbeddingCancelled):
        encode_chunked(
            key,
            texts,
            minilm,
            chunk=64,
            should_stop=lambda: stop_after["chunks"] >= 2,
            on_chunk=lambda done, total: stop_after.update(chunks=done),
        )
    assert partial_progress(key)["done"] == 2
    assert not final_path(key).exists()
    # a third chunk was being appended when the process died: bytes but no record
    data_path, _ = partial_paths(key)
    with open(data_path, "ab") as handle:
        handle.write(np.ones((64, minilm.dimension), dtype=np.float32).tobytes())

    counted = Wrapped(minilm)
    resumed = encode_chunked(key, texts, counted, chunk=64)
    assert (resumed.chunks, resumed.chunks_resumed, resumed.chunks_encoded) == (5, 2, 3)
    assert counted.calls == 3  # nothing done twice but the unrecorded chunk
    assert np.abs(resumed.vectors - one_shot).max() == 0
    reference = cache / "reference.npy"
    write_npy(reference, one_shot)
    assert final_path(key).read_bytes() == reference.read_bytes()
    assert not data_path.exists() and partial_progress(key) is None
    assert not list(data_path.parent.glob("*"))  # no partial file, record or lock left
    # the ordinary cache reads it as its own
    build = build_index(dataset, minilm, fields)
    assert build.from_cache and np.abs(build.index.vectors - one_shot).max() == 0


def test_two_users_share_one_job(cache, minilm, dataset):
    embedder = BackgroundEmbedder(visitors=SearchActivity(), chunk=64)
    first = embedder.start(dataset, minilm, ("title",), user="a")
    second = embedder.start(dataset, minilm, ("title",), user="b")
    assert first is second and first.users == {"a", "b"}
    assert first.wait(120)
    status = first.status()
    assert status.state == "done" and status.done == status.total == 300
    assert (status.chunks, status.chunks_encoded, status.chunks_resumed) == (5, 5, 0)
    assert status.docs_per_second and status.docs_per_second > 0
    expected = minilm.encode(dataset.texts(("title",), "embed"))
    assert np.abs(first.build.index.vectors - expected).max() == 0
    # done: a later start joins the finished job
    assert embedder.start(dataset, minilm, ("title",), user="c") is first


def test_cancel_when_nobody_uses_it_then_resume(cache, minilm, dataset):
    embedder = BackgroundEmbedder(visitors=SearchActivity(), chunk=64)
    holder = {}

    def after(calls: int) -> None:
        if calls == 2:  # both sessions leave while the second chunk is encoded
            embedder.release(holder["job"].key, "a")
            embedder.release(holder["job"].key, "b")

    encoder = Wrapped(minilm, after=after)
    fields = ("overview",)
    holder["job"] = job = embedder.start(dataset, encoder, fields, user="a")
    embedder.start(dataset, encoder, fields, user="b")
    assert job.wait(120)
    assert job.status().state == "cancelled" and encoder.calls == 2

    again = embedder.start(dataset, Wrapped(minilm), fields, user="c")
    assert again is not job
    assert again.wait(120)
    status = again.status()
    assert status.state == "done"
    assert (status.chunks_resumed, status.chunks_encoded) == (2, 3)
    expected = minilm.encode(dataset.texts(fields, "embed"))
    assert np.abs(again.build.index.vectors - expected).max() == 0


def test_encoding_waits_while_a_visitor_searches(cache, minilm):
    visitors = SearchActivity()
    embedder = BackgroundEmbedder(visitors=visitors, chunk=64)
    data = make_dataset("upload-00000000000000bb", records(200, "p"), id_field="id")
    searching = visitors.search()
    searching.__enter__()
    try:
        job = embedder.start(data, minilm, ("title",), user="a")
        deadline = time.monotonic() + 10
        while not job.status().paused and time.monotonic() < deadline:
            time.sleep(0.05)
        status = job.status()
        assert status.paused and status.done == 0
        assert "paused while a search runs" in status.progress_text()
    finally:
        searching.__exit__(None, None, None)
    assert job.wait(120) and job.status().state == "done"


def test_a_failed_build_says_why_in_one_line(cache, minilm, dataset):
    embedder = BackgroundEmbedder(visitors=SearchActivity(), chunk=64)
    broken = Wrapped(minilm, fail="No space left on device\nmore detail")
    job = embedder.start(dataset, broken, ("title", "overview"), user="a")
    assert job.wait(30)
    status = job.status()
    assert status.state == "failed"
    assert status.error == "OSError: No space left on device"
    assert embedder.start(dataset, broken, ("title", "overview")) is job  # not retried
    retried = embedder.start(dataset, minilm, ("title", "overview"), retry=True)
    assert retried is not job and retried.wait(120) and retried.status().state == "done"


def test_progress_text_and_eta():
    status = JobStatus("running", 430, 1000, 3.2, 10, 0, 4, False, 100.0)
    assert status.eta_seconds == pytest.approx(570 / 3.2)
    assert status.progress_text() == "43%, about 3 min left"
    assert JobStatus("running", 0, 10, None, 1, 0, 0, False, 0.0).progress_text() == (
        "0%, measuring the speed"
    )
    assert JobStatus("done", 10, 10, 5.0, 1, 0, 1, False, 2.0).fraction == 1.0


def test_jobs_of_other_threads_are_safe_to_read(cache, minilm):
    embedder = BackgroundEmbedder(visitors=SearchActivity(), chunk=32)
    data = make_dataset("upload-00000000000000cc", records(100, "t"), id_field="id")
    job = embedder.start(data, minilm, ("title",))
    seen: list[float] = []

    def read() -> None:
        for _ in range(200):
            seen.append(job.status().fraction)

    reader = threading.Thread(target=read)
    reader.start()
    assert job.wait(60)
    reader.join()
    assert seen == sorted(seen) and job.status().fraction == 1.0


def test_a_page_waiting_for_the_same_index_is_not_deadlocked(cache, minilm):
    """A visitor's page run (counted as a search) that builds the index a paused job
    holds: the job stops giving way while someone waits for its key."""
    visitors = SearchActivity()
    embedder = BackgroundEmbedder(visitors=visitors, chunk=64)
    data = make_dataset("upload-00000000000000dd", records(150, "w"), id_field="id")
    with visitors.search():  # the page run
        job = embedder.start(data, minilm, ("title",))
        deadline = time.monotonic() + 10
        while not job.status().paused and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job.status().paused
        build = build_index(data, minilm, ("title",))  # would wait forever before
        assert build.from_cache  # the job made it; nothing encoded twice
    assert job.wait(30) and job.status().state == "done"


CHILD = """
import json, os, sys
from core.models.registry import load_encoder
from core.data.documents import make_dataset
from core.search.chunked_embedding import encode_chunked
from core.search.embedding_cache import embedding_cache_key

encoder = load_encoder()  # from the test cache, before the embeddings move
os.environ["RERANK_CACHE_DIR"] = sys.argv[2]
data = make_dataset("upload-00000000000000ee", json.load(open(sys.argv[1])), id_field="id")
texts = data.texts(("title", "overview"), "embed")
key = embedding_cache_key(encoder.cache_key, data, ("title", "overview"))
print("key", key, flush=True)
encode_chunked(key, texts, encoder, chunk=64, on_chunk=lambda d, t: print(d, flush=True))
print("finished", flush=True)
"""


def test_a_build_killed_mid_way_resumes_from_its_last_chunk(cache, minilm, tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    rows = records(384, "k")
    source = tmp_path / "records.json"
    source.write_text(json.dumps(rows))
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "RERANK_CACHE_DIR": str(root / ".test-cache")}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(source), str(cache)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        key = child.stdout.readline().split()[1]
        while (line := child.stdout.readline().strip()) != "2":
            assert line and line != "finished", f"the child ended first: {line!r}"
        os.kill(child.pid, signal.SIGKILL)  # mid-way through the third chunk
    finally:
        child.wait(30)
    recorded = partial_progress(key)["done"]
    assert 2 <= recorded < 6

    data = make_dataset("upload-00000000000000ee", rows, id_field="id")
    texts = data.texts(("title", "overview"), "embed")
    counted = Wrapped(minilm)
    resumed = encode_chunked(key, texts, counted, chunk=64)
    assert resumed.chunks_resumed == recorded  # every chunk on record is kept
    assert counted.calls == resumed.chunks_encoded == 6 - recorded
    assert np.abs(resumed.vectors - minilm.encode(texts)).max() == 0


def test_a_cancel_is_seen_within_a_chunk(cache, minilm, dataset):
    """ONNX encoders get a chunk in steps of 64: a cancel stops after the step it sees."""
    texts = dataset.texts(("title",), "embed")
    key = embedding_cache_key(minilm.cache_key, dataset, ("title",)) + "-within"
    seen: list[int] = []
    with pytest.raises(EmbeddingCancelled, match="within a chunk"):
        encode_chunked(
            key,
            texts,
            minilm,
            chunk=256,
            progress=lambda done, total: seen.append(done),
            should_stop=lambda: bool(seen),
        )
    assert seen == [64] and partial_progress(key) is None  # nothing recorded
