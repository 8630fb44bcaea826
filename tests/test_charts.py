"""Tests of core.present.charts: the movement frame, the slope chart and the score bars.

The result is the hand-made one of test_views (FakeEncoder / FakeReranker over a tiny
dataset): retrieval order a b c d e f, reranked order e a c b f d, top-3 compared.
"""

from __future__ import annotations

import jsonschema
import pytest
from altair.vegalite.v6.schema import SCHEMA_URL, load_schema
from conftest import FakeReranker
from test_views import RERANK_SCORES, _search

from core.models.base import sigmoid
from core.present.charts import (
    DIRECTION_COLORS,
    STAGES,
    movement_chart,
    movement_frame,
    score_chart,
)

COSINE_TITLE = "cosine similarity (bi-encoder)"
LOGIT_TITLE = "cross-encoder logit (raw)"
SIGMOID_TITLE = "sigmoid(logit), 0–1"
RELEVANCE_TITLE = "relevance score (hosted, 0–1)"
RELEVANCE_SCORES = {"e": 0.97, "a": 0.81, "c": 0.42, "b": 0.30, "f": 0.05, "d": 0.01}


@pytest.fixture
def result():
    return _search(FakeReranker(RERANK_SCORES))


@pytest.fixture
def relevance_result():
    return _search(FakeReranker(RELEVANCE_SCORES, name="hosted", score_kind="relevance"))


@pytest.fixture(scope="module")
def vega_lite_schema() -> dict:
    return load_schema()


def _rows(frame, doc_id: str) -> dict[str, dict]:
    """The rows of one item, by stage."""
    return {row["stage"]: row for row in frame[frame["id"] == doc_id].to_dict("records")}


def _data(spec: dict) -> list[dict]:
    """The inline rows of a single-view chart's dict."""
    return spec["datasets"][spec["data"]["name"]]


def _score_fields(spec: dict) -> list[tuple[str, dict]]:
    """Every (channel, encoding) of a chart that plots a quantitative field."""
    return [
        (channel, enc)
        for channel, enc in spec["encoding"].items()
        if isinstance(enc, dict) and enc.get("type") == "quantitative" and channel != "tooltip"
    ]


# --- movement_frame -------------------------------------------------------------------


def test_movement_frame_has_two_rows_per_item_in_either_top_n(result) -> None:
    frame = movement_frame(result)
    # retrieval top-3 {a, b, c} and reranked top-3 {e, a, c}; d and f are in neither
    assert sorted(set(frame["id"])) == ["a", "b", "c", "e"]
    assert len(frame) == 8
    assert frame.groupby("id")["stage"].apply(sorted).to_dict() == {
        doc_id: sorted(STAGES) for doc_id in "abce"
    }
    assert set(frame["n"]) == {3}


@pytest.mark.parametrize(
    ("doc_id", "retrieval", "reranked", "direction", "status", "outside"),
    [
        ("a", 1, 2, "down", "stayed in top-N", False),
        ("b", 2, 4, "down", "left top-N", True),
        ("c", 3, 3, "same", "stayed in top-N", False),
        ("e", 5, 1, "up", "entered top-N", True),
    ],
)
def test_movement_frame_ranks_direction_and_status(
    result, doc_id, retrieval, reranked, direction, status, outside
) -> None:
    rows = _rows(movement_frame(result), doc_id)
    assert rows["Retrieval"]["rank"] == retrieval
    assert rows["Reranked"]["rank"] == reranked
    for row in rows.values():
        assert (row["retrieval_rank"], row["rerank_rank"]) == (retrieval, reranked)
        assert row["direction"] == direction
        assert row["status"] == status
        assert row["outside"] is outside
        assert row["title"] == f"Doc {doc_id.upper()}"


def test_movement_frame_scores_and_badges(result) -> None:
    rows = _rows(movement_frame(result), "e")
    assert rows["Retrieval"]["cosine"] == pytest.approx(0.4472, abs=1e-4)
    assert rows["Retrieval"]["rerank_score"] == 5.0
    assert rows["Retrieval"]["badge"] == "new · from #5"
    assert _rows(movement_frame(result), "c")["Reranked"]["badge"] == "="


def test_movement_frame_shortens_long_labels_only() -> None:
    from core.present.charts import _short

    long_title = "A" * 60
    assert _short(long_title) == "A" * 37 + "…"
    assert len(_short(long_title)) == 38
    assert _short("Heat") == "Heat"


def test_movement_frame_without_reranker_is_flat() -> None:
    frame = movement_frame(_search(None))
    assert sorted(set(frame["id"])) == ["a", "b", "c"]
    assert set(frame["direction"]) == {"none"}
    assert set(frame["status"]) == {"stayed in top-N"}
    assert (frame["retrieval_rank"] == frame["rerank_rank"]).all()


# --- movement_chart ---------------------------------------------------------------------


