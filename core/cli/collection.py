"""``collection build|retune|remove|list|info|bench``: large corpora built on disk."""

from __future__ import annotations

import argparse
import json

from core.cli.args import csv_list


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``collection`` and its actions to the subcommands."""
    collection = commands.add_parser(
        "collection", help="build, list and benchmark collections (large corpora on disk)"
    )
    sub = collection.add_subparsers(dest="collection_command", required=True)
    build = sub.add_parser(
        "build", help="build a collection from a JSON, JSONL, CSV/TSV or Parquet file"
    )
    build.add_argument("path", help="the file (read as a stream)")
    build.add_argument("--name", required=True, help="collection name (letters, digits, ._-)")
    build.add_argument("--embed-fields", type=csv_list, help="fields to embed and BM25-index")
    build.add_argument("--rerank-fields", type=csv_list, help="default fields the reranker reads")
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
    collection.set_defaults(run=_collection)


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
        from core.ops.collection_bench import main as bench_main

        return bench_main(args)
    from core.models.base import DEFAULT_ENCODER
    from core.models.registry import load_encoder
    from core.search.collection_ann import retune_collection
    from core.search.collection_build import build_collection, print_progress
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
