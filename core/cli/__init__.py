"""Command line: ``python -m core search "QUERY" [options]``; also ``evaluate``, ``bench``,
``embed`` (corpus vectors, in process or on Ray) and ``milvus export|info``.

One module per command group, each with ``add_parser(commands)``: it adds its
subcommand(s) to ``commands`` (the ``add_subparsers`` object) and sets ``run`` on each,
the function ``main`` calls with the parsed arguments. Adding a group is one line in
:data:`COMMAND_MODULES` (the order is the order of ``--help``). Shared argument helpers
live in :mod:`core.cli.args`.

Errors a user can cause print one line on stderr (``error: ...``) and exit with 2;
no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from core.models.errors import CoreError

COMMAND_MODULES = (
    "search",  # search
    "evaluate",  # evaluate (its runs: evaluate_runs)
    "collection",  # collection build|retune|remove|list|info|bench
    "bench",  # bench
    "hosting",  # warmup, loadtest, coldstart
    "scale",  # embed, milvus export|info
    "explain",  # explain, bench-explain
    "background",  # bench-background
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m core``, assembled from :data:`COMMAND_MODULES`."""
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"core.cli.{name}").add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return args.run(args)
    except CoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
