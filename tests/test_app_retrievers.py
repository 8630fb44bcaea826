"""The Search page on BM25 and hybrid first stages, and with score fusion (AppTest)."""

from __future__ import annotations

import pytest
from test_app import BATS, assert_no_exception, make_app, texts

pytestmark = pytest.mark.slow


def frame_with(at, column):
    (frame,) = [df.value for df in at.dataframe if column in df.value.columns]
    return frame


def test_bm25_first_stage_from_the_link() -> None:
    at = make_app(q=BATS, ret="bm25", k="20", n="5").run()
    assert_no_exception(at)
    assert at.selectbox(key="retriever").value == "bm25"
    retrieval = frame_with(at, "BM25")
    assert len(retrieval) == 5
    assert list(retrieval["BM25"]) == sorted(retrieval["BM25"], reverse=True)
    assert "BM25 (lexical)" in texts(at.caption)
    assert "BM25 index in memory" in texts(at.caption)
    # the reranked side still reads the cross-encoder
    assert "Reranked order" in texts(at.subheader)
    assert any("batman" in t.lower() for t in frame_with(at, "move")["title"])


def test_hybrid_with_fusion_shows_the_fused_order() -> None:
    at = make_app(q=BATS, ret="hybrid", fw="0.5", k="30", n="5").run()
    assert_no_exception(at)
    assert "Fused order" in texts(at.subheader)
    fused = frame_with(at, "fused")
    assert list(fused["fused"]) == sorted(fused["fused"], reverse=True)
    assert {"logit", "rerank #", "retrieval #"} <= set(fused.columns)
    assert "RRF" in frame_with(at, "RRF").columns
    assert at.query_params["fw"] == "0.5" and at.query_params["ret"] == "hybrid"


def test_changing_the_first_stage_and_weight_updates_the_link() -> None:
    at = make_app(q=BATS, k="20", n="5").run()
    at.selectbox(key="retriever").set_value("bm25").run()
    at.slider(key="fusion_weight").set_value(0.7).run()
    assert_no_exception(at)
    assert at.query_params["ret"] == "bm25"
    assert at.query_params["fw"] == "0.7"
    assert "Fused order" in texts(at.subheader)


def test_packaged_encoders_are_offered() -> None:
    at = make_app().run()
    options = at.selectbox(key="encoder_pick").options
    assert "sentence-transformers/all-MiniLM-L6-v2" in options
