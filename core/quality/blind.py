"""A blind test for the room: two unlabelled lists per query, one vote each.

In a room, which side shows A is drawn once per walkthrough step and kept in the state
store (:mod:`core.data.state_store`), the same for everyone; alone, it is drawn per
(session seed, query) from sha256 (:func:`a_is_left`). Votes are for *left*, *right* or
*tie*, and each vote carries its own step's A and B; the reveal maps them back to A and
B and tests the preference per step and across steps with an exact two-sided sign test
(ties dropped, as the sign test does), with a Wilson 95% interval on B's share of the
decisive votes.

Exports: CSV (CRLF line ends, every cell formula-safe: a leading ``= + - @`` or tab/CR
is quoted with ``'``) and JSON; :func:`pairwise_judgments` turns votes into query-level pairwise
preference judgments (``query, preferred, other, tie``) naming the systems.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from core.data.csvsafe import spreadsheet_safe
from core.models.errors import SettingsError

Choice = Literal["left", "right", "tie"]
CHOICES: tuple[Choice, ...] = ("left", "right", "tie")


def a_is_left(seed: str, query: str) -> bool:
    """Whether A is shown on the left for ``query`` in the session with ``seed``."""
    digest = hashlib.sha256(f"{seed}\0{query}".encode()).digest()
    return digest[0] % 2 == 0


@dataclass(frozen=True)
class Vote:
    """One vote: who picked which side for which query, and what the sides were."""

    query: str
    choice: Choice
    a_left: bool
    a: str
    b: str
    voter: str = ""
    step: int = 0

    @property
    def winner(self) -> Literal["A", "B", "tie"]:
        """The system the vote prefers (A or B), or ``"tie"``."""
        if self.choice == "tie":
            return "tie"
        return "A" if (self.choice == "left") == self.a_left else "B"


def make_vote(
    query: str,
    choice: str,
    *,
    seed: str,
    a: str,
    b: str,
    voter: str = "",
    step: int = 0,
    a_left: bool | None = None,
) -> Vote:
    """A vote for ``choice`` (left/right/tie) on ``query``; :class:`SettingsError` else.
    ``a_left`` is the room's stored side when there is one, else drawn from ``seed``."""
    if choice not in CHOICES:
        raise SettingsError(f"a vote is left, right or tie, not {choice!r}")
    left = a_is_left(seed, query) if a_left is None else a_left
    return Vote(query, choice, left, a, b, voter, step)  # type: ignore[arg-type]


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided sign test p-value for ``wins`` vs ``losses`` (ties excluded)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion (0, 1 when ``n`` is 0)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Tally:
    """Votes counted after the reveal: A, B and ties, the sign test and a verdict."""

    a: str
    b: str
    a_votes: int
    b_votes: int
    ties: int
    p_value: float
    b_share_low: float
    b_share_high: float

    @property
    def total(self) -> int:
        """All votes, ties included."""
        return self.a_votes + self.b_votes + self.ties

    @property
    def verdict(self) -> str:
        """``"A preferred"``, ``"B preferred"`` or ``"no clear preference"`` (p >= 0.05)."""
        if self.p_value < 0.05 and self.a_votes != self.b_votes:
            return "A preferred" if self.a_votes > self.b_votes else "B preferred"
        return "no clear preference"

    def sentence(self) -> str:
        """One plain sentence for the room."""
        decisive = self.a_votes + self.b_votes
        counts = f"A ({self.a}) {self.a_votes} · B ({self.b}) {self.b_votes} · ties {self.ties}"
        share = (
            f"B's share of decisive votes 95% CI {self.b_share_low:.0%}–{self.b_share_high:.0%}"
            if decisive
            else "no decisive votes"
        )
        if self.verdict == "no clear preference":
            head = "No clear preference beyond chance"
        else:
            head = self.verdict.replace("A", f"A ({self.a})", 1).replace("B", f"B ({self.b})", 1)
        return f"{head}: {counts}; sign test p = {self.p_value:.3g}; {share}."

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the verdict."""
        return {**asdict(self), "total": self.total, "verdict": self.verdict}


def tally(votes: Sequence[Vote], a: str, b: str) -> Tally:
    """Count ``votes`` for A, B and ties; sign test and Wilson interval on B's share."""
    a_votes = sum(v.winner == "A" for v in votes)
    b_votes = sum(v.winner == "B" for v in votes)
    ties = sum(v.winner == "tie" for v in votes)
    low, high = wilson_interval(b_votes, a_votes + b_votes)
    return Tally(a, b, a_votes, b_votes, ties, sign_test(a_votes, b_votes), low, high)


