"""The app against hostile links, files and hosted answers (AppTest, issue 14).

Every case ends in one clear line, leaves the session as it was, and shows whatever the
user supplied literally. Most tests use BM25 and no reranker, so no model is loaded.
"""

from __future__ import annotations

import json
import re

import pytest

from core.data.upload_store import UploadStore, upload_id
from core.present.views import MAX_QUERY_CHARS, escape_markdown
from tests.test_app import assert_no_exception, make_app, metrics, texts
from tests.test_app_uploads import upload

LINK = "[click](http://evil.example)"
BOLD = "**bold**"
HOSTILE = [LINK, BOLD]
FAST = {"dataset": "sample", "ret": "bm25", "reranker": "none"}
QUERY = "how do I get bats out of my roof without hurting them"


def bodies(elements) -> list[str]:
    return [str(e.value) for e in elements]


def assert_literal(body: str, text: str) -> None:
    """``text`` appears escaped in a markdown body, never as live markdown."""
    assert escape_markdown(text) in body, body
    assert "](http" not in body and "**bold**" not in body, body


def unescaped(body: str) -> str:
    return re.sub(r"\\(.)", r"\1", body)


# --- 1. model ids from links ------------------------------------------------------------


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("reranker", "/etc"),
        ("reranker", "/no/such/folder"),
        ("encoder", "/etc"),
        ("encoder", "~/../etc"),
        ("reranker", "..\\..\\windows"),
    ],
)
def test_a_path_in_a_link_is_refused_without_a_probe(param: str, value: str) -> None:
    at = make_app(**{param: value}).run()
    assert_no_exception(at)
    assert not at.error
    (warning,) = bodies(at.warning)
    shown = unescaped(warning)
    assert shown.startswith("Link setting ignored: ")
    assert f"model {value!r} looks like a file path and is not used" in shown
    assert param not in at.query_params  # back to the packaged default


def test_existing_and_missing_folders_read_the_same() -> None:
    shown = []
    for folder in ("/etc", "/no/such/folder"):
        at = make_app(reranker=folder).run()
        shown.append(unescaped(bodies(at.warning)[0]).replace(repr(folder), "X"))
    assert shown[0] == shown[1]


def test_a_path_typed_as_the_reranker_is_refused(tmp_path) -> None:
    at = make_app(**FAST, q=QUERY).run()
    at.selectbox(key="reranker_choice").set_value("sentence-transformers").run()
    at.text_input(key="st_model").input(str(tmp_path)).run()
    assert_no_exception(at)
    warnings = [unescaped(w) for w in bodies(at.warning)]
    assert any(
        f"Reranker model {str(tmp_path)!r} looks like a file path" in w
        and w.endswith("Showing retrieval only.")
        for w in warnings
    ), warnings
    assert metrics(at)["Reranker"] == "none"


def test_a_path_typed_as_the_bi_encoder_is_refused(tmp_path) -> None:
    at = make_app(dataset="sample", reranker="none", q=QUERY).run()
    at.selectbox(key="encoder_pick").set_value("other").run()
    at.text_input(key="encoder").input(str(tmp_path)).run()
    assert_no_exception(at)
    (error,) = [unescaped(e) for e in bodies(at.error)]
    assert f"Bi-encoder model {str(tmp_path)!r} looks like a file path" in error


# --- 2. markdown injection ---------------------------------------------------------------


@pytest.mark.parametrize("param", ["ret", "fm", "dataset", "reranker", "encoder", "fw", "k"])
@pytest.mark.parametrize("text", HOSTILE)
def test_link_warnings_show_link_text_literally(param: str, text: str) -> None:
    at = make_app(**{param: text}).run()
    assert_no_exception(at)
    warnings = bodies(at.warning)
    assert len(warnings) == 1, warnings
    assert_literal(warnings[0], text)


@pytest.mark.parametrize("text", HOSTILE)
def test_unknown_fields_in_a_link_show_literally(text: str) -> None:
    at = make_app(dataset="sample", efields=text).run()
    assert_no_exception(at)
    (warning,) = bodies(at.warning)
    assert_literal(warning, text)


