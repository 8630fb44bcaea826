"""The README is a front door: at most 200 lines, exactly the two commands for a fresh
machine (`make app`, `make test`), and every relative link in it and in docs/ resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MAX_README_LINES = 200
MAX_IMAGE_BYTES = 300_000
# [text](target) and ![alt](target); the target ends at a space (a title) or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


def section(text: str, title: str) -> str:
    """The body of the ``## title`` section of a markdown text (up to the next ``## ``)."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.DOTALL | re.MULTILINE)
    assert match, f"no '## {title}' section"
    return match.group(1)


def commands_in(text: str) -> list[str]:
    """The command lines inside the fenced code blocks of ``text`` (comments dropped)."""
    lines = []
    for block in FENCE.findall(text):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                lines.append(line)
    return lines


def relative_links(path: Path) -> list[str]:
    """Every link target in a markdown file that is not a URL or a pure anchor."""
    targets = LINK.findall(path.read_text())
    return [t for t in targets if not re.match(r"^([a-z][a-z0-9+.-]*:|#)", t, re.IGNORECASE)]


def test_readme_is_at_most_200_lines() -> None:
    count = len(README.read_text().splitlines())
    assert count <= MAX_README_LINES, f"README.md has {count} lines"


def test_the_two_commands_are_make_app_and_make_test() -> None:
    text = README.read_text()
    assert commands_in(section(text, "The two commands")) == ["make app", "make test"]
    # and no other `make` target is offered anywhere in the README
    makes = [line for line in commands_in(text) if line.startswith("make")]
    assert makes == ["make app", "make test"]


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.name)
def test_every_relative_link_resolves(path: Path) -> None:
    links = relative_links(path)
    broken = [t for t in links if not (path.parent / t.split("#", 1)[0]).exists()]
    assert not broken, f"{path.name}: broken links {broken}"


def test_readme_links_every_docs_page_and_shows_two_screenshots() -> None:
    links = relative_links(README)
    linked = {(ROOT / t.split("#", 1)[0]).resolve() for t in links}
    assert {p.resolve() for p in DOCS} <= linked, "a docs page the README does not link"
    images = [t for t in links if t.endswith(".png")]
    assert len(images) >= 2


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_docs_page_opens_with_a_title_and_a_paragraph(path: Path) -> None:
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# ")
    assert lines[1] == "" and lines[2] and not lines[2].startswith(("#", "-", "|", "`"))


def test_screenshots_are_small_pngs() -> None:
    images = sorted((ROOT / "docs" / "images").glob("*"))
    assert images
    for image in images:
        assert image.suffix == ".png" and image.read_bytes()[:4] == b"\x89PNG", image.name
        assert image.stat().st_size < MAX_IMAGE_BYTES, image.name
