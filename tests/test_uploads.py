"""Tests of your own data: parsing hostile and malformed uploads and field suggestions
(core.data.uploads), the quality report (core.data.upload_quality), and the
content-addressed upload store (core.data.upload_store).

Every error path is exercised with real bytes (most written to ``tmp_path`` and read
back, as an upload would arrive), and every message is checked for the file name and
the detail a person needs to fix the file.
"""

from __future__ import annotations

import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core.data.documents import value_to_text
from core.data.upload_quality import (
    ROW_POSITION,
    QualityReport,
    build_upload_dataset,
    quality_report,
)
from core.data.upload_store import (
    UploadNotFoundError,
    UploadStore,
    is_upload_id,
    max_store_bytes,
    upload_id,
)
from core.data.uploads import (
    ENCODER_MAX_TOKENS,
    RERANKER_MAX_TOKENS,
    ParsedUpload,
    UploadError,
    estimate_tokens,
    flatten_record,
    max_upload_bytes,
    max_upload_records,
    parse_upload,
)
from core.models.errors import DatasetError, DatasetUnavailableError, FieldError, SettingsError

MOVIES_LIKE = [
    {
        "title": "Heat",
        "overview": "A group of professional bank robbers feel the heat from police.",
        "director": "Michael Mann",
        "genres": "Action Crime Drama",
        "tagline": "A Los Angeles crime saga",
    },
    {
        "title": "Alien",
        "overview": "During its return to the earth, a commercial spaceship finds a signal.",
        "director": "Ridley Scott",
        "genres": "Horror Science Fiction",
        "tagline": "In space no one can hear you scream.",
    },
    {
        "title": "Up",
        "overview": "An old man ties thousands of balloons to his house and flies away.",
        "director": "Pete Docter",
        "genres": "Animation Comedy Family",
    },
]


def _upload(tmp_path: Path, name: str, data: bytes, **limits) -> ParsedUpload:
    """Write ``data`` to a real file and parse what is read back, like an upload."""
    path = tmp_path / name
    path.write_bytes(data)
    return parse_upload(path.read_bytes(), path.name, **limits)


def _error(tmp_path: Path, name: str, data: bytes, **limits) -> str:
    with pytest.raises(UploadError) as info:
        _upload(tmp_path, name, data, **limits)
    message = str(info.value)
    assert "\n" not in message, "error messages are one line"
    assert name.rsplit("/", 1)[-1] in message, "error messages name the file"
    return message


def _json(records) -> bytes:
    return json.dumps(records, indent=2).encode()


# --- formats -----------------------------------------------------------------------------


def test_json_array_of_objects(tmp_path):
    parsed = _upload(tmp_path, "movies.json", _json(MOVIES_LIKE))
    assert parsed.format == "json"
    assert parsed.filename == "movies.json"
    assert len(parsed.records) == 3
    assert parsed.records[2] == MOVIES_LIKE[2]
    assert parsed.fields == ("title", "overview", "director", "genres", "tagline")
    assert parsed.size_bytes == len(_json(MOVIES_LIKE))
    assert parsed.sha256 == hashlib.sha256(_json(MOVIES_LIKE)).hexdigest()
    assert parsed.dataset_id == "upload-" + parsed.sha256[:16]


def test_json_object_holding_one_array_of_records(tmp_path):
    data = json.dumps({"version": 2, "tags": ["a", "b"], "items": MOVIES_LIKE}).encode()
    parsed = _upload(tmp_path, "wrapped.json", data)
    assert [r["title"] for r in parsed.records] == ["Heat", "Alien", "Up"]


def test_json_object_with_two_arrays_of_records_is_ambiguous(tmp_path):
    data = json.dumps({"train": MOVIES_LIKE, "test": MOVIES_LIKE}).encode()
    message = _error(tmp_path, "two.json", data)
    assert "2 arrays of records" in message and "'train'" in message and "'test'" in message


def test_single_json_object_is_not_a_list_of_records(tmp_path):
    message = _error(tmp_path, "one.json", b'{"title": "Heat"}')
    assert "single JSON object" in message


def test_utf8_bom_is_accepted(tmp_path):
    parsed = _upload(tmp_path, "bom.json", b"\xef\xbb\xbf" + _json(MOVIES_LIKE))
    assert len(parsed.records) == 3


def test_jsonl_by_extension_with_blank_lines(tmp_path):
    lines = [json.dumps(r) for r in MOVIES_LIKE]
    data = ("\n".join([lines[0], "", lines[1], "   ", lines[2]]) + "\n").encode()
    for name in ("movies.jsonl", "movies.ndjson"):
        parsed = _upload(tmp_path, name, data)
        assert parsed.format == "jsonl"
        assert [r["title"] for r in parsed.records] == ["Heat", "Alien", "Up"]