def test_movement_chart_is_valid_vega_lite(result, vega_lite_schema) -> None:
    spec = movement_chart(result).to_dict()
    assert spec["$schema"] == SCHEMA_URL
    jsonschema.validate(spec, vega_lite_schema)  # raises on an invalid spec
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks == ["rule", "line", "point", "text", "text"]


def test_movement_chart_ranks_read_top_down(result) -> None:
    spec = movement_chart(result).to_dict()
    y_scales = [
        layer["encoding"]["y"]["scale"]
        for layer in spec["layer"]
        if "scale" in layer["encoding"].get("y", {})
    ]
    assert len(y_scales) == 4  # lines, points and both label layers
    assert all(scale["reverse"] is True for scale in y_scales)
    # the axis runs from rank 1 to the lowest rank drawn (e came from #5)
    assert all(scale["domain"] == [1, 5] for scale in y_scales)
    assert {layer["encoding"]["y"]["field"] for layer in spec["layer"]} == {"rank"}


def test_movement_chart_marks_the_top_n_cut_and_colours_by_direction(result) -> None:
    spec = movement_chart(result).to_dict()
    rule = spec["layer"][0]
    assert spec["datasets"][rule["data"]["name"]] == [{"rank": 3.5}]
    line = spec["layer"][1]
    assert line["encoding"]["color"]["field"] == "direction"
    assert line["encoding"]["color"]["scale"]["domain"] == list(DIRECTION_COLORS)
    assert line["encoding"]["strokeDash"]["condition"]["test"] == "datum.outside"
    assert line["encoding"]["x"]["sort"] == list(STAGES)


def test_movement_chart_height(result) -> None:
    assert movement_chart(result, height=500).to_dict()["height"] == 500
    assert movement_chart(result).to_dict()["height"] == 260  # the minimum


# --- score_chart ------------------------------------------------------------------------


def test_retrieval_scores_use_the_cosine_axis(result, vega_lite_schema) -> None:
    spec = score_chart(result, "retrieval").to_dict()
    jsonschema.validate(spec, vega_lite_schema)
    assert spec["mark"]["type"] == "bar"
    x = spec["encoding"]["x"]
    assert (x["field"], x["title"], x["type"]) == ("score", COSINE_TITLE, "quantitative")
    assert x["scale"] == {"zero": True}  # cosine bars start at 0
    data = _data(spec)
    assert [row["label"] for row in data] == ["1. Doc A", "2. Doc B", "3. Doc C"]
    expected = [c.retrieval_score for c in result.top_retrieval]
    assert [row["score"] for row in data] == pytest.approx(expected)


def test_rerank_scores_use_the_logit_axis(result, vega_lite_schema) -> None:
    spec = score_chart(result, "rerank").to_dict()
    jsonschema.validate(spec, vega_lite_schema)
    assert spec["encoding"]["x"]["title"] == LOGIT_TITLE
    data = _data(spec)
    assert [row["label"] for row in data] == ["1. Doc E", "2. Doc A", "3. Doc C"]
    assert [row["score"] for row in data] == [5.0, 4.0, 3.0]
    assert [row["direction"] for row in data] == ["up", "down", "same"]
    assert spec["encoding"]["color"]["field"] == "direction"


def test_normalized_rerank_scores_are_sigmoids_in_0_1(result) -> None:
    spec = score_chart(result, "rerank", normalized=True).to_dict()
    assert spec["encoding"]["x"]["title"] == SIGMOID_TITLE
    scores = [row["score"] for row in _data(spec)]
    assert scores == pytest.approx([sigmoid(5.0), sigmoid(4.0), sigmoid(3.0)])
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_relevance_scores_use_the_hosted_title_normalized_or_not(relevance_result) -> None:
    for normalized in (False, True):
        spec = score_chart(relevance_result, "rerank", normalized=normalized).to_dict()
        assert spec["encoding"]["x"]["title"] == RELEVANCE_TITLE
        assert [row["score"] for row in _data(spec)] == pytest.approx([0.97, 0.81, 0.42])


def test_retrieval_chart_ignores_the_normalized_flag(result) -> None:
    plain = score_chart(result, "retrieval").to_dict()
    flagged = score_chart(result, "retrieval", normalized=True).to_dict()
    assert flagged["encoding"]["x"]["title"] == COSINE_TITLE
    assert _data(flagged) == _data(plain)


@pytest.mark.parametrize(
    ("stage", "normalized", "title"),
    [
        ("retrieval", False, COSINE_TITLE),
        ("rerank", False, LOGIT_TITLE),
        ("rerank", True, SIGMOID_TITLE),
    ],
)
def test_score_scales_are_never_mixed(result, stage, normalized, title) -> None:
    spec = score_chart(result, stage, normalized=normalized).to_dict()
    assert "layer" not in spec and "hconcat" not in spec and "vconcat" not in spec
    plotted = _score_fields(spec)
    assert [(channel, enc["field"], enc["title"]) for channel, enc in plotted] == [
        ("x", "score", title)
    ]
    # one score column only: cosine and reranker scores never share the data
    assert set(_data(spec)[0]) == {"label", "title", "score", "rank", "direction", "baseline"}


