"""The one gate (core.present.gate): every outside value becomes settings through it.

Core-level cases of issue 29: Milvus references and unknown datasets from links and
stored walkthrough steps, model ids for every role (A, B, reranker, encoder), long
values, autolinks, deep JSON. No model is loaded.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from core.models.errors import WalkthroughError
from core.present.gate import MAX_VALUE_CHARS, admit_spec, admit_view
from core.present.views import WORD_JOINER, escape_markdown, outside_text, shown_value
from core.present.walkthrough import FORMAT, Step, parse_walkthrough

ROOT = Path(__file__).resolve().parents[1]
MILVUS_REFS = [
    "milvus://127.0.0.1:9999/x",
    "milvus:coll@http://127.0.0.1:19530",
    "milvus:coll@/some/path.db",
    "milvus:coll@./here.db",
]


@pytest.mark.parametrize("dataset", MILVUS_REFS)
def test_a_link_never_names_a_milvus_host_or_path(dataset: str) -> None:
    view, warnings = admit_view({"dataset": dataset, "q": "heist"})
    assert view.dataset == "movies" and view.query == "heist"
    assert len(warnings) == 1


@pytest.mark.parametrize("dataset", MILVUS_REFS)
def test_a_stored_step_gets_the_same_rules(dataset: str) -> None:
    step = Step({"dataset": dataset, "q": "heist"}, "none")
    assert step.settings.dataset == "movies"
    assert step.warnings and "movies" not in step.warnings[0][:0]


def test_unknown_and_huge_dataset_values_are_refused_and_echoed_cut() -> None:
    view, warnings = admit_view({"dataset": "../../etc/passwd"})
    assert view.dataset == "movies" and "unknown dataset" in warnings[0]
    huge = "x" * 100_000
    view, warnings = admit_view({"dataset": huge, "q": "a"})
    assert view.dataset == "movies"
    assert all(len(w) < 200 for w in warnings), warnings
    assert "100,000 characters" in warnings[0]


@pytest.mark.parametrize("role", ["reranker", "encoder"])
@pytest.mark.parametrize("value", ["/etc", "/nonexistent/dir", "org/model", "~/x"])
def test_model_ids_in_links_are_refused_the_same_whether_or_not_they_exist(
    role: str, value: str
) -> None:
    view, warnings = admit_view({role: value})
    assert getattr(view, role) != value and len(warnings) == 1
    other = "/nonexistent/dir" if value == "/etc" else "/etc"
    _, warnings_other = admit_view({role: other})
    if value in ("/etc", "/nonexistent/dir"):
        assert warnings[0].replace(repr(value), "X") == warnings_other[0].replace(repr(other), "X")


@pytest.mark.parametrize("value", ["%2Fetc", "/etc", "/nonexistent/dir", "org/model", "..\\x"])
def test_head_to_head_specs_go_through_the_model_allow_list(value: str) -> None:
    for side in ("A", "B"):
        spec, warnings = admit_spec(value, side=side)
        assert spec.is_none and len(warnings) == 1 and warnings[0].startswith(f"{side}: ")
    spec, warnings = admit_spec("/etc@0.5")
    assert spec.is_none and warnings


def test_allowed_specs_pass_and_malformed_ones_say_why() -> None:
    assert admit_spec("local@0.5/rrf")[0].to_string() == "local@0.5/rrf"
    assert admit_spec("together:Salesforce/Llama-Rank-V1")[0].reranker.startswith("together:")
    assert admit_spec("none") == (admit_spec("")[0], [])
    spec, warnings = admit_spec("local@7")
    assert spec.is_none and warnings
    spec, warnings = admit_spec("x" * (MAX_VALUE_CHARS + 1))
    assert spec.is_none and "characters" in warnings[0]


def test_operator_allowed_model_ids_pass(monkeypatch) -> None:
    monkeypatch.setenv("RERANK_ALLOWED_MODELS", "org/model")
    assert admit_spec("org/model")[0].reranker == "org/model"
    assert admit_view({"reranker": "org/model"})[0].reranker == "org/model"


def test_a_stored_step_with_a_path_as_b_is_refused() -> None:
    step = Step({"q": "heist", "dataset": "movies"}, "/etc")
    assert step.b_spec.is_none
    assert any("looks like a file path" in w for w in step.warnings)


@pytest.mark.parametrize(
    "text",
    [
        "http://evil.example",
        "HTTPS://evil.example/x",
        "www.evil.example",
        "evil@evil.example",
        "see ftp://evil.example now",
    ],
)
def test_bare_urls_and_addresses_cannot_autolink(text: str) -> None:
    shown = escape_markdown(text)
    assert WORD_JOINER in shown
    plain = shown.replace("\\", "")
    # remark-gfm's autolink literal patterns (mdast-util-gfm-autolink-literal)
    import re

    assert not re.search(r"(?i)(https?://|www(?=\.))[-.\w]+", plain)
    assert not re.search(r"[-.\w+]+@[-\w]+(?:\.[-\w]+)+", plain)
    assert plain.replace(WORD_JOINER, "") == text


def test_outside_text_is_cut_and_escaped() -> None:
    shown = outside_text("[t](http://evil.example) " + "x" * 1000)
    assert len(shown) < 400 and shown.endswith("…") and "](" not in shown
    assert shown_value("a\nb" * 100).startswith("'a b") and len(shown_value("x" * 500)) < 70


def test_deep_walkthrough_json_is_one_clear_error() -> None:
    deep = "[" * 5000 + "]" * 5000
    with pytest.raises(WalkthroughError, match="nested too deeply"):
        parse_walkthrough(deep)
    nested = {"format": FORMAT, "title": "t", "steps": [{"params": {"q": "x"}, "b": "none"}]}
    text = json.dumps(nested)
    assert parse_walkthrough(text).steps[0].query == "x"


def _reads_links(path: Path) -> bool:
    source = path.read_text()
    return "query_params" in source and ("to_dict()" in source or ".get(" in source)


def test_every_page_reads_its_link_through_the_gate() -> None:
    """No page or stored-view loader parses outside values itself: the only callers of
    SearchSettings.from_params and parse_spec outside core's own layers are the gate
    (and the walkthrough step, which calls the gate)."""
    offenders = []
    for path in sorted(
        [*(ROOT / "pages").rglob("*.py"), *(ROOT / "core" / "present").glob("*.py")]
    ):
        if path.name == "gate.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            if name not in ("from_params", "parse_spec"):
                continue
            if all(isinstance(arg, ast.Constant) for arg in node.args):
                continue  # a spec written in the code, not read from outside
            offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    allowed = {
        # the walkthrough file format checks a step's spec is well formed on import
        "core/present/walkthrough.py",
    }
    left = [o for o in offenders if o.split(":")[0] not in allowed]
    assert not left, "parse outside values without the gate:\n" + "\n".join(left)
    readers = [p.name for p in (ROOT / "pages").glob("*.py") if _reads_links(p)]
    assert readers, "no page reads a link? the check above would prove nothing"


def test_errors_never_show_server_paths() -> None:
    from core.present.views import error_text, redact_paths

    assert redact_paths("file not found: /srv/app/data/deep.json") == "file not found: …/deep.json"
    assert redact_paths("see http://127.0.0.1:19530/x") == "see http://127.0.0.1:19530/x"
    assert "/home/u" not in error_text(OSError("cannot read /home/u/.cache/x/manifest.json"))


def test_pages_show_every_exception_through_error_text() -> None:
    """An exception's text can hold paths and outside values: pages show it with
    error_text (redacted, cut, escaped), never raw or merely escaped."""
    import re

    raw = re.compile(r"(escape_markdown|outside_text)\(\s*(str\()?exc\b|st\.\w+\(\s*str\(exc\)")
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "pages").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if raw.search(line)
    ]
    assert not found, found
