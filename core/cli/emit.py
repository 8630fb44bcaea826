"""``search ... --emit-python`` and ``evaluate ... --emit-python``: instead of running,
write the short script that recomputes the same view or evaluation with core's public API
(:mod:`core.api`, :mod:`core.present.reproduce`), to a file or stdout (``-``).

Only what the public API takes can be emitted: options it has no name for (a per-document
passage cap, a hosted ``--rerank-top-n``, ``--fallback``, tuning, A vs B) are refused
with one line rather than silently dropped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.models.errors import SettingsError


def add_emit_argument(parser: argparse.ArgumentParser) -> None:
    """``--emit-python [FILE]`` (no FILE, or ``-``: stdout)."""
    parser.add_argument(
        "--emit-python",
        metavar="FILE",
        nargs="?",
        const="-",
        default=None,
        help="write a script that recomputes this with core's public API (core.api) to FILE "
        "(default: stdout) instead of running it; run it from a checkout of the workbench",
    )


def _write(script: str, target: str) -> int:
    if target == "-":
        sys.stdout.write(script)
        return 0
    path = Path(target).expanduser()
    try:
        path.write_text(script, encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"cannot write the script to {path}: {exc.strerror}") from exc
    print(f"wrote {path}", file=sys.stderr)
    return 0


def _refuse(args: argparse.Namespace, defaults: dict[str, object]) -> None:
    for name, default in defaults.items():
        if getattr(args, name, default) != default:
            flag = "--" + name.replace("_", "-")
            raise SettingsError(f"{flag} has no name in core's public API: drop it to emit")


def emit_search(args: argparse.Namespace) -> int:
    """The script of ``search`` with these arguments (the Search page's settings)."""
    from core.api import load_dataset, search_manifest_of
    from core.models.base import DEFAULT_ENCODER, DEFAULT_MAX_LENGTH, DEFAULT_RERANKER
    from core.present.reproduce import api_script
    from core.search.passages import DEFAULT_MAX_PER_DOC, DEFAULT_MAX_PER_QUERY

    _refuse(
        args,
        {
            "rerank_top_n": None,
            "fallback": False,
            "max_passages": DEFAULT_MAX_PER_DOC,
            "max_query_passages": DEFAULT_MAX_PER_QUERY,
        },
    )
    if args.max_length not in (None, DEFAULT_MAX_LENGTH):
        raise SettingsError("--max-length has no name in core's public API: drop it to emit")
    dataset = load_dataset(args.dataset, id_field=args.id_field)
    built_with = getattr(dataset, "manifest", {}).get("model")  # a collection's encoder
    settings = {
        "candidates": args.candidates,
        "results": args.top,
        "embed_fields": args.embed_fields or (),
        "rerank_fields": args.rerank_fields or (),
        "encoder": args.encoder or built_with or DEFAULT_ENCODER,
        "reranker": "none" if args.no_rerank else (args.reranker or DEFAULT_RERANKER),
        "retriever": args.retriever,
        "fusion_weight": args.fusion_weight,
        "fusion": args.fusion,
        "rrf_k": args.rrf_k,
        "passages": args.passages,
        "window": args.window or 0,
        "stride": args.stride or 0,
        "dense_passages": args.dense_passages,
    }
    if args.id_field:
        settings["id_field"] = args.id_field
    return _write(api_script(search_manifest_of(dataset, args.query, **settings)), args.emit_python)


def emit_evaluate(args: argparse.Namespace) -> int:
    """The script of ``evaluate`` with these arguments (one setting)."""
    from core.api import evaluation_manifest, load_beir, load_dataset, load_judgments
    from core.models.base import DEFAULT_ENCODER, DEFAULT_MAX_LENGTH, DEFAULT_RERANKER
    from core.present.reproduce import evaluate_script

    _refuse(
        args,
        {
            "tune": False,
            "compare": None,
            "dense_passages": False,
            "passages": "first",
            "queries": None,
        },
    )
    if args.max_length not in (None, DEFAULT_MAX_LENGTH):
        raise SettingsError("--max-length has no name in core's public API: drop it to emit")
    if len(args.retriever or ["dense"]) != 1 or len(args.encoder or [DEFAULT_ENCODER]) != 1:
        raise SettingsError("--emit-python takes one first stage (one --retriever, --encoder)")
    options = {
        "encoder": (args.encoder or [DEFAULT_ENCODER])[0],
        "reranker": None if args.no_rerank else (args.reranker or DEFAULT_RERANKER),
        "candidates": args.candidates,
        "max_queries": args.max_queries,
        "retriever": (args.retriever or ["dense"])[0],
        "rrf_k": args.rrf_k,
        "depth": args.depth,
        "fusion_weight": args.fusion_weight,
        "fusion": args.fusion,
        "threshold": args.threshold,
    }
    if args.rerank_fields:
        options["rerank_fields"] = list(args.rerank_fields)
    if args.beir:
        data = load_beir(args.beir, split=args.split)
        manifest = evaluation_manifest(data, **options)
        source = {"beir": str(Path(args.beir).expanduser().resolve()), "split": args.split}
    else:
        data = load_dataset(args.dataset)
        judgments = load_judgments(args.judgments, data, doc_id_field=args.doc_id_field)
        manifest = evaluation_manifest(data, judgments, **options)
        source = {
            "judgments": str(Path(args.judgments).expanduser().resolve()),
            "dataset": args.dataset,
            "doc_id_field": args.doc_id_field,
        }
    return _write(evaluate_script(manifest, source), args.emit_python)
