"""The passage reading (first vs best passage) as a tuning dimension
(core.quality.tuning), on tiny data: the grid, the rankings it gives, its cost, and
the CLI's ``evaluate --tune --tune-passages`` with the real packaged models."""

from __future__ import annotations

import json
import re

import pytest
from test_evaluation import write_beir

from core.data.beir import load_beir
from core.quality.evaluation import beir_to_dataset
from core.quality.tuning import tune
from core.quality.tuning_cost import measure_rerank_cost
from core.quality.tuning_format import format_tune
from core.quality.tuning_grid import FirstStage, config_grid
from core.quality.tuning_workbench import Workbench, prepare
from core.search.passages import PassageSettings

DENSE = FirstStage("dense", "sentence-transformers/all-MiniLM-L6-v2")
FILLER = " ".join(
    f"Section {i} lists the opening hours of the harbour office and the fees for mooring."
    for i in range(40)
)
ANSWERS = {
    "1": (
        "which lighthouse keeper rescued the fishermen in the storm",
        "In the great storm of 1881 the lighthouse keeper Ida Lewis rowed out and rescued "
        "the four fishermen whose boat had capsized near the rocks.",
        "The lighthouse keeper's cottage has a small garden and a shed.",
    ),
    "2": (
        "who baked the largest loaf of bread at the village fair",
        "At the village fair of 1907 the baker Tom Hale baked the largest loaf of bread "
        "ever seen there, four feet long, and shared it with everyone.",
        "The village fair sells jam, cakes and honey from local farms.",
    ),
    "3": (
        "when did the old railway bridge over the river collapse",
        "The old railway bridge over the river collapsed in the spring flood of 1923, "
        "a week after the last train had crossed it.",
        "The river is crossed by a footbridge near the railway station.",
    ),
}


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))


def write_long_beir(folder, *, long: bool = True):
    corpus, queries, qrels = [], [], []
    for qid, (query, answer, decoy) in ANSWERS.items():
        body = f"{FILLER} {answer}" if long else answer
        corpus.append({"_id": f"doc{qid}", "title": "Harbour notes", "text": body})
        corpus.append({"_id": f"decoy{qid}", "title": "Notes", "text": decoy})
        queries.append({"_id": qid, "text": query})
        qrels.append((qid, f"doc{qid}", 1))
    return write_beir(folder, corpus, queries, qrels)


def test_grid_adds_the_reading_and_each_reading_ranks_by_its_own_scores() -> None:
    stage = FirstStage("bm25")
    assert len(config_grid([stage], depths=(10,), weights=(1.0, 0.5))) == 3
    grid = config_grid([stage], depths=(10,), weights=(1.0, 0.5), aggregates=("first", "max"))
    assert [c.passages for c in grid] == [None, "first", "first", "max", "max"]
    assert grid[3].label == "bm25 · rerank top 10 best passage"
    assert grid[1].label == "bm25 · rerank top 10 first passage"
    assert grid[1].cost < grid[3].cost  # first passage is the cheaper reading
    bench = Workbench("w", ["q"], {"q": {"b": 1}}, 10, False)
    bench.runs[stage] = {"q": [("a", 2.0), ("b", 1.0)]}
    bench.ce = bench.ce_by["first"] = {"q": {"a": 1.0, "b": 0.0}}
    bench.ce_by["max"] = {"q": {"a": 1.0, "b": 5.0}}
    assert bench.ranking(grid[1])["q"] == ["a", "b"]
    assert bench.ranking(grid[3])["q"] == ["b", "a"]
    bench.stage_ms[stage] = 1.0
    bench.rerank_ms.update({(10, "first"): 10.0, (10, "max"): 30.0})
    assert (bench.cost_ms(grid[1]), bench.cost_ms(grid[3])) == (11.0, 31.0)


