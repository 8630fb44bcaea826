"""The room's words and links: the share URLs, a plain verdict line per step, the
up/down marks, and the wording for datasets smaller than the candidate count.

Pure functions (no Streamlit): the Walkthrough and Head to head pages and the HTML
report share them.
"""

from __future__ import annotations

import os
from urllib.parse import urlencode, urlsplit

from core.quality.blind import Tally
from core.quality.headtohead import HeadToHead

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


def step_verdict(h2h: HeadToHead, votes: Tally | None = None) -> str:
    """One plain line for the step: the room's votes when there are any, else how far A
    and B agree on the top-N."""
    if votes is not None and votes.total:
        counts = f"A {votes.a_votes} · B {votes.b_votes} · ties {votes.ties}"
        if votes.verdict == "no clear preference":
            return f"The room has no clear preference ({counts}; p = {votes.p_value:.2g})."
        winner = "A" if votes.verdict.startswith("A") else "B"
        name = votes.a if winner == "A" else votes.b
        return f"The room prefers {winner} ({name}): {counts}; p = {votes.p_value:.2g}."
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