def test_jsonl_detected_when_json_parsing_meets_extra_data(tmp_path):
    data = "\r\n".join(json.dumps(r) for r in MOVIES_LIKE).encode()
    parsed = _upload(tmp_path, "export.json", data)
    assert parsed.format == "jsonl"
    assert len(parsed.records) == 3


def test_jsonl_bad_line_names_its_line_number(tmp_path):
    lines = [json.dumps(r) for r in MOVIES_LIKE]
    lines.insert(1, "")  # blank lines still count as lines
    lines.insert(3, '{"title": "Broken", "overview": "no closing brace"')
    message = _error(tmp_path, "bad.jsonl", "\n".join(lines).encode())
    assert message.startswith("bad.jsonl line 4 is not valid JSON:")
    assert "at column 51" in message  # just past the end of the 50-character line


def test_jsonl_line_that_is_not_an_object(tmp_path):
    data = (json.dumps(MOVIES_LIKE[0]) + "\n[1, 2]\n").encode()
    message = _error(tmp_path, "rows.jsonl", data)
    assert "line 2 (record 1) is a JSON array" in message


def test_jsonl_detection_reports_bad_line(tmp_path):
    data = (json.dumps(MOVIES_LIKE[0]) + "\n" + json.dumps(MOVIES_LIKE[1]) + "\n{oops}\n").encode()
    message = _error(tmp_path, "export.json", data)
    assert "line 3 is not valid JSON" in message


def test_csv_with_header(tmp_path):
    data = (
        b"id,title,overview,year\r\n"
        b'1,Heat,"Robbers, and the police who chase them",1995\r\n'
        b'2,Alien,"A ship finds a ""signal""",\r\n'
        b"3,Up,,2009\r\n"
    )
    parsed = _upload(tmp_path, "films.csv", data)
    assert parsed.format == "csv"
    assert parsed.fields == ("id", "title", "overview", "year")
    assert parsed.records[0] == {
        "id": "1",
        "title": "Heat",
        "overview": "Robbers, and the police who chase them",
        "year": "1995",
    }
    assert parsed.records[1]["overview"] == 'A ship finds a "signal"'
    assert "year" not in parsed.records[1]  # an empty cell is a missing value
    assert "overview" not in parsed.records[2]
    assert all(isinstance(v, str) for r in parsed.records for v in r.values())
    assert parsed.suggested.id_field == "id"
    assert parsed.suggested.title_field == "title"
    assert parsed.suggested.embed_fields == ("title", "overview")  # year is numeric text


def test_csv_semicolons_bom_blank_and_repeated_headers(tmp_path):
    data = "\ufefftitle;;title;text\nHeat;x;Again;Robbers and police\n".encode()
    parsed = _upload(tmp_path, "euro.csv", data)
    assert parsed.fields == ("title", "column_2", "title_2", "text")
    assert parsed.records[0]["text"] == "Robbers and police"


def test_tsv_is_tab_separated(tmp_path):
    parsed = _upload(tmp_path, "films.tsv", b"title\toverview\nHeat\tA crime saga, in LA\n")
    assert parsed.records == ({"title": "Heat", "overview": "A crime saga, in LA"},)


def test_csv_row_with_too_many_values_names_its_line(tmp_path):
    data = b"title,overview\nHeat,Robbers\nAlien,Space,extra\n"
    message = _error(tmp_path, "wide.csv", data)
    assert message == "wide.csv line 3 has 3 values but the header names 2 columns"


def test_csv_with_only_a_header_has_no_records(tmp_path):
    assert _error(tmp_path, "head.csv", b"title,overview\n") == "head.csv holds no records"


# --- hostile and malformed files -----------------------------------------------------------


