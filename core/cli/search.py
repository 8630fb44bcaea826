"""``search``: retrieve and rerank one query, printed as a table or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from core.cli.args import (
    add_fusion_arguments,
    add_passage_arguments,
    csv_list,
    dense_passage_settings,
    encoding_progress,
    passage_settings,
)
from core.cli.emit import add_emit_argument, emit_search


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``search`` to the subcommands."""
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
    search.add_argument("--embed-fields", type=csv_list, help="comma-separated fields to embed")
    search.add_argument("--rerank-fields", type=csv_list, help="comma-separated fields to rerank")
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
    add_fusion_arguments(search)
    add_passage_arguments(search, "max")
    search.add_argument("--json", action="store_true", help="print JSON with every field")
    add_emit_argument(search)
    search.set_defaults(run=_search)


def _search(args: argparse.Namespace) -> int:
    from core.data.datasets import load_dataset, load_json_dataset
    from core.models.base import DEFAULT_ENCODER, DEFAULT_MAX_LENGTH, DEFAULT_RERANKER
    from core.models.errors import SettingsError
    from core.models.registry import load_encoder, load_reranker
    from core.search.fusion import check_fusion
    from core.search.index import build_index
    from core.search.milvus_reference import is_milvus_reference
    from core.search.pipeline import search_with_rerank
    from core.search.retrievers import make_retriever

    # Check what needs no model before loading any (loading takes seconds).
    if not args.query.strip():
        raise SettingsError("the query is empty: type what you are looking for")
    if args.candidates < 1 or args.top < 1:
        raise SettingsError("--candidates and --top must be at least 1")
    check_fusion(args.fusion_weight, args.fusion)
    if args.emit_python:
        return emit_search(args)
    if is_milvus_reference(args.dataset):
        if args.dense_passages:
            raise SettingsError("--dense-passages embeds in process: not with a Milvus dataset")
        return _search_milvus(args)
    passages = passage_settings(args)
    dense_passages = dense_passage_settings(args)
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
    progress = None if args.json or not sys.stderr.isatty() else encoding_progress
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
