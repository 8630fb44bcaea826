"""Tests of core.quality.metrics: hand-computed cases, edge cases, and trec_eval agreement."""

from __future__ import annotations

import math
import random

import pytest

from core.models.errors import DatasetError, SettingsError
from core.quality.metrics import (
    METRIC_NAMES,
    condensed,
    evaluate_run,
    judged_at_k,
    kendall_tau,
    mrr_at_k,
    ndcg_at_k,
    overlap_at_k,
    precision_at_k,
    rank_biased_overlap,
    recall_at_k,
    unjudged_in_top_k,
)

LOG2_3 = math.log2(3)  # discount at rank 2

# Graded judgments: three relevant docs (3, 2, 1), d2 judged not relevant.
QRELS = {"d1": 3, "d3": 2, "d6": 1, "d2": 0}
RANKING = ["d1", "d2", "d3", "d4", "d5"]


# --- nDCG ---------------------------------------------------------------------------


def test_ndcg_graded_hand_computed() -> None:
    # DCG@5  = 3/log2(2) + 0/log2(3) + 2/log2(4) + 0 + 0 = 3 + 0 + 1 = 4
    # IDCG@5 = ideal grades [3, 2, 1]: 3/1 + 2/log2(3) + 1/log2(4) = 3 + 1.261860 + 0.5
    #        = 4.761860;  nDCG@5 = 4 / 4.761860 = 0.840008
    assert ndcg_at_k(RANKING, QRELS, 5) == pytest.approx(4 / (3 + 2 / LOG2_3 + 0.5))
    assert ndcg_at_k(RANKING, QRELS, 5) == pytest.approx(0.840008, abs=1e-6)


def test_ndcg_cut_applies_to_ideal_too() -> None:
    # DCG@2 = 3 + 0 = 3;  IDCG@2 = 3 + 2/log2(3) = 4.261860;  3 / 4.261860 = 0.703918
    assert ndcg_at_k(RANKING, QRELS, 2) == pytest.approx(3 / (3 + 2 / LOG2_3))
    # @1: d1 (grade 3) is the best possible first doc: 3 / 3
    assert ndcg_at_k(RANKING, QRELS, 1) == 1.0


def test_ndcg_rewards_higher_grades_first() -> None:
    # [d3, d1]: DCG@2 = 2/1 + 3/log2(3) = 3.892789; IDCG@2 = 4.261860 -> 0.913402
    swapped = ndcg_at_k(["d3", "d1"], QRELS, 2)
    assert swapped == pytest.approx((2 + 3 / LOG2_3) / (3 + 2 / LOG2_3))
    assert swapped < ndcg_at_k(["d1", "d3"], QRELS, 2) == 1.0


def test_ndcg_equal_grades_in_any_order_are_ideal() -> None:
    # Two docs of grade 2: [b, a] and [a, b] both reach the ideal DCG 2 + 2/log2(3).
    assert ndcg_at_k(["b", "a"], {"a": 2, "b": 2}, 10) == pytest.approx(1.0)


def test_ndcg_k_beyond_ranking_still_divides_by_full_ideal() -> None:
    # Ranking [d1] only; @10: DCG = 3, IDCG = 4.761860 (all three relevant) -> 0.630006
    assert ndcg_at_k(["d1"], QRELS, 10) == pytest.approx(3 / (3 + 2 / LOG2_3 + 0.5))


# --- MRR, recall, precision ---------------------------------------------------------


