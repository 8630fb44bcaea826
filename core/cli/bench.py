"""``bench``: encoding, query latency and rerank speed on this machine, and the
long-document, passage and fidelity benches."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``bench`` to the subcommands."""
    bench = commands.add_parser(
        "bench", help="measure encoding, query latency and rerank speed on this machine"
    )
    bench.add_argument("--json", action="store_true", help="print the report as JSON")
    bench.add_argument("--quick", action="store_true", help="tiny repeats (a smoke test)")
    bench.add_argument(
        "--scifact", metavar="PATH", help="BEIR SciFact folder (default: the shared copy)"
    )
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
    bench.set_defaults(run=_bench)


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
