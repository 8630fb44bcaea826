"""Every command of ``python -m core`` answers ``--help`` (exit 0, its usage line), and
the README's command lines name commands the parser knows."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import COMMAND_MODULES, build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every (sub)command path the parser defines, the top level first."""
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(build_parser()))


def test_the_parser_has_every_command_group() -> None:
    top = {path[0] for path in COMMANDS if path}
    assert {"search", "evaluate", "bench", "collection", "embed", "milvus"} <= top
    assert {"warmup", "loadtest", "coldstart"} <= top
    assert ("collection", "build") in COMMANDS and ("milvus", "export") in COMMANDS
    assert len(COMMAND_MODULES) == len(set(COMMAND_MODULES))


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "(top)")
def test_help_exits_zero_with_usage(path: tuple[str, ...], capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main([*path, "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: " + " ".join(("python -m core", *path)))


def test_every_command_can_run() -> None:
    """Each leaf command (or a parser above it) sets ``run``, the function ``main`` calls
    (its module's ``add_parser`` does it with ``set_defaults(run=...)``)."""

    def leaves(parser: argparse.ArgumentParser, path: tuple[str, ...], run):
        run = parser.get_default("run") or run
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield path, run
        for action in subs:
            for name, sub in action.choices.items():
                yield from leaves(sub, (*path, name), run)

    found = list(leaves(build_parser(), (), None))
    assert len(found) > 10
    for path, run in found:
        assert callable(run), path


def test_readme_commands_are_known() -> None:
    """Each ``python -m core COMMAND`` in the README and docs names a command the parser has."""
    top = {path[0] for path in COMMANDS if path}
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = set()
    for path in texts:
        named |= set(re.findall(r"python -m core ([a-z][a-z-]*)", path.read_text()))
    assert named, "the README names no command"
    assert named <= top, sorted(named - top)


def test_module_entry_point_prints_help() -> None:
    """``python -m core --help`` in a fresh interpreter (the ``__main__`` wiring)."""
    done = subprocess.run(
        [sys.executable, "-m", "core", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m core")
