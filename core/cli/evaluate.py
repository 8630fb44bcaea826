"""``evaluate``: its arguments, reading the judgments, and choosing the run (one setting,
several first stages or tuning, or A vs B; the runs are in :mod:`core.cli.evaluate_runs`)."""

from __future__ import annotations

import argparse
import sys

from core.cli.args import (
    add_fusion_arguments,
    add_passage_arguments,
    csv_list,
    dense_passage_settings,
    evaluate_progress,
    int_list,
    passage_settings,
)
from core.cli.emit import add_emit_argument, emit_evaluate
from core.cli.evaluate_runs import Labelled, compare_pair, compare_settings, evaluate_one
from core.models.errors import CoreError


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``evaluate`` to the subcommands."""
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
        "--rerank-fields", type=csv_list, help="comma-separated fields the reranker reads"
    )
    evaluate.add_argument(
        "--retriever",
        type=csv_list,
        default=None,
        help="first stage(s): dense, bm25, hybrid; several (comma-separated) print one "
        "row each, alone, reranked and (with --fusion-weight) fused",
    )
    evaluate.add_argument(
        "--encoder",
        type=csv_list,
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
    add_fusion_arguments(evaluate)
    add_passage_arguments(evaluate, "first")
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
        type=int_list,
        default=[5],
        help="--tune: folds (default 5); --compare-rules: several, e.g. 5,10",
    )
    evaluate.add_argument("--seed", type=int, default=0, help="--tune: shuffle seed")
    evaluate.add_argument(
        "--seeds", type=int_list, default=None, help="--compare-rules: shuffle seeds, e.g. 0,1,2"
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
    add_emit_argument(evaluate)
    evaluate.set_defaults(run=_evaluate)


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
    from core.quality.evaluation import beir_to_dataset
    from core.quality.evaluation_report import BEIR_FIELDS
    from core.quality.metrics import check_threshold
    from core.quality.tuning_grid import BGE_SMALL, default_stages, stages_for
    from core.quality.tuning_rules import DEFAULT_RULE, check_rule
    from core.search.fusion import check_fusion

    check_fusion(args.fusion_weight, args.fusion)
    check_threshold(args.threshold)
    args.rule = check_rule(args.rule or DEFAULT_RULE)
    if (args.compare_rules or args.sabotage) and not args.tune:
        raise CoreError("--compare-rules and --sabotage go with --tune")
    passage_settings(args)
    dense_passage_settings(args)
    if args.tune_passages and not args.tune:
        raise CoreError("--tune-passages goes with --tune")
    if args.tune and args.no_rerank:
        raise CoreError("--tune needs the reranker: drop --no-rerank")
    if args.emit_python:
        return emit_evaluate(args)
    if args.beir:
        beir = load_beir(args.beir, split=args.split)
        dataset = beir_to_dataset(beir)
        data = Labelled(
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
        data = Labelled(
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
        return compare_pair(args, data, stages[0], encoders, pair)
    reranker = None
    if not args.no_rerank:
        reranker = load_reranker(
            args.reranker or DEFAULT_RERANKER, max_length=args.max_length or DEFAULT_MAX_LENGTH
        )
    progress = None if not sys.stderr.isatty() else evaluate_progress
    if len(stages) == 1 and not args.tune:
        return evaluate_one(args, data, stages[0], encoders, reranker, progress)
    return compare_settings(args, data, stages, encoders, reranker, progress)
