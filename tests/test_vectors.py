"""Corpus vectors: the vector-set files, and Ray Data embedding compared with the
in-process encoder (one local Ray session for the module, started by the tests)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from core.cli import main
from core.models.errors import SettingsError
from core.search.vectors import (
    VECTORS_FORMAT,
    VectorSet,
    embed_corpus,
    read_vector_set,
    subset,
    write_vector_set,
)
from tests.conftest import FakeEncoder

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
RAY_MOVIES = 200


def test_a_vector_set_round_trips_and_aligns_by_id(tmp_path, movies) -> None:
    small = subset(movies, 5)
    vectors = FakeEncoder().encode(small.texts(small.default_embed_fields))
    shuffled = [4, 2, 0, 1, 3]
    written = VectorSet(
        vectors[shuffled], tuple(small.ids[i] for i in shuffled), {"format": VECTORS_FORMAT}
    )
    write_vector_set(tmp_path / "v", written)
    back = read_vector_set(tmp_path / "v")
    assert back.ids == written.ids and np.array_equal(back.vectors, written.vectors)
    np.testing.assert_array_equal(back.aligned_to(small), vectors)  # matched by id
    with pytest.raises(SettingsError, match="have no vector"):
        back.aligned_to(subset(movies, 6))
    (tmp_path / "v" / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(SettingsError, match="not a rerank-workbench/vectors manifest"):
        read_vector_set(tmp_path / "v")


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the module: the machine's cores, no dashboard, no usage stats."""
    ray = pytest.importorskip("ray")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ.pop("RAY_ADDRESS", None)
    from core.search.vectors import _init_ray, local_cores

    started, workers = _init_ray(None)
    assert started and workers == local_cores()
    assert ray.cluster_resources()["CPU"] == local_cores()
    yield workers
    ray.shutdown()


@pytest.mark.slow
def test_ray_vectors_equal_the_in_process_encoder(ray_session, movies, minilm, tmp_path) -> None:
    data = subset(movies, RAY_MOVIES)
    report = embed_corpus(
        data, minilm, MINILM, engine="ray", out=tmp_path / "ray", use_cache=False, batch_size=32
    )
    manifest = report.vector_set.manifest
    assert manifest["engine"] == "ray" and manifest["workers"] == ray_session
    assert manifest["count"] == RAY_MOVIES and manifest["content_hash"] == data.content_hash
    local = minilm.encode(data.texts(data.default_embed_fields))
    ray_vectors = read_vector_set(tmp_path / "ray").aligned_to(data)
    assert ray_vectors.shape == (RAY_MOVIES, minilm.dimension)
    np.testing.assert_allclose(ray_vectors, local, atol=1e-5)


@pytest.mark.slow
def test_embed_command_on_ray_writes_what_export_reads(
    ray_session, movies, minilm, tmp_path, capsys
) -> None:
    out = tmp_path / "vec"
    code = main(
        ["embed", "--dataset", "sample", "--engine", "ray", "--out", str(out), "--verify", "8"]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "on ray (" in printed and "max |difference|" in printed
    diff = float(printed.split("max |difference| ")[1].split(",")[0])
    assert diff < 1e-5
    db = tmp_path / "sample.db"
    export = ["milvus", "export", "--dataset", "sample", "--vectors", str(out)]
    code = main([*export, "--uri", str(db), "--collection", "sample"])
    printed = capsys.readouterr().out
    assert code == 0 and f"{out} (ray)" in printed and "exported 40 records" in printed
    search = ["search", "bats in the roof", "--dataset", f"milvus:sample@{db}"]
    code = main([*search, "--no-rerank", "--retriever", "bm25", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["retriever"] == "bm25" and result["results"]
    from core.search.milvus_client import release
    from core.search.milvus_reference import MilvusTarget

    release(MilvusTarget(str(db)))