def test_truncated_json_reports_line_and_column(tmp_path):
    full = _json(MOVIES_LIKE)
    message = _error(tmp_path, "cut.json", full[: len(full) // 2])
    assert message.startswith("cut.json is not valid JSON: ")
    cut = full[: len(full) // 2].decode()
    with pytest.raises(json.JSONDecodeError) as info:
        json.loads(cut)
    assert f"at line {info.value.lineno}, column {info.value.colno}" in message
    assert info.value.lineno > 1


def test_truncated_json_exact_position(tmp_path):
    message = _error(tmp_path, "cut.json", b'[\n  {"title": "a"},\n  {"title": "b"')
    assert message == ("cut.json is not valid JSON: Expecting ',' delimiter at line 3, column 16")


def test_unknown_extension_gets_a_format_hint(tmp_path):
    message = _error(tmp_path, "notes.txt", b"title,overview\nHeat,Robbers\n")
    assert "at line 1, column 1" in message and "CSV named .csv" in message


def test_top_level_number(tmp_path):
    message = _error(tmp_path, "number.json", b"42\n")
    assert message == "number.json holds a JSON number; expected an array of records (objects)"


def test_top_level_string(tmp_path):
    message = _error(tmp_path, "string.json", b'"hello"')
    assert "holds a JSON string" in message


def test_records_that_are_lists(tmp_path):
    message = _error(tmp_path, "lists.json", b'[{"title": "ok"}, {"title": "ok"}, [1, 2], 3]')
    assert message == "lists.json: record 2 is a JSON array, not an object with named fields"


def test_records_that_are_numbers(tmp_path):
    message = _error(tmp_path, "numbers.json", b"[1, 2, 3]")
    assert "record 0 is a JSON number" in message


def test_wrapped_array_of_non_objects_names_the_key(tmp_path):
    message = _error(tmp_path, "wrapped.json", b'{"rows": ["a", "b"]}')
    assert "record 0 of 'rows' is a JSON string" in message


def test_zero_byte_file(tmp_path):
    message = _error(tmp_path, "empty.json", b"")
    assert message.startswith("empty.json is empty")


@pytest.mark.parametrize("data", [b"   \n\t\r\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf  \n"])
def test_whitespace_only_file_is_empty(tmp_path, data):
    assert "is empty" in _error(tmp_path, "blank.jsonl", data)


def test_empty_array_has_no_records(tmp_path):
    assert _error(tmp_path, "none.json", b"[]") == "none.json holds no records"


def test_latin1_bytes_are_rejected_with_offset(tmp_path):
    data = '[{"title": "café au lait"}]'.encode("latin-1")
    message = _error(tmp_path, "latin1.json", data)
    offset = data.index(b"\xe9")
    # Where an editor shows it (line and column, from 1) and the byte offset (from 0).
    assert f"line 1, column {offset + 1} (byte offset {offset}) holds 0xe9" in message
    assert "save the file as UTF-8" in message


def test_latin1_offset_counts_the_bom(tmp_path):
    data = b"\xef\xbb\xbftitle\ncaf\xe9\n"
    message = _error(tmp_path, "bom.csv", data)
    assert data.index(b"\xe9") == 12
    assert "line 2, column 4 (byte offset 12) holds 0xe9" in message


def test_utf16_is_recognised(tmp_path):
    message = _error(tmp_path, "wide.json", '[{"title": "x"}]'.encode("utf-16"))
    assert "UTF-16" in message and "save the file as UTF-8" in message


def test_script_in_title_is_preserved_verbatim(tmp_path):
    script = "<script>alert(1)</script>"
    records = [{"title": script, "body": "A perfectly ordinary description."}, *MOVIES_LIKE]
    parsed = _upload(tmp_path, "xss.json", _json(records))
    assert parsed.records[0]["title"] == script
    dataset, _ = build_upload_dataset(parsed)
    assert dataset.title(dataset.ids[0]) == script
    assert dataset.record(dataset.ids[0])["title"] == script


def test_oversized_file(tmp_path):
    data = _json(MOVIES_LIKE)
    message = _error(tmp_path, "big.json", data, max_bytes=100)
    assert message == (
        f"big.json is {len(data):,} bytes; uploads are limited to 100 bytes (RERANK_MAX_UPLOAD_MB)"
    )
    assert _upload(tmp_path, "big.json", data, max_bytes=len(data)).records


def test_size_limit_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANK_MAX_UPLOAD_MB", "0.0001")  # 100 bytes
    assert max_upload_bytes() == 100
    assert "uploads are limited to 100 bytes" in _error(tmp_path, "big.json", _json(MOVIES_LIKE))
    monkeypatch.delenv("RERANK_MAX_UPLOAD_MB")
    assert max_upload_bytes() == 50_000_000  # Streamlit's uploader counts MB as 10^6 bytes


def test_bad_limit_in_environment(monkeypatch):
    monkeypatch.setenv("RERANK_MAX_UPLOAD_RECORDS", "lots")
    with pytest.raises(SettingsError, match="RERANK_MAX_UPLOAD_RECORDS must be a positive"):
        max_upload_records()


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("many.json", _json(MOVIES_LIKE)),
        ("many.jsonl", "\n".join(json.dumps(r) for r in MOVIES_LIKE).encode()),
        ("many.csv", b"title\nHeat\nAlien\nUp\n"),
    ],
)
def test_too_many_records(tmp_path, name, data):
    message = _error(tmp_path, name, data, max_records=2)
    assert "uploads are limited to 2 records" in message or "limited to 2 (" in message
    assert "RERANK_MAX_UPLOAD_RECORDS" in message
    assert len(_upload(tmp_path, name, data, max_records=3).records) == 3


def test_record_limit_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANK_MAX_UPLOAD_RECORDS", "2")
    message = _error(tmp_path, "many.json", _json(MOVIES_LIKE))
    assert message == (
        "many.json has 3 records; uploads are limited to 2 (RERANK_MAX_UPLOAD_RECORDS); "
        "for more, build a collection: python -m core collection build FILE --name NAME"
    )
    monkeypatch.delenv("RERANK_MAX_UPLOAD_RECORDS")
    assert max_upload_records() == 100_000


def test_no_text_fields(tmp_path):
    data = _json([{"id": i, "score": i * 1.5, "ok": True, "code": "ab"} for i in range(5)])
    message = _error(tmp_path, "numbers.json", data)
    assert message.startswith("numbers.json has no text fields")
    assert "id, score, ok, code" in message


def test_hostile_filename_is_reduced_to_one_line_base_name(tmp_path):
    with pytest.raises(UploadError) as info:
        parse_upload(b"42", "../../etc/evil\nname.json")
    assert str(info.value).startswith("evil name.json holds a JSON number")


# --- flattening -----------------------------------------------------------------------------


def test_nested_values_are_flattened(tmp_path):
    record = {
        "title": "Heat",
        "meta": {"year": 1999, "lang": "en", "a": {"b": {"c": {"d": 1}}}, "empty": {}},
        "tags": ["crime", "drama", 3],
        "cast": [{"name": "Al Pacino"}, {"name": "Robert De Niro"}],
        "matrix": [[1, 2], [3, 4]],
    }
    parsed = _upload(tmp_path, "nested.json", json.dumps([record]).encode())
    flat = parsed.records[0]
    assert flat == {
        "title": "Heat",
        "meta.year": 1999,
        "meta.lang": "en",
        "meta.a.b": '{"c": {"d": 1}}',
        "tags": ["crime", "drama", 3],
        "cast": '[{"name": "Al Pacino"}, {"name": "Robert De Niro"}]',
        "matrix": "[[1, 2], [3, 4]]",
    }
    assert parsed.fields == (
        "title",
        "meta.year",
        "meta.lang",
        "meta.a.b",
        "tags",
        "cast",
        "matrix",
    )
    assert value_to_text(flat["tags"]) == "crime, drama, 3"


def test_flatten_depth_three_and_clashes():
    assert flatten_record({"a": {"b": {"c": 1}}}) == {"a.b.c": 1}
    assert flatten_record({"a": {"b": {"c": {"d": 1}}}}) == {"a.b.c": '{"d": 1}'}
    assert flatten_record({"a.b": "first", "a": {"b": "second"}}) == {"a.b": "first"}
    assert flatten_record({"tags": []}) == {"tags": []}


def test_jsonl_records_are_flattened_too(tmp_path):
    data = b'{"title": "Heat", "meta": {"year": 1995}}\n{"title": "Up", "meta": {"year": 2009}}\n'
    parsed = _upload(tmp_path, "nested.jsonl", data)
    assert parsed.records == (
        {"title": "Heat", "meta.year": 1995},
        {"title": "Up", "meta.year": 2009},
    )


# --- field suggestions ----------------------------------------------------------------------


def test_movies_like_suggestions(tmp_path):
    parsed = _upload(tmp_path, "movies.json", _json(MOVIES_LIKE))
    s = parsed.suggested
    assert s.id_field is None
    assert s.title_field == "title"
    assert s.embed_fields == ("title", "overview", "director", "genres", "tagline")
    assert s.text_fields == s.embed_fields
    assert s.rerank_fields == ("title", "overview")


def test_real_movies_file_suggestions(movies_path):
    parsed = parse_upload(movies_path.read_bytes(), movies_path.name)
    assert len(parsed.records) == 1000
    assert parsed.suggested.id_field is None
    assert parsed.suggested.title_field == "title"
    assert set(parsed.suggested.embed_fields) == set(parsed.fields)
    dataset, report = build_upload_dataset(parsed)
    assert len(dataset) == 1000 and report.dropped == 0


def test_unique_id_column_is_picked(tmp_path):
    records = [dict(r, id=i + 100) for i, r in enumerate(MOVIES_LIKE)]
    parsed = _upload(tmp_path, "ids.json", _json(records))
    assert parsed.suggested.id_field == "id"
    assert "id" not in parsed.suggested.embed_fields
    dataset, _ = build_upload_dataset(parsed)
    assert dataset.ids == ("100", "101", "102")
    assert dataset.title("101") == "Alien"


def test_duplicated_id_column_is_not_picked(tmp_path):
    records = [dict(r, id="mov1") for r in MOVIES_LIKE[:2]] + [dict(MOVIES_LIKE[2], id="mov2")]
    parsed = _upload(tmp_path, "dupes.json", _json(records))
    assert parsed.suggested.id_field is None
    (candidate,) = parsed.id_candidates
    assert (candidate.name, candidate.duplicates, candidate.duplicate_examples) == (
        "id",
        1,
        ("mov1",),
    )
    assert not candidate.usable
    assert "id" in parsed.suggested.embed_fields  # text of 3+ characters, and not the id
    with pytest.raises(UploadError, match=r"repeats the value 'mov1' \(record 1\)"):
        build_upload_dataset(parsed, id_field="id")


def test_id_names_are_matched_case_insensitively_in_field_order(tmp_path):
    records = [
        {"Key": "k", "DOC_ID": f"d{i}", "uuid": f"u{i}", "text": "some words here"}
        for i in range(3)
    ]
    parsed = _upload(tmp_path, "keys.json", _json(records))
    assert [c.name for c in parsed.id_candidates] == ["Key", "DOC_ID", "uuid"]
    assert parsed.suggested.id_field == "DOC_ID"


def test_id_with_a_missing_value_is_not_picked(tmp_path):
    records = [{"_id": "a", "text": "alpha words"}, {"text": "beta words"}]
    parsed = _upload(tmp_path, "gap.json", _json(records))
    assert parsed.suggested.id_field is None
    assert parsed.id_candidates[0].missing == 1
    with pytest.raises(UploadError, match="record 1 of gap.json has no usable id in field '_id'"):
        build_upload_dataset(parsed, id_field="_id")


def test_title_falls_back_to_shortest_well_filled_text_field(tmp_path):
    records = [
        {"label": f"Item {i}", "body": f"A much longer description of item number {i}."}
        for i in range(5)
    ]
    parsed = _upload(tmp_path, "plain.json", _json(records))
    assert parsed.suggested.title_field == "label"
    assert parsed.suggested.rerank_fields == ("label", "body")


def test_rerank_fields_are_title_plus_longest(tmp_path):
    records = [
        {"heading": "Short", "summary": "medium length text", "body": "x " * 80, "tag": "abc"}
        for _ in range(4)
    ]
    parsed = _upload(tmp_path, "docs.json", _json(records))
    assert parsed.suggested.title_field == "tag"  # shortest mean length, fully filled
    assert parsed.suggested.rerank_fields == ("body", "tag")


def test_sparse_and_tiny_fields_are_not_text(tmp_path):
    records = [{"title": f"Record {i}", "code": "xy", "rare": None} for i in range(20)]
    records[0]["rare"] = "only once in twenty"  # 5% fill
    parsed = _upload(tmp_path, "sparse.json", _json(records))
    assert parsed.suggested.text_fields == ("title",)


# --- building and the quality report --------------------------------------------------------

SIX = [
    {"id": "a", "title": "Alpha", "body": "x" * 2100, "year": 1999, "tags": ["red", "blue"]},
    {"id": "b", "title": "Beta", "body": "y" * 1100, "year": "2001", "tags": []},
    {"id": "b", "title": "", "body": "short body text", "year": None},
    {"id": "c", "title": "Gamma", "meta": {"lang": "en"}},
    {"id": "d", "title": None, "body": "   "},
    {"id": "e", "title": "Alpha", "body": "another body"},
]


@pytest.fixture
def six(tmp_path) -> ParsedUpload:
    path = tmp_path / "six.json"
    path.write_text(json.dumps(SIX), encoding="utf-8")
    return parse_upload(path.read_bytes(), path.name)


def test_six_record_suggestions(six):
    assert six.fields == ("id", "title", "body", "year", "tags", "meta.lang")
    s = six.suggested
    assert s.id_field is None  # "b" repeats
    assert s.title_field == "title"
    assert s.text_fields == ("title", "body", "tags")  # ids of 1 character are not text
    assert s.embed_fields == ("title", "body", "tags")
    assert s.rerank_fields == ("title", "body")


def test_six_record_quality_report(six):
    dataset, report = build_upload_dataset(six)
    assert isinstance(report, QualityReport)
    assert (report.records, report.kept, report.dropped) == (6, 5, 1)
    assert report.dropped_examples == (4,)
    assert len(dataset) == 5
    assert dataset.ids == ("0", "1", "2", "3", "4")
    assert [dataset.record(i).get("title") for i in dataset.ids] == [
        "Alpha",
        "Beta",
        "",
        "Gamma",
        "Alpha",
    ]
    assert report.embed_fields == ("title", "body", "tags")
    assert report.rerank_fields == ("title", "body")
    assert dataset.default_embed_fields == ("title", "body", "tags")
    assert dataset.default_rerank_fields == ("title", "body")

    q = {f.name: f for f in report.fields}
    assert list(q) == ["id", "title", "body", "year", "tags", "meta.lang"]
    # id: every record has one; 5 distinct texts
    assert (q["id"].filled, q["id"].missing, q["id"].non_string, q["id"].distinct) == (6, 0, 0, 5)
    # title: "" and null are unfilled; null is missing
    t = q["title"]
    assert (t.filled, t.missing, t.non_string, t.distinct) == (4, 1, 0, 3)
    assert t.fill_rate == pytest.approx(4 / 6)
    assert t.mean_chars == pytest.approx((5 + 4 + 5 + 5) / 4)
    # body: one absent, one blank; long texts counted against both model limits
    b = q["body"]
    assert (b.filled, b.missing, b.non_string, b.distinct) == (4, 1, 0, None)
    assert b.max_chars == 2100 and b.max_tokens == 525
    assert (b.over_reranker, b.over_encoder) == (1, 2)
    assert b.is_text
    # year: an int, a numeric string, a null and three absences; numbers are not text
    y = q["year"]
    assert (y.filled, y.missing, y.non_string, y.distinct, y.is_text) == (2, 4, 1, 2, False)
    # tags: lists are non-strings; an empty list is unfilled
    g = q["tags"]
    assert (g.filled, g.missing, g.non_string, g.distinct, g.is_text) == (1, 4, 2, 1, True)
    assert g.mean_chars == len("red, blue")
    # meta.lang: flattened, too short to be text
    m = q["meta.lang"]
    assert (m.filled, m.missing, m.fill_rate, m.is_text) == (1, 5, 1 / 6, False)

    (cand,) = report.id_candidates
    assert (cand.name, cand.missing, cand.duplicates, cand.duplicate_examples) == (
        "id",
        0,
        1,
        ("b",),
    )
    assert report.embed_over_encoder == 2
    assert report.rerank_over_reranker == 1
    assert report.for_field("body") is b
    with pytest.raises(FieldError):
        report.for_field("nope")

    rows = report.to_rows()
    assert [r["field"] for r in rows] == list(q)
    body_row = rows[2]
    assert body_row["role"] == "embed, rerank"
    assert body_row["fill rate"] == round(4 / 6, 4)
    assert body_row[f"over {RERANKER_MAX_TOKENS} tokens (reranker)"] == 1
    assert body_row[f"over {ENCODER_MAX_TOKENS} tokens (embedder)"] == 2
    assert rows[3]["role"] == ""

    notes = report.notes()
    assert notes[0] == (
        "1 of 6 records have no text in the embed fields (title, body, tags) and were left out"
    )
    assert any("'id' repeats 1 value(s) (e.g. 'b')" in n for n in notes)
    assert len(notes) == 4


def test_quality_report_without_building(six):
    report = quality_report(six)
    assert report.embed_fields == six.suggested.embed_fields
    assert report.dropped == 1
    with_id = quality_report(six, embed_fields=["id", "title"], rerank_fields=["body"])
    assert with_id.dropped == 0  # every record has an id
    assert with_id.rerank_fields == ("body",)
    assert (with_id.embed_over_encoder, with_id.rerank_over_reranker) == (0, 1)


def test_overrides_and_row_positions(tmp_path):
    records = [dict(r, id=f"m{i}") for i, r in enumerate(MOVIES_LIKE)]
    parsed = _upload(tmp_path, "ids.json", _json(records))
    dataset, report = build_upload_dataset(
        parsed,
        id_field=ROW_POSITION,
        title_field="director",
        embed_fields=["overview"],
        rerank_fields=["title", "tagline"],
        name="my films",
    )
    assert dataset.name == "my films"
    assert dataset.ids == ("0", "1", "2")
    assert dataset.title("1") == "Ridley Scott"
    assert dataset.default_embed_fields == ("overview",)
    assert dataset.default_rerank_fields == ("title", "tagline")
    assert report.embed_fields == ("overview",)
    assert dataset.source == "upload ids.json"

    default, _ = build_upload_dataset(parsed)
    assert default.name == parsed.dataset_id
    assert default.ids == ("m0", "m1", "m2")


def test_unknown_or_empty_field_choices(tmp_path):
    parsed = _upload(tmp_path, "movies.json", _json(MOVIES_LIKE))
    with pytest.raises(FieldError, match="unknown field.*to embed: plot"):
        build_upload_dataset(parsed, embed_fields=["plot"])
    with pytest.raises(FieldError, match="choose at least one field to rerank"):
        build_upload_dataset(parsed, rerank_fields=[])
    with pytest.raises(FieldError, match="use as id"):
        build_upload_dataset(parsed, id_field="nope")


def test_all_records_dropped(tmp_path):
    records = [dict(r, note=None) for r in MOVIES_LIKE]
    parsed = _upload(tmp_path, "movies.json", _json(records))
    with pytest.raises(UploadError, match=r"none of the 3 records of movies\.json has text"):
        build_upload_dataset(parsed, embed_fields=["note"])


def test_token_estimate():
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("x" * 2048) == 512


def test_five_thousand_generated_records(tmp_path):
    words = ["river", "stone", "signal", "harbor", "engine", "garden", "winter", "copper"]
    records = [
        {
            "doc_id": f"doc-{i:05d}",
            "title": f"{words[i % 8].title()} report {i}",
            "abstract": " ".join(words[(i + k) % 8] for k in range(40)),
            "meta": {"year": 1990 + i % 30, "source": words[i % 5]},
            "keywords": [words[i % 8], words[(i * 3) % 8]],
        }
        for i in range(5000)
    ]
    parsed = _upload(tmp_path, "generated.json", json.dumps(records).encode())
    assert len(parsed.records) == 5000
    assert parsed.suggested.id_field == "doc_id"
    assert parsed.suggested.title_field == "title"
    dataset, report = build_upload_dataset(parsed)
    assert len(dataset) == 5000 and report.dropped == 0
    assert dataset.record("doc-04999")["meta.year"] == 1990 + 4999 % 30


# --- the store ------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        self.now += 10.0
        return self.now


def test_store_round_trip_returns_exact_bytes(tmp_path):
    store = UploadStore(tmp_path / "uploads")
    data = b'\xef\xbb\xbf[{"title": "caf\xc3\xa9"}]\r\n\x00trailing'
    dataset_id = store.put(data, "my data.json")
    digest = hashlib.sha256(data).hexdigest()
    assert dataset_id == f"upload-{digest[:16]}" == upload_id(data)
    assert store.exists(dataset_id)
    assert store.get(dataset_id) == (data, "my data.json")
    assert (tmp_path / "uploads" / f"{digest}.bin").read_bytes() == data
    meta = json.loads((tmp_path / "uploads" / f"{digest}.json").read_text())
    assert meta["filename"] == "my data.json"
    assert meta["size"] == len(data)
    assert isinstance(meta["stored_at"], float)


def test_store_is_idempotent(tmp_path):
    clock = FakeClock()
    store = UploadStore(tmp_path, clock=clock)
    first = store.put(b"[1]", "a.json")
    stored_at = json.loads(next(tmp_path.glob("*.json")).read_text())["stored_at"]
    assert store.put(b"[1]", "a.json") == first
    assert len(list(tmp_path.glob("*.bin"))) == 1
    assert json.loads(next(tmp_path.glob("*.json")).read_text())["stored_at"] == stored_at
    assert store.put(b"[2]", "a.json") != first


def test_store_keeps_the_latest_filename_for_the_same_bytes(tmp_path):
    store = UploadStore(tmp_path)
    dataset_id = store.put(b"title\nHeat\n", "films.txt")
    assert store.put(b"title\nHeat\n", "films.csv") == dataset_id
    assert store.get(dataset_id)[1] == "films.csv"


def test_store_sanitises_the_stored_filename(tmp_path):
    store = UploadStore(tmp_path)
    dataset_id = store.put(b"[]", "../../etc/passwd")
    assert store.get(dataset_id)[1] == "passwd"
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".bin", ".json"]