def test_mrr_hand_computed() -> None:
    # [d2 (0), d4 (unjudged), d3 (2)]: first relevant at rank 3 -> 1/3; not within top 2.
    assert mrr_at_k(["d2", "d4", "d3"], QRELS, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(["d2", "d4", "d3"], QRELS, 2) == 0.0
    assert mrr_at_k(RANKING, QRELS, 1) == 1.0


def test_recall_hand_computed() -> None:
    # 3 relevant docs (d1, d3, d6); d2 has grade 0 and does not count.
    # @5: d1, d3 found -> 2/3;  @2: d1 -> 1/3;  @100 (k > len): still 2/3
    assert recall_at_k(RANKING, QRELS, 5) == pytest.approx(2 / 3)
    assert recall_at_k(RANKING, QRELS, 2) == pytest.approx(1 / 3)
    assert recall_at_k(RANKING, QRELS, 100) == pytest.approx(2 / 3)


def test_precision_hand_computed() -> None:
    # @5: d1, d3 relevant -> 2/5;  @1: d1 -> 1/1;
    # @10 with only 5 ranked: trec_eval's P_10 still divides by 10 -> 2/10
    assert precision_at_k(RANKING, QRELS, 5) == pytest.approx(0.4)
    assert precision_at_k(RANKING, QRELS, 1) == 1.0
    assert precision_at_k(RANKING, QRELS, 10) == pytest.approx(0.2)


@pytest.mark.parametrize("metric", [ndcg_at_k, mrr_at_k, recall_at_k, precision_at_k])
def test_empty_ranking_scores_zero(metric) -> None:
    assert metric([], QRELS, 10) == 0.0


@pytest.mark.parametrize("metric", [ndcg_at_k, mrr_at_k, recall_at_k, precision_at_k])
def test_no_relevant_docs_scores_zero(metric) -> None:
    assert metric(["a", "b"], {"a": 0, "b": 0}, 10) == 0.0
    assert metric(["a", "b"], {}, 10) == 0.0


@pytest.mark.parametrize("metric", [ndcg_at_k, mrr_at_k, recall_at_k, precision_at_k])
def test_k_must_be_positive(metric) -> None:
    with pytest.raises(ValueError, match="k must be"):
        metric(RANKING, QRELS, 0)


def test_duplicates_count_once_at_their_first_position() -> None:
    # [d1, d1, d3] is read as [d1, d3]: the repeat neither gains twice nor takes a slot.
    ranking = ["d1", "d1", "d3"]
    # @2: DCG = 3 + 2/log2(3) = IDCG@2 -> 1.0
    assert ndcg_at_k(ranking, QRELS, 2) == pytest.approx(1.0)
    # @2: 2 distinct relevant / 2 -> 1.0;  recall@3: d1, d3 of 3 relevant -> 2/3
    assert precision_at_k(ranking, QRELS, 2) == 1.0
    assert recall_at_k(ranking, QRELS, 3) == pytest.approx(2 / 3)


# --- order agreement ----------------------------------------------------------------


def test_kendall_tau_extremes_and_one_swap() -> None:
    abcd = ["a", "b", "c", "d"]
    assert kendall_tau(abcd, abcd) == 1.0
    assert kendall_tau(abcd, abcd[::-1]) == -1.0
    # [b, a, c, d]: 6 pairs, 1 discordant (a, b) -> (5 - 1) / 6 = 2/3
    assert kendall_tau(abcd, ["b", "a", "c", "d"]) == pytest.approx(2 / 3)


def test_kendall_tau_only_uses_common_items() -> None:
    # Common items a, b, c; in b they come as c, b, a: all 3 pairs discordant -> -1
    assert kendall_tau(["a", "b", "x", "c"], ["c", "y", "b", "a"]) == -1.0


@pytest.mark.parametrize(
    ("a", "b"), [([], []), (["a"], ["a"]), (["a", "b"], ["b", "c"]), (["a"], [])]
)
def test_kendall_tau_fewer_than_two_common_items_is_one(a, b) -> None:
    assert kendall_tau(a, b) == 1.0


def test_kendall_tau_matches_scipy_on_random_permutations() -> None:
    stats = pytest.importorskip("scipy.stats", reason="scipy gives the reference tau-b")
    rng = random.Random(7)
    for _ in range(30):
        items = [f"d{i}" for i in range(rng.randint(2, 60))]
        shuffled = rng.sample(items, len(items))
        expected = stats.kendalltau(range(len(items)), [shuffled.index(x) for x in items])
        assert kendall_tau(items, shuffled) == pytest.approx(expected.statistic, abs=1e-9)


def test_rbo_uneven_lists_hand_computed() -> None:
    # S = [a, b] (s = 2), L = [b, c, a] (l = 3), p = 0.5.
    # X_1 = |{a} ∩ {b}| = 0,  X_2 = |{a,b} ∩ {b,c}| = 1,  X_3 = |{a,b} ∩ {b,c,a}| = 2
    # sum_{d=1..3} X_d/d p^d      = 0 + 1/2 * 1/4 + 2/3 * 1/8   = 1/8 + 1/12
    # sum_{d=3} X_s(d-s)/(s d) p^d = 1 * 1 / 6 * 1/8           = 1/48
    # (1-p)/p = 1;  tail = ((X_l - X_s)/l + X_s/s) p^l = (1/3 + 1/2) / 8 = 5/48
    # RBO_ext = 6/48 + 4/48 + 1/48 + 5/48 = 16/48 = 1/3
    assert rank_biased_overlap(["a", "b"], ["b", "c", "a"], p=0.5) == pytest.approx(1 / 3)
    assert rank_biased_overlap(["b", "c", "a"], ["a", "b"], p=0.5) == pytest.approx(1 / 3)


def test_rbo_even_lists_hand_computed() -> None:
    # S = [a, b, c], L = [b, a, d], p = 0.9: X_1 = 0, X_2 = 2, X_3 = 2
    # RBO_ext = X_3/3 p^3 + (1-p)/p (X_1 p + X_2/2 p^2 + X_3/3 p^3)
    #         = 2/3 * 0.729 + 1/9 * (0 + 0.81 + 0.486) = 0.486 + 0.144 = 0.63
    assert rank_biased_overlap(["a", "b", "c"], ["b", "a", "d"]) == pytest.approx(0.63)


def test_rbo_extremes() -> None:
    abc = ["a", "b", "c"]
    assert rank_biased_overlap(abc, abc) == pytest.approx(1.0)
    assert rank_biased_overlap(abc, ["x", "y", "z"]) == 0.0
    # A prefix agrees perfectly with the longer list as far as it goes, and RBO_ext
    # extrapolates that agreement.
    assert rank_biased_overlap(abc, [*abc, "d", "e"]) == pytest.approx(1.0)
    assert rank_biased_overlap([], []) == 1.0
    assert rank_biased_overlap(abc, []) == 0.0
    with pytest.raises(ValueError, match="p must be"):
        rank_biased_overlap(abc, abc, p=1.0)


def _rbo_ext_reference(a: list[str], b: list[str], p: float) -> float:
    """Webber et al. (2010) equation 32 transcribed literally, with sets at every depth."""
    short, long = sorted((a, b), key=len)
    s, l_ = len(short), len(long)

    def x(d: int) -> int:
        return len(set(short[:d]) & set(long[:d]))

    sum1 = sum(x(d) / d * p**d for d in range(1, l_ + 1))
    sum2 = sum(x(s) * (d - s) / (s * d) * p**d for d in range(s + 1, l_ + 1))
    return (1 - p) / p * (sum1 + sum2) + ((x(l_) - x(s)) / l_ + x(s) / s) * p**l_


def test_rbo_matches_literal_formula_on_random_lists() -> None:
    rng = random.Random(11)
    pool = [f"d{i}" for i in range(40)]
    for _ in range(50):
        a = rng.sample(pool, rng.randint(1, 30))
        b = rng.sample(pool, rng.randint(1, 30))
        p = rng.choice([0.5, 0.8, 0.9, 0.98])
        expected = _rbo_ext_reference(a, b, p)
        assert rank_biased_overlap(a, b, p) == pytest.approx(expected, abs=1e-12)
        assert 0.0 <= rank_biased_overlap(a, b, p) <= 1.0 + 1e-12


def test_overlap_at_k() -> None:
    # top-3: {a, b, c} ∩ {c, x, a} = {a, c} -> 2/3
    assert overlap_at_k(["a", "b", "c", "d"], ["c", "x", "a", "y"], 3) == pytest.approx(2 / 3)
    # Denominator is k even when the lists are shorter: 1/5
    assert overlap_at_k(["a"], ["a"], 5) == pytest.approx(1.0)  # shorter than k
    assert overlap_at_k([], [], 5) == 0.0


# --- evaluate_run -------------------------------------------------------------------


def test_evaluate_run_missing_queries_count_as_zero_and_extra_are_ignored() -> None:
    run = {"q1": ["d1", "d2", "d3"], "q3": ["d9"]}
    qrels = {"q1": {"d3": 1}, "q2": {"d7": 2}}
    result = evaluate_run(run, qrels, k_values=(1, 3))
    assert set(result.per_query) == {"q1", "q2"}
    # q1: d3 at rank 3 -> mrr@3 = 1/3, recall@3 = 1, precision@3 = 1/3, mrr@1 = 0
    assert result.per_query["q1"]["mrr@3"] == pytest.approx(1 / 3)
    assert result.per_query["q1"]["recall@3"] == 1.0
    assert result.per_query["q1"]["precision@3"] == pytest.approx(1 / 3)
    assert result.per_query["q1"]["mrr@1"] == 0.0
    assert all(value == 0.0 for value in result.per_query["q2"].values())
    # Means over the two judged queries: (1/3 + 0) / 2
    assert result.mean["mrr@3"] == pytest.approx(1 / 6)
    assert list(result.mean) == [f"{name}@{k}" for name in METRIC_NAMES for k in (1, 3)]


def test_evaluate_run_ignores_identical_ids_by_default() -> None:
    run = {"q1": ["q1", "d1"]}
    qrels = {"q1": {"d1": 1}}
    assert evaluate_run(run, qrels, k_values=(1,)).mean["mrr@1"] == 1.0
    kept = evaluate_run(run, qrels, k_values=(1,), ignore_identical_ids=False)
    assert kept.mean["mrr@1"] == 0.0


def test_evaluate_run_without_qrels_is_a_user_error() -> None:
    with pytest.raises(DatasetError, match="No judged queries"):
        evaluate_run({"q1": ["d1"]}, {})


# --- agreement with trec_eval -------------------------------------------------------


def _random_collection(seed: int, num_queries: int = 50):
    """Random graded qrels and runs: some short runs, some past 100, some without hits."""
    rng = random.Random(seed)
    pool = [f"doc{i}" for i in range(150)]
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, list[str]] = {}
    for q in range(num_queries):
        query_id = f"q{q}"
        judged = rng.sample(pool, rng.randint(1, 25))
        qrels[query_id] = {doc: rng.choice([0, 0, 1, 2, 3]) for doc in judged}
        if q % 10 == 0:
            qrels[query_id] = {doc: 0 for doc in judged}
        # Judged docs go first, then random ones; shuffling the head mixes them.
        length = rng.choice([3, 8, 10, 40, 100, 120, 150])
        hits = rng.sample(judged, rng.randint(0, len(judged)))
        ranking = (hits + [doc for doc in rng.sample(pool, length) if doc not in hits])[:length]
        head = ranking[:15]
        rng.shuffle(head)
        run[query_id] = head + ranking[15:]
    return run, qrels