def step_tallies(votes: Sequence[Vote]) -> list[tuple[int, Tally]]:
    """One tally per step (0-based, in order), each with that step's own A and B."""
    steps: dict[int, list[Vote]] = {}
    for v in votes:
        steps.setdefault(v.step, []).append(v)
    return [(s, tally(vs, vs[0].a, vs[0].b)) for s, vs in sorted(steps.items())]


def overall_tally(votes: Sequence[Vote]) -> Tally:
    """Every vote across steps, A against B; the systems are named when every step
    compares the same two, else "each step's A" / "each step's B"."""
    a_names = {v.a for v in votes}
    b_names = {v.b for v in votes}
    a = a_names.pop() if len(a_names) == 1 else "each step's A"
    b = b_names.pop() if len(b_names) == 1 else "each step's B"
    return tally(votes, a, b)


VOTE_COLUMNS = ("step", "query", "voter", "choice", "left", "right", "winner", "a", "b")


def votes_csv(votes: Sequence[Vote]) -> str:
    """Votes as CSV (header first), formula-safe, with which system was on which side."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=VOTE_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for v in votes:
        row = {
            "step": v.step + 1,
            "query": v.query,
            "voter": v.voter,
            "choice": v.choice,
            "left": "A" if v.a_left else "B",
            "right": "B" if v.a_left else "A",
            "winner": v.winner,
            "a": v.a,
            "b": v.b,
        }
        writer.writerow({k: spreadsheet_safe(val) for k, val in row.items()})
    return out.getvalue()


def votes_json(votes: Sequence[Vote], seed: str) -> str:
    """Votes, the seed that placed the sides, and the tallies (across steps and per
    step, each step with its own A and B), as JSON."""
    payload = {
        "seed": seed,
        "votes": [{**asdict(v), "winner": v.winner} for v in votes],
        "tally": overall_tally(votes).to_dict(),
        "steps": [{"step": s + 1, **t.to_dict()} for s, t in step_tallies(votes)],
    }
    return json.dumps(payload, indent=2, ensure_ascii=False)


@dataclass(frozen=True)
class PairwiseJudgment:
    """A query-level preference: ``preferred`` beat ``other`` (or a tie between them)."""

    query: str
    preferred: str
    other: str
    tie: bool
    voter: str = ""


def pairwise_judgments(votes: Sequence[Vote]) -> list[PairwiseJudgment]:
    """Votes as pairwise preference judgments between the two named systems."""
    out = []
    for v in votes:
        if v.winner == "tie":
            out.append(PairwiseJudgment(v.query, v.a, v.b, True, v.voter))
        elif v.winner == "A":
            out.append(PairwiseJudgment(v.query, v.a, v.b, False, v.voter))
        else:
            out.append(PairwiseJudgment(v.query, v.b, v.a, False, v.voter))
    return out


def pairwise_csv(votes: Sequence[Vote]) -> str:
    """:func:`pairwise_judgments` as CSV ``query,preferred,other,tie,voter``, formula-safe."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["query", "preferred", "other", "tie", "voter"])
    for j in pairwise_judgments(votes):
        writer.writerow(
            [spreadsheet_safe(x) for x in (j.query, j.preferred, j.other, j.tie, j.voter)]
        )
    return out.getvalue()
