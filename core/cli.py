"""Command line: ``python -m core search "QUERY" [options]``.

Errors a user can cause print one line on stderr (``error: ...``) and exit with 2;
no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from core.errors import CoreError


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _add_fusion_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fusion-weight",
        type=float,
        default=1.0,
        help="cross-encoder weight in the fused score, 0-1 (1: pure rerank, the default)",
    )
    parser.add_argument(
        "--fusion", choices=["linear", "rrf"], default="linear", help="how scores are fused"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m core``."""
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    search = commands.add_parser("search", help="retrieve and rerank one query")
    search.add_argument("query")
    search.add_argument(
        "--dataset",
        default="movies",
        help="movies, sample, collection:NAME (a built collection), or a path to a JSON file",
    )
    search.add_argument("--candidates", type=int, default=50, help="retrieved candidates")
    search.add_argument("--top", type=int, default=10, help="results shown")
    search.add_argument("--embed-fields", type=_csv, help="comma-separated fields to embed")
    search.add_argument("--rerank-fields", type=_csv, help="comma-separated fields to rerank")
    search.add_argument("--id-field", help="field holding record ids (JSON files)")
    search.add_argument(
        "--encoder", default=None, help="bi-encoder model id (together:<model> for Together)"
    )
    search.add_argument(
        "--reranker", default=None, help="cross-encoder model id (together:<model> for Together)"
    )
    search.add_argument("--max-length", type=int, default=None, help="reranker max tokens")
    search.add_argument(
        "--rerank-top-n", type=int, default=None, help="ask the reranker for its best N only"
    )
    search.add_argument(
        "--fallback",
        action="store_true",
        help="if a hosted reranker fails, rerank with the local cross-encoder and say so",
    )
    search.add_argument("--no-rerank", action="store_true", help="retrieval only (baseline)")
    search.add_argument(
        "--retriever",
        choices=["dense", "bm25", "hybrid"],
        default="dense",
        help="first stage (default dense)",
    )
    search.add_argument("--rrf-k", type=int, default=60, help="hybrid: RRF k (default 60)")
    _add_fusion_arguments(search)
    search.add_argument("--json", action="store_true", help="print JSON with every field")

    evaluate = commands.add_parser(
        "evaluate", help="score retrieval and retrieval + rerank against judgments"
    )
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--beir", metavar="PATH", help="a BEIR folder (corpus, queries, qrels)")
    source.add_argument(
        "--judgments", metavar="CSV", help="a query,doc_id,rating CSV judged on --dataset"
    )
    evaluate.add_argument(
        "--dataset", default="movies", help="with --judgments: movies, sample or a JSON file"
    )
    evaluate.add_argument("--split", default="test", help="BEIR qrels split (default: test)")
    evaluate.add_argument("--candidates", type=int, default=100, help="retrieved per query")
    evaluate.add_argument("--max-queries", type=int, default=None, help="first N queries only")
    evaluate.add_argument(
        "--rerank-fields", type=_csv, help="comma-separated fields the reranker reads"
    )
    evaluate.add_argument(
        "--retriever",
        type=_csv,
        default=None,
        help="first stage(s): dense, bm25, hybrid; several (comma-separated) print one "
        "row each, alone, reranked and (with --fusion-weight) fused",
    )
    evaluate.add_argument(
        "--encoder",
        type=_csv,
        default=None,
        help="bi-encoder model id(s), comma-separated (dense runs once per encoder)",
    )
    evaluate.add_argument(
        "--rrf-k", type=int, default=60, help="hybrid: reciprocal rank fusion k (default 60)"
    )
    evaluate.add_argument("--reranker", default=None, help="cross-encoder model id")
    evaluate.add_argument("--max-length", type=int, default=None, help="reranker max tokens")
    evaluate.add_argument("--no-rerank", action="store_true", help="retrieval only (baseline)")
    evaluate.add_argument(
        "--depth", type=int, default=None, help="rerank only the top N candidates (default: all)"
    )
    _add_fusion_arguments(evaluate)
    evaluate.add_argument(
        "--tune",
        action="store_true",
        help="choose first stage, rerank depth and fusion weight by k-fold cross-validation "
        "(default first stages: dense MiniLM, dense bge-small, BM25, hybrid)",
    )
    evaluate.add_argument("--folds", type=int, default=5, help="--tune: folds (default 5)")
    evaluate.add_argument("--seed", type=int, default=0, help="--tune: shuffle seed")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.add_argument(
        "--per-query-out",
        metavar="FILE",
        help="per-query CSV (default: <cache dir>/eval/<name>-<timestamp>.csv)",
    )

    _add_collection_commands(commands)

    bench = commands.add_parser(
        "bench", help="measure encoding, query latency and rerank speed on this machine"
    )
    bench.add_argument("--json", action="store_true", help="print the report as JSON")
    bench.add_argument("--quick", action="store_true", help="tiny repeats (a smoke test)")
    bench.add_argument(
        "--scifact", metavar="PATH", help="BEIR SciFact folder (default: the shared copy)"
    )
    return parser


