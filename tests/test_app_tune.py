"""The Evaluate page: second-stage options, tuning, and applying the recommendation."""

from __future__ import annotations

import pytest
from test_app_evaluate import (
    EVAL_CANDIDATES,
    EVAL_JUDGMENTS,
    _evaluate_page,
    _run_button,
    assert_no_exception,
    texts,
)

from core.data.beir import dump_judgments_csv
from core.models.base import PACKAGED_CROSS_ENCODER
from core.present.views import NO_RERANK

pytestmark = pytest.mark.slow


def _page():
    return _evaluate_page(
        candidates=EVAL_CANDIDATES, csv=dump_judgments_csv(EVAL_JUDGMENTS).encode()
    )


def test_bm25_with_fusion_is_evaluated_and_named() -> None:
    at = _page()
    at.selectbox(key="eval_retriever").set_value("bm25")
    at.slider(key="eval_depth").set_value(10)
    at.slider(key="eval_weight").set_value(0.5).run()
    _run_button(at).click().run()
    assert_no_exception(at)
    report = at.session_state["eval_report"][1]
    s = report.settings
    assert (s.retriever, s.rerank_depth, s.fusion_weight) == ("bm25", 10, 0.5)
    assert s.encoder == "none"
    assert "BM25 (lexical) → fused w=0.5 (linear), top 10" in texts(at.caption)
    shown = {m.label for m in at.metric}
    assert "nDCG@10: base → fused" in shown
    boxes = [*at.success, *at.error, *at.info]
    assert any(str(b.value).startswith("Fusion ") and "95% CI" in str(b.value) for b in boxes)


def test_depth_follows_the_candidates_down() -> None:
    at = _page()
    assert at.slider(key="eval_depth").value == EVAL_CANDIDATES
    at.slider(key="eval_candidates").set_value(15).run()
    assert_no_exception(at)
    assert at.slider(key="eval_depth").value == 15


def test_tune_recommends_and_applies_on_the_search_page() -> None:
    at = _page()
    (button,) = [b for b in at.button if b.label.startswith("Find the best setting")]
    button.click().run()
    assert_no_exception(at)
    assert not at.error or all("95% CI" in str(e.value) for e in at.error)
    assert "Recommended setting" in texts(at.subheader)
    tuned = at.session_state["eval_tuned"][1]
    assert tuned.num_queries == len(EVAL_JUDGMENTS)
    assert tuned.folds == len(EVAL_JUDGMENTS)  # fewer queries than 5: one fold each
    shown = {m.label: m.value for m in at.metric}
    assert shown["Held-out nDCG@10"] == f"{tuned.heldout['ndcg@10']:.3f}"
    assert shown["Chosen by folds"] == f"{tuned.agreement} of {tuned.folds}"
    # every setting stays within the candidates prepared
    assert all(r.config.depth <= EVAL_CANDIDATES for r in tuned.grid)
    (folds,) = [df.value for df in at.dataframe if "chosen on the other folds" in df.value]
    assert len(folds) == tuned.folds

    at.button(key="apply_setting").click().run()
    assert_no_exception(at)
    rec = tuned.recommended.config
    view = at.session_state["view"]
    assert view.retriever == rec.stage.retriever
    assert view.reranker == (PACKAGED_CROSS_ENCODER if rec.reranked else NO_RERANK)
    if rec.reranked:
        assert view.candidates == max(rec.depth, 10)
        assert view.fusion_weight == rec.weight
    assert at.session_state["retriever"] == rec.stage.retriever
    assert f"Applied the recommended setting: {rec.label}" in texts(at.success)
