"""Ranking metrics: relevance against judgments, and agreement between two rankings.

A *ranking* is a list of doc ids, best first. *Qrels* for one query map doc id to a
graded relevance (any non-negative integer: 0/1, 0-3, Quepid's 0-4, ...); 0 means
judged not relevant, and unjudged docs count as not relevant. A doc is *relevant* when
its grade reaches the relevance threshold (default 1, i.e. above 0): this decides MRR,
Recall and Precision, as trec_eval's ``-l`` (``relevance_level``) does. nDCG uses
every grade with a *linear* gain (gain = grade), as trec_eval's ``ndcg_cut`` does.

Unjudged documents: ``judged@k`` is the share of the top k that has a judgment (any
grade), and the *condensed-list* variants ``ndcg_cond@k`` / ``mrr_cond@k`` (Sakai 2007)
remove unjudged documents from the ranking before scoring, so a reranker that pulls in
documents nobody judged is not scored as if they were irrelevant.

The relevance metrics follow trec_eval (``ndcg_cut``, ``recip_rank``, ``recall``,
``P``) so that numbers can be compared with published ones. trec_eval reads a run as
a mapping doc -> score and so never sees a doc twice; to match it, a doc that appears
again in a ranking is dropped after its first (best) position, before cutting at k.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from core.models.errors import DatasetError, SettingsError

Ranking = Sequence[str]
QueryQrels = Mapping[str, int]

DEFAULT_K_VALUES: tuple[int, ...] = (1, 3, 5, 10, 100)
METRIC_NAMES: tuple[str, ...] = (
    "ndcg",
    "mrr",
    "recall",
    "precision",
    "judged",
    "ndcg_cond",
    "mrr_cond",
)
DEFAULT_THRESHOLD = 1
GAIN_NOTE = "linear gain (gain = grade), as trec_eval ndcg_cut"


def check_threshold(threshold: int) -> int:
    """The relevance threshold as an int >= 1; ``SettingsError`` otherwise."""
    if isinstance(threshold, bool) or int(threshold) != threshold or threshold < 1:
        raise SettingsError(
            f"relevance threshold must be a whole number of at least 1, not {threshold!r}"
        )
    return int(threshold)


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")


def _unique(ranking: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ranking))


def _top_k(ranking: Ranking, k: int) -> list[str]:
    _check_k(k)
    return _unique(ranking)[:k]


def _num_relevant(qrels: QueryQrels, threshold: int = DEFAULT_THRESHOLD) -> int:
    return sum(1 for rel in qrels.values() if rel >= threshold)


def _dcg(gains: Iterable[float]) -> float:
    return sum(gain / math.log2(i + 1) for i, gain in enumerate(gains, start=1))


def ndcg_at_k(ranking: Ranking, qrels: QueryQrels, k: int) -> float:
    """Return nDCG@k with linear gains (gain = grade) and a log2(rank + 1) discount.

    The ideal DCG ranks all judged docs of the query by grade and is cut at k too, as
    trec_eval's ``ndcg_cut`` does. Grades of 0 or below gain nothing. Returns 0.0 when
    the query has no relevant doc.
    """
    top = _top_k(ranking, k)
    ideal = sorted((rel for rel in qrels.values() if rel > 0), reverse=True)[:k]
    idcg = _dcg(ideal)
    if idcg == 0.0:
        return 0.0
    return _dcg(max(qrels.get(doc, 0), 0) for doc in top) / idcg


def mrr_at_k(
    ranking: Ranking, qrels: QueryQrels, k: int, threshold: int = DEFAULT_THRESHOLD
) -> float:
    """Return the reciprocal rank of the first relevant doc (grade >= ``threshold``) in
    the top k, else 0.0."""
    for rank, doc in enumerate(_top_k(ranking, k), start=1):
        if qrels.get(doc, 0) >= threshold:
            return 1.0 / rank
    return 0.0


def recall_at_k(
    ranking: Ranking, qrels: QueryQrels, k: int, threshold: int = DEFAULT_THRESHOLD
) -> float:
    """Return the share of the query's relevant docs (grade >= ``threshold``) found in
    the top k (0.0 if the query has none)."""
    num_relevant = _num_relevant(qrels, threshold)
    if num_relevant == 0:
        _check_k(k)
        return 0.0
    hits = sum(1 for doc in _top_k(ranking, k) if qrels.get(doc, 0) >= threshold)
    return hits / num_relevant


def precision_at_k(
    ranking: Ranking, qrels: QueryQrels, k: int, threshold: int = DEFAULT_THRESHOLD
) -> float:
    """Return relevant docs (grade >= ``threshold``) in the top k divided by k, even when
    fewer than k were ranked."""
    hits = sum(1 for doc in _top_k(ranking, k) if qrels.get(doc, 0) >= threshold)
    return hits / k


def judged_at_k(ranking: Ranking, qrels: QueryQrels, k: int) -> float:
    """Return the share of the top k that has a judgment (any grade, 0 included),
    divided by k like trec_eval's ``P``-style cut-offs."""
    return sum(1 for doc in _top_k(ranking, k) if doc in qrels) / k