def _add_collection_commands(commands) -> None:
    collection = commands.add_parser(
        "collection", help="build, list and benchmark collections (large corpora on disk)"
    )
    sub = collection.add_subparsers(dest="collection_command", required=True)
    build = sub.add_parser(
        "build", help="build a collection from a JSON, JSONL, CSV/TSV or Parquet file"
    )
    build.add_argument("path", help="the file (read as a stream)")
    build.add_argument("--name", required=True, help="collection name (letters, digits, ._-)")
    build.add_argument("--embed-fields", type=_csv, help="fields to embed and BM25-index")
    build.add_argument("--rerank-fields", type=_csv, help="default fields the reranker reads")
    build.add_argument("--id-field", help="field holding unique ids (default: id/_id, else rows)")
    build.add_argument("--title-field", help="field shown as the title")
    build.add_argument("--encoder", default=None, help="bi-encoder model id (default MiniLM)")
    build.add_argument(
        "--restart", action="store_true", help="discard an earlier build (finished or not)"
    )
    build.add_argument(
        "--exact-threshold",
        type=int,
        default=None,
        help="approximate (faiss IVF-SQ8) index from this many records (default 50,000)",
    )
    sub.add_parser("list", help="list built collections")
    info = sub.add_parser("info", help="print a collection's manifest")
    info.add_argument("name")
    bench = sub.add_parser(
        "bench", help="build and query a 1,000,000-document collection (see its --help)"
    )
    bench.add_argument("--docs", type=int, default=1_000_000, help="documents (default 1M)")
    bench.add_argument("--name", default="bench-1m", help="collection name")
    bench.add_argument("--sample", type=int, default=200, help="docs encoded for real")
    bench.add_argument("--pool", type=int, default=500, help="source documents per kind")
    bench.add_argument("--queries", type=int, default=300, help="real queries (SciFact+movies)")
    bench.add_argument("--rerank-queries", type=int, default=8, help="queries reranked (50)")
    bench.add_argument("--rebuild", action="store_true", help="rebuild even if built")
    bench.add_argument("--compare-ann", type=int, default=0, help="N: faiss vs usearch on N")
    bench.add_argument("--scifact", metavar="PATH", help="BEIR SciFact folder")
    bench.add_argument("--json", action="store_true", help="print the report as JSON")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        if args.command == "search":
            return _search(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "bench":
            return _bench(args)
        if args.command == "collection":
            return _collection(args)
    except CoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 1


def _search(args: argparse.Namespace) -> int:
    from core.data.datasets import load_dataset, load_json_dataset
    from core.errors import SettingsError
    from core.models.base import DEFAULT_ENCODER, DEFAULT_MAX_LENGTH, DEFAULT_RERANKER
    from core.models.registry import load_encoder, load_reranker
    from core.search.fusion import check_fusion
    from core.search.index import build_index
    from core.search.pipeline import search_with_rerank
    from core.search.retrievers import make_retriever

    # Check what needs no model before loading any (loading takes seconds).
    if not args.query.strip():
        raise SettingsError("the query is empty: type what you are looking for")
    if args.candidates < 1 or args.top < 1:
        raise SettingsError("--candidates and --top must be at least 1")
    check_fusion(args.fusion_weight, args.fusion)
    if args.id_field and args.dataset not in ("movies", "sample"):
        dataset = load_json_dataset(args.dataset, id_field=args.id_field)
    else:
        dataset = load_dataset(args.dataset)
    embed = dataset.check_fields(args.embed_fields or dataset.default_embed_fields, "embed")
    rerank = dataset.check_fields(args.rerank_fields or dataset.default_rerank_fields, "rerank")
    built_with = getattr(dataset, "manifest", {}).get("model")  # a collection's encoder
    encoder_id = args.encoder or built_with or DEFAULT_ENCODER
    encoder = load_encoder(encoder_id) if args.retriever != "bm25" else None
    reranker = None
    if not args.no_rerank:
        reranker = load_reranker(
            args.reranker or DEFAULT_RERANKER, max_length=args.max_length or DEFAULT_MAX_LENGTH
        )
    fallback = None
    if reranker is not None and args.fallback and reranker.name != DEFAULT_RERANKER:
        fallback = load_reranker(DEFAULT_RERANKER)
    progress = None if args.json or not sys.stderr.isatty() else _progress
    index, index_seconds, from_cache = None, 0.0, None
    if encoder is not None:
        build = build_index(dataset, encoder, embed, progress=progress)
        index, index_seconds, from_cache = build.index, build.seconds, build.from_cache
    retriever = make_retriever(
        args.retriever, dataset, embed, encoder=encoder, index=index, rrf_k=args.rrf_k
    )
    result = search_with_rerank(
        dataset,
        args.query,
        encoder=encoder,
        reranker=reranker,
        embed_fields=embed,
        rerank_fields=rerank,
        num_candidates=args.candidates,
        num_results=args.top,
        rerank_top_n=args.rerank_top_n,
        fallback=fallback,
        retriever=retriever,
        fusion_weight=args.fusion_weight,
        fusion=args.fusion,
    )
    result = replace(
        result,
        timings=replace(
            result.timings,
            index=index_seconds,
            index_from_cache=from_cache,
            total=result.timings.total + index_seconds,
        ),
    )
    if result.notice:
        print(f"note: {result.notice}", file=sys.stderr)
    if getattr(dataset, "approximate", False) and args.retriever != "bm25":
        from core.present.views import approximate_note

        print(f"note: {approximate_note(dataset)}", file=sys.stderr)
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        print(format_table(result))
    return 0


def _collection(args: argparse.Namespace) -> int:
    from core.data.collection import list_collections, open_collection

    if args.collection_command == "list":
        found = list_collections()
        if not found:
            print("no collections built yet: python -m core collection build FILE --name NAME")
        for info in found:
            print(f"{info.dataset_id:<32} {info.label}   model: {info.model}")
        return 0
    if args.collection_command == "info":
        print(json.dumps(open_collection(args.name).manifest, indent=2))
        return 0
    if args.collection_command == "bench":
        from core.collection_bench import main as bench_main

        return bench_main(args)
    from core.models.base import DEFAULT_ENCODER
    from core.models.registry import load_encoder
    from core.search.collection_build import build_collection, print_progress
    from core.search.collection_index import EXACT_THRESHOLD

    encoder = load_encoder(args.encoder or DEFAULT_ENCODER)
    report = build_collection(
        args.path,
        args.name,
        encoder=encoder,
        embed_fields=args.embed_fields,
        rerank_fields=args.rerank_fields,
        id_field=args.id_field,
        title_field=args.title_field,
        restart=args.restart,
        exact_threshold=args.exact_threshold or EXACT_THRESHOLD,
        progress=print_progress(),
    )
    print(report.summary())
    print(f"search it: python -m core search QUERY --dataset collection:{report.name}")
    return 0


def _progress(done: int, total: int) -> None:
    print(f"\rencoding corpus {done}/{total}", end="" if done < total else "\n", file=sys.stderr)


def format_table(result) -> str:
    """A readable table: retrieval rank -> final rank, both scores, movement, title."""
    t = result.timings
    cache = {True: "cached", False: "encoded", None: "prebuilt"}[t.index_from_cache]
    if result.retriever == "bm25":
        cache = "BM25, in memory"
    if result.dataset.startswith("collection:"):
        cache = "collection on disk, memory-mapped"
    lines = [
        f"query: {result.query!r}   dataset: {result.dataset}   "
        f"candidates: {result.num_candidates}   top: {result.num_results}",
        f"first stage: {result.retriever} ({result.encoder})   "
        f"reranker: {result.reranker or 'none (retrieval only)'}"
        + (f"   fused: weight {result.fusion_weight:g} ({result.fusion})" if result.fused else ""),
        f"time: index {t.index * 1000:.0f} ms ({cache}), query {t.query_encode * 1000:.0f} ms, "
        f"search {t.search * 1000:.1f} ms, rerank {t.rerank * 1000:.0f} ms, "
        f"total {t.total * 1000:.0f} ms",
        "",
    ]
    first = {"cosine": "cosine", "bm25": "bm25", "rrf": "rrf"}.get(
        result.retrieval_score_kind, "score"
    )
    if result.reranker:
        label = "logit" if result.score_kind == "logit" else "score"
        lines.append(f"{'retr':>5} -> {'rank':<4} {first:>7} {label:>7} {'p':>6}  move  title")
    else:
        lines.append(f"{'rank':>5}  {first:>7}  title")
    for c in result.top_final:
        if result.reranker:
            move = c.movement or 0
            badge = "  =" if move == 0 else f"{move:+3d}"
            flag = " [truncated]" if c.truncated else ""
            score = (
                f"{c.rerank_score:7.2f} {c.rerank_normalized:6.3f}"
                if c.rerank_score is not None
                else f"{'-':>7} {'-':>6}"
            )
            lines.append(
                f"{c.retrieval_rank:>5} -> {c.final_rank:<4} {c.retrieval_score:7.3f} "
                f"{score}  {badge:>4}  {c.title}{flag}"
            )
        else:
            lines.append(f"{c.retrieval_rank:>5}  {c.retrieval_score:7.3f}  {c.title}")
    return "\n".join(lines)


@dataclass(frozen=True)
class _Labelled:
    """What ``evaluate`` reads: the corpus, queries and judgments, and how to read them."""

    dataset: Any
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    embed_fields: tuple[str, ...]
    rerank_fields: tuple[str, ...]
    style: str
    ignore_ids: bool
    beir: Any = None
    judgments: Any = None


def _evaluate(args: argparse.Namespace) -> int:
    from core.data.beir import load_beir, load_judgments_csv
    from core.data.datasets import load_dataset
    from core.models.base import DEFAULT_ENCODER, DEFAULT_MAX_LENGTH, DEFAULT_RERANKER
    from core.models.registry import load_encoder, load_reranker
    from core.quality.evaluation import BEIR_FIELDS, beir_to_dataset
    from core.quality.tuning import BGE_SMALL, default_stages, stages_for
    from core.search.fusion import check_fusion

    check_fusion(args.fusion_weight, args.fusion)
    if args.tune and args.no_rerank:
        raise CoreError("--tune needs the reranker: drop --no-rerank")
    if args.beir:
        beir = load_beir(args.beir, split=args.split)
        dataset = beir_to_dataset(beir)
        data = _Labelled(
            dataset,
            dict(beir.queries),
            dict(beir.qrels),
            BEIR_FIELDS,
            dataset.check_fields(args.rerank_fields or BEIR_FIELDS, "rerank"),
            "plain",
            True,
            beir=beir,
        )
    else:
        judgments = load_judgments_csv(args.judgments)
        dataset = load_dataset(args.dataset)
        data = _Labelled(
            dataset,
            {q: q for q in judgments},
            {q: dict(docs) for q, docs in judgments.items()},
            dataset.default_embed_fields,
            dataset.check_fields(args.rerank_fields or dataset.default_rerank_fields, "rerank"),
            "fields",
            False,
            judgments=judgments,
        )
    encoder_ids = args.encoder or [DEFAULT_ENCODER]
    if args.tune and not args.retriever:
        second = encoder_ids[1] if len(encoder_ids) > 1 else BGE_SMALL
        stages = default_stages(encoder_ids[0], second)
    else:
        stages = stages_for(args.retriever or ["dense"], encoder_ids)
    needed = dict.fromkeys(s.encoder for s in stages if s.retriever != "bm25")
    encoders = {model_id: load_encoder(model_id) for model_id in needed}
    reranker = None
    if not args.no_rerank:
        reranker = load_reranker(
            args.reranker or DEFAULT_RERANKER, max_length=args.max_length or DEFAULT_MAX_LENGTH
        )
    progress = None if not sys.stderr.isatty() else _evaluate_progress
    if len(stages) == 1 and not args.tune:
        return _evaluate_one(args, data, stages[0], encoders, reranker, progress)
    return _compare(args, data, stages, encoders, reranker, progress)


def _evaluate_one(args, data: _Labelled, stage, encoders, reranker, progress) -> int:
    import time
    from pathlib import Path

    from core.paths import cache_dir
    from core.quality.evaluation import (
        SecondStage,
        evaluate_beir,
        evaluate_judgments,
        format_report,
    )

    options = {
        "encoder": encoders.get(stage.encoder),
        "reranker": reranker,
        "candidates": args.candidates,
        "max_queries": args.max_queries,
        "rerank_fields": data.rerank_fields,
        "progress": progress,
        "options": SecondStage(
            retriever=stage.retriever,
            rrf_k=args.rrf_k,
            rerank_depth=args.depth,
            fusion_weight=args.fusion_weight,
            fusion=args.fusion,
        ),
    }
    if data.beir is not None:
        report = evaluate_beir(data.beir, dataset=data.dataset, **options)
    else:
        report = evaluate_judgments(data.dataset, data.judgments, **options)

    if args.per_query_out:
        out = Path(args.per_query_out).expanduser()
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = cache_dir() / "eval" / f"{report.settings.dataset}-{stamp}.csv"
    try:
        report.write_per_query_csv(out)
    except OSError as exc:
        raise CoreError(f"cannot write per-query results to {out}: {exc.strerror}") from exc

    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2, ensure_ascii=False)
        print()
        print(f"per-query results: {out}", file=sys.stderr)
    else:
        print(format_report(report))
        print(f"\nper-query results: {out}")
    return 0


