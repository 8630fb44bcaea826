"""Tests of core.quality.evaluation and ``python -m core evaluate``.

Fast tests run FakeEncoder (bag-of-words hashing) and FakeReranker (scores by doc id) on
a tiny BEIR folder whose retrieval order is known, and check every number by hand. The
slow tests run the real models on a SciFact subset small enough for CI.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, FakeEncoder, FakeReranker
from scifact_subset import (
    SUBSET_OTHER_DOCS,
    SUBSET_QUERIES,
    scifact_subset,
    write_beir,
    write_subset,
)

from core.data.beir import BeirDataset, load_beir
from core.data.documents import make_dataset
from core.models.errors import DatasetError, SettingsError
from core.quality.evaluation import beir_to_dataset, evaluate_beir, evaluate_judgments
from core.quality.evaluation_format import format_report
from core.quality.evaluation_report import EvaluationReport
from core.quality.runs import sorted_query_ids

# With FakeEncoder every word below hashes to its own slot, so a doc's cosine to a query
# depends only on the words they share. Embed text is title + " " + text.
#
# Query "1" (alpha beta gamma): a1 1.0, a2 0.816, a3 0.577, a4 0.333, the rest 0.
# Query "2" (theta iota):       b1 1.0, b2 0.707, the rest 0 (ties keep corpus order).
# Query "10" (kappa lambda):    c1 1.0, c2 0.707, the rest 0.
CORPUS = [
    {"_id": "a1", "title": "alpha", "text": "beta gamma"},
    {"_id": "a2", "title": "", "text": "alpha beta"},
    {"_id": "a3", "title": "alpha", "text": ""},
    {"_id": "a4", "title": "alpha delta", "text": "epsilon"},
    {"_id": "a5", "title": "zeta", "text": "eta"},
    {"_id": "b1", "title": "theta", "text": "iota"},
    {"_id": "b2", "title": "theta", "text": "mu"},
    {"_id": "c1", "title": "kappa", "text": "lambda"},
    {"_id": "c2", "title": "", "text": "kappa nu"},
]
QUERIES = [
    {"_id": "1", "text": "alpha beta gamma"},
    {"_id": "2", "text": "theta iota"},
    {"_id": "10", "text": "kappa lambda"},
    {"_id": "99", "text": "a query without judgments"},
]
QRELS = [
    ("1", "a1", 0),
    ("1", "a3", 2),
    ("1", "a4", 1),
    ("1", "a5", 1),
    ("2", "b1", 1),
    ("10", "c1", 1),
    ("10", "c2", 0),
]
# Reranker scores by doc id (others 0). Query 1: a3 > a4 > a1 > a2 fixes the order.
# Query 2: b1 stays first (tie). Query 10: c2 jumps over c1 (loss).
RERANK_SCORES = {"a3": 3.0, "a4": 2.0, "a1": 1.0, "b1": 5.0, "c2": 4.0, "c1": -1.0}
CANDIDATES = 4


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path, request):
    if "slow" not in request.keywords:  # the slow tests reuse the shared test cache
        monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def tiny(tmp_path: Path) -> BeirDataset:
    return load_beir(write_beir(tmp_path / "tiny", CORPUS, QUERIES, QRELS))


def evaluate_tiny(beir: BeirDataset, **options) -> EvaluationReport:
    settings = {
        "encoder": FakeEncoder(),
        "reranker": FakeReranker(RERANK_SCORES),
        "candidates": CANDIDATES,
        **options,
    }
    return evaluate_beir(beir, **settings)


def dcg(gains: list[float]) -> float:
    return sum(g / math.log2(rank + 1) for rank, g in enumerate(gains, start=1))


# --- fast: hand-computed numbers ------------------------------------------------------------


def test_beir_to_dataset_reads_title_space_text(tiny: BeirDataset) -> None:
    dataset = beir_to_dataset(tiny)
    assert dataset.ids == tuple(d["_id"] for d in CORPUS)
    assert dataset.default_embed_fields == ("title", "text")
    embed = dataset.texts(dataset.default_embed_fields, "embed")
    rerank = dataset.texts(dataset.default_rerank_fields, "rerank", style="plain")
    expected = [tiny.doc_text(doc_id) for doc_id in dataset.ids]
    assert embed == rerank == expected
    assert embed[:3] == ["alpha beta gamma", "alpha beta", "alpha"]


def test_rankings_follow_the_constructed_case(tiny: BeirDataset) -> None:
    reranker = FakeReranker(RERANK_SCORES)
    report = evaluate_tiny(tiny, reranker=reranker)
    by_qid = {q.qid: q for q in report.queries}
    assert [q.qid for q in report.queries] == ["1", "2", "10"]  # natural order, "99" unjudged
    assert by_qid["1"].base_ranking == ("a1", "a2", "a3", "a4")
    assert by_qid["1"].reranked_ranking == ("a3", "a4", "a1", "a2")
    assert by_qid["2"].base_ranking == ("b1", "b2", "a1", "a2")
    assert by_qid["2"].reranked_ranking == ("b1", "a1", "b2", "a2")
    assert by_qid["10"].base_ranking == ("c1", "c2", "a1", "a2")
    assert by_qid["10"].reranked_ranking == ("c2", "a1", "a2", "c1")
    # the reranker read the query text and title + " " + text of exactly the candidates
    query, docs = reranker.seen[0]
    assert query == "alpha beta gamma"
    assert [(d.id, d.text) for d in docs] == [
        ("a1", "alpha beta gamma"),
        ("a2", "alpha beta"),
        ("a3", "alpha"),
        ("a4", "alpha delta epsilon"),
    ]


def test_metric_values_match_hand_computation(tiny: BeirDataset) -> None:
    report = evaluate_tiny(tiny)
    q1, q2, q10 = report.queries
    ideal_1 = dcg([2, 1, 1])  # a3, a4, a5
    # Query 1, retrieval [a1 (0), a2 (-), a3 (2), a4 (1)]: first relevant doc at rank 3.
    assert q1.base["ndcg@10"] == pytest.approx((2 / math.log2(4) + 1 / math.log2(5)) / ideal_1)
    assert q1.base["mrr@10"] == pytest.approx(1 / 3)
    assert q1.base["recall@100"] == pytest.approx(2 / 3)  # a5 was never retrieved
    assert q1.base["precision@10"] == pytest.approx(2 / 10)
    # After reranking [a3, a4, a1, a2]: the two relevant docs lead.
    assert q1.reranked["ndcg@10"] == pytest.approx((2 + 1 / math.log2(3)) / ideal_1)
    assert q1.reranked["mrr@10"] == 1.0
    assert q1.reranked["recall@100"] == pytest.approx(2 / 3)
    assert q1.reranked["precision@10"] == pytest.approx(2 / 10)
    assert q1.delta == pytest.approx(q1.reranked["ndcg@10"] - q1.base["ndcg@10"])
    # Query 2: b1 first in both orders.
    assert q2.base["ndcg@10"] == q2.reranked["ndcg@10"] == 1.0
    assert q2.delta == 0.0
    # Query 10: c1 drops from rank 1 to rank 4.
    assert q10.base["ndcg@10"] == 1.0
    assert q10.reranked["ndcg@10"] == pytest.approx(1 / math.log2(5))
    assert q10.reranked["mrr@10"] == pytest.approx(1 / 4)
    # Means are over the three judged queries.
    for metric in ("ndcg@10", "mrr@10", "recall@100", "precision@10"):
        for run in ("base", "reranked"):
            values = [getattr(q, run)[metric] for q in report.queries]
            assert getattr(report, run)[metric] == pytest.approx(sum(values) / 3)
    assert report.base["ndcg@10"] == pytest.approx(
        ((2 / math.log2(4) + 1 / math.log2(5)) / ideal_1 + 1 + 1) / 3
    )
    assert report.reranked["mrr@10"] == pytest.approx((1 + 1 + 1 / 4) / 3)


def test_win_tie_loss(tiny: BeirDataset) -> None:
    report = evaluate_tiny(tiny)
    assert [q.outcome for q in report.queries] == ["win", "tie", "loss"]
    assert (report.wins, report.ties, report.losses) == (1, 1, 1)
    # a reranker that agrees with retrieval everywhere ties on every query
    same = evaluate_tiny(tiny, reranker=FakeReranker())
    assert (same.wins, same.ties, same.losses) == (0, 3, 0)
    assert same.reranked == same.base


def test_settings_and_timings(tiny: BeirDataset) -> None:
    encoder = FakeEncoder()
    report = evaluate_tiny(tiny, encoder=encoder)
    s = report.settings
    assert (s.dataset, s.split, s.encoder, s.reranker) == (
        "tiny",
        "test",
        encoder.name,
        "fake-reranker",
    )
    assert (s.candidates, s.num_queries, s.total_queries, s.corpus_size) == (4, 3, 3, 9)
    assert {10, 100} <= set(s.k_values)
    assert s.rerank_style == "plain" and s.rerank_fields == ("title", "text")
    # the corpus in one call, then every query in one batch
    assert encoder.calls == [len(CORPUS), 3]
    t = report.timings
    assert not t.index_from_cache
    assert min(t.index, t.query_encode, t.search, t.rerank) >= 0
    assert t.search_ms == pytest.approx(1000 * t.search / 3)
    # a second evaluation loads the corpus embeddings from the disk cache
    again_encoder = FakeEncoder()
    again = evaluate_tiny(tiny, encoder=again_encoder)
    assert again.timings.index_from_cache and again_encoder.calls == [3]
    assert again.base == report.base


def test_recall_beyond_candidates_counts_only_candidates(tiny: BeirDataset) -> None:
    report = evaluate_tiny(tiny, candidates=2, k_values=(2,))
    q1 = report.queries[0]
    assert q1.base_ranking == ("a1", "a2")
    assert q1.base["recall@100"] == q1.base["recall@2"] == 0.0
    assert q1.reranked["recall@2"] == q1.base["recall@2"]


def test_ignore_identical_ids(tiny: BeirDataset, tmp_path: Path) -> None:
    # A doc whose id is query "1" and whose text is the query itself, last in the corpus.
    corpus = [*CORPUS, {"_id": "1", "title": "alpha", "text": "beta gamma"}]
    folder = write_beir(tmp_path / "with-self", corpus, QUERIES, QRELS)
    beir = load_beir(folder)
    reranker = FakeReranker(RERANK_SCORES)
    ignored = evaluate_tiny(beir, reranker=reranker)
    assert ignored.settings.ignore_identical_ids
    q1 = ignored.queries[0]
    # dropped before reranking, and one more doc retrieved in its place
    assert q1.base_ranking == ("a1", "a2", "a3", "a4")
    assert all(d.id != "1" for d in reranker.seen[0][1]) and len(reranker.seen[0][1]) == 4
    # as if the doc were not there at all
    baseline = evaluate_tiny(tiny)
    assert ignored.base == baseline.base and ignored.reranked == baseline.reranked

    kept = evaluate_tiny(beir, ignore_identical_ids=False)
    k1 = kept.queries[0]
    assert k1.base_ranking == ("a1", "1", "a2", "a3")  # a tie at cosine 1: corpus order
    assert k1.base["ndcg@10"] == pytest.approx(2 / math.log2(5) / dcg([2, 1, 1]))
    assert k1.base["ndcg@10"] < q1.base["ndcg@10"]
    # queries "2" and "10" do not retrieve doc "1" in their top 4 either way
    assert kept.queries[1].base == ignored.queries[1].base


def test_max_queries_takes_the_first_in_natural_order(tiny: BeirDataset) -> None:
    assert sorted_query_ids(["10", "2", "b", "1", "a"]) == ["1", "2", "10", "a", "b"]
    report = evaluate_tiny(tiny, max_queries=2)
    assert [q.qid for q in report.queries] == ["1", "2"]
    assert (report.settings.num_queries, report.settings.total_queries) == (2, 3)
    full = evaluate_tiny(tiny)
    assert report.queries == full.queries[:2]
    assert report.base["ndcg@10"] == pytest.approx(
        (full.queries[0].base["ndcg@10"] + full.queries[1].base["ndcg@10"]) / 2
    )


def test_no_reranker(tiny: BeirDataset) -> None:
    report = evaluate_tiny(tiny, reranker=None)
    assert report.reranked is None
    assert all(q.reranked is None and q.outcome is None for q in report.queries)
    assert report.timings.rerank == 0.0
    data = report.to_dict()
    assert data["reranked"] is None and data["wins"] is None
    assert "retrieval + rerank" not in format_report(report)
    assert "retrieval only" in format_report(report)


def test_to_dict_is_json_ready(tiny: BeirDataset) -> None:
    report = evaluate_tiny(tiny)
    data = json.loads(json.dumps(report.to_dict(with_rankings=True)))
    assert data["base"]["ndcg@10"] == report.base["ndcg@10"]
    assert data["reranked"]["mrr@10"] == report.reranked["mrr@10"]
    assert (data["wins"], data["ties"], data["losses"]) == (1, 1, 1)
    assert data["settings"]["candidates"] == CANDIDATES
    assert data["timings"]["num_queries"] == 3
    assert [q["qid"] for q in data["queries"]] == ["1", "2", "10"]
    assert data["queries"][0]["reranked_ranking"] == ["a3", "a4", "a1", "a2"]
    assert data["queries"][2]["outcome"] == "loss"
    assert "base_ranking" not in report.to_dict()["queries"][0]


def test_per_query_file(tiny: BeirDataset, tmp_path: Path) -> None:
    report = evaluate_tiny(tiny)
    path = report.write_per_query_csv(tmp_path / "out" / "per-query.csv")
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert [r["qid"] for r in rows] == ["1", "2", "10"]
    assert [r["outcome"] for r in rows] == ["win", "tie", "loss"]
    assert rows[0]["query"] == "alpha beta gamma"
    for row, q in zip(rows, report.queries, strict=True):
        assert float(row["base_ndcg@10"]) == q.base["ndcg@10"]
        assert float(row["reranked_ndcg@10"]) == q.reranked["ndcg@10"]
        assert float(row["delta"]) == q.delta
        assert float(row["reranked_recall@100"]) == q.reranked["recall@100"]


def test_format_report_table(tiny: BeirDataset) -> None:
    text = format_report(evaluate_tiny(tiny))
    for label in ("nDCG@10", "MRR@10", "Recall@100", "retrieval only", "retrieval + rerank"):
        assert label in text
    assert "1 wins / 1 ties / 1 losses" in text
    assert "within noise" in text and "95% CI" in text


def test_bad_settings(tiny: BeirDataset) -> None:
    with pytest.raises(SettingsError, match="candidates"):
        evaluate_tiny(tiny, candidates=0)
    with pytest.raises(SettingsError, match="max queries"):
        evaluate_tiny(tiny, max_queries=0)


def test_evaluate_judgments_on_positional_ids() -> None:
    records = [
        {"title": "Ronin", "overview": "a bank heist crew"},
        {"title": "Alien", "overview": "space crew alien"},
        {"title": "Bank job", "overview": "heist bank robbery"},
    ]
    dataset = make_dataset("films", records, title_field="title")
    judgments = {"bank heist": {"2": 3, "0": 1}, "alien": {"1": 2}}
    reranker = FakeReranker({"0": 2.0, "2": 1.0})
    report = evaluate_judgments(
        dataset, judgments, encoder=FakeEncoder(), reranker=reranker, candidates=3
    )
    assert [q.qid for q in report.queries] == ["alien", "bank heist"]
    assert report.settings.split is None and report.settings.rerank_style == "fields"
    assert reranker.seen[0][1][0].text.startswith("title: ")  # the dataset's field style
    by_qid = {q.qid: q for q in report.queries}
    heist = by_qid["bank heist"]
    assert heist.base_ranking[0] == "2"  # shares the most words
    assert heist.reranked_ranking[:2] == ("0", "2")
    assert heist.base["ndcg@10"] == pytest.approx(1.0)
    assert heist.reranked["ndcg@10"] == pytest.approx(
        (1 + 3 / math.log2(3)) / (3 + 1 / math.log2(3))
    )
    assert heist.outcome == "loss"
    json.dumps(report.to_dict())
    with pytest.raises(DatasetError, match="another dataset"):
        evaluate_judgments(dataset, {"q": {"x9": 1}}, encoder=FakeEncoder(), reranker=None)


def _run_cli(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RERANK_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "core", "evaluate", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_cli_table_and_default_per_query_file(
    tiny: BeirDataset, tmp_path: Path, monkeypatch, capsys
) -> None:
    import core.models.registry
    from core.cli import main

    monkeypatch.setattr(core.models.registry, "load_encoder", lambda model_id: FakeEncoder())
    monkeypatch.setattr(
        core.models.registry, "load_reranker", lambda model_id, **kw: FakeReranker(RERANK_SCORES)
    )
    folder = tmp_path / "tiny"  # written by the tiny fixture
    assert main(["evaluate", "--beir", str(folder), "--candidates", str(CANDIDATES)]) == 0
    out = capsys.readouterr().out
    expected = evaluate_tiny(tiny)
    lines = out.splitlines()
    base_row = next(line for line in lines if line.startswith("retrieval only"))
    rerank_row = next(line for line in lines if line.startswith("retrieval + rerank"))
    assert f"{expected.base['ndcg@10']:.4f}" in base_row
    assert f"{expected.reranked['ndcg@10']:.4f}" in rerank_row
    assert f"{expected.reranked['mrr@10']:.4f}" in rerank_row
    assert "1 wins / 1 ties / 1 losses" in out
    files = list((tmp_path / "cache" / "eval").glob("tiny-*.csv"))
    assert len(files) == 1
    assert f"per-query results: {files[0]}" in out
    assert len(files[0].read_text(encoding="utf-8").splitlines()) == 1 + 3


def test_cli_error_is_one_line(tmp_path: Path, capsys) -> None:
    from core.cli import main

    assert main(["evaluate", "--beir", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: BEIR folder not found") and err.count("\n") == 1


# --- slow: real models on a SciFact subset ---------------------------------------------------

SUBSET_CANDIDATES = 20


@pytest.fixture(scope="module")
def subset() -> BeirDataset:
    return scifact_subset()


@pytest.fixture(scope="module")
def subset_report(subset, minilm, cross_encoder) -> EvaluationReport:
    return evaluate_beir(
        subset,
        encoder=minilm,
        reranker=cross_encoder,
        candidates=SUBSET_CANDIDATES,
        k_values=(1, 3, 5, 10, SUBSET_CANDIDATES, 100),
    )


@pytest.mark.slow
def test_scifact_subset_metrics_are_consistent(subset, subset_report) -> None:
    report = subset_report
    assert report.settings.num_queries == SUBSET_QUERIES
    assert report.settings.corpus_size == len(subset.corpus) >= SUBSET_OTHER_DOCS
    assert len(report.queries) == SUBSET_QUERIES
    for q in report.queries:
        for run in (q.base, q.reranked):
            assert all(0.0 <= value <= 1.0 for value in run.values())
        # the reranker reorders the same candidates, so recall at the cut-off is equal
        assert len(q.base_ranking) == SUBSET_CANDIDATES
        assert sorted(q.reranked_ranking) == sorted(q.base_ranking)
        assert q.reranked[f"recall@{SUBSET_CANDIDATES}"] == q.base[f"recall@{SUBSET_CANDIDATES}"]
        assert q.reranked["recall@100"] == q.base["recall@100"]
    for run in ("base", "reranked"):
        means = getattr(report, run)
        for metric, mean in means.items():
            values = [getattr(q, run)[metric] for q in report.queries]
            assert mean == pytest.approx(sum(values) / len(values))
            assert 0.0 <= mean <= 1.0
    assert report.wins + report.ties + report.losses == SUBSET_QUERIES
    # on a corpus of 520 docs with every relevant doc present, MiniLM finds most of them
    assert report.base["recall@20"] > 0.5
    assert report.base["ndcg@10"] > 0.4
    assert report.timings.rerank > 0


@pytest.mark.slow
def test_scifact_subset_cli_matches_python_api(subset, subset_report, tmp_path) -> None:
    folder = write_subset(tmp_path / "scifact-subset", subset)
    reloaded = load_beir(folder)
    assert (reloaded.corpus, reloaded.queries, reloaded.qrels) == (
        subset.corpus,
        subset.queries,
        subset.qrels,
    )

    out = tmp_path / "per-query.csv"
    cache = Path(os.environ["RERANK_CACHE_DIR"])  # the corpus embeddings are cached there
    args = ["--beir", str(folder), "--candidates", str(SUBSET_CANDIDATES)]
    done = _run_cli(*args, "--json", "--per-query-out", str(out), cache=cache)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["timings"]["index_from_cache"] is True
    assert data["settings"]["num_queries"] == SUBSET_QUERIES
    for run in ("base", "reranked"):
        for metric in ("ndcg@10", "mrr@10", "recall@100", "precision@10"):
            assert data[run][metric] == pytest.approx(getattr(subset_report, run)[metric], abs=1e-9)
    assert [q["reranked_ndcg@10"] for q in data["queries"]] == pytest.approx(
        [q.reranked["ndcg@10"] for q in subset_report.queries], abs=1e-9
    )
    assert [q["outcome"] for q in data["queries"]] == [q.outcome for q in subset_report.queries]
    assert (data["wins"], data["ties"], data["losses"]) == (
        subset_report.wins,
        subset_report.ties,
        subset_report.losses,
    )
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [r["qid"] for r in rows] == [q.qid for q in subset_report.queries]
    assert f"per-query results: {out}" in done.stderr


def test_a_reranker_that_hurts_everywhere_is_reported_as_hurting(tiny: BeirDataset) -> None:
    # It pushes every query's relevant docs down: three losses, an interval below 0.
    hurting = FakeReranker({"a3": -5.0, "a4": -4.0, "b1": -5.0, "c1": -5.0})
    report = evaluate_tiny(tiny, reranker=hurting)
    assert (report.wins, report.ties, report.losses) == (0, 0, 3)
    comparison = report.comparison
    assert comparison.verdict == "worse"
    assert comparison.high < 0
    text = format_report(report)
    assert "Reranking hurts: nDCG@10 -" in text
    assert "Keep the first stage's order here." in text
    assert report.to_dict()["ndcg@10_change"]["verdict"] == "worse"


def test_rerank_depth_and_fusion_in_the_report(tiny: BeirDataset) -> None:
    from core.quality.runs import SecondStage

    shallow = evaluate_tiny(tiny, options=SecondStage(rerank_depth=1))
    # Reranking only the first candidate changes nothing.
    assert shallow.reranked == pytest.approx(shallow.base)
    assert shallow.settings.rerank_depth == 1
    fused = evaluate_tiny(tiny, options=SecondStage(fusion_weight=0.0))
    assert fused.reranked == pytest.approx(fused.base)  # weight 0: first stage order
    assert "retrieval + fusion" in format_report(fused)
    with pytest.raises(SettingsError, match="rerank depth"):
        evaluate_tiny(tiny, options=SecondStage(rerank_depth=CANDIDATES + 1))
    with pytest.raises(SettingsError, match="fusion weight"):
        evaluate_tiny(tiny, options=SecondStage(fusion_weight=1.5))


def test_unjudged_documents_judged_at_10_and_condensed_figures() -> None:
    """A reranker that lifts a document nobody judged into the top 10: the standard
    nDCG counts it irrelevant, the condensed list skips it, and it is listed."""
    # Cosine to "alpha" falls with every "beta": retrieval order is film 0, 1, ..., 11.
    records = [{"name": f"film {i}", "text": "alpha" + " beta" * i} for i in range(12)]
    dataset = make_dataset("films", records, title_field="name", embed_fields=["text"])
    ids = dataset.ids
    judgments = {"alpha": {ids[i]: (3 if i == 0 else 0) for i in range(10)}}
    judgments["alpha"][ids[10]] = 1
    report = evaluate_judgments(
        dataset,
        judgments,
        encoder=FakeEncoder(),
        reranker=FakeReranker({ids[11]: 9.0, ids[0]: 1.0}),
        candidates=12,
        rerank_fields=["text"],
    )
    q = report.queries[0]
    assert q.base["judged@10"] == pytest.approx(1.0)
    assert q.reranked["judged@10"] == pytest.approx(0.9)
    assert q.unjudged_entered == ((ids[11], "film 11"),)
    # The unjudged film is first after reranking: the standard nDCG drops, the
    # condensed one (film 0 back at rank 1) does not.
    assert q.reranked["ndcg@10"] < q.base["ndcg@10"]
    assert q.reranked["ndcg_cond@10"] == pytest.approx(q.base["ndcg_cond@10"])
    assert q.reranked["mrr_cond@10"] == 1.0 and q.reranked["mrr@10"] == 0.5
    row = q.row()
    assert row["base_judged@10"] == 1.0 and row["unjudged_entered"] == 1
    text = format_report(report)
    assert "condensed: unjudged documents removed before scoring" in text
    assert "entered the top 10 after the second stage: 1 in 1 of 1 queries" in text
    assert f"{ids[11]}  film 11" in text
    assert "grades 0-3; nDCG uses linear gain" in text
    assert report.to_dict()["queries"][0]["unjudged_entered_ids"] == [ids[11]]


def test_relevance_threshold_applies_to_mrr_not_ndcg() -> None:
    records = [{"name": f"film {i}", "text": "alpha" + " beta" * i} for i in range(4)]
    dataset = make_dataset("films", records, title_field="name", embed_fields=["text"])
    ids = dataset.ids
    judgments = {"alpha": {ids[0]: 1, ids[1]: 4}}
    common = {"encoder": FakeEncoder(), "candidates": 4}
    loose = evaluate_judgments(dataset, judgments, **common)
    strict = evaluate_judgments(dataset, judgments, threshold=2, **common)
    assert loose.base["mrr@10"] == 1.0 and strict.base["mrr@10"] == 0.5
    assert loose.base["ndcg@10"] == pytest.approx(strict.base["ndcg@10"])
    assert strict.settings.relevance_threshold == 2 and strict.settings.grades == (1, 4)
    with pytest.raises(SettingsError, match="relevance threshold"):
        evaluate_judgments(dataset, judgments, threshold=0, **common)


def test_cli_reads_quepid_and_trec_judgments_through_an_id_field(
    tmp_path, monkeypatch, capsys
) -> None:
    """Quepid's export (0-4) and TREC qrels (with a queries file), doc ids mapped through
    the dataset's "code" field, relevance threshold 2: all stated in the output."""
    import core.models.registry
    from core.cli import main

    monkeypatch.setattr(core.models.registry, "load_encoder", lambda model_id: FakeEncoder())
    monkeypatch.setattr(
        core.models.registry,
        "load_reranker",
        lambda model_id, **kw: FakeReranker({"row-11": 9.0}),
    )
    records = [
        {"code": f"F{i}", "name": f"film {i}", "text": "alpha" + " beta" * i} for i in range(12)
    ]
    data = tmp_path / "films.json"
    data.write_text(json.dumps(records), encoding="utf-8")
    quepid = tmp_path / "quepid.csv"
    quepid.write_text(
        "Query Text,Doc ID,Rating\nalpha,F0,4\nalpha,F1,1\nalpha,F2,0\nalpha,F3,\nalpha,ZZ,2\n",
        encoding="utf-8",
    )
    args = ["evaluate", "--dataset", str(data), "--candidates", "12", "--doc-id-field", "code"]
    assert main([*args, "--judgments", str(quepid), "--threshold", "2"]) == 0
    captured = capsys.readouterr()
    assert "Quepid CSV export" in captured.err and "graded 0-4" in captured.err
    assert "1 unrated rows skipped" in captured.err and "1 judged id(s) match no document" in (
        captured.err
    )
    assert "grades 0-4; nDCG uses linear gain (gain = grade), as trec_eval" in captured.out
    assert "relevant at grade >= 2" in captured.out
    assert "judged@10" in captured.out and "condensed" in captured.out

    qrels, topics = tmp_path / "qrels.txt", tmp_path / "topics.tsv"
    qrels.write_text("q1 0 F0 4\nq1 0 F1 1\n", encoding="utf-8")
    topics.write_text("q1\talpha\n", encoding="utf-8")
    assert main([*args, "--judgments", str(qrels), "--queries", str(topics), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["settings"]["grades"] == [1, 4]
    assert report["queries"][0]["query"] == "alpha"
    assert main([*args, "--judgments", str(qrels)]) == 2
    assert "TREC qrels, which name queries by id" in capsys.readouterr().err
    assert main([*args, "--judgments", str(quepid), "--threshold", "0"]) == 2
