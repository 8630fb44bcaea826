"""Command line: ``python -m core search "QUERY" [options]``; also ``evaluate``, ``bench``,
``embed`` (corpus vectors, in process or on Ray) and ``milvus export|info``.

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

from core.models.errors import CoreError


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _ints(value: str) -> list[int]:
    try:
        return [int(part) for part in _csv(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected whole numbers like 5,10, not {value!r}"
        ) from None


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


def _add_passage_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    from core.search.passages import AGGREGATES, DEFAULT_MAX_PER_DOC, DEFAULT_MAX_PER_QUERY

    parser.add_argument(
        "--passages",
        choices=list(AGGREGATES),
        default=default,
        help="how a long text is read: first (what fits of the start), max (best "
        "passage, MaxP), top2 (mean of the two best); default %(default)s",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=None,
        help="passage length in tokens (default: all that fits beside the query)",
    )
    parser.add_argument(
        "--stride", type=int, default=None, help="tokens between passage starts (default: half)"
    )
    parser.add_argument(
        "--max-passages",
        type=int,
        default=DEFAULT_MAX_PER_DOC,
        help="passages read per document, the first ones (default %(default)s)",
    )
    parser.add_argument(
        "--max-query-passages",
        type=int,
        default=DEFAULT_MAX_PER_QUERY,
        help="refuse a query needing more (query, passage) pairs (default %(default)s)",
    )
    parser.add_argument(
        "--dense-passages",
        action="store_true",
        help="first stage: embed long documents as one vector per passage (the bi-encoder's "
        "own tokens and limit, same --window/--stride/--max-passages) and retrieve each "
        "document by its best passage; the corpus index costs one vector per passage",
    )


def _passage_settings(args: argparse.Namespace):
    from core.search.passages import PassageSettings

    return PassageSettings(
        aggregate=args.passages,
        window=args.window,
        stride=args.stride,
        max_per_doc=args.max_passages,
        max_per_query=args.max_query_passages,
    ).checked()


def _dense_passages(args: argparse.Namespace):
    """Dense-passage settings (``--dense-passages``), None without the flag; refused for
    a first stage that embeds nothing."""
    from core.models.errors import SettingsError
    from core.search.passages import PassageSettings

    if not args.dense_passages:
        return None
    kinds = args.retriever if isinstance(args.retriever, list) else [args.retriever or "dense"]
    if kinds and all(k == "bm25" for k in kinds):
        raise SettingsError("--dense-passages needs a dense or hybrid first stage, not bm25")
    return PassageSettings(
        "max", window=args.window, stride=args.stride, max_per_doc=args.max_passages
    ).checked()


def _evaluate_passages(args: argparse.Namespace):
    """Passage settings for ``evaluate``; None for ``first``, which then sends every
    document whole as before (the same pairs, so the same scores and cache entries)."""
    settings = _passage_settings(args)
    return None if settings.aggregate == "first" else settings


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m core``."""
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    search = commands.add_parser("search", help="retrieve and rerank one query")
    search.add_argument("query")
    search.add_argument(
        "--dataset",
        default="movies",
        help="movies, sample, collection:NAME (a built collection), a JSON file, an upload "
        "id, or a Milvus collection (milvus:<collection>[@<uri>], see README)",
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
    _add_passage_arguments(search, "max")
    search.add_argument("--json", action="store_true", help="print JSON with every field")

    evaluate = commands.add_parser(
        "evaluate", help="score retrieval and retrieval + rerank against judgments"
    )
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--beir", metavar="PATH", help="a BEIR folder (corpus, queries, qrels)")
    source.add_argument(
        "--judgments",
        metavar="FILE",
        help="judgments on --dataset: a query,doc_id,rating CSV, Quepid's CSV export "
        "(Query Text, Doc ID, Rating) or TREC qrels (qid 0 docid rel, with --queries); "
        "any non-negative integer grades",
    )
    evaluate.add_argument(
        "--dataset", default="movies", help="with --judgments: movies, sample or a JSON file"
    )
    evaluate.add_argument(
        "--queries",
        metavar="FILE",
        help="with TREC qrels: query id -> text (id<TAB>text lines, or queries.jsonl)",
    )
    evaluate.add_argument(
        "--doc-id-field",
        metavar="FIELD",
        help="with --judgments: the dataset field the judged doc ids are values of "
        "(default: the dataset's own ids)",
    )
    evaluate.add_argument(
        "--threshold",
        type=int,
        default=1,
        help="lowest grade counted relevant by MRR, Recall and P (default 1; nDCG uses "
        "every grade, linear gain as trec_eval)",
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
    _add_passage_arguments(evaluate, "first")
    evaluate.add_argument(
        "--tune",
        action="store_true",
        help="choose first stage, rerank depth and fusion weight by k-fold cross-validation "
        "(default first stages: dense MiniLM, dense bge-small, BM25, hybrid)",
    )
    evaluate.add_argument(
        "--tune-passages",
        action="store_true",
        help="--tune: add how long documents are read (first passage vs best passage, or "
        "the --passages aggregate) as a grid dimension; only when some candidate has more "
        "than one passage. Best passage scores every passage: the cost column shows it",
    )
    evaluate.add_argument(
        "--folds",
        type=_ints,
        default=[5],
        help="--tune: folds (default 5); --compare-rules: several, e.g. 5,10",
    )
    evaluate.add_argument("--seed", type=int, default=0, help="--tune: shuffle seed")
    evaluate.add_argument(
        "--seeds", type=_ints, default=None, help="--compare-rules: shuffle seeds, e.g. 0,1,2"
    )
    evaluate.add_argument(
        "--rule",
        default=None,
        help="--tune: how a setting is chosen on the training folds: best, one-se, "
        "first-stage, coarse, nested (default: one-se)",
    )
    evaluate.add_argument(
        "--compare-rules",
        action="store_true",
        help="--tune: cross-validate every selection rule over --seeds and --folds",
    )
    evaluate.add_argument(
        "--sabotage",
        choices=["negate", "random"],
        default=None,
        help="--tune: adversarial check, the cross-encoder made harmful on purpose "
        "(negate: its scores negated; random: noise)",
    )
    evaluate.add_argument(
        "--cache-only",
        action="store_true",
        help="--tune: score nothing; keep only the queries whose cross-encoder scores are "
        "all in the score cache (use a partly warmed cache as it is)",
    )
    evaluate.add_argument(
        "--time-sample",
        type=int,
        default=5,
        help="--tune: queries on which the cross-encoder is timed live per depth (default "
        "5; 0: no timing)",
    )
    evaluate.add_argument(
        "--compare",
        metavar="A,B",
        help="two second stages head to head on the same candidates, e.g. local,local@0.5 "
        "(spec: none | local | MODEL_ID | together:MODEL, optionally @WEIGHT[/rrf] to fuse)",
    )
    evaluate.add_argument(
        "--html", metavar="FILE", help="--compare: also write a self-contained HTML report"
    )
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

    warmup = commands.add_parser(
        "warmup",
        help="export the bi-encoder and embed movies into the disk cache once (what the "
        "app's first visitor would otherwise wait for; `make app` runs it)",
    )
    warmup.add_argument(
        "--if-needed",
        action="store_true",
        help="do nothing when the disk cache already holds the export and the embeddings",
    )

    loadtest = commands.add_parser(
        "loadtest",
        help="concurrent browser sessions searching one app server on loopback: "
        "p50/p95 time to results, each checked against core's own results",
    )
    loadtest.add_argument(
        "--sessions", default="1,4,8", help="concurrency levels to run (default 1,4,8)"
    )
    loadtest.add_argument(
        "--searches", type=int, default=3, help="new searches per session (default 3, max 10)"
    )
    loadtest.add_argument(
        "--url", help="an already running app (default: start one on a free loopback port)"
    )
    loadtest.add_argument("--json", action="store_true", help="print the report as JSON")

    coldstart = commands.add_parser(
        "coldstart",
        help="start a fresh server on an empty cache dir and time its first answer "
        "from the moment its health check answers",
    )
    coldstart.add_argument(
        "--mode",
        choices=["serve", "plain", "prepared"],
        default="serve",
        help="serve: `python serve.py` (warm-up at server start); plain: `streamlit run "
        "app.py` (warm-up at the first visit); prepared: `python -m core warmup` first, "
        "then serve.py (what `make app` does on a fresh clone)",
    )
    coldstart.add_argument(
        "--cache-dir", help="use this cache dir instead of a new empty one (warm restarts)"
    )
    coldstart.add_argument("--json", action="store_true", help="print the report as JSON")
    bench.add_argument(
        "--long-docs",
        type=int,
        metavar="QUERIES",
        default=None,
        help="only the long-document check: movies with the plot buried past token 512",
    )
    bench.add_argument(
        "--passages-scifact",
        type=int,
        metavar="QUERIES",
        default=None,
        help="only SciFact nDCG@10 by first/max/top2 passage on the first QUERIES queries",
    )
    bench.add_argument(
        "--fidelity",
        action="store_true",
        help="only the fidelity bench: every reranker/bi-encoder path against the fp32 "
        "model (agreement, SciFact nDCG@10 with paired intervals, speed, physical bound)",
    )
    bench.add_argument(
        "--fidelity-queries", type=int, default=None, help="SciFact queries (default 20)"
    )
    bench.add_argument(
        "--fidelity-candidates",
        type=int,
        default=None,
        help="SciFact dense candidates reranked (default 100)",
    )
    bench.add_argument(
        "--fidelity-paths",
        default=None,
        help="comma-separated reranker paths besides the reference "
        "(default packaged,requant-pc7,fused,fp32-batched)",
    )
    bench.add_argument(
        "--no-encoders", action="store_true", help="fidelity: skip the bi-encoder half"
    )
    _add_scale_commands(commands)
    return parser


def _add_scale_commands(commands) -> None:
    """``embed`` and ``milvus``: corpus vectors on Ray, and Milvus as the first stage."""
    embed = commands.add_parser(
        "embed", help="embed a corpus (in process or on Ray Data) into a vector set"
    )
    embed.add_argument("--dataset", default="movies", help="movies, sample, a file, an upload")
    embed.add_argument("--id-field", help="field holding record ids (JSON files)")
    embed.add_argument("--encoder", default=None, help="bi-encoder model id (default MiniLM)")
    embed.add_argument("--fields", type=_csv, help="comma-separated fields to embed")
    embed.add_argument(
        "--engine", choices=["local", "ray"], default="local", help="where to encode"
    )
    embed.add_argument("--out", metavar="DIR", help="write vectors.npy, ids.json, manifest.json")
    embed.add_argument(
        "--workers", type=int, default=None, help="ray: encoder actors (default: all cores)"
    )
    embed.add_argument("--batch-size", type=int, default=64, help="texts per encoder batch")
    embed.add_argument("--limit", type=int, default=None, help="the first N records only")
    embed.add_argument(
        "--verify",
        type=int,
        default=0,
        metavar="N",
        help="re-encode N records in process and print the largest difference",
    )
    embed.add_argument(
        "--no-cache", action="store_true", help="do not write the app's embedding cache"
    )

    milvus = commands.add_parser("milvus", help="Milvus as the first stage: export, info")
    actions = milvus.add_subparsers(dest="milvus_command", required=True)
    export = actions.add_parser("export", help="write a dataset into a Milvus collection")
    export.add_argument("--dataset", default="movies", help="movies, sample, a file, an upload")
    export.add_argument("--id-field", help="field holding record ids (JSON files)")
    export.add_argument(
        "--uri",
        default=None,
        help="a Milvus Lite file (./movies.db) or a server (http://host:19530); "
        "default RERANK_MILVUS_URI, else <cache>/milvus.db",
    )
    export.add_argument("--collection", required=True, help="collection name")
    export.add_argument("--encoder", default=None, help="bi-encoder model id (default MiniLM)")
    export.add_argument("--embed-fields", type=_csv, help="fields embedded and BM25-indexed")
    export.add_argument("--rerank-fields", type=_csv, help="default fields the reranker reads")
    export.add_argument(
        "--vectors", metavar="DIR", help="a vector set from `embed --out` (skip encoding)"
    )
    export.add_argument("--index", default="FLAT", help="vector index: FLAT (exact), HNSW, ...")
    export.add_argument("--limit", type=int, default=None, help="the first N records only")
    export.add_argument("--overwrite", action="store_true", help="replace an existing collection")
    info = actions.add_parser("info", help="describe a collection and its field mapping")
    info.add_argument("reference", help="milvus:<collection>[@<uri>][?mapping]")


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
    retune = sub.add_parser(
        "retune",
        help="choose an approximate collection's nprobe again on runs of words from its "
        "records (seconds; nothing re-encoded)",
    )
    retune.add_argument("name")
    retune.add_argument(
        "--encoder", default=None, help="bi-encoder (default: the one it was built with)"
    )
    remove = sub.add_parser("remove", help="delete a collection, built or unfinished, from disk")
    remove.add_argument("name")
    sub.add_parser("list", help="list built collections (and unfinished builds)")
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
        if args.command == "warmup":
            return _warmup(args)
        if args.command == "loadtest":
            from core.loadtest import loadtest_main

            return loadtest_main(args)
        if args.command == "coldstart":
            from core.loadtest import coldstart_main

            return coldstart_main(args)
        if args.command == "embed":
            return _embed(args)
        if args.command == "milvus":
            return _milvus(args)
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
    from core.models.base import DEFAULT_ENCODER, DEFAULT_MAX_LENGTH, DEFAULT_RERANKER
    from core.models.errors import SettingsError
    from core.models.registry import load_encoder, load_reranker
    from core.search.fusion import check_fusion
    from core.search.index import build_index
    from core.search.milvus import is_milvus_reference
    from core.search.pipeline import search_with_rerank
    from core.search.retrievers import make_retriever

    # Check what needs no model before loading any (loading takes seconds).
    if not args.query.strip():
        raise SettingsError("the query is empty: type what you are looking for")
    if args.candidates < 1 or args.top < 1:
        raise SettingsError("--candidates and --top must be at least 1")
    check_fusion(args.fusion_weight, args.fusion)
    if is_milvus_reference(args.dataset):
        if args.dense_passages:
            raise SettingsError("--dense-passages embeds in process: not with a Milvus dataset")
        return _search_milvus(args)
    passages = _passage_settings(args)
    dense_passages = _dense_passages(args)
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
        build = build_index(dataset, encoder, embed, progress=progress, passages=dense_passages)
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
        passages=passages,
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
    if getattr(dataset, "approximate", False) and args.retriever != "bm25":
        from core.present.views import approximate_note

        print(f"note: {approximate_note(dataset)}", file=sys.stderr)
    return _print_result(args, result)


def _print_result(args: argparse.Namespace, result) -> int:
    if result.notice:
        print(f"note: {result.notice}", file=sys.stderr)
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        print(format_table(result))
    return 0


def _search_milvus(args: argparse.Namespace) -> int:
    """``search --dataset milvus:...``: the first stage runs in the Milvus collection."""
    from core.models.base import DEFAULT_MAX_LENGTH, DEFAULT_RERANKER
    from core.models.registry import load_encoder, load_reranker
    from core.search.milvus import open_collection
    from core.search.pipeline import search_with_rerank

    collection = open_collection(args.dataset)
    dataset = collection.dataset()
    rerank = dataset.check_fields(args.rerank_fields or dataset.default_rerank_fields, "rerank")
    model_id = args.encoder or collection.fields.encoder
    encoder = load_encoder(model_id) if args.retriever != "bm25" else None
    retriever = collection.retriever(args.retriever, encoder, rrf_k=args.rrf_k, model_id=model_id)
    reranker = None
    if not args.no_rerank:
        reranker = load_reranker(
            args.reranker or DEFAULT_RERANKER, max_length=args.max_length or DEFAULT_MAX_LENGTH
        )
    result = search_with_rerank(
        dataset,
        args.query,
        encoder=encoder,
        reranker=reranker,
        embed_fields=dataset.default_embed_fields,
        rerank_fields=rerank,
        num_candidates=args.candidates,
        num_results=args.top,
        rerank_top_n=args.rerank_top_n,
        retriever=retriever,
        fusion_weight=args.fusion_weight,
        fusion=args.fusion,
    )
    return _print_result(args, result)


def _load_any_dataset(name: str, id_field: str | None = None):
    """movies, sample, a JSON file, a stored upload (``upload-<hex>``) or a Milvus
    collection (``milvus:...``) as a :class:`~core.data.documents.Dataset`."""
    from core.data.datasets import load_dataset, load_json_dataset
    from core.data.upload_quality import build_upload_dataset
    from core.data.upload_store import UploadStore, is_upload_id
    from core.data.uploads import parse_upload
    from core.search.milvus import is_milvus_reference, open_collection

    if is_milvus_reference(name):
        return open_collection(name).dataset()
    if is_upload_id(name):
        data, filename = UploadStore().get(name)
        dataset, _ = build_upload_dataset(
            parse_upload(data, filename), id_field=id_field, name=name
        )
        return dataset
    if id_field and name not in ("movies", "sample"):
        return load_json_dataset(name, id_field=id_field)
    return load_dataset(name)


def _embed(args: argparse.Namespace) -> int:
    from core.models.base import DEFAULT_ENCODER
    from core.models.registry import load_encoder
    from core.search.vectors import compare_with_encoder, embed_corpus, subset

    model_id = args.encoder or DEFAULT_ENCODER
    dataset = subset(_load_any_dataset(args.dataset, args.id_field), args.limit)
    fields = dataset.check_fields(args.fields or dataset.default_embed_fields, "embed")
    encoder = load_encoder(model_id)
    progress = _progress if sys.stderr.isatty() else None
    report = embed_corpus(
        dataset,
        encoder,
        model_id,
        fields,
        engine=args.engine,
        out=args.out,
        use_cache=not args.no_cache,
        workers=args.workers,
        batch_size=args.batch_size,
        progress=progress,
    )
    m = report.vector_set.manifest
    print(
        f"embedded {m['count']:,} records of {m['dataset']} ({', '.join(m['fields'])}) with "
        f"{m['encoder']} on {m['engine']} ({m['workers']} worker(s)) in {report.seconds:.1f} s"
    )
    if report.out is not None:
        print(f"vector set: {report.out} (vectors.npy {report.vector_set.vectors.shape})")
    if report.cache_path is not None:
        print(f"embedding cache: {report.cache_path}")
    if args.verify:
        check = compare_with_encoder(
            dataset, report.vector_set.vectors, encoder, fields, args.verify
        )
        print(
            f"check against the in-process encoder on {check['rows']} records: "
            f"max |difference| {check['max_abs_diff']:.2e}, lowest cosine {check['min_cosine']:.6f}"
        )
    return 0


def _milvus(args: argparse.Namespace) -> int:
    from core.search.milvus import describe, open_collection

    if args.milvus_command == "info":
        print(json.dumps(describe(open_collection(args.reference)), indent=2, default=str))
        return 0
    if args.dataset.startswith("collection:"):
        report = _export_built(args)
        dataset_name = args.dataset
    else:
        report, dataset_name = _export_dataset(args)
    print(
        f"exported {report.rows:,} records of {dataset_name} to collection "
        f"'{report.collection}' at {report.target} in {report.seconds:.1f} s\n"
        f"vectors: {report.dimension} dimensions by {report.encoder} "
        f"({report.vectors_from}); index {report.index_type} COSINE; BM25 on the text field"
    )
    if report.truncated_texts:
        print(f"note: {report.truncated_texts} texts were cut at Milvus's 65,535-byte limit")
    print(f"search it: python -m core search \"...\" --dataset '{report.reference}'")
    return 0


def _export_built(args: argparse.Namespace):
    """``milvus export --dataset collection:NAME``: a built collection, with its vectors."""
    from core.models.registry import load_encoder
    from core.search.milvus import export_built_collection, resolve_target

    try:
        from core.data.collection import open_collection as open_built
    except ImportError as exc:  # built collections arrive with the million-documents work
        raise CoreError("this version cannot read built collections (collection:NAME)") from exc
    source = open_built(args.dataset)
    model_id = args.encoder or source.manifest.get("model")
    return export_built_collection(
        source,
        resolve_target(args.uri),
        args.collection,
        encoder=load_encoder(model_id),
        overwrite=args.overwrite,
        index_type=args.index,
        progress=_progress if sys.stderr.isatty() else None,
    )


def _export_dataset(args: argparse.Namespace):
    """``milvus export`` of a dataset (built-in, file, upload, Milvus) or a vector set."""
    from core.models.base import DEFAULT_ENCODER
    from core.models.registry import load_encoder
    from core.search.milvus import export_dataset, resolve_target
    from core.search.vectors import read_vector_set, subset

    dataset = subset(_load_any_dataset(args.dataset, args.id_field), args.limit)
    vectors, vectors_from, model_id = None, "", args.encoder
    if args.vectors:
        vector_set = read_vector_set(args.vectors)
        if model_id and model_id != vector_set.encoder:
            raise CoreError(
                f"the vectors in {args.vectors} were made by {vector_set.encoder}, not {model_id}"
            )
        model_id = vector_set.encoder
        fields = tuple(vector_set.manifest.get("fields") or ())
        if args.embed_fields and tuple(args.embed_fields) != fields:
            raise CoreError(
                f"the vectors in {args.vectors} embed {', '.join(fields)}, "
                f"not {', '.join(args.embed_fields)}"
            )
        args.embed_fields = list(fields)
        vectors = vector_set.aligned_to(dataset)
        vectors_from = f"{args.vectors} ({vector_set.manifest.get('engine')})"
    model_id = model_id or DEFAULT_ENCODER
    encoder = load_encoder(model_id)
    report = export_dataset(
        dataset,
        resolve_target(args.uri),
        args.collection,
        encoder=encoder,
        model_id=model_id,
        embed_fields=args.embed_fields,
        rerank_fields=args.rerank_fields,
        vectors=vectors,
        vectors_from=vectors_from,
        overwrite=args.overwrite,
        index_type=args.index,
        progress=_progress if sys.stderr.isatty() else None,
    )
    return report, dataset.name


def _collection(args: argparse.Namespace) -> int:
    from core.data.collection import (
        list_collections,
        open_collection,
        remove_collection,
        unfinished_builds,
    )

    if args.collection_command == "list":
        found, unfinished = list_collections(), unfinished_builds()
        if not found and not unfinished:
            print("no collections built yet: python -m core collection build FILE --name NAME")
        for info in found:
            print(f"{info.dataset_id:<32} {info.label}   model: {info.model}")
        for name in unfinished:
            print(
                f"{name:<32} unfinished build: the same `collection build` command resumes "
                f"it; `collection remove {name}` deletes it"
            )
        return 0
    if args.collection_command == "remove":
        freed = remove_collection(args.name)
        print(f"removed collection '{args.name}' ({freed / 1e6:,.1f} MB freed)")
        return 0
    if args.collection_command == "info":
        print(json.dumps(open_collection(args.name).manifest, indent=2))
        return 0
    if args.collection_command == "bench":
        from core.collection_bench import main as bench_main

        return bench_main(args)
    from core.models.base import DEFAULT_ENCODER
    from core.models.registry import load_encoder
    from core.search.collection_build import build_collection, print_progress, retune_collection
    from core.search.collection_index import EXACT_THRESHOLD

    if args.collection_command == "retune":
        built_with = open_collection(args.name).manifest["model"]
        report = retune_collection(
            args.name, encoder=load_encoder(args.encoder or built_with), progress=print_progress()
        )
        print(report.summary())
        return 0
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
    ]
    if result.dense_passages is not None:
        cut = sum(
            1 for c in result.candidates if c.retrieval_passage and c.retrieval_passage.count > 1
        )
        lines.append(
            f"dense passages: {result.dense_passages.label().split(', ', 1)[1]}, best passage "
            f"per document   candidates embedded in several passages: {cut}"
        )
    if result.reranker and result.passage_settings is not None:
        lines.append(
            f"passages: {result.passage_settings.label()}   documents read in full: "
            f"{result.read_in_full}, in part: {result.read_in_part}"
        )
    lines += [
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
            if c.passages is not None and c.passages.num_passages > 1:
                flag += f" [passage {c.passages.best + 1} of {c.passages.num_passages}]"
            flag += _dense_flag(c)
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
            lines.append(
                f"{c.retrieval_rank:>5}  {c.retrieval_score:7.3f}  {c.title}{_dense_flag(c)}"
            )
    return "\n".join(lines)


def _dense_flag(c) -> str:
    match = c.retrieval_passage
    if match is None or match.count < 2:
        return ""
    return f" [dense: passage {match.index + 1} of {match.count}]"


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
    from core.data.beir import (
        FORMAT_LABELS,
        load_beir,
        load_queries_file,
        map_doc_ids,
        read_judgments,
    )
    from core.data.datasets import load_dataset
    from core.models.base import DEFAULT_ENCODER, DEFAULT_MAX_LENGTH, DEFAULT_RERANKER
    from core.models.registry import load_encoder, load_reranker
    from core.quality.evaluation import BEIR_FIELDS, beir_to_dataset
    from core.quality.metrics import check_threshold
    from core.quality.tuning import BGE_SMALL, DEFAULT_RULE, check_rule, default_stages, stages_for
    from core.search.fusion import check_fusion

    check_fusion(args.fusion_weight, args.fusion)
    check_threshold(args.threshold)
    args.rule = check_rule(args.rule or DEFAULT_RULE)
    if (args.compare_rules or args.sabotage) and not args.tune:
        raise CoreError("--compare-rules and --sabotage go with --tune")
    _passage_settings(args)
    _dense_passages(args)
    if args.tune_passages and not args.tune:
        raise CoreError("--tune-passages goes with --tune")
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
        queries = load_queries_file(args.queries) if args.queries else None
        read = read_judgments(args.judgments, queries=queries)
        dataset = load_dataset(args.dataset)
        judgments, unknown = map_doc_ids(read.qrels, dataset, args.doc_id_field)
        through = f" through field '{args.doc_id_field}'" if args.doc_id_field else ""
        print(
            f"judgments: {FORMAT_LABELS[read.format]}, {len(read.qrels)} queries, "
            f"{read.num_ratings} ratings, {read.scale}"
            + (f", {read.skipped} unrated rows skipped" if read.skipped else "")
            + (f"; {len(unknown)} judged id(s) match no document{through}" if unknown else "")
            + (f" (first: {unknown[0]!r})" if unknown else ""),
            file=sys.stderr,
        )
        if not judgments:
            raise CoreError(f"no judged doc id matches a document of '{dataset.name}'{through}")
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
    if args.compare:
        from core.quality.headtohead import parse_pair

        pair = parse_pair(args.compare)  # a malformed spec fails before any model loads
        if args.tune or len(stages) != 1:
            raise CoreError("--compare takes one first stage (one --retriever and --encoder)")
        if args.no_rerank or args.reranker:
            raise CoreError("--compare names both second stages: drop --reranker/--no-rerank")
    needed = dict.fromkeys(s.encoder for s in stages if s.retriever != "bm25")
    encoders = {model_id: load_encoder(model_id) for model_id in needed}
    if args.compare:
        return _compare_pair(args, data, stages[0], encoders, pair)
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

    from core.models.paths import cache_dir
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
        "threshold": args.threshold,
        "options": SecondStage(
            retriever=stage.retriever,
            rrf_k=args.rrf_k,
            rerank_depth=args.depth,
            fusion_weight=args.fusion_weight,
            fusion=args.fusion,
            passages=_evaluate_passages(args),
            dense_passages=_dense_passages(args),
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


def _tuned_aggregate(args: argparse.Namespace):
    """``--tune-passages``: the passage reading compared with the first passage (the
    ``--passages`` aggregate if it is not first, else best passage); None without it."""
    from dataclasses import replace as with_changes

    if not args.tune_passages:
        return None
    settings = _passage_settings(args)
    return settings if settings.aggregate != "first" else with_changes(settings, aggregate="max")


def _compare(args, data: _Labelled, stages, encoders, reranker, progress) -> int:
    from core.quality.tuning import (
        Config,
        compare,
        compare_rules,
        config_grid,
        format_results,
        format_rule_comparison,
        format_tune,
        measure_rerank_cost,
        prepare,
        sabotage,
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
        threshold=args.threshold,
        cache_only=args.cache_only,
        passages=_evaluate_passages(args),
        dense_passages=_dense_passages(args),
        tune_passages=_tuned_aggregate(args) if args.tune else None,
    )
    if args.tune:
        configs = config_grid(stages, max_depth=args.candidates, aggregates=bench.aggregates)
        if args.sabotage:
            bench = sabotage(bench, args.sabotage, seed=args.seed)
        if args.compare_rules:
            comparison = compare_rules(
                bench, configs, seeds=args.seeds or [args.seed], folds=args.folds
            )
            if args.json:
                json.dump(comparison.to_dict(), sys.stdout, indent=2, ensure_ascii=False)
                print()
            else:
                print(format_rule_comparison(comparison))
                print(
                    f"\ncross-encoder pairs: {bench.pairs_scored:,} scored, "
                    f"{bench.pairs_cached:,} from cache"
                )
            return 0
        if args.time_sample > 0 and reranker is not None:
            measure_rerank_cost(
                bench,
                reranker,
                data.dataset,
                sorted({c.depth for c in configs if c.reranked}),
                fields=data.rerank_fields,
                style=data.style,
                sample=args.time_sample,
                aggregates=bench.aggregates,
            )
        report = tune(
            bench,
            configs,
            Config(stages[0]),
            folds=args.folds[0],
            seed=args.seed,
            rule=args.rule,
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


def _compare_pair(args, data: _Labelled, stage, encoders, pair) -> int:
    """``evaluate --compare A,B``: both second stages on the same candidates, with the
    paired interval, the verdict and the queries where they disagree most."""
    from pathlib import Path

    from core.models.base import DEFAULT_MAX_LENGTH
    from core.models.registry import load_reranker
    from core.present.report import pair_report_html
    from core.quality.evaluation import evaluate_pair, format_pair_report
    from core.search.scorestore import ScoreStore

    models = {}
    for spec in pair:
        if not spec.is_none and spec.reranker not in models:
            models[spec.reranker] = load_reranker(
                spec.reranker, max_length=args.max_length or DEFAULT_MAX_LENGTH
            )
    a, b = pair
    report = evaluate_pair(
        data.dataset,
        data.queries,
        data.qrels,
        a=a,
        b=b,
        reranker_a=models.get(a.reranker),
        reranker_b=models.get(b.reranker),
        encoder=encoders.get(stage.encoder),
        retriever=stage.retriever,
        rrf_k=args.rrf_k,
        candidates=args.candidates,
        embed_fields=data.embed_fields,
        rerank_fields=data.rerank_fields,
        rerank_style=data.style,
        max_queries=args.max_queries,
        ignore_identical_ids=data.ignore_ids,
        name=data.dataset.name,
        split=data.beir.split if data.beir is not None else None,
        store=ScoreStore(),
        progress=None if not sys.stderr.isatty() else _evaluate_progress,
    )
    if args.html:
        target = Path(args.html).expanduser()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(pair_report_html(report), encoding="utf-8")
        except OSError as exc:
            raise CoreError(f"cannot write the HTML report to {target}: {exc.strerror}") from exc
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        print(format_pair_report(report))
    if args.html:
        print(f"HTML report: {args.html}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _evaluate_progress(done: int, total: int, stage: str) -> None:
    end = "\n" if done >= total else ""
    print(f"\r{stage} {done}/{total}\033[K", end=end, file=sys.stderr)


def _bench(args: argparse.Namespace) -> int:
    from core.bench.passages import long_docs_main
    from core.bench.run import main as bench_main

    if args.long_docs is not None:
        return long_docs_main(queries=args.long_docs)
    if args.fidelity:
        from core.bench.fidelity import fidelity_main

        return fidelity_main(
            scifact=args.scifact,
            scifact_queries=args.fidelity_queries,
            candidates=args.fidelity_candidates,
            encoders=not args.no_encoders,
            paths=args.fidelity_paths,
            json_output=args.json,
            tiny=args.quick,
        )
    if args.passages_scifact is not None:
        from core.bench.passages import passages_scifact_main

        return passages_scifact_main(args.passages_scifact, args.scifact)
    return bench_main(json_output=args.json, quick=args.quick, scifact=args.scifact)


def _warmup(args: argparse.Namespace) -> int:
    from core.warmup import Warmup, WarmupStatus, log_line, prepared_on_disk

    if args.if_needed and prepared_on_disk():
        print("warm-up: the disk cache already holds the export and the embeddings")
        return 0
    last = [""]

    def progress(status: WarmupStatus) -> None:
        line = f"warm-up: {status.label}"
        if status.total:
            line += f" {status.done:,}/{status.total:,}"
        if line != last[0]:
            end = "\n" if not status.total or status.done >= status.total else ""
            print(f"\r{line}\033[K", end=end, file=sys.stderr, flush=True)
            last[0] = line

    # The example queries' scores live in the server's memory: the server scores them.
    status = Warmup(examples=()).run(progress)
    if status.error:
        raise CoreError(f"warm-up failed: {status.error}")
    print(log_line(status))
    return 0
