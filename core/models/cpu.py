"""What the CPU offers that changes INT8 numerics.

onnxruntime's MLAS picks its U8S8 GEMM kernel from CPUID bits at start-up. AVX2's
``vpmaddubsw`` saturates pairs of products at int16, AVX-512 VNNI's ``vpdpbusd`` (and
AMX) accumulate in int32, so the same INT8 graph can score a pair slightly differently
on two machines. Caches of INT8 results (cross-encoder scores, INT8 embeddings) carry
the kernel family in their keys, so a cache copied between machines is never read as
if its numbers were this machine's.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def int8_kernel(flags: frozenset[str] | set[str] | None = None) -> str:
    """The family of MLAS's INT8 GEMM kernel on a CPU with ``flags`` (default: this
    one): ``amx``, ``avx512vnni``, ``avxvnni``, ``avx2`` or ``generic``."""
    flags = cpu_flags() if flags is None else flags
    if "amx_int8" in flags:
        return "amx"
    if "avx512_vnni" in flags:
        return "avx512vnni"
    if "avx_vnni" in flags:
        return "avxvnni"
    if "avx2" in flags:
        return "avx2"
    return "generic"
