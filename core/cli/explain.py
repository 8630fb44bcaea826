"""``explain``: why a document got its scores, faithfully to the models that produced them.

``python -m core explain QUERY --doc ID --dataset movies [--method occlusion]
[--contrast ID] [--retriever dense|bm25|hybrid] [--json] [--html FILE]``; and
``bench-explain``: the ERASER faithfulness table (:mod:`core.bench.explain`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.cli.args import load_any_dataset

SCIFACT = "scifact"


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``explain`` and ``bench-explain`` to the subcommands."""
    cmd = commands.add_parser(
        "explain", help="why a result got its reranker and first-stage scores"
    )
    cmd.add_argument("query", help="the query")
    cmd.add_argument("--doc", required=True, help="id of the document to explain")
    cmd.add_argument("--dataset", default="movies", help="movies, sample, scifact or a JSON file")
    cmd.add_argument(
        "--method",
        choices=["occlusion", "ig"],
        default="occlusion",
        help="occlusion on the served model (default), or Integrated Gradients (ig) on the "
        "fp32 rebuild of the packaged cross-encoder",
    )
    cmd.add_argument("--contrast", metavar="ID", help="a second document: why --doc is above it")
    cmd.add_argument(
        "--retriever", choices=["dense", "bm25", "hybrid"], default="dense", help="first stage"
    )
    cmd.add_argument("--reranker", default=None, help="reranker id (default: packaged)")
    cmd.add_argument(
        "--passages",
        choices=["first", "max"],
        default="max",
        help="a long text: explain its best passage (max, default) or what fits (first)",
    )
    cmd.add_argument("--top", type=int, default=5, help="top words shown (default 5)")
    cmd.add_argument("--no-cache", action="store_true", help="recompute, ignore stored ones")
    cmd.add_argument("--allow-hosted", action="store_true", help="explain a paid hosted model")
    cmd.add_argument("--html", metavar="FILE", help="also write the heat map as an HTML page")
    cmd.add_argument("--json", action="store_true", help="print JSON")
    cmd.set_defaults(run=_explain)

    bench = commands.add_parser(
        "bench-explain", help="faithfulness of explanations (ERASER) on movies and SciFact"
    )
    bench.add_argument("--queries", type=int, default=20, help="queries per dataset (20)")
    bench.add_argument("--top", type=int, default=10, help="results explained per query (10)")
    bench.add_argument("--datasets", default="movies,scifact", help="comma-separated")
    bench.add_argument("--no-attention", action="store_true", help="skip the attention baseline")
    bench.add_argument("--ig", action="store_true", help="also rank by Integrated Gradients")
    bench.add_argument("--json", action="store_true", help="print the table as JSON")
    bench.add_argument("--show", action="store_true", help="print the stored table, run nothing")
    bench.set_defaults(run=_bench)


def open_dataset(name: str):
    """A dataset by name; ``scifact`` is the shared BEIR SciFact corpus."""
    if name == SCIFACT:
        from core.data.beir import load_beir
        from core.data.datasets import scifact_path
        from core.models.errors import DatasetUnavailableError
        from core.quality.evaluation import beir_to_dataset

        folder = scifact_path()
        if folder is None:
            raise DatasetUnavailableError("SciFact not found: set RERANK_SCIFACT_PATH")
        return beir_to_dataset(load_beir(folder)), "plain"
    return load_any_dataset(name), "fields"


def _doc_text(dataset, doc_id: str, style: str) -> str:
    from core.data.documents import rerank_text
    from core.quality.explain import ExplainError

    if not dataset.has_id(doc_id):
        raise ExplainError(f"document id '{doc_id}' is not in the dataset '{dataset.name}'")
    return rerank_text(dataset.record(doc_id), dataset.default_rerank_fields, style)


def deciding_passage(reranker, query: str, doc_id: str, text: str, aggregate: str):
    """The best passage's span when ``text`` does not fit beside ``query`` and passages
    are read (``max``); else None (the whole pair is explained)."""
    from core.models.base import RerankDoc
    from core.quality.explain import read_limit
    from core.search.passages import PassageSettings, rank_passages

    _, truncated = read_limit(reranker, query, text)
    if aggregate == "first" or not truncated:
        return None
    _, reads = rank_passages(reranker, query, [RerankDoc(doc_id, text)], PassageSettings("max"))
    read = reads.get(doc_id)
    return tuple(read.best_span) if read is not None and read.num_passages > 1 else None