def unjudged_in_top_k(ranking: Ranking, qrels: QueryQrels, k: int) -> list[str]:
    """The documents of the top k that have no judgment, best first."""
    return [doc for doc in _top_k(ranking, k) if doc not in qrels]


def condensed(ranking: Ranking, qrels: QueryQrels) -> list[str]:
    """The ranking with unjudged documents removed (Sakai 2007's condensed list): the
    judged documents below move up into the places they leave."""
    return [doc for doc in _unique(ranking) if doc in qrels]


def overlap_at_k(a: Ranking, b: Ranking, k: int) -> float:
    """Return |top-k(a) ∩ top-k(b)| / min(k, length of the longer top-k).

    Lists shorter than ``k`` are judged on what they hold: two identical 3-item lists
    overlap 100% at k = 10, not 30%. Empty lists give 0.0.
    """
    top_a, top_b = set(_top_k(a, k)), set(_top_k(b, k))
    size = min(k, max(len(top_a), len(top_b)))
    return len(top_a & top_b) / size if size else 0.0


def kendall_tau(a: Ranking, b: Ranking) -> float:
    """Return Kendall's tau-b between two rankings, over the items present in both.

    Each item's rank is its first position, so there are no ties and tau-b equals
    tau-a: (concordant - discordant) / pairs. Identical order gives 1.0, reversed
    order -1.0; with fewer than two common items there is no pair to disagree on and
    the result is 1.0.
    """
    position_in_b = {doc: i for i, doc in reversed(list(enumerate(b)))}
    common_b_positions = [position_in_b[doc] for doc in _unique(a) if doc in position_in_b]
    n = len(common_b_positions)
    if n < 2:
        return 1.0
    pairs = n * (n - 1) // 2
    discordant = _count_inversions(common_b_positions)
    return (pairs - 2 * discordant) / pairs


def _count_inversions(values: list[int]) -> int:
    """Count pairs i < j with values[i] > values[j], by merge sort in O(n log n)."""
    return _sort_counting_inversions(values)[1]


def _sort_counting_inversions(values: list[int]) -> tuple[list[int], int]:
    if len(values) < 2:
        return values, 0
    middle = len(values) // 2
    left, left_inversions = _sort_counting_inversions(values[:middle])
    right, right_inversions = _sort_counting_inversions(values[middle:])
    merged: list[int] = []
    inversions = left_inversions + right_inversions
    i = j = 0
    while i < len(left) and j < len(right):
        if left[i] <= right[j]:
            merged.append(left[i])
            i += 1
        else:
            merged.append(right[j])
            inversions += len(left) - i
            j += 1
    merged += left[i:] + right[j:]
    return merged, inversions


