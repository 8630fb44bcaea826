"""Integrated Gradients on the fp32 rebuild of the packaged cross-encoder."""

from __future__ import annotations

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

    with pytest.raises(ExplainError, match="packaged"):
        explain(Other(), QUERY, DRIVE, method="ig")  # type: ignore[arg-type]


def test_the_gate_knows_ig() -> None:
    pin, warnings = admit_pin({"doc": "468", "method": "ig", "side": "a"})
    assert pin == ExplainPin("468", "ig", "a") and warnings == []
