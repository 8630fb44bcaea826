"""Hostile input without Streamlit: model ids from links, markdown and formula
injection, malformed uploads, over-long fields, non-finite link numbers (issue 14)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pathlib
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from core.models.allow import is_hub_id, looks_like_path, model_refusal
from core.present.views import SearchSettings, escape_markdown

PATHS = [
    "/etc",
    "/no/such/folder",
    "~/models",
    "~",
    "../secrets",
    "./model",
    ".",
    "..",
    "a/../../etc",
    "some/deep/folder",
    "C:\\models\\x",
    "c:/models",
    "models\\x",
    "file:///etc/passwd",
    "org/",
    "/",
]


@contextmanager
def no_filesystem() -> Iterator[list[str]]:
    """Record every file-system probe made inside the block (there must be none)."""
    calls: list[str] = []

    def spy(name: str):
        def probe(*args, **kwargs):
            calls.append(f"{name}{args!r}")
            raise AssertionError(f"file-system call {name}{args!r}")

        return probe

    with pytest.MonkeyPatch.context() as patch:
        for name in ("stat", "lstat", "listdir", "scandir", "access"):
            patch.setattr(os, name, spy(f"os.{name}"))
        for name in ("exists", "isdir", "isfile"):
            patch.setattr(os.path, name, spy(f"os.path.{name}"))
        for name in ("exists", "is_dir", "is_file", "stat", "resolve", "expanduser"):
            patch.setattr(pathlib.Path, name, spy(f"Path.{name}"))
        yield calls


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("role", ["encoder", "reranker"])
def test_paths_are_refused_without_touching_the_file_system(
    path: str, role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RERANK_ALLOW_DOWNLOADS", "1")
    with no_filesystem() as calls:
        assert looks_like_path(path)
        message = model_refusal(path, role)
    assert not calls
    assert message is not None
    assert "looks like a file path" in message
    assert "\n" not in message


def test_existing_and_missing_folders_get_the_same_message() -> None:
    def normalised(path: str) -> str:
        return model_refusal(path, "reranker").replace(repr(path), "X")

    with no_filesystem() as calls:
        assert normalised("/etc") == normalised("/no/such/folder")
    assert not calls


@pytest.mark.parametrize(
    ("model_id", "role"),
    [
        ("cross-encoder/ms-marco-MiniLM-L-12-v2", "reranker"),
        ("ms-marco-MiniLM-L-12-v2", "reranker"),
        ("local", "reranker"),
        ("sentence-transformers/all-MiniLM-L6-v2", "encoder"),
        ("all-MiniLM-L6-v2", "encoder"),
        ("BAAI/bge-small-en-v1.5", "encoder"),
        ("together:Salesforce/Llama-Rank-V1", "reranker"),
        ("together:BAAI/bge-base-en-v1.5", "encoder"),
    ],
)
def test_packaged_and_hosted_ids_are_allowed(model_id: str, role: str) -> None:
    with no_filesystem():
        assert model_refusal(model_id, role) is None


def test_hub_ids_only_when_downloads_are_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RERANK_ALLOW_DOWNLOADS", raising=False)
    assert is_hub_id("cross-encoder/ms-marco-MiniLM-L-6-v2")
    refused = model_refusal("cross-encoder/ms-marco-MiniLM-L-6-v2", "reranker")
    assert refused and "RERANK_ALLOW_DOWNLOADS is off" in refused
    monkeypatch.setenv("RERANK_ALLOW_DOWNLOADS", "1")
    assert model_refusal("cross-encoder/ms-marco-MiniLM-L-6-v2", "reranker") is None
    # a packaged id of the other role is not a reranker
    monkeypatch.delenv("RERANK_ALLOW_DOWNLOADS")
    assert model_refusal("all-MiniLM-L6-v2", "reranker") is not None


def test_operator_list_and_local_folders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RERANK_ALLOWED_MODELS", " my-org/my-reranker , /srv/models/ce ")
    assert model_refusal("my-org/my-reranker", "reranker") is None
    assert model_refusal("/srv/models/ce", "reranker") is None
    assert model_refusal("/srv/models/other", "reranker") is not None
    # typed in the sidebar: a folder only when the operator allows local models
    assert model_refusal("/srv/models/other", "reranker", origin="typed") is not None
    monkeypatch.setenv("RERANK_ALLOW_LOCAL_MODELS", "1")
    assert model_refusal("/srv/models/other", "reranker", origin="typed") is None
    assert model_refusal("/srv/models/other", "reranker", origin="link") is not None


@pytest.mark.parametrize("text", ["", "tests", "x" * 300, "a\nb", "together:", "together: "])
def test_free_text_is_refused(text: str) -> None:
    assert model_refusal(text, "reranker") is not None


@pytest.mark.parametrize("param", ["reranker", "encoder"])
def test_link_model_ids_go_through_the_allow_list(param: str) -> None:
    with no_filesystem() as calls:
        settings, warnings = SearchSettings.from_params({param: "/etc"})
    assert not calls
    assert getattr(settings, param) == getattr(SearchSettings(), param)
    assert len(warnings) == 1
    assert "looks like a file path" in warnings[0]
    settings, warnings = SearchSettings.from_params({param: "together:some/model"})
    assert getattr(settings, param) == "together:some/model" and not warnings


def test_no_rerank_from_a_link_is_still_allowed() -> None:
    settings, warnings = SearchSettings.from_params({"reranker": "none"})
    assert settings.reranker == "none" and not warnings


# --- markdown -------------------------------------------------------------------------

LINK = "[click](http://evil.example)"
BOLD = "**bold**"


@pytest.mark.parametrize(
    "text",
    [
        LINK,
        BOLD,
        "<http://evil.example>",
        "http://evil.example",
        "www.evil.example",
        "a@evil.example",
        "`code`",
        "# head",
        "a | b",
        "~~x~~",
        "$x^2$",
        ":red[x]",
        "line1\nline2\r\n- item",
        "_i_ ![img](http://evil.example/x.png)",
    ],
)
def test_escape_markdown_leaves_nothing_active(text: str) -> None:
    escaped = escape_markdown(text)
    assert "\n" not in escaped and "\r" not in escaped
    # every markdown-active character is preceded by a backslash
    for i, ch in enumerate(escaped):
        if ch in "[]()*_`<>#|~$:@.!-":
            assert escaped[i - 1] == "\\", (text, escaped, i)
    assert "http://" not in escaped and "www." not in escaped


# --- formula injection ----------------------------------------------------------------

FORMULAS = [
    '=HYPERLINK("http://evil.example","click")',
    "+1+2",
    "-2+3",
    "@SUM(A1:A2)",
    "\t=1",
    "\r=1",
    "'=already quoted",
    "''-twice",
    "plain title",
    "'apostrophe only",
]


def test_spreadsheet_safe_only_changes_formula_text() -> None:
    from core.data.csvsafe import spreadsheet_safe, unspreadsheet

    for text in FORMULAS:
        safe = spreadsheet_safe(text)
        assert not safe.startswith(("=", "+", "-", "@", "\t", "\r"))
        assert unspreadsheet(safe) == text
    assert spreadsheet_safe(-2.5) == -2.5
    assert spreadsheet_safe(-3) == -3
    assert spreadsheet_safe(None) is None
    assert spreadsheet_safe("plain title") == "plain title"


def _dangerous(cell: str) -> bool:
    return cell[:1] in ("=", "+", "-", "@", "\t", "\r")


def _is_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def test_judgments_csv_round_trip_neutralises_every_formula() -> None:
    from core.data.beir import dump_judgments_csv, load_judgments_csv

    # the reader strips surrounding whitespace from queries and ids: keep to visible text
    visible = [text for text in FORMULAS if text == text.strip()]
    judgments = {text: {text: 2, "-7": 1, "doc": 0} for text in visible}
    data = dump_judgments_csv(judgments)
    rows = list(csv.reader(io.StringIO(data, newline="")))
    for row in rows[1:]:
        for cell in row:
            assert not _dangerous(cell), row
    assert load_judgments_csv(data.encode()) == judgments


def _hostile_result():
    from core.data.documents import make_dataset
    from core.search.pipeline import search_with_rerank
    from tests.conftest import FakeEncoder, FakeReranker

    records = [
        {"id": f"=cmd|'/c calc'!A{i}", "title": text, "body": f"volcano lava ash {i}"}
        for i, text in enumerate(FORMULAS)
    ]
    dataset = make_dataset(
        "hostile",
        records,
        id_field="id",
        title_field="title",
        embed_fields=("title", "body"),
        rerank_fields=("title", "body"),
    )
    scores = {r["id"]: -float(i) - 0.5 for i, r in enumerate(records)}
    return search_with_rerank(
        dataset,
        "volcano lava",
        encoder=FakeEncoder(),
        reranker=FakeReranker(scores),
        num_candidates=len(records),
        num_results=5,
    )


def test_results_csv_neutralises_text_and_keeps_negative_scores() -> None:
    from core.present.views import export_csv, export_json

    result = _hostile_result()
    text = export_csv(result)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == len(FORMULAS)
    for row in rows:
        for column, cell in row.items():
            if _dangerous(cell):
                assert _is_number(cell), (column, cell)
    scores = [float(row["rerank_score"]) for row in rows]
    assert all(score < 0 for score in scores)  # negative numbers stay numbers
    titles = {row["title"] for row in rows}
    assert "'" + FORMULAS[0] in titles
    # JSON stays exact
    exported = json.loads(export_json(result))
    assert {c["title"] for c in exported["results"]} == {t.strip() for t in FORMULAS}


def test_per_query_evaluation_csv_neutralises_query_text() -> None:
    from core.quality.evaluation_report import (
        HEADLINE_METRICS,
        UNJUDGED_METRICS,
        EvaluationReport,
        QueryEvaluation,
    )

    metrics = dict.fromkeys(HEADLINE_METRICS + UNJUDGED_METRICS, 0.5)
    queries = tuple(
        QueryEvaluation(f"-{i}", text, dict(metrics)) for i, text in enumerate(FORMULAS)
    )
    report = EvaluationReport.__new__(EvaluationReport)
    object.__setattr__(report, "queries", queries)
    rows = list(csv.reader(io.StringIO(report.per_query_csv(), newline="")))
    for row in rows[1:]:
        for cell in row:
            if _dangerous(cell):
                assert _is_number(cell), cell


# --- malformed hosted answers ---------------------------------------------------------

TOGETHER_KEY = "tgp-hostile-0123456789"
DOCS = [
    ("d1", "bats roost in the attic and can be evicted with one-way doors"),
    ("d2", "seasoning firewood for a clean burn"),
    ("d3", "feeding a pet goldfish twice a day"),
    ("d4", "bats eat insects at night"),
]


@pytest.fixture
def together():
    from tests.together_server import FakeTogetherServer

    with FakeTogetherServer(api_key=TOGETHER_KEY) as fake:
        yield fake


def _reranker(server):
    from core.models.together import TogetherReranker

    return TogetherReranker(api_key=TOGETHER_KEY, base_url=server.base_url, max_retries=0)


def _docs():
    from core.models.base import RerankDoc

    return [RerankDoc(doc_id, text) for doc_id, text in DOCS]


MALFORMED_MESSAGES = {
    "not_json": "not JSON",
    "string_score": "not a finite number",
    "nan_score": "not a finite number",
    "inf_score": "not a finite number",
    "null_score": "not a finite number",
    "short": "2 result(s) for 4 documents",
    "empty": "0 result(s) for 4 documents",
    "bad_index": "invalid document index",
    "duplicate_index": "invalid document index",
    "string_index": "invalid document index",
    "no_results": "no list of results",
}


@pytest.mark.parametrize("mode", list(MALFORMED_MESSAGES))
def test_malformed_rerank_answers_are_remote_errors(together, mode: str) -> None:
    from core.models.errors import RemoteAPIError
    from core.models.together import MalformedAnswerError

    together.rerank_answer = mode
    with pytest.raises(RemoteAPIError) as caught:
        _reranker(together).rank("bats in the attic", _docs())
    assert isinstance(caught.value, MalformedAnswerError)
    message = str(caught.value)
    assert MALFORMED_MESSAGES[mode] in message, message
    assert "\n" not in message and TOGETHER_KEY not in message


def test_top_n_explains_a_short_answer(together) -> None:
    ranked = _reranker(together).rank("bats in the attic", _docs(), top_n=2)
    assert len(ranked) == 2
    together.rerank_answer = "short"  # 2 of the 4 asked-for results are missing
    from core.models.together import MalformedAnswerError

    with pytest.raises(MalformedAnswerError, match="expected 4"):
        _reranker(together).rank("bats in the attic", _docs(), top_n=4)


@pytest.mark.parametrize("mode", ["not_json", "nan_score", "string_score", "empty"])
def test_malformed_answer_triggers_the_local_fallback(together, mode: str) -> None:
    from core.models.together import rank_with_fallback
    from tests.conftest import FakeReranker

    together.rerank_answer = mode
    fallback = FakeReranker({"d4": 2.0, "d1": 3.0})
    ranked, notice = rank_with_fallback(_reranker(together), fallback, "bats in the attic", _docs())
    assert [r.id for r in ranked][:2] == ["d1", "d4"]
    assert notice is not None and "invalid answer" in notice
    assert fallback.seen


def test_nan_embeddings_are_a_remote_error(together) -> None:
    from core.models.together import MalformedAnswerError, TogetherEncoder

    together.nan_embeddings = True
    encoder = TogetherEncoder(api_key=TOGETHER_KEY, base_url=together.base_url, max_retries=0)
    with pytest.raises(MalformedAnswerError, match="not finite"):
        encoder.encode(["bats"])


# --- uploads --------------------------------------------------------------------------

NESTED = ("[" * 5000 + "]" * 5000).encode()
NESTED_IN_RECORD = (
    '[{"id": "a", "title": "deep", "body": "text of the body", "x": '
    + "[" * 5000
    + "]" * 5000
    + "}]"
).encode()


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("deep.json", NESTED),
        ("deep.jsonl", NESTED + b"\n"),
        ("deep-record.json", NESTED_IN_RECORD),
        ("deep.txt", b'{"a": 1}\n' + NESTED),
    ],
)
def test_deeply_nested_json_is_one_upload_error(name: str, data: bytes) -> None:
    from core.data.uploads import UploadError, parse_upload

    with pytest.raises(UploadError) as caught:
        parse_upload(data, name)
    message = str(caught.value)
    assert "nests arrays or objects too deeply" in message and "\n" not in message


def test_over_long_fields_are_cut_and_reported() -> None:
    from core.data.upload_quality import build_upload_dataset
    from core.data.uploads import parse_upload

    records = [
        {"id": "a", "title": "Long one", "body": "lava " * 50_000, "tags": ["x" * 70_000] * 3},
        {"id": "b", "title": "Short one", "body": "volcano ash", "tags": ["y"]},
    ]
    parsed = parse_upload(json.dumps(records).encode(), "long.json", max_chars=100_000)
    body = parsed.records[0]["body"]
    assert len(body) == 100_000
    tags = parsed.records[0]["tags"]
    assert sum(len(t) for t in tags) <= 100_000 and len(tags) == 2
    assert parsed.records[1]["tags"] == ["y"]
    dataset, report = build_upload_dataset(parsed)
    assert report.cut_fields == {"body": 1, "tags": 1}
    notes = " ".join(report.notes())
    assert "'body' is longer than 100,000 characters in 1 record(s)" in notes
    assert "RERANK_MAX_FIELD_CHARS" in notes
    rows = {row["field"]: row for row in report.to_rows()}
    assert rows["body"]["cut at 100,000 chars"] == 1
    assert rows["title"]["cut at 100,000 chars"] == 0
    assert len(dataset.records[0]["body"]) == 100_000


def test_the_field_limit_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.data.uploads import parse_upload

    monkeypatch.setenv("RERANK_MAX_FIELD_CHARS", "10")
    parsed = parse_upload(b"title,body\nHello there world,short\n", "x.csv")
    assert parsed.records[0]["title"] == "Hello ther"
    assert parsed.field_quality[0].cut == 1


# --- link numbers and the query ---------------------------------------------------------


@pytest.mark.parametrize("raw", ["nan", "NaN", "inf", "-inf", "1e999", "abc"])
def test_non_finite_fusion_weight_in_a_link_is_ignored(raw: str) -> None:
    settings, warnings = SearchSettings.from_params({"fw": raw})
    assert settings.fusion_weight == SearchSettings().fusion_weight
    assert math.isfinite(settings.fusion_weight)
    assert warnings == [f"ignored fw={raw!r}: not a finite number between 0 and 1"]


@pytest.mark.parametrize("param", ["k", "n", "rrfk"])
@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "1e3"])
def test_non_finite_counts_in_a_link_are_ignored(param: str, raw: str) -> None:
    settings, warnings = SearchSettings.from_params({param: raw})
    assert settings == SearchSettings()
    assert len(warnings) == 1 and "not a whole number" in warnings[0]


def test_over_long_query_in_a_link_is_cut_with_a_warning() -> None:
    from core.present.views import MAX_QUERY_CHARS

    settings, warnings = SearchSettings.from_params({"q": "bats " * 30_000})
    assert len(settings.query) <= MAX_QUERY_CHARS
    assert warnings and "only the first 1,000 are used" in warnings[0]


def test_overlap_divides_by_the_list_length_when_shorter_than_n() -> None:
    from core.quality.metrics import overlap_at_k

    assert overlap_at_k(["a", "b", "c"], ["a", "b", "c"], 10) == 1.0
    assert overlap_at_k(["a", "b", "c"], ["c", "x", "y"], 10) == pytest.approx(1 / 3)
    assert overlap_at_k(["a", "b", "c", "d"], ["c", "x", "a", "y"], 3) == pytest.approx(2 / 3)
    assert overlap_at_k([], [], 5) == 0.0