@pytest.mark.parametrize(
    "bad_id",
    [
        "../etc/passwd",
        "../../../../etc/passwd",
        "/etc/passwd",
        "upload-../../etc/passwd",
        "upload-0123456789abcdef/../../secret",
        "upload-0123456789abcde",
        "upload-0123456789abcdef0",
        "upload-0123456789ABCDEF",
        "upload-0123456789abcdef\n",
        "upload-*",
        "upload-????????????????",
        "UPLOAD-0123456789abcdef",
        "movies",
        "",
        "secret",
        "upload-0123456789abcdeg",
        "..\\..\\secret",
    ],
)
def test_store_rejects_invalid_ids_before_touching_files(tmp_path, bad_id, monkeypatch):
    secret = tmp_path / "secret"
    secret.write_text("top secret")
    root = tmp_path / "store"
    store = UploadStore(root)
    store.put(b'[{"title": "ok"}]', "ok.json")
    (root / "0123456789abcdef.bin").write_bytes(b"not a stored upload")

    def explode(*args, **kwargs):
        raise AssertionError("the filesystem was touched")

    monkeypatch.setattr(UploadStore, "_blobs", explode)
    with pytest.raises(UploadError, match="not a valid dataset id") as info:
        store.get(bad_id)
    assert not isinstance(info.value, UploadNotFoundError)
    assert "\n" not in str(info.value)
    assert store.exists(bad_id) is False
    assert not is_upload_id(bad_id)