def _as_trec_run(run: dict[str, list[str]], depth: int | None = None):
    # Strictly decreasing scores, so trec_eval's tie-breaking never comes into play.
    return {
        query_id: {doc: float(len(ranking) - i) for i, doc in enumerate(ranking[:depth])}
        for query_id, ranking in run.items()
    }


def test_metrics_match_trec_eval_on_random_runs() -> None:
    pytrec_eval = pytest.importorskip(
        "pytrec_eval", reason="install requirements-dev.txt (pytrec-eval-terrier) for trec_eval"
    )
    run, qrels = _random_collection(seed=2024)
    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10", "recall_100", "P_10"})
    expected = full.evaluate(_as_trec_run(run))
    # recip_rank has no cut in trec_eval: cut the run at 10 to get MRR@10.
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(_as_trec_run(run, 10))

    ours = evaluate_run(run, qrels, k_values=(10, 100)).per_query
    assert set(ours) == set(expected) == set(qrels)
    for query_id in qrels:
        got, want = ours[query_id], expected[query_id]
        assert got["ndcg@10"] == pytest.approx(want["ndcg_cut_10"], abs=1e-6), query_id
        assert got["mrr@10"] == pytest.approx(rr[query_id]["recip_rank"], abs=1e-6), query_id
        assert got["recall@100"] == pytest.approx(want["recall_100"], abs=1e-6), query_id
        assert got["precision@10"] == pytest.approx(want["P_10"], abs=1e-6), query_id
    # The random runs must exercise non-trivial values, not only zeros.
    assert sum(0 < ours[q]["ndcg@10"] < 1 for q in qrels) >= 20


