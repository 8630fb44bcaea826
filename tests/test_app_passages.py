"""The sidebar's passage settings under AppTest: window, stride and dense passages are
seeded from the share link (checked like every link setting), written back to it, and
a search with dense passages says which passage of a long upload the first stage
matched."""

from __future__ import annotations

import re

import pytest
from test_app import assert_no_exception, make_app, texts
from test_app_uploads import as_json, query, upload
from test_dense_passages import ANSWER, QUERY, RECORDS

from core.present.views import SearchSettings


def test_link_seeds_window_stride_and_dense_passages() -> None:
    at = make_app(pw="128", ps="64", dp="1").run()
    assert_no_exception(at)
    assert at.number_input(key="passage_window").value == 128
    assert at.number_input(key="passage_stride").value == 64
    assert at.checkbox(key="dense_passages").value is True
    assert not at.warning
    assert (at.query_params["pw"], at.query_params["ps"], at.query_params["dp"]) == (
        "128",
        "64",
        "1",
    )


@pytest.mark.parametrize(
    ("params", "window", "stride", "dense", "warning"),
    [
        ({"pw": "8"}, 16, 0, False, "pw=8 is outside 16–512 tokens"),
        ({"pw": "100", "ps": "300"}, 100, 0, False, "ps=300 is above the window"),
        ({"pw": "9999"}, 512, 0, False, "pw=9999 is outside"),
        ({"ps": "x"}, 0, 0, False, "ignored ps='x': not a whole number"),
        ({"dp": "<b>yes</b>"}, 0, 0, False, "ignored dp='<b>yes</b>': not 1 or 0"),
    ],
)
def test_bad_passage_settings_in_the_link_warn_and_are_fixed(
    params, window, stride, dense, warning
) -> None:
    view, warnings = SearchSettings.from_params(params)
    assert (view.window, view.stride, view.dense_passages) == (window, stride, dense)
    assert len(warnings) == 1 and warning in warnings[0]
    at = make_app(**params).run()
    assert_no_exception(at)
    assert at.number_input(key="passage_window").value == window
    shown = texts(at.warning)
    assert warning in shown and "<b>" not in "".join(w.proto.body for w in at.warning)


def test_sidebar_changes_are_written_to_the_link() -> None:
    at = make_app().run()
    assert at.checkbox(key="dense_passages").value is False
    at.number_input(key="passage_window").set_value(96).run()
    at.checkbox(key="dense_passages").check().run()
    assert_no_exception(at)
    assert at.query_params["pw"] == "96" and at.query_params["dp"] == "1"
    assert "ps" not in at.query_params  # the default, half the window, is left out
    # BM25 embeds nothing: the dense choice is disabled there
    at.selectbox(key="retriever").set_value("bm25").run()
    assert at.checkbox(key="dense_passages").disabled


@pytest.mark.slow
def test_window_below_the_minimum_is_a_one_line_error() -> None:
    at = make_app(dp="1").run()
    at.number_input(key="passage_window").set_value(8).run()
    query(at, "a heist")  # refused before anything is embedded
    assert_no_exception(at)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "passage window must be at least 16 tokens" in errors[0]


@pytest.mark.slow
def test_dense_passages_find_and_show_the_matching_passage_of_a_long_upload() -> None:
    at = upload(make_app(dataset="sample").run(), "harbour.json", as_json(RECORDS))
    at.slider(key="results").set_value(2).run()
    at.selectbox(key="reranker_choice").set_value("none").run()
    query(at, QUERY)
    retrieved = [c.id for c in at.session_state["last_result"].top_final]
    assert "buried" not in retrieved  # one vector reads the first 256 tokens only
    at.checkbox(key="dense_passages").check().run()
    assert_no_exception(at)
    result = at.session_state["last_result"]
    assert "buried" in [c.id for c in result.top_final]
    caption = texts(at.caption)
    assert re.search(r"Dense passages: \d+ vectors for 5 documents", caption)
    buried = next(c for c in result.top_final if c.id == "buried")
    label = f"{buried.final_rank}. Harbour notes"
    at.selectbox(key="detail_pick").set_value(label).run()
    assert_no_exception(at)
    match = buried.retrieval_passage
    assert f"First stage: retrieved by passage {match.count} of {match.count}" in texts(at.caption)
    bodies = "".join(h.proto.body for h in at.get("html"))
    assert "Ida Lewis" in ANSWER and "Ida Lewis" in bodies and "<mark" in bodies
