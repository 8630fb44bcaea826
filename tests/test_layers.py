"""The layout is the pipeline: a package of ``core`` never imports a higher one.

Layers, lowest first: models (which also holds the project-wide errors, paths and worker
pool) <- data <- search <- quality <- present <- cli / bench / ops / pages. Read from the
import statements (top level and inside functions alike), so a lazy import cannot hide a
wrong direction.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["models", "data", "search", "quality", "present", "top"]


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name inside ``core`` (None outside it)."""
    parts = module.split(".")
    if parts[0] == "pages":
        return "top"
    if parts[0] != "core":
        return None
    if len(parts) == 1:
        return "top"
    if parts[1] in LAYERS:
        return parts[1]
    return "top"  # cli, bench, ops, __main__


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every project module ``path`` imports, with its line number."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return [(line, mod) for line, mod in found if mod.split(".")[0] in ("core", "pages")]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_files() -> list[Path]:
    return sorted([*(ROOT / "core").rglob("*.py"), *(ROOT / "pages").rglob("*.py")])


def test_layer_of_reads_the_tree() -> None:
    assert layer_of("core.models.errors") == "models"
    assert layer_of("core.models.base") == "models"
    assert layer_of("core.search.pipeline") == "search"
    assert layer_of("core.cli") == "top"
    assert layer_of("core.cli.search") == "top"
    assert layer_of("core.ops.warmup") == "top"
    assert layer_of("pages.widgets.common") == "top"
    assert layer_of("numpy") is None


def test_no_package_imports_a_higher_one() -> None:
    wrong = []
    for path in project_files():
        own = layer_of(module_name(path))
        for line, mod in imports_of(path):
            target = layer_of(mod)
            if target is not None and LAYERS.index(target) > LAYERS.index(own):
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({own}) imports {mod} ({target})")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_no_import_circle_between_modules() -> None:
    graph: dict[str, set[str]] = {}
    for path in project_files():
        name = module_name(path)
        graph[name] = {mod for _, mod in imports_of(path) if mod != name}
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                circles.append([*trail[trail.index(nxt) :], nxt] if nxt in trail else [nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


MAX_CORE_LINES = 800


def test_every_core_module_is_under_800_lines() -> None:
    """A module over 800 lines does several jobs: split it along its seams."""
    long = {
        str(path.relative_to(ROOT)): n
        for path in sorted((ROOT / "core").rglob("*.py"))
        if (n := len(path.read_text().splitlines())) >= MAX_CORE_LINES
    }
    assert not long, f"core modules of {MAX_CORE_LINES} lines or more: {long}"


def test_model_interfaces_import_no_backend() -> None:
    mods = {mod for _, mod in imports_of(ROOT / "core" / "models" / "base.py")}
    assert mods <= {"core.models.errors"}, mods


def test_every_package_says_what_it_is_for_and_may_import() -> None:
    for package in LAYERS[:-1]:
        doc = ast.get_docstring(ast.parse((ROOT / "core" / package / "__init__.py").read_text()))
        assert doc and "May import" in doc, package


def test_pages_holds_only_the_pages_the_navigation_lists() -> None:
    """``pages/`` holds exactly the scripts app.py's ``st.navigation`` lists (so none
    needs a guard against being opened as a page); their building blocks live in
    ``pages/widgets/``, which Streamlit's pages-directory mode never reads."""
    listed = set(re.findall(r'st\.Page\(\s*"pages/(\w+)\.py"', (ROOT / "app.py").read_text()))
    scripts = {p.stem for p in (ROOT / "pages").glob("*.py")}
    assert listed and scripts == listed, (sorted(scripts - listed), sorted(listed - scripts))
    for path in (ROOT / "pages" / "widgets").glob("*.py"):
        assert "ensure_navigation" not in path.read_text(), path.name


def test_every_page_and_widget_module_is_under_300_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in (ROOT / "pages").rglob("*.py")
        if (n := len(path.read_text().splitlines())) >= 300
    }
    assert not long, f"split these along their seams: {long}"
