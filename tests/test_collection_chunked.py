"""A collection build encodes through the one chunked encoder of uploads
(core/search/chunked_embedding.py): an interrupted build resumes from its last chunk and
its vectors equal a one-shot build's (max |diff| 0), with the packaged MiniLM (ONNX:
steps of 64 documents within a chunk) as with the fake encoder; and they equal the
upload cache's vectors of the same texts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.data.collection import open_collection
from core.search import chunked_embedding, collection_build
from core.search.collection_build import build_collection


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


@pytest.mark.slow
def test_an_interrupted_minilm_build_resumes_with_identical_vectors(
    cache, tmp_path, movies, minilm, monkeypatch
) -> None:
    records = list(movies.records[:200])
    path = tmp_path / "films.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    monkeypatch.setattr(collection_build, "ENCODE_CHUNK", 96)  # 3 chunks, 2 steps each
    seen: list[int] = []

    def stop_mid_chunk(stage, done, total):
        if stage == "encode":
            seen.append(done)
            if done == 96 + 64:  # chunk 2, after its first step of 64: not on disk yet
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_collection(
            path, "cut", encoder=minilm, exact_threshold=10_000, progress=stop_mid_chunk
        )
    assert 96 in seen and 96 + 64 in seen
    resumed = build_collection(path, "cut", encoder=minilm, exact_threshold=10_000)
    assert resumed.resumed["encode"] == 96  # the chunk on record kept, the one cut redone
    whole = build_collection(path, "whole", encoder=minilm, exact_threshold=10_000)
    assert not whole.resumed
    a = np.asarray(open_collection("cut").vectors)
    b = np.asarray(open_collection("whole").vectors)
    assert a.shape == (200, minilm.dimension)
    assert float(np.abs(a - b).max()) == 0.0

    # the same texts through the upload cache's chunked build: the same vectors
    fields = open_collection("whole").manifest["embed_fields"]
    texts = [t for t in open_collection("whole").texts(fields, "embed")]
    cached = chunked_embedding.encode_chunked("films-test", texts, minilm, chunk=128)
    assert float(np.abs(cached.vectors - b).max()) == 0.0