def test_store_unknown_id_is_not_found(tmp_path):
    store = UploadStore(tmp_path / "never-created")
    with pytest.raises(UploadNotFoundError) as info:
        store.get("upload-0123456789abcdef")
    message = str(info.value)
    assert "no longer on this server" in message and "upload the file again" in message
    assert isinstance(info.value, UploadError)
    assert isinstance(info.value, DatasetUnavailableError)
    assert isinstance(info.value, DatasetError)
    assert not store.exists("upload-0123456789abcdef")
    assert not (tmp_path / "never-created").exists()


def test_store_evicts_least_recently_used_first(tmp_path):
    clock = FakeClock()
    store = UploadStore(tmp_path, max_total_bytes=250, clock=clock)
    a = store.put(b"a" * 100, "a.json")
    b = store.put(b"b" * 100, "b.json")
    assert store.total_bytes() == 200
    assert store.get(a)[0] == b"a" * 100  # reading touches a: b is now the oldest
    c = store.put(b"c" * 100, "c.json")
    assert store.exists(a) and store.exists(c)
    assert not store.exists(b)
    assert store.total_bytes() == 200
    assert len(list(tmp_path.glob("*.json"))) == 2  # metadata goes with its upload
    with pytest.raises(UploadNotFoundError, match="no longer on this server"):
        store.get(b)
    d = store.put(b"d" * 100, "d.json")
    assert [store.exists(x) for x in (a, c, d)] == [False, True, True]


