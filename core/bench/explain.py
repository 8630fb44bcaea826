"""``python -m core bench-explain``: how faithful and how costly explanations are.

For each dataset (movies: the bench's 20 queries; SciFact: its first test queries),
the first stage retrieves candidates (movies: the packaged bi-encoder; SciFact:
BM25, see :data:`FIRST_STAGE`), the packaged reranker orders them, and
each of the top ``top`` results is explained by word occlusion (:mod:`core.quality.explain`,
no explanation cache, the reranker's score cache as in the app). Every explanation is
timed (wall and CPU seconds: the reranker's worker threads count) and scored by ERASER's
comprehensiveness and sufficiency AOPC (:mod:`core.quality.faithfulness`) for three
rankings of the same words: occlusion, random (seeded) and the fp32 rebuild's attention;
for long texts (explained by sentences, then words) occlusion ranks words sentence-major,
and the word-major order of the same explanation is reported beside it (``occlusion_words``).
The table is stored in the cache folder for the app (:func:`~core.quality.faithfulness.save_table`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from core.bench.common import BENCH_QUERIES, log_stderr
from core.quality.faithfulness import PASS_FACTOR, faithfulness_figure, load_table, save_table

CANDIDATES = {"movies": 30, "scifact": 20}
# SciFact's candidates come from BM25: its dense index needs 5,183 abstracts encoded
# first (minutes on a busy 2-core machine), and which first stage found a candidate does
# not change how its reranker score is explained.
FIRST_STAGE = {"movies": "dense", "scifact": "bm25"}
TARGET_SECONDS = {"movies": 1.5, "scifact": 5.0}


def _dataset(name: str, n: int):
    """(dataset, queries, rerank text style) for ``movies`` or ``scifact``."""
    if name == "movies":
        from core.data.datasets import load_movies

        return load_movies(), list(BENCH_QUERIES[:n]), "fields"
    if name == "scifact":
        from core.data.beir import load_beir
        from core.data.datasets import scifact_path
        from core.models.errors import DatasetUnavailableError
        from core.quality.evaluation import beir_to_dataset

        folder = scifact_path()
        if folder is None:
            raise DatasetUnavailableError("SciFact not found: set RERANK_SCIFACT_PATH")
        beir = load_beir(folder)
        queries = [beir.queries[q] for q in sorted(beir.queries, key=lambda q: int(q))][:n]
        return beir_to_dataset(beir), queries, "plain"
    from core.models.errors import SettingsError

    raise SettingsError(f"bench-explain knows movies and scifact, not '{name}'")


def bench_dataset(
    name: str, queries: int, top: int, attention: bool, on_query=None, ig: bool = False
) -> dict[str, Any]:
    """Explain the top ``top`` results of ``queries`` queries on ``name``; the row.
    ``on_query(row)`` gets the row so far after every query (partial results are kept).
    ``ig`` adds Integrated Gradients' ranking of the same words (fp32 rebuild), erased
    on the served model like the others."""
    from core.models.registry import load_encoder, load_reranker
    from core.quality.explain import explain
    from core.quality.faithfulness import attention_order, erase, occlusion_order, random_order
    from core.search.pipeline import search_with_rerank
    from core.search.retrievers import make_retriever

    dataset, qs, style = _dataset(name, queries)
    reranker = load_reranker()
    kind = FIRST_STAGE.get(name, "bm25")
    encoder = load_encoder() if kind == "dense" else None
    retriever = None
    if kind == "bm25":
        retriever = make_retriever("bm25", dataset, dataset.default_embed_fields)
    methods: dict[str, list[tuple[float, float]]] = {"occlusion": [], "random": []}
    if attention:
        methods["attention"] = []
    walls, cpus, words, pairs = [], [], [], []
    for qi, query in enumerate(qs, start=1):
        result = search_with_rerank(
            dataset,
            query,
            encoder=encoder,
            reranker=reranker,
            num_candidates=CANDIDATES.get(name, 20),
            num_results=top,
            rerank_style=style,
            retriever=retriever,
        )
        for rank, cand in enumerate(result.top_final, start=1):
            expl = explain(reranker, query, cand.rerank_text, use_cache=False)
            walls.append(expl.seconds)
            cpus.append(expl.cpu_seconds)
            words.append(sum(1 for w in expl.doc_words if w.read))
            pairs.append(expl.pairs_scored)
            orders = {
                "occlusion": occlusion_order(expl),
                "random": random_order(expl, seed=qi * 100 + rank),
            }
            if attention:
                orders["attention"] = attention_order(expl)
            if ig:
                from core.quality.explain_ig import ig_order

                orders["ig"] = ig_order(expl)
            if expl.sentences:  # a long text: the word-major reading of the same explanation
                orders["occlusion_words"] = occlusion_order(expl, sentence_major=False)
            for method, order in orders.items():
                methods.setdefault(method, [])
                e = erase(reranker, expl, order)
                methods[method].append((e.comprehensiveness_aopc, e.sufficiency_aopc))
        log_stderr(f"  {name}: query {qi}/{len(qs)} done ({len(walls)} explanations)")
        row = _row(methods, walls, cpus, words, pairs, qi, top, kind, name)
        if on_query is not None:
            on_query(row)
    return row


def _row(methods, walls, cpus, words, pairs, queries, top, kind, name) -> dict[str, Any]:
    rows = {
        m: {
            "comprehensiveness_aopc": round(float(np.mean([c for c, _ in v])), 4),
            "sufficiency_aopc": round(float(np.mean([s for _, s in v])), 4),
            "pairs": len(v),
        }
        for m, v in methods.items()
    }
    return {
        **rows,
        "seconds": {
            "median_wall": round(statistics.median(walls), 3),
            "p90_wall": round(float(np.percentile(walls, 90)), 3),
            "mean_cpu": round(float(np.mean(cpus)), 3),
            "target_median_wall": TARGET_SECONDS.get(name),
        },
        "mean_words_read": round(float(np.mean(words)), 1),
        "mean_pairs_scored": round(float(np.mean(pairs)), 1),
        "queries": queries,
        "first_stage": kind,
        "top": top,
    }


def run_explain_bench(
    names: Sequence[str],
    *,
    queries: int = 20,
    top: int = 10,
    attention: bool = True,
    ig: bool = False,
) -> dict[str, Any]:
    """The faithfulness and cost table for ``names``; stored for the app (beside the
    stored rows of datasets not run this time) and returned."""
    started = time.perf_counter()
    note = None
    if attention:
        from core.quality.faithfulness import attention_available

        note = attention_available()
        attention = note is None
    table: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "ks": [0.05, 0.1, 0.2, 0.5],
        "pass_factor": PASS_FACTOR,
        "attention_note": note,
        "datasets": {},
    }

    def keep(name: str, row: dict[str, Any]) -> None:
        table["datasets"][name] = row
        table["seconds"] = round(time.perf_counter() - started, 1)
        stored = load_table() or {}
        others = {k: v for k, v in (stored.get("datasets") or {}).items() if k not in names}
        save_table({**table, "datasets": {**others, **table["datasets"]}})

    for name in names:
        log_stderr(f"bench-explain: {name}, {queries} queries x top {top}")
        keep(name, bench_dataset(name, queries, top, attention, lambda r, n=name: keep(n, r), ig))
    return table


def format_table(table: dict[str, Any]) -> str:
    """The table as text: per dataset, each ranking's AOPCs, then cost and the verdict."""
    lines = [
        "Explanation faithfulness (ERASER AOPC over k = 5/10/20/50% of words; logits)",
        f"{'dataset':<9} {'ranking':<15} {'compr. AOPC':>12} {'suff. AOPC':>11} {'pairs':>6}",
    ]
    for name, row in table["datasets"].items():
        for method in ("occlusion", "occlusion_words", "ig", "attention", "random"):
            if method in row:
                r = row[method]
                lines.append(
                    f"{name:<9} {method:<15} {r['comprehensiveness_aopc']:>12.3f} "
                    f"{r['sufficiency_aopc']:>11.3f} {r['pairs']:>6}"
                )
        s = row["seconds"]
        figure = faithfulness_figure(table, name, "occlusion") or {}
        verdict = "shown" if figure.get("passes") else "NOT shown"
        ratio = figure.get("ratio", float("nan"))
        lines.append(
            f"  occlusion per explanation: median {s['median_wall']:.2f} s wall "
            f"(p90 {s['p90_wall']:.2f}, target {s['target_median_wall']} s), "
            f"{s['mean_cpu']:.2f} CPU s; {row['mean_words_read']:.0f} words read, "
            f"{row['mean_pairs_scored']:.0f} pairs scored"
        )
        lines.append(
            f"  occlusion comprehensiveness = {ratio:.1f}x random: {verdict} in the app "
            f"(rule: >= {table['pass_factor']:g}x)"
        )
        ig = faithfulness_figure(table, name, "ig")
        if ig:
            lines.append(
                f"  ig comprehensiveness = {ig['ratio']:.1f}x random: "
                f"{'shown' if ig['passes'] else 'NOT shown'} in the app"
            )
    if table.get("attention_note"):
        lines.append(table["attention_note"])
    lines.append(f"{table['seconds']:.0f} s in all; stored for the app")
    return "\n".join(lines)