@pytest.mark.slow
def test_prepare_scores_both_readings_only_when_documents_are_long(
    tmp_path, minilm, cross_encoder
) -> None:
    beir = load_beir(write_long_beir(tmp_path / "long"))
    dataset = beir_to_dataset(beir)
    options = {
        "reranker": cross_encoder,
        "embed_fields": ("title", "text"),
        "rerank_fields": ("title", "text"),
        "depth": 6,
        # short windows: the answer is a small part of a window-filling passage
        "tune_passages": PassageSettings("max", window=128, stride=64, max_per_doc=16),
    }
    bench = prepare(dataset, beir.queries, beir.qrels, [DENSE], {DENSE.encoder: minilm}, **options)
    assert bench.aggregates == ("first", "max") and bench.split_docs == 9  # 3 docs x 3
    configs = config_grid([DENSE], depths=(6,), weights=(1.0,), aggregates=bench.aggregates)
    first, best = (bench.result(c).means["ndcg@10"] for c in configs[1:])
    assert best == 1.0 and first < best  # the answer is past what the first passage reads
    measure_rerank_cost(
        bench, cross_encoder, dataset, [6], fields=("title", "text"), aggregates=bench.aggregates
    )
    assert bench.rerank_ms[(6, "max")] > 0 and bench.rerank_ms[(6, "first")] > 0  # both timed
    report = tune(bench, configs, configs[0], folds=3, resamples=200, rule="best")
    assert report.recommended.config.passages == "max"
    text = format_tune(report)
    assert "passage reading tuned: first passage vs best passage" in text
    assert "rerank top 6 best passage" in text and "rerank top 6 first passage" in text

    short = load_beir(write_long_beir(tmp_path / "short", long=False))
    bench = prepare(
        beir_to_dataset(short),
        short.queries,
        short.qrels,
        [DENSE],
        {DENSE.encoder: minilm},
        **options,
    )
    assert bench.aggregates == () and bench.split_docs == 0
    assert "passage reading not tuned" in bench.note
    assert len(config_grid([DENSE], aggregates=bench.aggregates)) == len(config_grid([DENSE]))


@pytest.mark.slow
def test_cli_tunes_the_passage_reading(tmp_path, capsys) -> None:
    from core.cli import main

    folder = str(write_long_beir(tmp_path / "long"))
    args = ["evaluate", "--beir", folder, "--candidates", "6", "--retriever", "dense"]
    args += ["--window", "128", "--stride", "64", "--max-passages", "16"]
    assert main([*args, "--tune-passages"]) == 2
    assert "--tune-passages goes with --tune" in capsys.readouterr().err
    tuned = [*args, "--tune", "--tune-passages", "--folds", "3", "--time-sample", "3"]
    assert main(tuned) == 0
    out = capsys.readouterr().out
    assert "passage reading tuned: first passage vs best passage" in out
    cost = out[out.index("quality against cost") :]
    assert "rerank top 6 best passage" in cost and "rerank top 6 first passage" in cost
    assert main([*tuned, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passage_readings"] == ["first", "max"]
    readings = {row["passages"] for row in data["configurations"] if row["rerank_depth"]}
    assert readings == {"first", "max"}
    timed = [row for row in data["quality_vs_cost"] if row["rerank_depth"]]
    assert all(row["ms_per_query"] > 0 for row in timed)
    # Passage settings the dense stage shares: --dense-passages embeds by passage too.
    assert main([*args, "--dense-passages", "--json"]) == 0
    single = json.loads(capsys.readouterr().out)
    assert single["settings"]["dense_passages"].startswith("best of passages")


@pytest.mark.slow
def test_bench_compares_dense_passages_with_truncation(tmp_path, capsys) -> None:
    from core.bench.passages import passages_scifact_main

    folder = str(write_long_beir(tmp_path / "long"))
    assert passages_scifact_main(3, folder, readings=("first", "max")) == 0
    out = capsys.readouterr().out
    assert "dense passages vs truncation" in out
    assert re.search(r"\d+ passage vectors for 6 documents \(\d\.\d\d each, 3 documents cut", out)
    assert re.search(r"alone: truncation nDCG@10 \d\.\d{4} \(first stage [\d.]+ ms/query\)", out)
    assert "alone, dense passages vs truncation: " in out
    for how in ("first", "max"):
        assert f"+ rerank ({how}), dense passages vs truncation: " in out
        assert re.search(
            rf"\+ rerank top 100 \({how} passage\): .* [\d.]+ pairs/query, \d+ ms", out
        )