def rank_biased_overlap(a: Ranking, b: Ranking, p: float = 0.9) -> float:
    """Return the extrapolated rank-biased overlap RBO_ext of two rankings.

    This is Webber, Moffat & Zobel (2010), "A similarity measure for indefinite
    rankings", equation 32: RBO_ext for uneven lists S (length s) and L (length l >= s),
    which assumes the agreement seen at the end of the lists continues forever:

        RBO_ext = (1-p)/p * (sum_{d=1..l} X_d/d * p^d
                             + sum_{d=s+1..l} X_s * (d-s) / (s*d) * p^d)
                  + ((X_l - X_s)/l + X_s/s) * p^l

    where X_d = |S[:d] ∩ L[:d]| and S[:d] is all of S once d > s. For lists of equal
    length it reduces to the paper's equation 30. Identical rankings score 1.0,
    disjoint ones 0.0. ``p`` in (0, 1) sets how top-heavy the measure is: at p = 0.9
    the first 10 ranks carry about 86% of the weight. Repeated items keep their first
    position; two empty rankings score 1.0, one empty ranking 0.0.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be strictly between 0 and 1, got {p}")
    short, long = sorted((_unique(a), _unique(b)), key=len)
    s, l_ = len(short), len(long)  # the paper's s and l
    if l_ == 0:
        return 1.0
    if s == 0:
        return 0.0

    short_set = set(short)
    seen_short: set[str] = set()
    seen_long: set[str] = set()
    overlap = 0
    overlap_at_s = 0
    total = 0.0
    for d in range(1, l_ + 1):
        new_long = long[d - 1]
        if d <= s:
            new_short = short[d - 1]
            if new_short == new_long:
                overlap += 1
            else:
                overlap += (new_short in seen_long) + (new_long in seen_short)
            seen_short.add(new_short)
            seen_long.add(new_long)
            if d == s:
                overlap_at_s = overlap
        else:
            overlap += new_long in short_set
            total += overlap_at_s * (d - s) / (s * d) * p**d
        total += overlap / d * p**d
    # overlap is now X_l
    return (1 - p) / p * total + ((overlap - overlap_at_s) / l_ + overlap_at_s / s) * p**l_


@dataclass(frozen=True)
class RunEvaluation:
    """Scores of a run: one dict per judged query, and their means.

    Metric keys read ``"<name>@<k>"`` with name in :data:`METRIC_NAMES`, e.g.
    ``"ndcg@10"``.
    """

    per_query: dict[str, dict[str, float]]
    mean: dict[str, float]


def evaluate_run(
    run: Mapping[str, Ranking],
    qrels: Mapping[str, QueryQrels],
    k_values: Sequence[int] = DEFAULT_K_VALUES,
    *,
    ignore_identical_ids: bool = True,
    threshold: int = DEFAULT_THRESHOLD,
) -> RunEvaluation:
    """Score a run (query id -> ranking) against qrels (query id -> doc id -> grade).

    Every query in ``qrels`` is scored, including those without a relevant doc; a
    judged query missing from the run scores 0 on everything. Queries that are run but
    not judged are ignored. With ``ignore_identical_ids`` a retrieved doc whose id
    equals its query id is dropped first, as BEIR does by default (some BEIR datasets
    put the queries in the corpus). ``threshold`` is the lowest grade that counts as
    relevant for MRR, Recall and Precision (nDCG uses every grade, linearly).
    """
    threshold = check_threshold(threshold)
    if not qrels:
        raise DatasetError("No judged queries to evaluate: load qrels or judgments first.")
    for k in k_values:
        _check_k(k)
    per_query: dict[str, dict[str, float]] = {}
    for query_id, query_qrels in qrels.items():
        ranking = list(run.get(query_id, ()))
        if ignore_identical_ids:
            ranking = [doc for doc in ranking if doc != query_id]
        scores: dict[str, float] = {}
        kept = condensed(ranking, query_qrels)
        for k in k_values:
            scores[f"ndcg@{k}"] = ndcg_at_k(ranking, query_qrels, k)
            scores[f"mrr@{k}"] = mrr_at_k(ranking, query_qrels, k, threshold)
            scores[f"recall@{k}"] = recall_at_k(ranking, query_qrels, k, threshold)
            scores[f"precision@{k}"] = precision_at_k(ranking, query_qrels, k, threshold)
            scores[f"judged@{k}"] = judged_at_k(ranking, query_qrels, k)
            scores[f"ndcg_cond@{k}"] = ndcg_at_k(kept, query_qrels, k)
            scores[f"mrr_cond@{k}"] = mrr_at_k(kept, query_qrels, k, threshold)
        per_query[query_id] = scores
    keys = [f"{name}@{k}" for name in METRIC_NAMES for k in k_values]
    mean = {key: sum(s[key] for s in per_query.values()) / len(per_query) for key in keys}
    return RunEvaluation(per_query=per_query, mean=mean)
