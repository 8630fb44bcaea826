"""What every first stage returns: :class:`Hit`, and the top-k selection they share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PassageMatch:
    """Which passage of a document's embedded text a dense first stage matched
    (dense passages, :mod:`core.search.passage_index`).

    ``index`` is 0-based among the ``count`` passages embedded; ``start``/``end`` its
    character span in the embedded text; ``complete`` whether every token of that text
    was embedded (False: the per-document cap left the end out).
    """

    index: int
    count: int
    start: int
    end: int
    complete: bool = True


@dataclass(frozen=True)
class Hit:
    """One retrieved document: its id, row position, 1-based rank and score; with dense
    passages, ``passage`` says which of its passages matched (the document's score is
    that passage's)."""

    id: str
    position: int
    rank: int
    score: float
    passage: PassageMatch | None = None


def top_k(scores: np.ndarray, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Positions of the ``k`` highest ``scores``, best first; equal scores keep row order.

    ``rows`` (ascending) names the row of each score; by default score ``i`` is row ``i``.
    ``argpartition`` finds the winners in linear time; only they are sorted.
    """
    n = len(scores)
    k = max(0, min(k, n))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    if k < n:
        winners = np.argpartition(-scores, k - 1)[:k]
        # argpartition may pick any of several rows tied at the k-th score; take the
        # earliest ones so results do not depend on its internals.
        kth = scores[winners].min()
        above = np.flatnonzero(scores > kth)
        tied = np.flatnonzero(scores == kth)[: k - len(above)]
        winners = np.concatenate([above, tied])
    else:
        winners = np.arange(n)
    winners = np.sort(winners)
    order = winners[np.argsort(-scores[winners], kind="stable")]
    return order if rows is None else np.asarray(rows)[order]
