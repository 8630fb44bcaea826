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
        help="comma-separated record counts (default 10000,50000,100000; a full 100k "
        "build encodes for ~20-40 min on 2 cores: see --full-dense-max)",
    )
    bench.add_argument(
        "--searches", type=int, default=5, help="searches made while each build runs"
    )
    bench.add_argument("--gap", type=float, default=3.0, help="seconds between those searches")
    bench.add_argument(
        "--full-dense-max",
        type=int,
        default=10_000,
        help="sizes above this build only the first chunks and PROJECT dense ready from "
        "the measured rate (default 10000; 0: project every size; -1: build all in full)",
    )
    bench.add_argument(
        "--project-chunks",
        type=int,
        default=3,
        help="chunks built before projecting (default 3, of 1,024 records each)",
    )
    bench.add_argument(
        "--chunk",
        type=int,
        default=None,
        help="documents per chunk of the build (default the app's, 1024)",
    )
    bench.add_argument(
        "--pure-sample",
        type=int,
        default=1000,
        help="records encoded plainly (half before, half after the build) for the pure "
        "rate (default 1000)",
    )
    bench.add_argument("--json", action="store_true", help="print the rows as JSON")
    bench.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from core.bench.background import bench_background, format_rows

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    rows = bench_background(
        args.sizes,
        searches_during=max(0, args.searches),
        gap_s=max(0.0, args.gap),
        full_dense_max=None if args.full_dense_max < 0 else args.full_dense_max,
        project_chunks=max(1, args.project_chunks),
        chunk=args.chunk,
        pure_sample=max(2, args.pure_sample),
        log=log,
    )
    print(json.dumps(rows, indent=2) if args.json else format_rows(rows))
    if args.json:  # the table too, on stderr, for the log
        log(format_rows(rows))
    return 0
