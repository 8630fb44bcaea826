"""The runs of ``evaluate``: one setting with its per-query CSV, several settings side
by side or tuned by cross-validation, and two second stages head to head."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

from core.cli.args import (
    dense_passage_settings,
    evaluate_passages,
    evaluate_progress,
    passage_settings,
)
from core.models.errors import CoreError


@dataclass(frozen=True)
class Labelled:
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


def evaluate_one(args, data: Labelled, stage, encoders, reranker, progress) -> int:
    import time
    from pathlib import Path

    from core.models.paths import cache_dir
    from core.quality.evaluation import evaluate_beir, evaluate_judgments
    from core.quality.evaluation_format import format_report
    from core.quality.runs import SecondStage

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
            passages=evaluate_passages(args),
            dense_passages=dense_passage_settings(args),
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
    settings = passage_settings(args)
    return settings if settings.aggregate != "first" else with_changes(settings, aggregate="max")


def compare_settings(args, data: Labelled, stages, encoders, reranker, progress) -> int:
    from core.quality.tuning import compare_rules, tune
    from core.quality.tuning_cost import measure_rerank_cost
    from core.quality.tuning_format import format_results, format_rule_comparison, format_tune
    from core.quality.tuning_grid import Config, config_grid
    from core.quality.tuning_workbench import compare, prepare, sabotage
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
        passages=evaluate_passages(args),
        dense_passages=dense_passage_settings(args),
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


def compare_pair(args, data: Labelled, stage, encoders, pair) -> int:
    """``evaluate --compare A,B``: both second stages on the same candidates, with the
    paired interval, the verdict and the queries where they disagree most."""
    from pathlib import Path

    from core.models.base import DEFAULT_MAX_LENGTH
    from core.models.registry import load_reranker
    from core.present.report import pair_report_html
    from core.quality.evaluation_pair import evaluate_pair, format_pair_report
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
        progress=None if not sys.stderr.isatty() else evaluate_progress,
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
