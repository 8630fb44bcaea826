"""The CPU's INT8 kernel family is part of every INT8 cache key."""

from __future__ import annotations

from core.models.cpu import int8_kernel


def test_the_kernel_family_follows_the_cpu_flags() -> None:
    assert int8_kernel({"avx2", "fma"}) == "avx2"
    assert int8_kernel({"avx2", "avx512f", "avx512_vnni"}) == "avx512vnni"
    assert int8_kernel({"avx2", "avx_vnni"}) == "avxvnni"
    assert int8_kernel({"avx2", "avx512_vnni", "amx_int8"}) == "amx"
    assert int8_kernel({"sse4_2"}) == "generic"


def test_int8_scores_and_vectors_are_cached_per_kernel_family(cross_encoder) -> None:
    from core.models.bge import BgeOnnxEncoder
    from core.models.encoders import SentenceTransformerEncoder

    kernel = int8_kernel()
    assert f"-{kernel}|" in cross_encoder.cache_key
    assert SentenceTransformerEncoder(backend="onnx-int8").cache_key.endswith(f"-{kernel}")
    assert BgeOnnxEncoder().cache_key.endswith(f"-{kernel}")
    # The fp32 bi-encoder's vectors do not depend on it: one cache for every machine.
    fp32 = SentenceTransformerEncoder()
    assert fp32.cache_key == fp32.name