@pytest.mark.parametrize("threshold", [1, 2, 3])
def test_graded_0_4_with_threshold_and_condensed_match_trec_eval(threshold: int) -> None:
    """Grades 0-4 (Quepid's scale), a relevance threshold (trec_eval -l) and the
    condensed list (trec_eval -J: unjudged documents removed before scoring)."""
    pytrec_eval = pytest.importorskip("pytrec_eval")
    run, qrels = _random_collection(seed=7)
    rng = random.Random(11)
    qrels = {q: {d: rng.choice([0, 1, 2, 3, 4]) for d in docs} for q, docs in qrels.items()}
    measures = {"ndcg_cut_10", "recall_100", "P_10"}
    std = pytrec_eval.RelevanceEvaluator(qrels, measures, relevance_level=threshold)
    cond = pytrec_eval.RelevanceEvaluator(
        qrels, {"ndcg_cut_10"}, relevance_level=threshold, judged_docs_only_flag=True
    )
    rr = pytrec_eval.RelevanceEvaluator(
        qrels, {"recip_rank"}, relevance_level=threshold, judged_docs_only_flag=True
    )
    expected, expected_cond = std.evaluate(_as_trec_run(run)), cond.evaluate(_as_trec_run(run))
    # MRR@10 of the condensed list: condense first, then cut at 10.
    condensed_run = {q: condensed(r, qrels[q]) for q, r in run.items()}
    expected_rr = rr.evaluate(_as_trec_run(condensed_run, 10))
    ours = evaluate_run(run, qrels, (10, 100), threshold=threshold).per_query
    for q in qrels:
        assert ours[q]["ndcg@10"] == pytest.approx(expected[q]["ndcg_cut_10"], abs=1e-6)
        assert ours[q]["recall@100"] == pytest.approx(expected[q]["recall_100"], abs=1e-6)
        assert ours[q]["precision@10"] == pytest.approx(expected[q]["P_10"], abs=1e-6)
        assert ours[q]["ndcg_cond@10"] == pytest.approx(expected_cond[q]["ndcg_cut_10"], abs=1e-6)
        assert ours[q]["mrr_cond@10"] == pytest.approx(expected_rr[q]["recip_rank"], abs=1e-6)
    # The condensed list differs from the standard one on some queries.
    assert any(abs(ours[q]["ndcg_cond@10"] - ours[q]["ndcg@10"]) > 1e-6 for q in qrels)


