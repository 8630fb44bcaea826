"""Tests of core.data.documents: field values as text, model texts, dataset validation."""

from __future__ import annotations

import pytest

from core.data.documents import embed_text, field_texts, make_dataset, rerank_text, value_to_text
from core.models.errors import DatasetError, FieldError

# --- value_to_text ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        ("", ""),
        ("   \n\t ", ""),
        ("  Heat  ", "Heat"),
        (3, "3"),
        (0, "0"),  # falsy but meaningful: kept
        (2.5, "2.5"),
        (-1.0, "-1.0"),
        (True, "True"),
        (False, "False"),  # falsy but meaningful: kept
        (["Crime", "Drama"], "Crime, Drama"),
        (["Crime", None, "", "  ", " Drama "], "Crime, Drama"),
        ([None, ""], ""),
        ([], ""),
        (("a", 1, True), "a, 1, True"),
        ([["x", None], "y"], "x, y"),
        ({"b": 1, "a": "x"}, '{"a": "x", "b": 1}'),
        ({"é": "ü"}, '{"é": "ü"}'),
        ({}, "{}"),
    ],
)
def test_value_to_text(value, expected) -> None:
    assert value_to_text(value) == expected


# --- embed_text / rerank_text -------------------------------------------------------

RECORD = {
    "title": "  Heat ",
    "tagline": None,
    "overview": "",
    "genres": ["Crime", None, "Drama"],
    "year": 1995,
    "director": "Michael Mann",
}
FIELDS = ["title", "tagline", "overview", "missing", "genres", "year", "director"]


def test_field_texts_skips_null_missing_and_empty_in_given_order() -> None:
    assert field_texts(RECORD, FIELDS) == [
        ("title", "Heat"),
        ("genres", "Crime, Drama"),
        ("year", "1995"),
        ("director", "Michael Mann"),
    ]


def test_embed_text_is_plain_concatenation_without_none() -> None:
    text = embed_text(RECORD, FIELDS)
    assert text == "Heat Crime, Drama 1995 Michael Mann"
    assert "None" not in text


def test_rerank_text_is_field_value_lines_without_null_fields() -> None:
    text = rerank_text(RECORD, FIELDS)
    assert text == "title: Heat\ngenres: Crime, Drama\nyear: 1995\ndirector: Michael Mann"
    assert "None" not in text
    assert "tagline" not in text and "overview" not in text and "missing" not in text


def test_rerank_text_follows_the_chosen_field_order() -> None:
    assert rerank_text(RECORD, ["director", "title"]) == "director: Michael Mann\ntitle: Heat"


def test_rerank_text_plain_style() -> None:
    assert rerank_text(RECORD, ["title", "tagline", "director"], "plain") == "Heat Michael Mann"


def test_texts_of_a_record_with_only_null_fields_are_empty() -> None:
    record = {"title": None, "tagline": "  "}
    assert embed_text(record, ["title", "tagline"]) == ""
    assert rerank_text(record, ["title", "tagline"]) == ""


def test_dataset_texts_never_render_none() -> None:
    ds = make_dataset("d", [{"title": "A", "tagline": None}, {"title": None, "tagline": "B"}])
    assert ds.texts(["title", "tagline"]) == ["A", "B"]
    assert ds.texts(["title", "tagline"], "rerank") == ["title: A", "tagline: B"]


# --- make_dataset: ids ----------------------------------------------------------------


def test_ids_are_row_positions_without_id_field() -> None:
    ds = make_dataset("d", [{"t": "a"}, {"t": "b"}, {"t": "c"}])
    assert ds.ids == ("0", "1", "2")
    assert ds.id_field is None
    assert ds.record("2") == {"t": "c"}
    assert ds.position("1") == 1
    assert len(ds) == 3


def test_ids_come_from_the_id_field_as_text() -> None:
    ds = make_dataset(
        "d", [{"id": "x9", "t": "a"}, {"id": 7, "t": "b"}, {"id": " k ", "t": "c"}], id_field="id"
    )
    assert ds.ids == ("x9", "7", "k")
    assert ds.record("7") == {"id": 7, "t": "b"}
    assert ds.position("k") == 2
    # the id field is not guessed as a text field to embed or rerank
    assert ds.default_embed_fields == ("t",)
    assert ds.default_rerank_fields == ("t",)


def test_duplicate_ids_raise_naming_the_value() -> None:
    with pytest.raises(DatasetError, match=r"id field 'id' has duplicate values, e\.g\. 'b'"):
        make_dataset("d", [{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "b"}], id_field="id")


def test_ids_equal_as_text_are_duplicates() -> None:
    with pytest.raises(DatasetError, match="duplicate values, e.g. '1'"):
        make_dataset("d", [{"id": 1}, {"id": "1"}], id_field="id")


@pytest.mark.parametrize("bad", [None, "", "   ", [], ["a"], {"a": 1}])
def test_unusable_id_value_raises_naming_the_record(bad) -> None:
    with pytest.raises(DatasetError, match=r"^record 1 has no usable id in field 'id'$"):
        make_dataset("d", [{"id": "a"}, {"id": bad}], id_field="id")


def test_missing_id_value_raises_naming_the_record() -> None:
    with pytest.raises(DatasetError, match=r"^record 2 has no usable id in field 'id'$"):
        make_dataset("d", [{"id": "a"}, {"id": "b"}, {"t": "no id here"}], id_field="id")


