"""Score fusion of first-stage and cross-encoder scores, alone and in the pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FakeEncoder, FakeReranker

from core.data.documents import make_dataset
from core.models.errors import SettingsError
from core.search.fusion import fuse_scores, fused_order, minmax
from core.search.pipeline import search_with_rerank

FIRST = [0.9, 0.8, 0.5, 0.1]  # first-stage order: 0, 1, 2, 3
CE = [-5.0, 2.0, 8.0, 0.0]  # cross-encoder order: 2, 1, 3, 0


def test_minmax_scales_to_unit_range_and_constant_to_zero() -> None:
    assert minmax([2.0, 4.0, 3.0]).tolist() == [0.0, 1.0, 0.5]
    assert minmax([7.0, 7.0]).tolist() == [0.0, 0.0]
    assert minmax([]).size == 0


@pytest.mark.parametrize("method", ["linear", "rrf"])
def test_weight_one_is_pure_rerank_and_zero_is_first_stage(method) -> None:
    assert fused_order(FIRST, CE, 1.0, method)[0] == [2, 1, 3, 0]
    assert fused_order(FIRST, CE, 0.0, method)[0] == [0, 1, 2, 3]


def test_linear_blend_values() -> None:
    fused = fuse_scores(FIRST, CE, 0.3, "linear")
    first = (np.array(FIRST) - 0.1) / 0.8
    ce = (np.array(CE) + 5.0) / 13.0
    np.testing.assert_allclose(fused, 0.7 * first + 0.3 * ce)
    # Item 1 is second in both orders; the blend puts it first, ahead of both leaders.
    assert fused_order(FIRST, CE, 0.3, "linear")[0] == [1, 0, 2, 3]


def test_rrf_blend_values() -> None:
    fused = fuse_scores(FIRST, CE, 0.5, "rrf", rrf_k=60)
    # item 2: CE rank 1, first rank 3
    assert fused[2] == pytest.approx(0.5 / 61 + 0.5 / 63)
    # CE's last (item 0) is the first stage's first: the blend lifts it above item 3.
    assert fused_order(FIRST, CE, 0.5, "rrf")[0] == [2, 1, 0, 3]


def test_ties_keep_first_stage_order() -> None:
    assert fused_order([3.0, 2.0, 1.0], [1.0, 1.0, 1.0], 1.0)[0] == [0, 1, 2]


@pytest.mark.parametrize(("weight", "method"), [(-0.1, "linear"), (1.5, "rrf"), (0.5, "product")])
def test_bad_settings_are_refused(weight, method) -> None:
    with pytest.raises(SettingsError):
        fuse_scores(FIRST, CE, weight, method)


RECORDS = [
    {"id": f"d{i}", "text": t}
    for i, t in enumerate(
        ["bank heist robbery", "bank heist", "bank", "heist robbery crew", "space"]
    )
]


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))


def test_pipeline_fusion_keeps_ce_ranks_and_sets_final_order() -> None:
    dataset = make_dataset("tiny", RECORDS, id_field="id")
    scores = {"d0": 0.0, "d1": 1.0, "d2": 9.0, "d3": 2.0, "d4": -3.0}
    kwargs = dict(
        encoder=FakeEncoder(), reranker=FakeReranker(scores), num_candidates=5, num_results=5
    )
    pure = search_with_rerank(dataset, "bank heist robbery", **kwargs)
    half = search_with_rerank(dataset, "bank heist robbery", fusion_weight=0.5, **kwargs)
    assert not pure.fused and half.fused
    assert [c.id for c in pure.reranked] == ["d2", "d3", "d1", "d0", "d4"]
    by_id = {c.id: c for c in half.candidates}
    # Cross-encoder ranks are the same with or without fusion.
    assert {c.id: c.rerank_rank for c in half.candidates} == {
        c.id: c.rerank_rank for c in pure.candidates
    }
    retrieval = [c.retrieval_score for c in half.candidates]
    ce = [scores[c.id] for c in half.candidates]
    expected = fuse_scores(retrieval, ce, 0.5)
    for c, value in zip(half.candidates, expected, strict=True):
        assert by_id[c.id].fused_score == pytest.approx(value)
    final = [c.id for c in half.reranked]
    assert final == [half.candidates[i].id for i in np.argsort(-expected, kind="stable")]
    assert all(c.final_rank == c.fused_rank for c in half.candidates)
    assert by_id[final[0]].movement == by_id[final[0]].retrieval_rank - 1
    assert half.to_dict()["fusion"] == "linear"


def test_pipeline_refuses_a_bad_weight() -> None:
    dataset = make_dataset("tiny", RECORDS, id_field="id")
    with pytest.raises(SettingsError):
        search_with_rerank(dataset, "bank", encoder=FakeEncoder(), fusion_weight=2.0)