def test_judged_at_k_and_unjudged_docs() -> None:
    qrels = {"a": 0, "b": 3, "d": 1}
    ranking = ["x", "a", "b", "y", "d", "b"]
    assert judged_at_k(ranking, qrels, 4) == pytest.approx(2 / 4)
    assert judged_at_k(ranking, qrels, 10) == pytest.approx(3 / 10)
    assert unjudged_in_top_k(ranking, qrels, 4) == ["x", "y"]
    assert condensed(ranking, qrels) == ["a", "b", "d"]
    per_query = evaluate_run({"q": ranking}, {"q": qrels}, (3,)).per_query["q"]
    # Standard: b at rank 3; condensed: a, b, d -> b at rank 2.
    assert per_query["mrr@3"] == pytest.approx(1 / 3)
    assert per_query["mrr_cond@3"] == pytest.approx(1 / 2)
    assert per_query["judged@3"] == pytest.approx(2 / 3)


def test_threshold_is_checked() -> None:
    with pytest.raises(SettingsError, match="relevance threshold"):
        evaluate_run({"q": ["a"]}, {"q": {"a": 1}}, (1,), threshold=0)
    high = evaluate_run({"q": ["a", "b"]}, {"q": {"a": 1, "b": 4}}, (2,), threshold=4)
    assert high.per_query["q"]["mrr@2"] == pytest.approx(1 / 2)
    assert high.per_query["q"]["recall@2"] == 1.0