def test_store_eviction_by_stored_time_without_reads(tmp_path):
    clock = FakeClock()
    store = UploadStore(tmp_path, max_total_bytes=350, clock=clock)
    ids = [store.put(bytes([65 + i]) * 100, f"{i}.json") for i in range(5)]
    assert [store.exists(x) for x in ids] == [False, False, True, True, True]


def test_store_never_evicts_the_upload_just_stored(tmp_path):
    store = UploadStore(tmp_path, max_total_bytes=150, clock=FakeClock())
    small = store.put(b"s" * 100, "small.json")
    big = store.put(b"B" * 400, "big.json")
    assert store.exists(big) and not store.exists(small)
    assert store.get(big)[0] == b"B" * 400


def test_store_damaged_file_is_not_served(tmp_path):
    store = UploadStore(tmp_path)
    dataset_id = store.put(b"[1, 2, 3]", "n.json")
    (blob,) = tmp_path.glob("*.bin")
    blob.write_bytes(b"[6, 6, 6]")
    with pytest.raises(UploadNotFoundError):
        store.get(dataset_id)
    assert not store.exists(dataset_id)


def test_store_defaults_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RERANK_UPLOAD_STORE_MB", "2")
    store = UploadStore()
    assert store.root == tmp_path / "cache" / "uploads"
    assert store.max_total_bytes == 2 * 1024 * 1024 == max_store_bytes()
    dataset_id = store.put(b"[]", "x.json")
    assert (tmp_path / "cache" / "uploads").is_dir() and store.exists(dataset_id)
    monkeypatch.delenv("RERANK_UPLOAD_STORE_MB")
    assert max_store_bytes() == 500 * 1024 * 1024


