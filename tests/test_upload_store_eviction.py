"""An evicted upload takes its cache files with it (dense index, partial chunks, the BM25
index in memory), and the cache for uploads stays within RERANK_UPLOAD_STORE_MB."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import FakeEncoder

from core.data import upload_artefacts
from core.data.upload_quality import build_upload_dataset
from core.data.upload_store import UploadStore, upload_id
from core.data.uploads import parse_upload
from core.models.paths import cache_dir
from core.search import retrievers
from core.search.chunked_embedding import (
    EmbeddingCancelled,
    encode_chunked,
    final_path,
    partial_paths,
)
from core.search.embedding_cache import embedding_cache_key

CAP_MB = 0.15  # 157,286 bytes


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RERANK_UPLOAD_STORE_MB", str(CAP_MB))


def _upload(tag: str, records: int = 300, pad: int = 0) -> bytes:
    rows = [
        {
            "id": f"{tag}-{i}",
            "title": f"{tag} film {i}",
            "overview": f"a {tag} story {i} " + "x" * pad,
        }
        for i in range(records)
    ]
    return "\n".join(json.dumps(r) for r in rows).encode()


def _dataset(data: bytes):
    parsed = parse_upload(data, "films.jsonl")
    dataset, _ = build_upload_dataset(parsed, id_field="id", name=upload_id(data))
    return dataset


def _key(dataset, encoder) -> str:
    return embedding_cache_key(encoder.name, dataset, dataset.default_embed_fields)


def _encode(dataset, encoder, **options):
    texts = dataset.texts(dataset.default_embed_fields, "embed")
    return encode_chunked(_key(dataset, encoder), texts, encoder, owner=dataset.name, **options)


def _clock():
    now = [1_000_000.0]

    def tick() -> float:
        now[0] += 10.0
        return now[0]

    return tick


def test_evicted_uploads_take_their_cache_files_and_the_cap_holds() -> None:
    cap = int(CAP_MB * 1024 * 1024)
    store = UploadStore(clock=_clock())
    encoder = FakeEncoder()
    a_bytes, b_bytes = _upload("alpha"), _upload("beta")
    a, b = _dataset(a_bytes), _dataset(b_bytes)

    assert store.put(a_bytes, "a.jsonl") == a.name
    _encode(a, encoder)
    a_file = final_path(_key(a, encoder))
    assert a_file.is_file()
    assert upload_artefacts.recorded(a.name)  # the dense index is the upload's
    retrievers.bm25_index(a, a.default_embed_fields)
    assert a.name in retrievers._BM25_NAMES.values()
    assert store.cache_bytes() <= cap

    store.put(b_bytes, "b.jsonl")
    assert store.exists(a.name)  # the blobs alone fit
    _encode(b, encoder)  # b's index makes the cache too big: a (older) goes, all of it
    assert not store.exists(a.name)
    assert not a_file.exists()
    assert upload_artefacts.recorded(a.name) == []
    assert a.name not in retrievers._BM25_NAMES.values()
    assert store.exists(b.name) and final_path(_key(b, encoder)).is_file()
    assert store.cache_bytes() <= cap

    # an unfinished build: its partial chunks count, and go with their upload
    c_bytes = _upload("gamma")
    c = _dataset(c_bytes)
    store.put(c_bytes, "c.jsonl")
    chunks = []
    with pytest.raises(EmbeddingCancelled):
        _encode(
            c,
            encoder,
            chunk=100,
            on_chunk=lambda d, t: chunks.append(d),
            should_stop=lambda: bool(chunks),
        )
    data_path, record_path = partial_paths(_key(c, encoder))
    assert data_path.stat().st_size == 100 * encoder.dimension * 4 and record_path.is_file()
    assert upload_artefacts.size(c.name) >= data_path.stat().st_size
    big = _upload("delta", records=40, pad=3000)  # ~120 KB: b and c must both go
    store.put(big, "d.jsonl")
    assert not store.exists(b.name) and not store.exists(c.name)
    assert not data_path.exists() and not record_path.exists()
    assert not final_path(_key(b, encoder)).exists()
    assert store.cache_bytes() <= cap
    assert store.exists(upload_id(big))
    leftovers = [p for p in (cache_dir() / "embeddings").rglob("*") if p.is_file()]
    assert leftovers == []


def test_a_cache_file_of_an_upload_no_longer_stored_is_removed() -> None:
    """A build that finished after its upload was evicted leaves no orphan behind: it is
    kept while it is the build's own, and removed at the next eviction."""
    encoder = FakeEncoder()
    data = _upload("orphan")
    dataset = _dataset(data)
    _encode(dataset, encoder)  # its upload is not (or no longer) in the store
    path = final_path(_key(dataset, encoder))
    assert path.is_file() and upload_artefacts.uploads() == [dataset.name]
    UploadStore(clock=_clock()).put(_upload("next"), "next.jsonl")
    assert not path.exists()
    assert upload_artefacts.uploads() == []


def test_other_datasets_and_stores_elsewhere_are_left_alone(tmp_path) -> None:
    from core.data.documents import make_dataset

    encoder = FakeEncoder()
    movies = make_dataset("movies", [{"id": "1", "t": "a film"}, {"id": "2", "t": "another"}])
    result = _encode(movies, encoder)
    assert final_path(_key(movies, encoder)).is_file()  # not an upload: not recorded
    assert upload_artefacts.uploads() == []
    assert np.asarray(result.vectors).shape == (2, encoder.dimension)
    elsewhere = UploadStore(tmp_path / "other", max_total_bytes=1)
    assert not elsewhere.owns_cache
    elsewhere.put(_upload("x"), "x.jsonl")
    assert final_path(_key(movies, encoder)).is_file()


def test_an_uploads_dense_passage_index_goes_with_it() -> None:
    from core.search.index import build_index
    from core.search.passages import PassageSettings

    store = UploadStore(clock=_clock())
    data = _upload("passages", records=20, pad=400)
    dataset = _dataset(data)
    store.put(data, "p.jsonl")
    built = build_index(
        dataset, FakeEncoder(), dataset.default_embed_fields, passages=PassageSettings()
    )
    assert built.cache_path.is_file()
    assert upload_artefacts.size(dataset.name) >= built.cache_path.stat().st_size
    store.put(_upload("huge", records=60, pad=3000), "h.jsonl")  # over the cap alone
    assert not store.exists(dataset.name)
    assert not built.cache_path.exists()
