"""The targets and the printed report: what each measurement should reach, and the whole
report as readable tables."""

from __future__ import annotations

from typing import Any

TARGETS = {
    "rerank50_median_ms": 150.0,
    "rerank50_speedup_vs_st_fp32": 4.0,
    "query_median_ms": 200.0,
    "movies_encode_docs_per_s": 300.0,
}


def targets(report: dict) -> dict[str, Any]:
    """Each target of :data:`TARGETS`, the value reached and whether it is met."""
    rows = report["rerank_comparison"]["rows"]
    reached = {
        "rerank50_median_ms": report["latency"]["rerank50"]["median_ms"],
        "rerank50_speedup_vs_st_fp32": rows["st_crossencoder_fp32"]["slower_than_optimised"],
        "query_median_ms": report["latency"]["query"]["median_ms"],
        "movies_encode_docs_per_s": report["encode"]["movies"]["docs_per_s"],
    }
    out = {}
    for name, goal in TARGETS.items():
        value = reached[name]
        higher_is_better = name.endswith(("docs_per_s", "speedup_vs_st_fp32"))
        met = value >= goal if higher_is_better else value <= goal
        out[name] = {"goal": goal, "reached": value, "met": bool(met)}
    return out


def format_report(report: dict) -> str:
    """The report as readable tables."""
    m = report["machine"]
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores; load average "
        f"{m['load_average_start']} at start, {m.get('load_average_end')} at end",
        f"  onnxruntime {m['onnxruntime']} ({', '.join(m['onnxruntime_providers'])}); "
        f"torch {m.get('torch')} (capability {m.get('torch_cpu_capability')}, "
        f"mkldnn {m.get('torch_mkldnn')})",
        f"  AVX512-VNNI {m['avx512_vnni']}, AVX512-BF16 {m['avx512_bf16']}, "
        f"AMX-INT8 {m['amx_int8']}, AMX-BF16 {m['amx_bf16']}; onnxruntime int8 GEMM: "
        f"{m['onnxruntime_int8_gemm']}",
        f"  oneDNN (PyTorch): ISA {m['torch_onednn'].get('isa')}; kernels "
        f"{', '.join(m['torch_onednn'].get('kernels', [])) or 'none reported'}",
        "",
        "corpus encoding                          docs   seconds   docs/s",
    ]
    enc = report["encode"]
    for key, label in (
        ("movies", f"movies, default ({enc['default_backend']})"),
        ("scifact", "SciFact, default"),
        ("movies_torch_fp32", "movies, PyTorch fp32 (seed)"),
        ("movies_torch_bf16_autocast", "movies, PyTorch bf16 autocast"),
        ("movies_onnx_int8", "movies, ONNX int8 (opt-in)"),
    ):
        row = enc.get(key, {})
        if "docs" in row:
            lines.append(
                f"  {label:<37}{row['docs']:>6}{row['seconds']:>10.2f}{row['docs_per_s']:>9.1f}"
            )
        else:
            lines.append(f"  {label:<37}{row.get('skipped', 'n/a')}")
    if "note" in enc.get("scifact", {}):
        lines.append(f"  (SciFact: {enc['scifact']['note']})")
    int8 = enc["movies_onnx_int8"]
    lines.append(
        f"  default vs PyTorch max |diff| {enc['max_abs_diff_default_vs_torch']:.1e}; "
        f"int8 cosine to fp32 mean {int8['cosine_to_fp32_mean']}, min {int8['cosine_to_fp32_min']}"
    )
    lat = report["latency"]
    lines += [
        "",
        f"query latency, movies ({lat['queries']} queries x {lat['repeats']}; "
        f"reranker: {lat['workers']} workers x {lat['threads_per_call']} thread; cache off)",
        "  stage                          median ms    p90 ms",
    ]
    for key, label in (
        ("encode", "encode query"),
        ("search", "search (exact, top 100)"),
        ("rerank25", "rerank 25"),
        ("rerank50", "rerank 50"),
        ("rerank100", "rerank 100"),
        ("rerank50_cache_hit", "rerank 50, score cache hit"),
        ("query", "whole query (encode+search+50)"),
    ):
        row = lat[key]
        lines.append(f"  {label:<31}{row['median_ms']:>9.1f}{row['p90_ms']:>10.1f}")
    par = report["parallelism"]
    rr = par["rerank50_workers_x_threads"]
    lines.append(
        f"  workers x threads, rerank 50 median ms ({par['queries']} queries): "
        + ", ".join(f"{k} {v['median_ms']:.0f}" for k, v in rr.items())
    )
    encode_configs = par.get("encode_docs_per_s_workers_x_threads")
    if encode_configs:
        lines.append(
            f"  workers x threads, encoding docs/s ({par['encode_docs']} movies): "
            + ", ".join(f"{k} {v:.0f}" for k, v in encode_configs.items())
        )
    cmp_ = report["rerank_comparison"]
    lines += [
        "",
        f"rerank {cmp_['candidates']} candidates: the alternatives "
        "(top 10 compared with the unoptimised ONNX)",
        "  reranker                    queries  median ms   p90 ms   x slower  top10 order"
        "    set  max|dlogit|",
    ]
    for name, row in cmp_["rows"].items():
        lines.append(
            f"  {name:<28}{row['queries']:>7}{row['median_ms']:>11.1f}{row['p90_ms']:>9.1f}"
            f"{row['slower_than_optimised']:>11.2f}{row['top10_same_order']:>13}"
            f"{row['top10_same_set']:>7}{row['max_abs_logit_diff']:>13.3f}"
        )
    lines.append(f"  reranker cache_key: {cmp_['cache_key']}")
    fused = cmp_.get("fused", {})
    if "error" in fused:
        lines.append(f"  fused graph: not built: {fused['error']}")
    else:
        lines.append(f"  fused graph ({fused['recipe']}): {fused['path']}")
    sci = report.get("scifact_agreement", {})
    if "rows" in sci:
        lines += [
            "",
            f"SciFact, long documents ({sci['queries']} queries x {sci['candidates']} "
            f"candidates, {sci['mean_tokens']} tokens a pair on average, "
            f"{sci['truncated_to_512']} truncated to 512)",
            "  reranker                    median ms   p90 ms  top10 order    set  max|dlogit|",
        ]
        for name, row in sci["rows"].items():
            lines.append(
                f"  {name:<28}{row['median_ms']:>9.1f}{row['p90_ms']:>9.1f}"
                f"{row['top10_same_order']:>13}{row['top10_same_set']:>7}"
                f"{row['max_abs_logit_diff']:>13.3f}"
            )
    elif sci:
        lines.append(f"SciFact agreement: {sci.get('skipped')}")
    b = cmp_["berlin_logits"]
    lines.append(
        f"  Berlin pair logits (berlin, new york): ONNX int8 {b['onnx_int8']}, "
        f"rebuilt fp32 {b['st_fp32']}"
    )
    q = report["quality"]
    lines += [
        "",
        f"whole-pipeline top 10 vs the seed path ({q['queries']} queries): "
        f"same order {q['top10_same_order']}, same set {q['top10_same_set']}; "
        f"with the int8 encoder: same order {q.get('int8_encoder_top10_same_order')}",
    ]
    cs = report["cold_start"]
    if "error" in cs:
        lines.append(f"cold start: failed: {cs['error']}")
    else:
        lines.append(
            f"cold start to first answer (warm disk cache, best of {cs['runs']}): "
            f"{cs['wall_s']:.2f} s wall (import {cs['import_s']:.2f}, models "
            f"{cs['load_models_s']:.2f}, cached embeddings {cs['read_index_s']:.2f}, query "
            f"{cs['first_query_s']:.2f}); torch imported: {cs['torch_imported']}"
        )
    mem = report["memory"]
    lines.append(
        f"peak memory: cold-start process {mem['cold_start_process_peak_mb']} MB (VmHWM); "
        f"bench process {mem['bench_process_peak_mb']} MB (ru_maxrss; holds every baseline)"
    )
    lines.append("")
    profiles = [("packaged graph", report["profile"])]
    if "fused" in report["profile"]:
        profiles.append(("fused graph", report["profile"]["fused"]))
    for label, prof in profiles:
        lines += [
            f"profile, {label}, rerank {prof['pairs']} pairs ({prof['tokens']} tokens) on one "
            f"thread: {prof['wall_ms_one_thread']:.0f} ms, of which operators "
            f"{prof['kernel_ms']:.0f} ms; int8 GEMMs {prof['int8_gemm_share']:.0%} of operator "
            f"time at {prof['int8_gemm_gops']} GOPS",
            "  "
            + ", ".join(
                f"{o['op']} {o['share']:.0%} ({o['calls']}x {o['us_per_call']:.0f} us)"
                for o in prof["top_ops"][:8]
            ),
        ]
    lines += ["", "targets"]
    for name, row in report["targets"].items():
        mark = "met" if row["met"] else "NOT met"
        lines.append(f"  {name:<30} goal {row['goal']:>7}  reached {row['reached']:>8}  {mark}")
    lines.append(f"\n(bench took {report['seconds']} s)")
    return "\n".join(lines)
