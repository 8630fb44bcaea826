"""Comparing settings and choosing one by cross-validation (core.quality.tuning), and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, FakeReranker
from test_evaluation import CANDIDATES, CORPUS, QRELS, QUERIES, RERANK_SCORES, write_beir

from core.data.beir import load_beir
from core.models.errors import SettingsError
from core.quality.evaluation import beir_to_dataset, evaluate_beir
from core.quality.evaluation_report import BEIR_FIELDS
from core.quality.runs import SecondStage, second_stage_order
from core.quality.tuning import compare_rules, tune
from core.quality.tuning_cost import cheapest_within_noise, cost_points, measure_rerank_cost
from core.quality.tuning_format import format_rule_comparison, format_tune
from core.quality.tuning_grid import Config, FirstStage, config_grid, stages_for
from core.quality.tuning_rules import RULES, cross_validate, fold_of
from core.quality.tuning_workbench import Workbench, prepare, sabotage

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
    report = tune(bench, configs, configs[0], folds=5, resamples=500, rule="best")
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
    report = tune(bench, configs, configs[0], folds=10, resamples=200, rule="best")
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
    assert main([*args, "--tune", "--compare-rules", "--seeds", "0,1", "--folds", "2,3"]) == 0
    out = capsys.readouterr().out
    assert "selection rules on tiny: 3 queries, folds 2, 3 x seeds 0, 1" in out
    for rule in RULES:
        assert f"\n{rule} " in out
    assert main([*args, "--tune", "--sabotage", "negate", "--folds", "3", "--rule", "one-se"]) == 0
    out = capsys.readouterr().out
    assert "adversarial check" in out and "rule: one-se" in out
    assert "quality against cost" in out and "chosen by" in out
    assert main([*args, "--tune", "--rule", "nope"]) == 2
    assert "unknown selection rule" in capsys.readouterr().err


# --- selection rules ------------------------------------------------------------------


def test_first_stage_rule_keeps_the_first_stage_unless_the_gain_beats_noise() -> None:
    rng = np.random.default_rng(0)
    alone = rng.uniform(0.3, 0.7, 40)
    # A noisy gain of +0.01 on average: "best" takes it, "first-stage" does not.
    noisy = alone + 0.01 + np.where(np.arange(40) % 2 == 0, 0.2, -0.2)
    bench, configs = synthetic({"alone": alone, "rerank": noisy, "fuse": alone - 0.05})
    assert (
        tune(bench, configs, configs[0], rule="best", resamples=100).recommended.config
        == (configs[1])
    )
    kept = tune(bench, configs, configs[0], rule="first-stage", resamples=100)
    assert kept.recommended.config == configs[0]
    assert kept.alone_heldout == pytest.approx(alone.mean())
    # A clear gain (+0.1 on every query) is taken.
    bench, configs = synthetic({"alone": alone, "rerank": alone + 0.1, "fuse": alone})
    clear = tune(bench, configs, configs[0], rule="first-stage", resamples=100)
    assert clear.recommended.config == configs[1] and clear.agreement == clear.folds


def test_one_se_rule_takes_the_cheapest_setting_within_one_standard_error() -> None:
    rng = np.random.default_rng(1)
    alone = rng.uniform(0.3, 0.7, 40)
    bench, configs = synthetic(
        {"alone": alone, "rerank": alone + rng.normal(0.005, 0.05, 40), "fuse": alone - 0.2}
    )
    table = np.stack([bench.scores(c) for c in configs])
    cv = cross_validate(bench, configs, rule="one-se", folds=5, table=table)
    assert cv.recommended == configs[0]  # the +0.005 is within one SE: keep the cheaper
    bench, configs = synthetic({"alone": alone, "rerank": alone + 0.1, "fuse": alone - 0.2})
    assert cross_validate(bench, configs, rule="one-se", folds=5).recommended == configs[1]


def test_coarse_and_nested_rules_and_the_comparison() -> None:
    stage = BM25
    configs = [Config(stage), Config(stage, 10), Config(stage, 20), Config(stage, 20, 0.7)]
    n = 30
    bench = Workbench("synthetic", [f"q{i}" for i in range(n)], {}, 20, False)
    rng = np.random.default_rng(3)
    base = rng.uniform(0.2, 0.8, n)
    for config, shift in zip(configs, [0.0, 0.2, 0.1, 0.05], strict=True):
        bench._cache[config] = {
            f"q{i}": {"ndcg@10": v, "mrr@10": v, "recall@100": 1.0}
            for i, v in enumerate(base + shift)
        }
    # Depth 10 is not in the coarse grid: the coarse rule takes depth 20 instead.
    assert cross_validate(bench, configs, rule="best").recommended == configs[1]
    assert cross_validate(bench, configs, rule="coarse").recommended == configs[2]
    nested = cross_validate(bench, configs, rule="nested", folds=3)
    assert nested.recommended == configs[1] and nested.agreement == 3
    comparison = compare_rules(bench, configs, seeds=(0, 1), folds=(3, 5))
    summary = {row["rule"]: row for row in comparison.summary()}
    assert set(summary) == set(RULES)
    assert summary["best"]["mean_heldout_ndcg@10"] == pytest.approx(base.mean() + 0.2)
    assert summary["best"]["folds_agreeing"] == summary["best"]["folds_total"] == 16
    assert summary["coarse"]["mean_heldout_ndcg@10"] == pytest.approx(base.mean() + 0.1)
    assert comparison.winner() in ("best", "first-stage", "one-se", "nested")
    text = format_rule_comparison(comparison)
    assert "folds agreeing" in text and "16 of 16" in text
    assert "first stages alone" in text
    assert json.loads(json.dumps(comparison.to_dict()))["winner"] == comparison.winner()


def test_sabotaged_cross_encoder_is_not_recommended(tiny) -> None:
    """Adversarial check: with its scores negated the cross-encoder hurts, and the
    recommendation keeps the first stage (or fuses it in with a small weight)."""
    bench = _bench(tiny, FakeReranker(RERANK_SCORES))
    configs = config_grid(bench.stages, depths=(2, 4), weights=(1.0, 0.5, 0.2))
    harmful = sabotage(bench, "negate")
    assert harmful.ce["1"]["a3"] == -RERANK_SCORES["a3"]
    assert bench.ce["1"]["a3"] == RERANK_SCORES["a3"]  # the original is untouched
    pure = Config(DENSE, 4)
    assert harmful.result(pure).means["ndcg@10"] < bench.result(pure).means["ndcg@10"]
    report = tune(harmful, configs, Config(DENSE), folds=3, resamples=200)
    rec = report.recommended.config
    assert not rec.reranked or rec.weight <= 0.5
    assert report.recommended.means["ndcg@10"] >= report.baseline.means["ndcg@10"] - 1e-9
    assert "adversarial check" in format_tune(report)
    noisy = sabotage(bench, "random", seed=1)
    assert noisy.ce["1"]["a3"] != bench.ce["1"]["a3"]


def test_quality_against_cost_names_the_cheapest_setting_within_noise(tiny) -> None:
    reranker = FakeReranker(RERANK_SCORES)
    bench = _bench(tiny, reranker)
    assert set(bench.stage_ms) == {DENSE, BM25, HYBRID}
    assert all(ms >= 0 for ms in bench.stage_ms.values())
    dataset = beir_to_dataset(tiny)
    seen = len(reranker.seen)
    timed = measure_rerank_cost(bench, reranker, dataset, (2, 4), fields=BEIR_FIELDS, sample=2)
    assert set(timed) == {2, 4} and bench.rerank_sample == 2
    assert len(reranker.seen) == seen + 1 + 4  # a warm-up, then 2 depths x 2 queries live
    configs = config_grid(bench.stages, depths=(2, 4), weights=(1.0, 0.5))
    points = cost_points(bench, configs, resamples=200)
    assert len(points) == len(configs)
    for p in points:
        assert p.low <= p.ndcg <= p.high
        expected = bench.stage_ms[p.config.stage] + (timed[p.config.depth] if p.config.depth else 0)
        assert p.ms == pytest.approx(expected)
    best = max(points, key=lambda p: p.ndcg)
    cheapest = cheapest_within_noise(points)
    assert cheapest is not None and cheapest.within_noise
    assert cheapest.ms <= best.ms
    assert all(p.ms >= cheapest.ms for p in points if p.within_noise)
    report = tune(bench, configs, Config(DENSE), folds=3, resamples=200)
    text = format_tune(report)
    assert "quality against cost" in text
    assert f"cheapest within noise of the best: {cheapest.config.label}" in text
    data = report.to_dict()
    assert len(data["quality_vs_cost"]) == len(configs)
    assert data["cheapest_within_noise_of_best"]["label"] == cheapest.config.label


def test_cache_only_keeps_the_queries_whose_pairs_are_all_cached(tiny, tmp_path) -> None:
    from core.search.scorestore import ScoreStore

    class CachedFake(FakeReranker):
        cache_key = "fake-reranker-v1"

    store = ScoreStore(tmp_path / "scores.sqlite")
    dataset = beir_to_dataset(tiny)
    common = {
        "reranker": CachedFake(RERANK_SCORES),
        "embed_fields": BEIR_FIELDS,
        "rerank_fields": BEIR_FIELDS,
        "depth": CANDIDATES,
        "store": store,
    }
    args = (dataset, tiny.queries, tiny.qrels, [DENSE, BM25], {"fake-encoder": FakeEncoder()})
    warm = prepare(*args, max_queries=2, **common)  # scores queries "1" and "2" only
    assert warm.pairs_scored > 0
    reranker = CachedFake(RERANK_SCORES)
    bench = prepare(*args, **{**common, "reranker": reranker}, cache_only=True)
    assert bench.qids == ["1", "2"] and reranker.seen == []
    assert bench.pairs_scored == 0 and bench.pairs_cached > 0
    assert "2 queries with every pair cached, 1 left out" in bench.note
    assert bench.result(Config(DENSE, 2)).means == warm.result(Config(DENSE, 2)).means
