"""Corpora at scale: ``embed`` (corpus vectors, in process or on Ray) and ``milvus
export|info`` (Milvus as the first stage)."""

from __future__ import annotations

import argparse
import json
import sys

from core.cli.args import csv_list, encoding_progress, load_any_dataset
from core.models.errors import CoreError


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``embed`` and ``milvus`` to the subcommands."""
    embed = commands.add_parser(
        "embed", help="embed a corpus (in process or on Ray Data) into a vector set"
    )
    embed.add_argument("--dataset", default="movies", help="movies, sample, a file, an upload")
    embed.add_argument("--id-field", help="field holding record ids (JSON files)")
    embed.add_argument("--encoder", default=None, help="bi-encoder model id (default MiniLM)")
    embed.add_argument("--fields", type=csv_list, help="comma-separated fields to embed")
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
    export.add_argument("--embed-fields", type=csv_list, help="fields embedded and BM25-indexed")
    export.add_argument("--rerank-fields", type=csv_list, help="default fields the reranker reads")
    export.add_argument(
        "--vectors", metavar="DIR", help="a vector set from `embed --out` (skip encoding)"
    )
    export.add_argument("--index", default="FLAT", help="vector index: FLAT (exact), HNSW, ...")
    export.add_argument("--limit", type=int, default=None, help="the first N records only")
    export.add_argument("--overwrite", action="store_true", help="replace an existing collection")
    info = actions.add_parser("info", help="describe a collection and its field mapping")
    info.add_argument("reference", help="milvus:<collection>[@<uri>][?mapping]")
    embed.set_defaults(run=_embed)
    milvus.set_defaults(run=_milvus)


def _embed(args: argparse.Namespace) -> int:
    from core.models.base import DEFAULT_ENCODER
    from core.models.registry import load_encoder
    from core.search.vectors import compare_with_encoder, embed_corpus, subset

    model_id = args.encoder or DEFAULT_ENCODER
    dataset = subset(load_any_dataset(args.dataset, args.id_field), args.limit)
    fields = dataset.check_fields(args.fields or dataset.default_embed_fields, "embed")
    encoder = load_encoder(model_id)
    progress = encoding_progress if sys.stderr.isatty() else None
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
    from core.search.milvus_export import export_built_collection
    from core.search.milvus_reference import resolve_target

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
        progress=encoding_progress if sys.stderr.isatty() else None,
    )


def _export_dataset(args: argparse.Namespace):
    """``milvus export`` of a dataset (built-in, file, upload, Milvus) or a vector set."""
    from core.models.base import DEFAULT_ENCODER
    from core.models.registry import load_encoder
    from core.search.milvus_export import export_dataset
    from core.search.milvus_reference import resolve_target
    from core.search.vectors import read_vector_set, subset

    dataset = subset(load_any_dataset(args.dataset, args.id_field), args.limit)
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
        progress=encoding_progress if sys.stderr.isatty() else None,
    )
    return report, dataset.name
