"""The room's words and links: the share URLs, a plain verdict line per step (votes,
else labels, else agreement), the up/down marks, and the wording for datasets smaller
than the candidate count.

Pure functions (no Streamlit): the Walkthrough and Head to head pages and the HTML
report share them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

from core.quality.blind import Tally
from core.quality.headtohead import HeadToHead
from core.quality.metrics import ndcg_at_k

PUBLIC_URL_ENV = "RERANK_PUBLIC_URL"
UP, DOWN, SAME = "▲", "▼", "="
# Okabe-Ito blue / vermillion: told apart with every common colour-vision deficiency.
UP_COLOR, DOWN_COLOR, SAME_COLOR = "#0072B2", "#D55E00", "#8c8c8c"
# Neutral A and B: neither reads as good or bad.
A_COLOR, B_COLOR = "#4d4d4d", "#7a6a9e"


def public_base(host: str | None = None, *, secure: bool = False) -> str:
    """The app's absolute base URL: ``RERANK_PUBLIC_URL`` when set, else the request's
    host (``http(s)://host``), else a loopback default."""
    configured = os.environ.get(PUBLIC_URL_ENV, "").strip().rstrip("/")
    if configured:
        return configured
    host = (host or "").strip()
    if host and all(c.isalnum() or c in ".-:[]" for c in host):
        return f"{'https' if secure else 'http'}://{host}"
    return "http://localhost:8501"


def share_links(base: str, walkthrough_id: str, room_id: str, token: str) -> tuple[str, str]:
    """``(viewer link, presenter link)``: the presenter's carries the secret token."""
    parts = urlsplit(base)
    root = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/"
    viewer = {"walkthrough": walkthrough_id, "room": room_id}
    return (
        root + "?" + urlencode(viewer),
        root + "?" + urlencode({**viewer, "presenter": token}),
    )


def move_mark(move: int) -> str:
    """``▲ 3`` (B ranks it 3 higher), ``▼ 2`` or ``=``."""
    return f"{UP} {move}" if move > 0 else f"{DOWN} {-move}" if move < 0 else SAME


def candidates_phrase(h2h: HeadToHead) -> str:
    """ "Same 20 candidates" with the number actually retrieved, and why when the dataset
    held fewer than asked for."""
    r = h2h.a.result
    asked, got = r.num_candidates, len(r.candidates)
    tail = f" (the dataset holds only {got}; {asked} were asked for)" if got < asked else ""
    return f"Same {got} candidate{'s' if got != 1 else ''} for both{tail}"


def labels_verdict(h2h: HeadToHead, labels: Mapping[str, int]) -> str | None:
    """ "By the labels, A is better: nDCG@5 0.71 vs 0.52" from graded labels of the step's
    query (document id -> grade); None when no labelled document is relevant."""
    qrels = {doc: int(grade) for doc, grade in labels.items() if grade is not None}
    if not any(g > 0 for g in qrels.values()):
        return None
    k = h2h.num_results
    a = ndcg_at_k([c.id for c in h2h.a.result.reranked], qrels, k)
    b = ndcg_at_k([c.id for c in h2h.b.result.reranked], qrels, k)
    shown = {c.id for c in (*h2h.a.result.top_final, *h2h.b.result.top_final)}
    covered = f"{sum(d in qrels for d in shown)} of the {len(shown)} listed items are labelled"
    if round(a, 2) == round(b, 2):
        return f"By the labels, A and B are level: nDCG@{k} {a:.2f} each ({covered})."
    winner = "A" if a > b else "B"
    first, second = (a, b) if a > b else (b, a)
    return f"By the labels, {winner} is better: nDCG@{k} {first:.2f} vs {second:.2f} ({covered})."


def step_verdict(
    h2h: HeadToHead, votes: Tally | None = None, labels: Mapping[str, int] | None = None
) -> str:
    """One plain line for the step: the room's votes when there are any, else the labels
    of the step's query when some are relevant (nDCG of A vs B), else how far A and B
    agree on the top-N."""
    if votes is not None and votes.total:
        counts = f"A {votes.a_votes} · B {votes.b_votes} · ties {votes.ties}"
        if votes.verdict == "no clear preference":
            return f"The room has no clear preference ({counts}; p = {votes.p_value:.2g})."
        winner = "A" if votes.verdict.startswith("A") else "B"
        name = votes.a if winner == "A" else votes.b
        return f"The room prefers {winner} ({name}): {counts}; p = {votes.p_value:.2g}."
    if labels and (line := labels_verdict(h2h, labels)) is not None:
        return line
    n = h2h.num_results
    shared = round(h2h.agreement.overlap * n)
    a_top, b_top = h2h.a.result.top_final, h2h.b.result.top_final
    if not a_top or not b_top:
        return "No results to compare."
    if a_top[0].id == b_top[0].id:
        first = f"both put “{a_top[0].title}” first"
    else:
        first = f"A puts “{a_top[0].title}” first, B “{b_top[0].title}”"
    return f"A and B agree on {shared} of the top {n}; {first}."
