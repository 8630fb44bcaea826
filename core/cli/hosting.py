"""Hosting the app: ``warmup`` (fill the disk cache before the first visitor),
``loadtest`` (concurrent browser sessions) and ``coldstart`` (a fresh server's first answer)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.models.errors import CoreError


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``warmup``, ``loadtest`` and ``coldstart`` to the subcommands."""
    warmup = commands.add_parser(
        "warmup",
        help="export the bi-encoder and embed movies into the disk cache once (what the "
        "app's first visitor would otherwise wait for; `make app` runs it)",
    )
    warmup.add_argument(
        "--if-needed",
        action="store_true",
        help="do nothing when the disk cache already holds the export and the embeddings",
    )

    loadtest = commands.add_parser(
        "loadtest",
        help="concurrent browser sessions searching one app server on loopback: "
        "p50/p95 time to results, each checked against core's own results",
    )
    loadtest.add_argument(
        "--sessions", default="1,4,8", help="concurrency levels to run (default 1,4,8)"
    )
    loadtest.add_argument(
        "--searches", type=int, default=3, help="new searches per session (default 3, max 10)"
    )
    loadtest.add_argument(
        "--url", help="an already running app (default: start one on a free loopback port)"
    )
    loadtest.add_argument("--json", action="store_true", help="print the report as JSON")

    coldstart = commands.add_parser(
        "coldstart",
        help="start a fresh server on an empty cache dir and time its first answer "
        "from the moment its health check answers",
    )
    coldstart.add_argument(
        "--mode",
        choices=["serve", "plain", "prepared"],
        default="serve",
        help="serve: `python serve.py` (warm-up at server start); plain: `streamlit run "
        "app.py` (warm-up at the first visit); prepared: `python -m core warmup` first, "
        "then serve.py (what `make app` does on a fresh clone)",
    )
    coldstart.add_argument(
        "--cache-dir", help="use this cache dir instead of a new empty one (warm restarts)"
    )
    coldstart.add_argument("--json", action="store_true", help="print the report as JSON")
    roombench = commands.add_parser(
        "roombench",
        help="a presenter and N viewers voting through a blind walkthrough on loopback: "
        "every vote counted, click-to-presenter-count p50/p95, a restart mid-voting",
    )
    roombench.add_argument("--viewers", type=int, default=16, help="viewers (default 16)")
    roombench.add_argument("--steps", type=int, default=3, help="steps voted (default 3)")
    roombench.add_argument("--gap", type=float, default=0.3, help="seconds between clicks")
    roombench.add_argument("--seed", type=int, default=7, help="seed of the viewers' choices")
    roombench.add_argument(
        "--no-restart", dest="restart", action="store_false", help="no server restart"
    )
    roombench.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="sample each app server with py-spy (PATH or RERANK_PYSPY) into DIR",
    )
    roombench.set_defaults(run=_roombench)
    warmup.set_defaults(run=_warmup)
    loadtest.set_defaults(run=_loadtest)
    coldstart.set_defaults(run=_coldstart)


def _warmup(args: argparse.Namespace) -> int:
    from core.ops.warmup import Warmup, WarmupStatus, log_line, prepared_on_disk

    if args.if_needed and prepared_on_disk():
        print("warm-up: the disk cache already holds the export and the embeddings")
        return 0
    last = [""]

    def progress(status: WarmupStatus) -> None:
        line = f"warm-up: {status.label}"
        if status.total:
            line += f" {status.done:,}/{status.total:,}"
        if line != last[0]:
            end = "\n" if not status.total or status.done >= status.total else ""
            print(f"\r{line}\033[K", end=end, file=sys.stderr, flush=True)
            last[0] = line

    # The example queries' scores live in the server's memory: the server scores them.
    status = Warmup(examples=()).run(progress)
    if status.error:
        raise CoreError(f"warm-up failed: {status.error}")
    print(log_line(status))
    return 0


def _loadtest(args: argparse.Namespace) -> int:
    from core.ops.loadtest import loadtest_main

    return loadtest_main(args)


def _coldstart(args: argparse.Namespace) -> int:
    from core.ops.loadtest import coldstart_main

    return coldstart_main(args)


def _roombench(args: argparse.Namespace) -> int:
    from core.ops.roombench import roombench_main

    return roombench_main(args)
