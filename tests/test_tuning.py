"""Comparing settings and choosing one by cross-validation (core.quality.tuning), and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, FakeReranker
from test_evaluation import CANDIDATES, CORPUS, QRELS, QUERIES, RERANK_SCORES, write_beir

from core.data.beir import load_beir
from core.errors import SettingsError
from core.quality.evaluation import (
    BEIR_FIELDS,
    SecondStage,
    beir_to_dataset,
    evaluate_beir,
    second_stage_order,
)
from core.quality.tuning import (
    Config,
    FirstStage,
    Workbench,
    config_grid,
    fold_of,
    format_tune,
    prepare,
    stages_for,
    tune,
)

DENSE = FirstStage("dense", "fake-encoder")
BM25 = FirstStage("bm25")
HYBRID = FirstStage("hybrid", "fake-encoder")


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def tiny(tmp_path: Path):
    return load_beir(write_beir(tmp_path / "tiny", CORPUS, QUERIES, QRELS))


def test_second_stage_order_reorders_only_the_top_depth() -> None:
    ranked = [("a", 0.9), ("b", 0.8), ("c", 0.7), ("d", 0.6)]
    ce = {"a": 0.0, "b": 5.0, "c": 9.0, "d": 10.0}
    assert second_stage_order(ranked, ce, 2) == ["b", "a", "c", "d"]
    assert second_stage_order(ranked, ce, None) == ["d", "c", "b", "a"]
    assert second_stage_order(ranked, ce, 4, weight=0.0) == ["a", "b", "c", "d"]
    # A doc the reranker did not score keeps its place after the scored ones.
    assert second_stage_order(ranked, {"a": 0.0, "c": 1.0}, 3) == ["c", "a", "b", "d"]


def test_folds_are_balanced_seeded_and_checked() -> None:
    folds = fold_of(11, 5, seed=0)
    assert sorted(np.bincount(folds).tolist()) == [2, 2, 2, 2, 3]
    assert folds.tolist() == fold_of(11, 5, seed=0).tolist()
    assert folds.tolist() != fold_of(11, 5, seed=1).tolist()
    with pytest.raises(SettingsError):
        fold_of(3, 5, seed=0)


def test_stage_and_config_labels() -> None:
    assert stages_for(["dense", "bm25", "hybrid"], ["org/m1", "org/m2"]) == [
        FirstStage("dense", "org/m1"),
        FirstStage("dense", "org/m2"),
        BM25,
        FirstStage("hybrid", "org/m1"),
    ]
    assert Config(FirstStage("dense", "org/m1")).label == "dense m1 · alone"
    assert Config(BM25, 50).label == "bm25 · rerank top 50"
    assert Config(HYBRID, 20, 0.6).label == "hybrid fake-encoder + BM25 · fuse top 20 w=0.6"
    grid = config_grid([BM25], depths=(10, 20), weights=(1.0, 0.5))
    assert [c.second_stage for c in grid] == [
        "alone",
        "rerank top 10",
        "fuse top 10 w=0.5",
        "rerank top 20",
        "fuse top 20 w=0.5",
    ]


def _bench(tiny, reranker=None):
    dataset = beir_to_dataset(tiny)
    return prepare(
        dataset,
        tiny.queries,
        tiny.qrels,
        [DENSE, BM25, HYBRID],
        {"fake-encoder": FakeEncoder()},
        reranker=reranker,
        embed_fields=BEIR_FIELDS,
        rerank_fields=BEIR_FIELDS,
        depth=CANDIDATES,
    )


@pytest.mark.parametrize("stage", [DENSE, BM25, HYBRID])
def test_workbench_agrees_with_evaluate_beir(tiny, stage) -> None:
    bench = _bench(tiny, FakeReranker(RERANK_SCORES))
    encoder = FakeEncoder()
    for depth, weight in [(CANDIDATES, 1.0), (2, 1.0), (CANDIDATES, 0.5)]:
        report = evaluate_beir(
            tiny,
            encoder=encoder,
            reranker=FakeReranker(RERANK_SCORES),
            candidates=CANDIDATES,
            options=SecondStage(
                retriever=stage.retriever, rerank_depth=depth, fusion_weight=weight
            ),
        )
        alone = bench.result(Config(stage))
        second = bench.result(Config(stage, depth, weight))
        for metric in ("ndcg@10", "mrr@10", "recall@100"):
            assert alone.means[metric] == pytest.approx(report.base[metric])
            assert second.means[metric] == pytest.approx(report.reranked[metric])
        assert second.vs_first_stage.mean_delta == pytest.approx(report.comparison.mean_delta)


def test_each_pair_is_scored_once_across_stages(tiny) -> None:
    reranker = FakeReranker(RERANK_SCORES)
    bench = _bench(tiny, reranker)
    pairs = sum(len(docs) for _, docs in reranker.seen)
    union = sum(len({d for s in bench.stages for d, _ in bench.runs[s][q]}) for q in bench.qids)
    assert pairs == union == bench.pairs_scored
    assert len(reranker.seen) == len(bench.qids)


def synthetic(table: dict[str, list[float]]) -> tuple[Workbench, list[Config]]:
    """A workbench whose per-query nDCG@10 for each config is given directly."""
    configs = [Config(BM25), Config(BM25, 10), Config(BM25, 10, 0.5)]
    n = len(next(iter(table.values())))
    bench = Workbench("synthetic", [f"q{i}" for i in range(n)], {}, 10, False)
    for config, label in zip(configs, ["alone", "rerank", "fuse"], strict=True):
        bench._cache[config] = {
            f"q{i}": {"ndcg@10": v, "mrr@10": v, "recall@100": 1.0}
            for i, v in enumerate(table[label])
        }
    return bench, configs


def test_tune_picks_the_setting_that_wins_and_reports_held_out() -> None:
    bench, configs = synthetic({"alone": [0.5] * 10, "rerank": [0.4] * 10, "fuse": [0.7] * 10})
    report = tune(bench, configs, configs[0], folds=5, resamples=500)
    assert report.recommended.config == configs[2]
    assert report.agreement == 5
    assert report.heldout["ndcg@10"] == pytest.approx(0.7)
    assert report.heldout_vs_baseline.verdict == "better"
    assert report.heldout_vs_baseline.mean_delta == pytest.approx(0.2)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["recommended"]["label"] == configs[2].label
    assert data["recommended"]["heldout"]["ndcg@10"] == pytest.approx(0.7)
    assert len(data["configurations"]) == 3
    assert {"ndcg@10", "mrr@10", "recall@100", "ndcg@10_ci95"} <= set(data["configurations"][0])
    assert "recommended: bm25 · fuse top 10 w=0.5" in format_tune(report)


def test_tune_never_reports_on_the_queries_it_chose_on() -> None:
    # "rerank" is far better on query 0 only; elsewhere "alone" wins by a little.
    alone = [0.0] + [0.6] * 9
    rerank = [1.0] + [0.5] * 9
    bench, configs = synthetic({"alone": alone, "rerank": rerank, "fuse": [0.0] * 10})
    report = tune(bench, configs, configs[0], folds=10, resamples=200)
    folds = fold_of(10, 10, seed=0)
    for choice in report.choices:
        held = int(np.flatnonzero(folds == choice.fold - 1)[0])
        # The fold holding query 0 never saw it, so it picks "alone" and scores 0 there.
        if held == 0:
            assert choice.chosen == configs[0] and choice.heldout_ndcg == 0.0
        else:
            assert choice.chosen == configs[1]
    assert report.recommended.config == configs[1]  # chosen on all queries (1.0 + 4.5 > 5.4)
    assert report.heldout["ndcg@10"] == pytest.approx(0.5 * 9 / 10)


def test_tune_ties_go_to_the_cheaper_setting() -> None:
    bench, configs = synthetic({"alone": [0.5] * 6, "rerank": [0.5] * 6, "fuse": [0.5] * 6})
    assert (
        tune(bench, configs, configs[0], folds=3, resamples=100).recommended.config == (configs[0])
    )


def test_cli_compares_first_stages_and_tunes(tiny, tmp_path, monkeypatch, capsys) -> None:
    import core.models.registry
    from core.cli import main

    monkeypatch.setattr(core.models.registry, "load_encoder", lambda model_id: FakeEncoder())
    monkeypatch.setattr(
        core.models.registry, "load_reranker", lambda model_id, **kw: FakeReranker(RERANK_SCORES)
    )
    folder = str(tmp_path / "tiny")
    args = ["evaluate", "--beir", folder, "--candidates", str(CANDIDATES), "--encoder", "fake"]
    assert main([*args, "--retriever", "dense,bm25,hybrid", "--fusion-weight", "0.5"]) == 0
    out = capsys.readouterr().out
    for label in ("dense fake · alone", "bm25 · rerank top 4", "hybrid fake + BM25 · fuse top 4"):
        assert label in out
    assert main([*args, "--retriever", "bm25", "--json"]) == 0
    single = json.loads(capsys.readouterr().out)
    assert single["settings"]["retriever"] == "bm25"
    assert single["ndcg@10_change"]["verdict"] in ("better", "worse", "within noise")
    assert main([*args, "--retriever", "dense,bm25", "--tune", "--folds", "3", "--json"]) == 0
    tuned = json.loads(capsys.readouterr().out)
    assert tuned["folds"] == 3 and tuned["num_queries"] == 3
    assert {"label", "heldout", "heldout_ndcg@10_ci95"} <= set(tuned["recommended"])
    assert main([*args, "--tune", "--no-rerank"]) == 2
    assert "--tune needs the reranker" in capsys.readouterr().err
