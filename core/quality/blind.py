"""A blind test for the room: two unlabelled lists per query, one vote each.

In a room, which side shows A is drawn once per walkthrough step and kept in the state
store (:mod:`core.data.state_store`), the same for everyone; alone, it is drawn per
(session seed, query) from sha256 (:func:`a_is_left`). Votes are for *left*, *right* or
*tie*, and each vote carries its own step's A and B; the reveal maps them back to A and
B and tests the preference per step and across steps with an exact two-sided sign test
(ties dropped, as the sign test does), with a Wilson 95% interval on the preferred side's
share of the decisive (non-tie) votes (:func:`core.quality.stats.preference_share`); when
the steps compare more than two systems, :func:`strengths` fits Bradley-Terry strengths
to every vote (a tie is half a win for each side; :func:`core.quality.stats.bradley_terry`).

Exports: the votes as CSV (CRLF line ends, every cell formula-safe: a leading ``= + - @`` or tab/CR
is quoted with ``'``) and JSON, the summary (across steps, per step, per system) as
CSV (:func:`summary_csv`); :func:`pairwise_judgments` turns votes into query-level pairwise
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
from core.quality.stats import BradleyTerry, PreferenceShare, bradley_terry, preference_share

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

    @property
    def preference(self) -> PreferenceShare:
        """A's share of the decisive votes with its Wilson 95% interval (ties apart)."""
        return preference_share(self.a_votes, self.b_votes, self.ties, a=self.a, b=self.b)

    def sentence(self) -> str:
        """One plain sentence for the room: the verdict with the sign test, then the
        preferred side's share of the non-tie votes and its Wilson interval."""
        if self.verdict == "no clear preference":
            head = "No clear preference beyond chance"
        else:
            head = self.verdict  # the counts name both sides
        counts = f"A ({self.a}) {self.a_votes} · B ({self.b}) {self.b_votes} · ties {self.ties}"
        return (
            f"{head} ({counts}; sign test p = {self.p_value:.3g}, ties dropped). "
            f"{self.preference.sentence()}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the verdict."""
        return {
            **asdict(self),
            "total": self.total,
            "verdict": self.verdict,
            "a_share_non_tie": self.preference.share,
            "a_share_ci95": [self.preference.low, self.preference.high],
        }


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


def strengths(votes: Sequence[Vote]) -> BradleyTerry:
    """Bradley-Terry strengths of every system the votes compared (each vote is its own
    step's A against its own step's B; a tie is half a win each; votes on a step whose
    A and B are the same system are left out)."""
    outcome = {"A": "first", "B": "second", "tie": "tie"}
    return bradley_terry([(v.a, v.b, outcome[v.winner]) for v in votes if v.a != v.b])  # type: ignore[misc]


def strengths_rows(bt: BradleyTerry) -> list[dict[str, Any]]:
    """One row per system, strongest first: its Bradley-Terry score (log-strength, 0 is
    the average of its group), the score's 95% interval, and its chance of being
    preferred to the group's average system."""
    rows = []
    for system, score, half in bt.ranking():
        rows.append(
            {
                "system": system,
                "score": round(score, 3),
                "95% CI": f"{score - half:+.2f} to {score + half:+.2f}",
                "P(preferred to an average system)": f"{1 / (1 + math.exp(-score)):.0%}",
            }
        )
    return rows


SUMMARY_COLUMNS = (
    "kind",
    "step",
    "a",
    "b",
    "a_votes",
    "b_votes",
    "ties",
    "a_share_non_tie",
    "ci95_low",
    "ci95_high",
    "sign_test_p",
    "verdict",
    "system",
    "bt_score",
    "bt_ci95_low",
    "bt_ci95_high",
)


def summary_csv(votes: Sequence[Vote]) -> str:
    """The blind test's summary as CSV (CRLF, formula-safe): one ``all steps`` row and
    one row per step (A's share of the non-tie votes, its Wilson 95% interval, the sign
    test), then one ``system`` row per system with its Bradley-Terry score and interval
    when the steps compared more than two systems."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=SUMMARY_COLUMNS, lineterminator="\r\n")
    writer.writeheader()

    def tally_row(kind: str, step: object, t: Tally) -> dict[str, Any]:
        share = t.preference
        return {
            "kind": kind,
            "step": step,
            "a": t.a,
            "b": t.b,
            "a_votes": t.a_votes,
            "b_votes": t.b_votes,
            "ties": t.ties,
            "a_share_non_tie": "" if share.share is None else round(share.share, 4),
            "ci95_low": round(share.low, 4),
            "ci95_high": round(share.high, 4),
            "sign_test_p": float(f"{t.p_value:.4g}"),
            "verdict": t.verdict,
        }

    rows = [tally_row("all steps", "", overall_tally(votes))]
    rows += [tally_row("step", s + 1, t) for s, t in step_tallies(votes)]
    bt = strengths(votes)
    if len(bt.systems) > 2:
        for system, score, half in bt.ranking():
            rows.append(
                {
                    "kind": "system",
                    "system": system,
                    "bt_score": round(score, 4),
                    "bt_ci95_low": round(score - half, 4),
                    "bt_ci95_high": round(score + half, 4),
                }
            )
    for row in rows:
        writer.writerow({k: spreadsheet_safe(v) for k, v in row.items()})
    return out.getvalue()


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
        "bradley_terry": strengths(votes).to_dict(),
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
