"""The fidelity bench's pure parts: MAC counts, CPU peaks, agreement and rule (a)."""

from __future__ import annotations

import pytest

from core.bench.fidelity import (
    Peak,
    agreement,
    at_least_as_good,
    cpu_peak,
    pair_macs,
)


def test_pair_macs_matches_the_hand_count_for_50_movie_pairs():
    # ~78 tokens per pair: 12 * 78 * (4*384^2 + 2*384*1536) = 1.66 G, plus attention.
    one = pair_macs(78)
    assert one == 12 * (78 * (4 * 384 * 384 + 2 * 384 * 1536) + 2 * 78 * 78 * 384)
    assert 80e9 < 50 * one < 90e9  # the "about 85 G" for ~3,900 tokens


def test_cpu_peak_reads_the_instruction_sets():
    avx2 = cpu_peak({"avx2", "fma"}, 2.0, 2, "AMD EPYC")
    assert (avx2.int8_per_cycle, avx2.fp32_per_cycle) == (32, 16)
    assert avx2.int8 == pytest.approx(32 * 2.0e9 * 2)
    vnni = cpu_peak({"avx2", "fma", "avx512f", "avx512_vnni"}, 2.3, 2, "Intel Xeon")
    assert (vnni.int8_per_cycle, vnni.fp32_per_cycle) == (128, 32)
    zen4 = cpu_peak({"avx2", "fma", "avx512f", "avx512_vnni"}, 2.3, 2, "AMD EPYC 9R14")
    assert zen4.int8_per_cycle == 64
    assert "AMX" in cpu_peak({"avx512_vnni", "amx_int8"}, 2.3, 2).note
    assert isinstance(avx2, Peak)


def test_agreement_is_perfect_against_itself_and_counts_changes():
    ref = {"q": {f"d{i}": float(20 - i) for i in range(20)}}
    same = agreement(ref, ref)
    assert same == {
        "top10_order": 1,
        "top10_set": 1,
        "queries": 1,
        "kendall_tau": 1.0,
        "max_abs_diff": 0.0,
        "mean_abs_diff": 0.0,
    }
    swapped = {"q": dict(ref["q"]) | {"d0": 19.0, "d1": 20.0}}  # order changes, set does not
    moved = agreement(swapped, ref)
    assert (moved["top10_order"], moved["top10_set"]) == (0, 1)
    assert moved["kendall_tau"] < 1.0
    assert moved["max_abs_diff"] == 1.0
    dropped = {"q": dict(ref["q"]) | {"d9": 0.5}}  # d9 leaves the top 10
    assert agreement(dropped, ref)["top10_set"] == 0


def test_rule_a_needs_every_figure_at_least_as_good():
    base = {
        "top10_order": 1,
        "top10_set": 12,
        "kendall_tau": 0.939,
        "max_abs_diff": 0.94,
        "mean_abs_diff": 0.185,
    }
    assert at_least_as_good(base, base)
    better = base | {"top10_set": 15, "mean_abs_diff": 0.1}
    assert at_least_as_good(better, base)
    assert not at_least_as_good(base | {"max_abs_diff": 1.2}, base)
    assert not at_least_as_good(base | {"top10_order": 0}, base)


@pytest.mark.slow
def test_the_fp32_graph_variant_scores_as_the_fp32_reference_and_batches_exactly(
    tmp_path, monkeypatch
):
    """The dequantised ONNX graph is the reference's arithmetic: same logits as the
    sentence-transformers fp32 model, and batching pairs changes no score."""
    from core.models.base import RerankDoc
    from core.models.cross_encoders import OnnxCrossEncoder
    from core.models.onnx_optimize import build_variant_graph
    from core.models.packaged import packaged_cross_encoder_dir
    from core.models.torch_cross_encoder import load_dequantized_cross_encoder

    folder = packaged_cross_encoder_dir()
    path = build_variant_graph(folder / "model.onnx", "fp32")
    assert path.is_file() and build_variant_graph(folder / "model.onnx", "fp32") == path
    query = "How many people live in Berlin?"
    docs = [
        RerankDoc("berlin", "Berlin has a population of 3,520,031 registered inhabitants."),
        RerankDoc("ny", "New York City is famous for the Metropolitan Museum of Art."),
        RerankDoc("long", "Berlin, the capital of Germany, " * 12),
    ]
    alone = OnnxCrossEncoder(folder, model_path=path, graph="fp32", cache_size=0)
    batched = OnnxCrossEncoder(folder, model_path=path, graph="fp32", batch_size=8, cache_size=0)
    reference = load_dequantized_cross_encoder()
    got = {r.id: r.score for r in alone.rank(query, docs)}
    together = {r.id: r.score for r in batched.rank(query, docs)}
    ref = {r.id: r.score for r in reference.rank(query, docs)}
    assert max(got, key=got.get) == "berlin"
    assert got["berlin"] > 5 > -5 > got["ny"]
    for doc_id in ref:
        assert got[doc_id] == pytest.approx(ref[doc_id], abs=2e-3)
        assert together[doc_id] == pytest.approx(got[doc_id], abs=1e-4)
    assert "fp32" in alone.cache_key