def test_each_stage_has_its_own_axis_title(result, relevance_result) -> None:
    titles = {
        score_chart(result, "retrieval").to_dict()["encoding"]["x"]["title"],
        score_chart(result, "rerank").to_dict()["encoding"]["x"]["title"],
        score_chart(result, "rerank", normalized=True).to_dict()["encoding"]["x"]["title"],
        score_chart(relevance_result, "rerank").to_dict()["encoding"]["x"]["title"],
    }
    assert titles == {COSINE_TITLE, LOGIT_TITLE, SIGMOID_TITLE, RELEVANCE_TITLE}


def test_score_chart_height_follows_the_rows() -> None:
    big = _search(FakeReranker(RERANK_SCORES), num_results=6)
    assert score_chart(big, "retrieval").to_dict()["height"] == {"step": 26}  # 26 px a row
    assert len(_data(score_chart(big, "rerank").to_dict())) == 6


def test_raw_logit_bars_grow_from_below_the_lowest_score(result) -> None:
    data = _data(score_chart(result, "rerank").to_dict())
    lowest = min(row["score"] for row in data)
    assert all(row["baseline"] < lowest for row in data)
    # so the best-ranked item has the longest bar, even when every logit is negative
    lengths = [row["score"] - row["baseline"] for row in sorted(data, key=lambda r: r["rank"])]
    assert lengths == sorted(lengths, reverse=True)
    normalized = _data(score_chart(result, "rerank", normalized=True).to_dict())
    assert {row["baseline"] for row in normalized} == {0.0}


def test_marked_items_get_a_star_in_the_movement_chart(result) -> None:
    first = result.candidates[0]
    frame = movement_frame(result, marked={first.id})
    labels = dict(zip(frame["id"], frame["label"], strict=True))
    assert labels[first.id].startswith("★ ")
    assert not any(label.startswith("★") for doc_id, label in labels.items() if doc_id != first.id)


def test_retrieval_axis_names_the_first_stage_score(result) -> None:
    import json
    from dataclasses import replace

    assert "cosine similarity (bi-encoder)" in json.dumps(
        score_chart(result, "retrieval").to_dict()
    )
    bm25 = replace(result, retrieval_score_kind="bm25")
    assert "BM25 score (lexical)" in json.dumps(score_chart(bm25, "retrieval").to_dict())
    rrf = replace(result, retrieval_score_kind="rrf")
    assert "RRF score (dense + BM25)" in json.dumps(score_chart(rrf, "retrieval").to_dict())


# --- quality against cost ---------------------------------------------------------------


def _cost_points():
    from core.quality.tuning_cost import CostPoint
    from core.quality.tuning_grid import Config, FirstStage

    dense, bm25 = FirstStage("dense", "org/m"), FirstStage("bm25")
    return [
        CostPoint(Config(dense), 0.70, 0.66, 0.74, 5.0, True, -0.01),
        CostPoint(Config(bm25), 0.66, 0.62, 0.70, 1.0, False, -0.05),
        CostPoint(Config(dense, 50), 0.71, 0.67, 0.75, 600.0, True, 0.0),
        CostPoint(Config(dense, 20, 0.5), 0.705, 0.66, 0.75, 240.0, True, -0.005),
        CostPoint(Config(bm25, 10), 0.60, 0.55, 0.65, None, False, -0.1),  # not timed
    ]


def test_cost_frame_names_the_best_and_the_cheapest_within_noise() -> None:
    from core.present.charts import cost_frame

    frame = cost_frame(_cost_points())
    assert len(frame) == 4  # the untimed setting has no place on a time axis
    roles = dict(zip(frame["setting"], frame["role"], strict=True))
    assert roles["dense m · rerank top 50"] == "best"
    assert roles["dense m · alone"] == "cheapest within noise"
    assert roles["bm25 · alone"] == ""  # cheaper, but worse beyond noise
    kinds = dict(zip(frame["setting"], frame["second_stage"], strict=True))
    assert kinds["dense m · fuse top 20 w=0.5"] == "fuse"


def test_cost_chart_is_valid_vega_lite_on_a_log_time_axis(vega_lite_schema) -> None:
    from core.present.charts import cost_chart

    spec = cost_chart(_cost_points()).to_dict()
    jsonschema.validate(spec, vega_lite_schema)
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks == ["rule", "point", "point", "text"]
    assert spec["layer"][1]["encoding"]["x"]["scale"]["type"] == "log"
    assert spec["layer"][0]["encoding"]["y2"]["field"] == "high"
    jsonschema.validate(cost_chart([]).to_dict(), vega_lite_schema)
