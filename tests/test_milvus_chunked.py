"""Milvus exports of a dataset encode through the one chunked, resumable encoder
(build_index -> chunked_embedding.encode_chunked): an export cut mid-encoding resumes from
its last chunk, and the vectors equal a one-shot encoding's (max |diff| 0)."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from core.data.documents import make_dataset
from core.models.errors import CoreError
from core.search.chunked_embedding import CHUNK_DOCS, final_path, partial_progress
from core.search.embedding_cache import embedding_cache_key
from core.search.milvus_export import export_dataset
from core.search.milvus_reference import MilvusTarget
from tests.conftest import FakeEncoder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_interrupted_milvus_export_resumes_its_encoding(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))
    rows = [
        {"id": str(i), "text": f"record {i} about topic {i % 37} and {i % 11}"} for i in range(2500)
    ]
    dataset = make_dataset("big", rows, id_field="id")
    encoder = FakeEncoder()
    target = MilvusTarget(f"http://127.0.0.1:{_free_port()}")  # nobody listens there
    key = embedding_cache_key(encoder.name, dataset, ["text"])

    def cut(done: int, total: int) -> None:
        if done >= 2 * CHUNK_DOCS:  # chunk 2 encoded, not yet on disk
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_dataset(
            dataset,
            target,
            "films",
            encoder=encoder,
            model_id="fake",
            embed_fields=["text"],
            progress=cut,
        )
    assert partial_progress(key)["done"] == 1
    encoder.calls.clear()
    with pytest.raises(CoreError):  # encoding finishes, then Milvus is unreachable
        export_dataset(
            dataset, target, "films", encoder=encoder, model_id="fake", embed_fields=["text"]
        )
    assert encoder.calls == [CHUNK_DOCS, 2500 - 2 * CHUNK_DOCS]  # chunks 2 and 3 only
    saved = np.load(final_path(key))
    one_shot = FakeEncoder().encode(dataset.texts(["text"], "embed"))
    assert float(np.abs(saved - one_shot).max()) == 0.0