def _first_stage(args, dataset, query: str):
    from core.models.registry import load_encoder
    from core.quality.explain_first_stage import explain_bm25, explain_dense, explain_rrf
    from core.search.index import build_index
    from core.search.retrievers import make_retriever

    fields = dataset.default_embed_fields
    if args.retriever == "bm25":
        return explain_bm25(make_retriever("bm25", dataset, fields), dataset, args.doc, query)
    encoder = load_encoder()
    index = build_index(dataset, encoder, fields).index
    if args.retriever == "hybrid":
        retriever = make_retriever("hybrid", dataset, fields, encoder=encoder, index=index)
        return explain_rrf(retriever, query, args.doc)
    from core.data.documents import embed_text

    q = encoder.encode([query], kind="query")[0]
    shown = float(index.vectors[list(index.ids).index(args.doc)] @ q)
    return explain_dense(encoder, query, embed_text(dataset.record(args.doc), fields), shown)


def _explain(args: argparse.Namespace) -> int:
    from core.models.base import DEFAULT_RERANKER
    from core.models.registry import load_reranker
    from core.present.explain import (
        contrast_text,
        explanation_text,
        first_stage_text,
        heatmap_html,
        reasons_line,
    )
    from core.quality.explain import check_inputs, contrast, explain
    from core.quality.faithfulness import faithfulness_figure, load_table

    check_inputs(args.query, "-")  # an empty or stop-word query fails before any loading
    if args.method == "ig":
        import core.quality.explain_ig  # noqa: F401  (registers the method)
    dataset, style = open_dataset(args.dataset)
    text = _doc_text(dataset, args.doc, style)
    other = _doc_text(dataset, args.contrast, style) if args.contrast else None
    query, text = check_inputs(args.query, text)
    reranker = load_reranker(args.reranker or DEFAULT_RERANKER)
    passage = deciding_passage(reranker, query, args.doc, text, args.passages)
    expl = explain(
        reranker,
        query,
        text,
        passage=passage,
        method=args.method,
        use_cache=not args.no_cache,
        allow_hosted=args.allow_hosted,
    )
    first = _first_stage(args, dataset, query)
    figure = faithfulness_figure(load_table(), dataset.name, args.method)
    pair = None
    if other is not None:
        other_passage = deciding_passage(reranker, query, args.contrast, other, args.passages)
        pair = contrast(
            reranker,
            query,
            text,
            other,
            passage_x=passage,
            passage_y=other_passage,
            use_cache=not args.no_cache,
        )
    if args.html:
        page = (
            '<!doctype html><html><head><meta charset="utf-8"><title>explanation</title>'
            "</head><body>" + heatmap_html(expl) + "</body></html>"
        )
        Path(args.html).write_text(page, encoding="utf-8")
    if args.json:
        out: dict[str, Any] = {
            "query": query,
            "doc": args.doc,
            "dataset": dataset.name,
            "explanation": expl.to_dict(),
            "first_stage": first.to_dict(),
            "faithfulness": figure,
            "contrast": pair.to_dict() if pair else None,
        }
        json.dump(out, sys.stdout, indent=2, default=str)
        print()
        return 0
    print(f"{args.doc}: {dataset.title(args.doc)}")
    print(explanation_text(expl, args.top, figure))
    if figure is None:
        print("faithfulness on this data: not measured (run python -m core bench-explain)")
    print(first_stage_text(first))
    line = reasons_line(first, expl)
    if line:
        print(line)
    if pair is not None:
        print(f"why {args.doc} above {args.contrast}:")
        print(contrast_text(pair))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from core.bench.explain import format_table, run_explain_bench
    from core.models.errors import SettingsError
    from core.quality.faithfulness import load_table

    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    if args.show:
        table = load_table()
        if table is None:
            raise SettingsError("no stored table: run python -m core bench-explain first")
    else:
        table = run_explain_bench(
            names,
            queries=args.queries,
            top=args.top,
            attention=not args.no_attention,
            ig=args.ig,
        )
    if args.json:
        json.dump(table, sys.stdout, indent=2)
        print()
    else:
        print(format_table(table))
    return 0
