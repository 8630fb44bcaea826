"""Tests of core.search.index: exact top-k search and the on-disk embedding cache."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from conftest import FakeEncoder

from core.data.documents import make_dataset
from core.models.errors import FieldError
from core.search.index import VectorIndex, build_index, embedding_cache_key

# --- VectorIndex.search ----------------------------------------------------------------


def _unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    vectors = rng.standard_normal((n, d)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize("k", [0, 1, 2, 7, 63, 64, 65, 1000])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_search_matches_a_brute_force_sort(seed, k) -> None:
    rng = np.random.default_rng(seed)
    n = 64
    vectors = _unit_rows(rng, n, 24)
    query = _unit_rows(rng, 1, 24)[0]
    ids = [f"d{i}" for i in range(n)]
    index = VectorIndex(ids, vectors)

    hits = index.search(query, k)

    brute = vectors.astype(np.float64) @ query.astype(np.float64)
    expected = np.argsort(-brute, kind="stable")[: min(k, n)]
    assert [h.id for h in hits] == [ids[i] for i in expected]
    assert [h.position for h in hits] == expected.tolist()
    assert [h.rank for h in hits] == list(range(1, len(expected) + 1))
    assert [h.score for h in hits] == pytest.approx(brute[expected].tolist(), abs=1e-5)


def test_scores_are_cosine_similarities() -> None:
    # unit vectors at known angles to the query e0
    vectors = np.array(
        [[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-0.6, 0.8], [-1.0, 0.0]], dtype=np.float32
    )
    index = VectorIndex(["same", "near", "orthogonal", "far", "opposite"], vectors)
    hits = index.search(np.array([1.0, 0.0]), 5)
    assert [h.id for h in hits] == ["same", "near", "orthogonal", "far", "opposite"]
    assert [h.score for h in hits] == pytest.approx([1.0, 0.6, 0.0, -0.6, -1.0], abs=1e-6)


def test_negative_k_returns_nothing() -> None:
    index = VectorIndex(["a"], np.array([[1.0, 0.0]], dtype=np.float32))
    assert index.search(np.array([1.0, 0.0]), -3) == []


# Scores of these rows against e0 are exact in float32 (products of 0, 0.5 and 1), so
# ties are real ties whatever order BLAS sums in.
HALF = [0.5, 0.5, 0.5, 0.5]
E0 = [1.0, 0.0, 0.0, 0.0]
TIE_ROWS = {
    "a": HALF,  # 0.5
    "b": E0,  # 1.0
    "c": [0.0, 1.0, 0.0, 0.0],  # 0.0
    "d": E0,  # 1.0
    "e": HALF,  # 0.5
    "f": E0,  # 1.0
    "g": [0.5, -0.5, 0.5, -0.5],  # 0.5
    "h": [0.0, 0.0, 1.0, 0.0],  # 0.0
}


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        (1, "b"),
        (2, "bd"),
        (3, "bdf"),
        (4, "bdfa"),
        (5, "bdfae"),
        (6, "bdfaeg"),
        (7, "bdfaegc"),
        (8, "bdfaegch"),
        (20, "bdfaegch"),
    ],
)
def test_ties_keep_row_order(k, expected) -> None:
    index = VectorIndex(list(TIE_ROWS), np.array(list(TIE_ROWS.values()), dtype=np.float32))
    hits = index.search(np.array(E0), k)
    assert "".join(h.id for h in hits) == expected


def test_many_ties_at_the_cut_take_the_earliest_rows() -> None:
    # 200 identical rows, plus one better row at the end: argpartition may pick any tied
    # rows; search must take the earliest ones.
    rows = np.tile(np.array([HALF], dtype=np.float32), (200, 1))
    rows = np.vstack([rows, np.array([E0], dtype=np.float32)])
    ids = [str(i) for i in range(201)]
    hits = VectorIndex(ids, rows).search(np.array(E0), 10)
    assert [h.id for h in hits] == ["200", *[str(i) for i in range(9)]]
    assert [h.score for h in hits] == [1.0] + [0.5] * 9


def test_index_rejects_mismatched_ids() -> None:
    with pytest.raises(ValueError, match="2 ids for 3 vectors"):
        VectorIndex(["a", "b"], np.zeros((3, 4), dtype=np.float32))


def test_index_vectors_are_read_only() -> None:
    index = VectorIndex(["a"], np.array([[1.0, 0.0]], dtype=np.float32))
    with pytest.raises(ValueError):
        index.vectors[0, 0] = 2.0


# --- build_index and the embedding cache ---------------------------------------------------


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path))
    return tmp_path


RECORDS = [
    {"id": "heat", "title": "Heat", "overview": "A thief and a detective in Los Angeles."},
    {"id": "alien", "title": "Alien", "overview": "A crew meets a creature in space."},
    {"id": "up", "title": "Up", "overview": None},
]


def _dataset(records=RECORDS):
    return make_dataset("films", records, id_field="id")


def test_cache_miss_then_hit(cache) -> None:
    ds = _dataset()
    first_encoder = FakeEncoder()
    first = build_index(ds, first_encoder, ["title", "overview"])
    assert first.from_cache is False
    assert first_encoder.calls == [3]
    assert first.cache_path is not None and first.cache_path.is_file()
    assert first.cache_path.parent == cache / "embeddings"
    assert first.cache_path.stem == embedding_cache_key("fake-encoder", ds, ("title", "overview"))
    assert first.seconds >= 0

    second_encoder = FakeEncoder()
    second = build_index(ds, second_encoder, ["title", "overview"])
    assert second.from_cache is True
    assert second_encoder.calls == []  # encode was not called
    assert second.cache_path == first.cache_path
    assert second.index.ids == ("heat", "alien", "up")
    np.testing.assert_array_equal(second.index.vectors, first.index.vectors)


def test_cached_vectors_are_the_encoded_vectors(cache) -> None:
    ds = _dataset()
    encoder = FakeEncoder()
    build = build_index(ds, encoder, ["title"])
    direct = FakeEncoder().encode(ds.texts(["title"]))
    np.testing.assert_allclose(build.index.vectors, direct)
    np.testing.assert_allclose(np.load(build.cache_path), direct)


def test_equal_content_in_another_dataset_object_hits(cache) -> None:
    build_index(_dataset(), FakeEncoder(), ["title"])
    encoder = FakeEncoder()
    copy = make_dataset("renamed", [dict(r) for r in RECORDS], id_field="id")
    assert build_index(copy, encoder, ["title"]).from_cache is True
    assert encoder.calls == []


@pytest.mark.parametrize(
    "change",
    ["fields", "field order", "content", "model name"],
)
def test_any_change_in_what_is_embedded_misses(cache, change) -> None:
    base = build_index(_dataset(), FakeEncoder(), ["title", "overview"])
    dataset, fields, encoder = _dataset(), ["title", "overview"], FakeEncoder()
    if change == "fields":
        fields = ["title"]
    elif change == "field order":
        fields = ["overview", "title"]
    elif change == "content":
        records = [dict(r) for r in RECORDS]
        records[1]["overview"] = "A crew meets a creature in deep space."
        dataset = make_dataset("films", records, id_field="id")
    else:
        encoder = FakeEncoder(name="other-encoder")

    build = build_index(dataset, encoder, fields)
    assert build.from_cache is False
    assert encoder.calls == [3]
    assert build.cache_path != base.cache_path
    assert len(list((cache / "embeddings").glob("*.npy"))) == 2


def test_use_cache_false_encodes_and_writes_nothing(cache) -> None:
    encoder = FakeEncoder()
    build_index(_dataset(), encoder, ["title"], use_cache=False)
    build = build_index(_dataset(), encoder, ["title"], use_cache=False)
    assert build.from_cache is False
    assert build.cache_path is None
    assert encoder.calls == [3, 3]
    assert not (cache / "embeddings").exists()


@pytest.mark.parametrize(
    "corrupt",
    ["wrong shape", "wrong dimension", "wrong dtype", "not npy", "truncated", "empty"],
)
def test_corrupt_cache_file_is_re_encoded(cache, corrupt) -> None:
    ds = _dataset()
    path = build_index(ds, FakeEncoder(), ["title"]).cache_path
    good = np.load(path)
    if corrupt == "wrong shape":
        np.save(path, np.zeros((2, 64), dtype=np.float32))
    elif corrupt == "wrong dimension":
        np.save(path, np.zeros((3, 32), dtype=np.float32))
    elif corrupt == "wrong dtype":
        np.save(path, good.astype(np.float64))
    elif corrupt == "not npy":
        path.write_bytes(b"this is not an array" * 10)
    elif corrupt == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    else:
        path.write_bytes(b"")

    encoder = FakeEncoder()
    build = build_index(ds, encoder, ["title"])
    assert build.from_cache is False
    assert encoder.calls == [3]
    np.testing.assert_array_equal(build.index.vectors, good)
    # the bad file was replaced: the next build is a hit
    again = FakeEncoder()
    assert build_index(ds, again, ["title"]).from_cache is True
    assert again.calls == []


def test_unknown_field_raises_before_encoding(cache) -> None:
    encoder = FakeEncoder()
    with pytest.raises(FieldError, match="unknown field"):
        build_index(_dataset(), encoder, ["plot"])
    assert encoder.calls == []


def test_progress_is_passed_to_the_encoder(cache) -> None:
    seen = []
    build_index(_dataset(), FakeEncoder(), ["title"], progress=lambda d, t: seen.append((d, t)))
    assert seen == [(3, 3)]


class SlowEncoder(FakeEncoder):
    """A FakeEncoder that takes a while, so concurrent builds overlap."""

    def encode(self, texts, *, kind="document", progress=None):
        time.sleep(0.3)
        return super().encode(texts, kind=kind, progress=progress)


def test_concurrent_builds_of_one_key_encode_once(cache) -> None:
    ds = _dataset()
    encoder = SlowEncoder()
    barrier = threading.Barrier(4)
    builds, errors = [], []

    def worker() -> None:
        try:
            barrier.wait(5)
            builds.append(build_index(ds, encoder, ["title", "overview"]))
        except Exception as exc:  # surfaced by the asserts below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert errors == []
    assert encoder.calls == [3]
    assert sorted(b.from_cache for b in builds) == [False, True, True, True]
    for build in builds:
        np.testing.assert_array_equal(build.index.vectors, builds[0].index.vectors)