def test_quality_notes_show_record_values_literally() -> None:
    records = [
        {"id": LINK, "title": "Volcanoes", "body": "Magma rises through the crust."},
        {"id": LINK, "title": "Tides", "body": "The moon pulls the seas twice a day."},
        {"id": BOLD, "title": "Tea", "body": "Steep green tea below boiling."},
        {"id": BOLD, "title": "Bats", "body": "Bats leave the attic at dusk."},
    ]
    at = make_app(dataset="sample").run()
    name = f"{BOLD}[click](evil.example).json"  # a file name has no "/"
    upload(at, name, json.dumps(records).encode())
    notes = [w for w in bodies(at.warning) if "repeats" in w]
    assert len(notes) == 1, bodies(at.warning)
    assert_literal(notes[0], LINK)
    assert_literal(notes[0], BOLD)
    (label,) = [e.label for e in at.expander if e.label.startswith("Data quality")]
    assert escape_markdown(name) in label and "**" not in label and "](" not in label


def test_upload_errors_show_file_content_literally() -> None:
    at = make_app(dataset="sample").run()
    bad = json.dumps({LINK: [{"a": "x"}], BOLD: [{"b": "y"}]}).encode()
    upload(at, "hostile.json", bad)
    (error,) = bodies(at.error)
    assert_literal(error, LINK)


# --- 4 and 5. a failed upload leaves everything as it was --------------------------------


def test_deeply_nested_upload_is_one_line_and_the_session_stays() -> None:
    at = make_app(**FAST, q=QUERY, k="30", n="7").run()
    assert_no_exception(at)
    at.multiselect(key="embed_fields").set_value(["title", "text"]).run()
    before = {
        "dataset": at.selectbox(key="dataset").value,
        "candidates": at.slider(key="candidates").value,
        "results": at.slider(key="results").value,
        "embed": at.multiselect(key="embed_fields").value,
        "rerank": at.multiselect(key="rerank_fields").value,
        "query": at.text_input(key="query").value,
        "params": dict(at.query_params),
    }
    table_before = [df.value.to_dict() for df in at.dataframe]
    assert before["candidates"] == 30 and before["results"] == 7 and table_before

    nested = ("[" * 5000 + "]" * 5000).encode()
    for _ in range(2):  # the upload, then any later rerun
        upload(at, "deep.json", nested)
        assert_no_exception(at)
        (error,) = [unescaped(e) for e in bodies(at.error)]
        assert error == (
            "deep.json nests arrays or objects too deeply to read (thousands of levels); "
            "records must be objects of fields, nested a few levels at most"
        )
        after = {
            "dataset": at.selectbox(key="dataset").value,
            "candidates": at.slider(key="candidates").value,
            "results": at.slider(key="results").value,
            "embed": at.multiselect(key="embed_fields").value,
            "rerank": at.multiselect(key="rerank_fields").value,
            "query": at.text_input(key="query").value,
            "params": dict(at.query_params),
        }
        assert after == before
        assert [df.value.to_dict() for df in at.dataframe] == table_before
    assert not UploadStore().exists(upload_id(nested))


# --- 8. smaller ones -----------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf"])
def test_non_finite_fusion_weight_in_a_link_is_ignored(raw: str) -> None:
    at = make_app(**FAST, q=QUERY, fw=raw).run()
    assert_no_exception(at)
    (warning,) = [unescaped(w) for w in bodies(at.warning)]
    assert (
        warning == f"Link setting ignored: ignored fw={raw!r}: not a finite number between 0 and 1"
    )
    assert at.slider(key="fusion_weight").value == 1.0
    assert not at.error and at.dataframe  # the search ran
    assert "fw" not in at.query_params


def test_over_long_query_in_a_link_is_cut_and_the_link_stays_short() -> None:
    long_query = "bats in the attic " * 400  # 7,200 characters
    at = make_app(**FAST, q=long_query).run()
    assert_no_exception(at)
    (warning,) = [unescaped(w) for w in bodies(at.warning)]
    assert warning == (
        f"Link setting ignored: q: the query has {len(long_query.strip()):,} characters; "
        f"only the first {MAX_QUERY_CHARS:,} are used"
    )
    assert len(at.query_params["q"]) <= MAX_QUERY_CHARS
    assert at.text_input(key="query").value == long_query.strip()[:MAX_QUERY_CHARS]
    assert at.dataframe


def test_over_long_typed_query_is_cut_with_a_message() -> None:
    at = make_app(**FAST).run()
    at.text_input(key="query").input("bats " * 1000).run()
    assert_no_exception(at)
    assert "Query cut: the query has 5,000 characters" in unescaped(texts(at.warning))
    assert len(at.query_params["q"]) <= MAX_QUERY_CHARS