def test_unknown_id_field_is_a_field_error_listing_fields() -> None:
    with pytest.raises(FieldError, match=r"id field 'key' not found; fields: id, t"):
        make_dataset("d", [{"id": "a", "t": "x"}], id_field="key")


# --- make_dataset: shape -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "type_name"), [("text", "str"), (3, "int"), (["a"], "list"), (None, "NoneType")]
)
def test_non_object_record_raises_naming_its_index(record, type_name) -> None:
    with pytest.raises(DatasetError) as info:
        make_dataset("d", [{"t": "a"}, {"t": "b"}, record], id_field=None)
    assert str(info.value) == f"record 2 is a {type_name}, not an object with named fields"


def test_empty_dataset_raises() -> None:
    with pytest.raises(DatasetError, match="dataset 'empty' has no records"):
        make_dataset("empty", [])


@pytest.mark.parametrize("records", ["not records", b"bytes", {"a": 1}])
def test_records_must_be_a_list(records) -> None:
    with pytest.raises(DatasetError, match="must be a list of records"):
        make_dataset("d", records)


def test_fields_are_every_key_in_order_of_first_appearance() -> None:
    ds = make_dataset("d", [{"b": 1, "a": "x"}, {"c": None, "a": "y"}, {"d": ["t"]}])
    assert ds.fields == ("b", "a", "c", "d")
    # text fields: strings or lists holding strings; numbers and nulls are not
    assert ds.default_embed_fields == ("a", "d")


def test_explicit_default_fields_are_kept() -> None:
    ds = make_dataset("d", [{"a": "x", "b": "y"}], embed_fields=["b"], rerank_fields=["a", "b"])
    assert ds.default_embed_fields == ("b",)
    assert ds.default_rerank_fields == ("a", "b")


def test_records_are_copied() -> None:
    source = [{"t": "a"}]
    ds = make_dataset("d", source)
    source[0]["t"] = "changed"
    assert ds.record("0") == {"t": "a"}


# --- check_fields ---------------------------------------------------------------------


def test_check_fields_returns_the_chosen_fields() -> None:
    ds = make_dataset("d", [{"title": "a", "overview": "b"}])
    assert ds.check_fields(["overview", "title"], "embed") == ("overview", "title")


def test_check_fields_unknown_lists_unknown_and_available() -> None:
    ds = make_dataset("d", [{"title": "a", "overview": "b", "year": 1}])
    with pytest.raises(FieldError) as info:
        ds.check_fields(["title", "nope", "plot"], "rerank")
    assert str(info.value) == (
        "unknown field(s) to rerank: nope, plot; this dataset has: title, overview, year"
    )


def test_check_fields_empty_choice() -> None:
    ds = make_dataset("d", [{"title": "a"}])
    with pytest.raises(FieldError, match="choose at least one field to embed"):
        ds.check_fields([], "embed")


# --- titles -----------------------------------------------------------------------------


def test_title_field_is_guessed_in_priority_order() -> None:
    assert make_dataset("d", [{"name": "n", "x": "y"}]).title_field == "name"
    assert make_dataset("d", [{"name": "n", "title": "t"}]).title_field == "title"
    assert make_dataset("d", [{"question": "q", "headline": "h"}]).title_field == "headline"
    assert make_dataset("d", [{"body": "b"}]).title_field is None


def test_explicit_title_field_wins() -> None:
    assert make_dataset("d", [{"title": "t", "label": "l"}], title_field="label").title_field == (
        "label"
    )


def test_title_falls_back_to_the_id() -> None:
    ds = make_dataset(
        "d",
        [{"id": "a", "title": " Heat "}, {"id": "b", "title": None}, {"id": "c", "title": ""}],
        id_field="id",
    )
    assert [ds.title(i) for i in ds.ids] == ["Heat", "#b", "#c"]
    assert make_dataset("d", [{"body": "x"}]).title("0") == "#0"


# --- content_hash -------------------------------------------------------------------------


def test_content_hash_is_equal_for_equal_content() -> None:
    a = make_dataset("a", [{"t": "x", "n": 1}, {"t": "y", "n": 2}], source="one")
    b = make_dataset("b", [{"n": 1, "t": "x"}, {"n": 2, "t": "y"}], source="two")  # key order
    assert a.content_hash == b.content_hash
    assert len(a.content_hash) == 64


@pytest.mark.parametrize(
    "records",
    [
        [{"t": "x", "n": 1}, {"t": "y", "n": 3}],  # one value changed
        [{"t": "x", "n": 1}, {"t": "y", "n": "2"}],  # same text, other type
        [{"t": "y", "n": 2}, {"t": "x", "n": 1}],  # order changed
        [{"t": "x", "n": 1}],  # a record removed
        [{"t": "x", "n": 1}, {"t": "y", "n": 2, "extra": None}],  # a key added
    ],
)
def test_content_hash_changes_with_content(records) -> None:
    base = make_dataset("d", [{"t": "x", "n": 1}, {"t": "y", "n": 2}])
    assert make_dataset("d", records).content_hash != base.content_hash


def test_content_hash_depends_on_ids() -> None:
    records = [{"id": "a", "t": "x"}, {"id": "b", "t": "y"}]
    by_position = make_dataset("d", records)
    by_id = make_dataset("d", records, id_field="id")
    assert by_position.content_hash != by_id.content_hash
