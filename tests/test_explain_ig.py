"""Integrated Gradients on the fp32 rebuild of the packaged cross-encoder."""

from __future__ import annotations

import re

import pytest

from core.present.gate import admit_pin
from core.quality.explain import ExplainError, ExplainPin, explain
from core.quality.explain_ig import token_attributions

QUERY = "a heist that goes wrong"
DRIVE = (
    "title: Drive\noverview: A Hollywood stunt performer who moonlights as a wheelman for "
    "criminals discovers that a contract has been put on him after a heist gone wrong."
)


@pytest.fixture(scope="module")
def parts():
    return token_attributions(QUERY, DRIVE)


def test_attributions_sum_to_the_score_gap(parts) -> None:
    """Completeness: the attributions add up to f(x) - f(baseline), up to quadrature."""
    total = float(parts["attributions"].sum())
    assert total == pytest.approx(parts["score"] - parts["baseline"], abs=0.05)
    assert abs(parts["gap"]) < 0.05
    assert len(parts["attributions"]) == len(parts["offsets"])


def test_explanation_by_ig_names_its_model_and_its_words(cross_encoder) -> None:
    expl = explain(cross_encoder, QUERY, DRIVE, method="ig", use_cache=False)
    assert expl.method == "ig" and "fp32 rebuild" in expl.model
    assert expl.base_score == pytest.approx(token_attributions(QUERY, DRIVE)["score"], abs=1e-4)
    top = [w.text for w in expl.helped(3)]
    assert {"wrong.", "heist", "gone"} & set(top), top
    measured = expl.measured()
    assert len(measured) == len([w for w in expl.doc_words if w.read]) > 20
    assert {w.text for w in expl.query_words} == set(QUERY.split())


def test_ig_is_for_the_packaged_model_only() -> None:
    class Other:
        name = "someone/else"
        cache_key = "x"

    with pytest.raises(ExplainError, match="cross-encoder/ms-marco-MiniLM-L-12-v2"):
        explain(Other(), QUERY, DRIVE, method="ig")  # type: ignore[arg-type]


def test_the_gate_knows_ig() -> None:
    pin, warnings = admit_pin({"doc": "468", "method": "ig", "side": "a"})
    assert pin == ExplainPin("468", "ig", "a") and warnings == []


def _sample_panel_app() -> None:
    import streamlit as st

    from core.data.datasets import load_sample
    from core.models.registry import load_reranker
    from core.search.pipeline import search_with_rerank
    from core.search.retrievers import make_retriever
    from pages.widgets.explain_panel import explain_panel

    if "result" not in st.session_state:
        data = load_sample()
        st.session_state.result = search_with_rerank(
            data,
            "how do I get bats out of my roof",
            retriever=make_retriever("bm25", data, data.default_embed_fields),
            reranker=load_reranker(),
            num_candidates=5,
            num_results=3,
        )
    result = st.session_state.result
    explain_panel(result, result.top_final[0])


def _table(ig_compr: float) -> dict:
    rows = {
        "occlusion": {"comprehensiveness_aopc": 5.0, "pairs": 10},
        "ig": {"comprehensiveness_aopc": ig_compr, "pairs": 10},
        "random": {"comprehensiveness_aopc": 1.0, "pairs": 10},
    }
    return {"datasets": {"sample": rows}}


@pytest.mark.parametrize("ig_compr", [3.0, 1.5])
def test_the_app_offers_ig_only_where_it_passed_the_bar(monkeypatch, ig_compr) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setattr("pages.widgets.explain_panel.load_table", lambda: _table(ig_compr))
    at = AppTest.from_function(_sample_panel_app, default_timeout=600)
    at.run()
    at.button(key="explain_go").click().run()
    assert not at.exception, at.exception
    offered = [b for b in at.button if b.key == "explain_ig_go"]
    if ig_compr < 2.0:  # 1.5x random: below the bar, not offered
        assert not offered
        return
    offered[0].click().run()
    assert not at.exception, at.exception
    assert any(m.value == "**Integrated Gradients**" for m in at.markdown)
    captions = [re.sub(r"\\(.)", r"\1", c.value) for c in at.caption]  # as a reader sees
    assert any("comprehensiveness AOPC 3.00 vs random 1.00" in c for c in captions)


def test_cli_method_ig(movies_path, capsys) -> None:
    import json

    from core.cli import main

    argv = ["explain", QUERY, "--doc", "468", "--method", "ig", "--retriever", "bm25", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    expl = out["explanation"]
    assert expl["method"] == "ig" and "fp32 rebuild" in expl["model"]
    assert expl["helped"][0]["text"] in {"wrong.", "heist", "gone"}
    assert out["faithfulness"] is None or "comprehensiveness" in out["faithfulness"]
