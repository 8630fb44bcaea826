"""``bench-background``: an upload searchable in seconds while its dense index is built
in the background (see :mod:`core.bench.background`)."""

from __future__ import annotations

import argparse
import json
import sys

from core.cli.args import int_list


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``bench-background`` to the subcommands."""
    bench = commands.add_parser(
        "bench-background",
        help="synthetic uploads (10k/50k/100k): first reranked results, dense ready, "
        "docs/s, searches during the build",
    )
    bench.add_argument(
        "--sizes",
        type=int_list,
        default=[10_000, 50_000, 100_000],
        help="comma-separated record counts (default 10000,50000,100000; 100k encodes "
        "for ~20-40 min on 2 cores)",
    )
    bench.add_argument(
        "--searches", type=int, default=5, help="searches made while each build runs"
    )
    bench.add_argument("--gap", type=float, default=3.0, help="seconds between those searches")
    bench.add_argument("--json", action="store_true", help="print the rows as JSON")
    bench.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from core.bench.background import bench_background, format_rows

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    rows = bench_background(
        args.sizes, searches_during=max(0, args.searches), gap_s=max(0.0, args.gap), log=log
    )
    print(json.dumps(rows, indent=2) if args.json else format_rows(rows))
    return 0