def test_store_is_thread_safe(tmp_path):
    store = UploadStore(tmp_path)
    payloads = [f"payload {i}".encode() * (i + 1) for i in range(40)]
    barrier = threading.Barrier(8)

    def work(chunk: list[bytes]) -> list[tuple[str, bytes]]:
        barrier.wait()
        out = []
        for data in chunk:
            out.append((store.put(data, "p.json"), data))
            out.append((store.put(data, "p.json"), data))
        return out

    chunks = [payloads[i::8] + payloads[:5] for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        results = [pair for part in pool.map(work, chunks) for pair in part]
    for dataset_id, data in results:
        assert store.get(dataset_id) == (data, "p.json")
    assert len(list(tmp_path.glob("*.bin"))) == 40
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_store_then_parse_round_trip(tmp_path):
    """What a shared link does: fetch the stored bytes and parse them again."""
    store = UploadStore(tmp_path)
    data = _json(MOVIES_LIKE)
    dataset_id = store.put(data, "films.json")
    parsed = parse_upload(*store.get(dataset_id))
    assert parsed.dataset_id == dataset_id
    dataset, _ = build_upload_dataset(parsed)
    assert dataset.name == dataset_id and len(dataset) == 3


def test_csv_sep_line_names_the_separator_and_lines_keep_their_numbers(tmp_path):
    data = b"sep=;\ntitle;overview\nHeat;A crime saga, in LA\nAlien;Space;extra\n"
    assert _error(tmp_path, "excel.csv", data) == (
        "excel.csv line 4 has 3 values but the header names 2 columns"
    )
    parsed = _upload(tmp_path, "excel.csv", data.rsplit(b"Alien", 1)[0])
    assert parsed.fields == ("title", "overview")
    assert parsed.records == ({"title": "Heat", "overview": "A crime saga, in LA"},)
    blank_first = b"\r\n\ntitle,overview\nHeat,Robbers\nAlien,Space,extra\n"
    assert _error(tmp_path, "blank.csv", blank_first).startswith("blank.csv line 5 has")