def _compare(args, data: _Labelled, stages, encoders, reranker, progress) -> int:
    from core.quality.tuning import (
        Config,
        compare,
        config_grid,
        format_results,
        format_tune,
        prepare,
        tune,
    )
    from core.search.scorestore import ScoreStore

    depth = args.depth or args.candidates
    bench = prepare(
        data.dataset,
        data.queries,
        data.qrels,
        stages,
        encoders,
        reranker=reranker,
        embed_fields=data.embed_fields,
        rerank_fields=data.rerank_fields,
        rerank_style=data.style,
        depth=args.candidates,
        max_queries=args.max_queries,
        ignore_identical_ids=data.ignore_ids,
        rrf_k=args.rrf_k,
        store=ScoreStore(),
        progress=progress,
    )
    if args.tune:
        report = tune(
            bench,
            config_grid(stages, max_depth=args.candidates),
            Config(stages[0]),
            folds=args.folds,
            seed=args.seed,
        )
        if args.json:
            json.dump(report.to_dict(), sys.stdout, indent=2, ensure_ascii=False)
            print()
        else:
            print(format_tune(report))
        return 0
    configs = []
    for stage in stages:
        configs.append(Config(stage))
        if reranker is not None:
            configs.append(Config(stage, depth))
            if args.fusion_weight < 1.0:
                configs.append(Config(stage, depth, args.fusion_weight, args.fusion))
    results = compare(bench, configs)
    if args.json:
        payload = {
            "dataset": bench.name,
            "num_queries": len(bench.qids),
            "candidates": args.candidates,
            "reranker": bench.reranker,
            "configurations": [r.to_dict() for r in results],
            "pairs_scored": bench.pairs_scored,
            "pairs_from_cache": bench.pairs_cached,
        }
        json.dump(payload, sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        title = (
            f"dataset: {bench.name}   queries: {len(bench.qids)}   candidates: {args.candidates}"
            f"   reranker: {bench.reranker or 'none'}"
        )
        print(format_results(results, title))
        print(
            f"\ncross-encoder pairs: {bench.pairs_scored:,} scored, "
            f"{bench.pairs_cached:,} from cache; "
            + ", ".join(f"{k} {v:.1f} s" for k, v in bench.seconds.items())
        )
    return 0


def _evaluate_progress(done: int, total: int, stage: str) -> None:
    end = "\n" if done >= total else ""
    print(f"\r{stage} {done}/{total}\033[K", end=end, file=sys.stderr)


def _bench(args: argparse.Namespace) -> int:
    from core.bench.run import main as bench_main

    return bench_main(json_output=args.json, quick=args.quick, scifact=args.scifact)
