"""Section "machine": the CPU, the instruction sets onnxruntime and PyTorch can use, the
load average, and a process's peak memory."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from core.models.cpu import cpu_flags, int8_kernel


def peak_rss_mb() -> float | None:
    """This process's peak resident memory (``VmHWM``), in MB.

    ``getrusage(RUSAGE_SELF).ru_maxrss`` is not used for a child process: on Linux it
    keeps the parent's peak across fork and exec.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """What this CPU offers, and what onnxruntime and PyTorch report using."""
    import onnxruntime as ort

    flags = cpu_flags()
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "onnxruntime_providers": ort.get_available_providers(),
        "avx512_vnni": "avx512_vnni" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_int8": "amx_int8" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "load_average_start": load_average(),
    }
    info["onnxruntime_int8_gemm"] = int8_kernel(flags)  # MLAS picks it at start-up
    info["torch_onednn"] = _onednn_report()
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["torch_mkldnn"] = bool(torch.backends.mkldnn.is_available())
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch is in requirements.txt
        info["torch"] = None
    return info


_ONEDNN_PROBE = r"""
import torch
x = torch.randn(64, 384)
layer = torch.nn.Linear(384, 384)
with torch.no_grad():
    layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layer(x)
"""


def _onednn_report() -> dict[str, Any]:
    """oneDNN's own account (``ONEDNN_VERBOSE``) of the ISA and kernels PyTorch uses."""
    env = dict(os.environ, ONEDNN_VERBOSE="1")
    try:
        done = subprocess.run(
            [sys.executable, "-c", _ONEDNN_PROBE],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": str(exc)}
    isa, kernels = None, []
    for line in done.stdout.splitlines():
        parts = line.split(",")
        if "isa:" in line:
            isa = line.split("isa:", 1)[1].strip()
        elif len(parts) > 6 and parts[2] == "primitive" and parts[3] == "exec":
            kernels.append(f"{parts[5]} {parts[6]}")
    return {"isa": isa, "kernels": sorted(set(kernels))}
