"""The room's verdicts: the Wilson share of non-tie votes and Bradley-Terry strengths
across steps (core/quality/stats.py, core/quality/blind.py) against values worked out by
hand, the summary CSV and report, and the per-step verdict line from votes, labels or
agreement (core/present/room.py)."""

from __future__ import annotations

import csv
import io
import math

import pytest

from core.data.documents import make_dataset
from core.present.report import blind_section
from core.present.room import labels_verdict, step_verdict
from core.quality.blind import make_vote, overall_tally, strengths, summary_csv, tally, votes_json
from core.quality.headtohead import RerankSpec, head_to_head
from core.quality.stats import bradley_terry, preference_share, wilson
from core.search.retrievers import make_retriever
from tests.conftest import FakeReranker

# --- Wilson -------------------------------------------------------------------------------


def test_wilson_interval_matches_the_hand_computed_one() -> None:
    # 13 of 21, z = 1.959964: centre (p + z²/2n) / (1 + z²/n) = 0.600637,
    # half z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n) = 0.191855
    low, high = wilson(13, 21)
    assert low == pytest.approx(0.408786, abs=1e-5) and high == pytest.approx(0.792490, abs=1e-5)
    assert wilson(0, 0) == (0.0, 1.0)
    low, high = wilson(10, 10)  # all successes: upper end 1, lower n / (n + z²)
    assert high == pytest.approx(1.0) and low == pytest.approx(10 / (10 + 1.959964**2))


def test_preference_share_is_told_from_the_side_with_more_votes() -> None:
    share = preference_share(13, 8, 3, a="CE", b="first stage")
    assert share.share == pytest.approx(13 / 21) and share.leader == "neither"
    assert share.sentence() == (
        "A (CE) preferred in 62% of non-tie votes (13 of 21), 95% CI [41%, 79%] (the "
        "interval includes 50%: no clear winner); 3 ties not counted."
    )
    flipped = preference_share(8, 13, 1, a="CE", b="first stage")
    assert flipped.sentence().startswith(
        "B (first stage) preferred in 62% of non-tie votes (13 of 21), 95% CI [41%, 79%]"
    )
    clear = preference_share(18, 2, 0)
    assert clear.leader == "A" and "no clear winner" not in clear.sentence()
    assert preference_share(0, 0, 2).sentence() == "No decisive votes yet (2 ties not counted)."


# --- Bradley-Terry --------------------------------------------------------------------------


def test_two_systems_have_the_closed_form_with_ties_as_half_wins() -> None:
    votes = [("A", "B", "first")] * 3 + [("A", "B", "second")] + [("B", "A", "tie")] * 2
    bt = bradley_terry(votes, prior=0.5)
    # A's wins 3 + 2 ties/2 + prior/2 = 4.25 of 6 + 0.5 comparisons
    assert bt.win_probability("A", "B") == pytest.approx(4.25 / 6.5, abs=1e-9)
    assert bt.scores[0] - bt.scores[1] == pytest.approx(math.log(4.25 / 2.25), abs=1e-9)
    # information on the difference n·p·(1-p) = 6.5 · 0.6538 · 0.3462 = 1.4712
    logit, half = math.log(4.25 / 2.25), 1.959964 / math.sqrt(1.471154)
    low, high = bt.win_interval("A", "B")
    assert low == pytest.approx(1 / (1 + math.exp(-(logit - half))), abs=1e-6)
    assert high == pytest.approx(1 / (1 + math.exp(-(logit + half))), abs=1e-6)
    assert bt.ranking()[0][0] == "A" and bt.comparisons == 6


def test_a_star_of_comparisons_keeps_each_pairs_own_odds() -> None:
    # X beat Y twice (never lost: the prior keeps it finite); X and Z split 1-1.
    votes = [("X", "Y", "first"), ("X", "Y", "first"), ("X", "Z", "first"), ("Z", "X", "first")]
    bt = bradley_terry(votes, prior=0.5)
    assert bt.win_probability("X", "Y") == pytest.approx(2.25 / 2.5, abs=1e-6)  # 0.9
    assert bt.win_probability("X", "Z") == pytest.approx(0.5, abs=1e-6)
    assert bt.win_probability("Z", "Y") == pytest.approx(0.9, abs=1e-6)  # through X
    assert sum(bt.scores) == pytest.approx(0.0, abs=1e-9)
    assert all(math.isfinite(s) for s in bt.scores)


def test_systems_never_linked_by_votes_are_not_compared() -> None:
    bt = bradley_terry([("A", "B", "first"), ("C", "D", "tie")])
    assert not bt.comparable("A", "C") and bt.comparable("C", "D")
    with pytest.raises(ValueError, match="never linked"):
        bt.win_probability("A", "D")
    assert bt.win_probability("C", "D") == pytest.approx(0.5)
    with pytest.raises(ValueError, match="itself"):
        bradley_terry([("A", "A", "tie")])


# --- votes across steps -----------------------------------------------------------------------


def _votes():
    """Step 1: CE vs first stage (CE 3, first stage 1, 1 tie); step 2: CE vs fused 0.5
    (CE 1, fused 2). Sides alternate, so left/right is mapped back to A/B."""
    out = []
    for i, (choice_for, step, b) in enumerate(
        [("A", 0, "first stage only")] * 3
        + [("B", 0, "first stage only"), ("tie", 0, "first stage only")]
        + [("A", 1, "fused 0.5"), ("B", 1, "fused 0.5"), ("B", 1, "fused 0.5")]
    ):
        a_left = i % 2 == 0
        choice = (
            "tie" if choice_for == "tie" else ("left" if (choice_for == "A") == a_left else "right")
        )
        out.append(
            make_vote(
                f"q{step}", choice, seed="s", a="CE", b=b, voter=f"v{i}", step=step, a_left=a_left
            )
        )
    return out


def test_overall_summary_counts_every_step_and_names_the_preferred_side() -> None:
    votes = _votes()
    whole = overall_tally(votes)
    assert (whole.a_votes, whole.b_votes, whole.ties) == (4, 3, 1)
    assert whole.preference.share == pytest.approx(4 / 7)
    text = whole.sentence()
    assert text.startswith("No clear preference beyond chance (A (CE) 4 · B (")
    assert ") 3 · ties 1; sign test p = 1" in text
    assert "A (CE) preferred in 57% of non-tie votes (4 of 7), 95% CI [25%, 84%]" in text
    bt = strengths(votes)
    assert bt.systems == ("CE", "first stage only", "fused 0.5")
    # a tree of comparisons: each pair keeps its own odds (CE 3.5+0.25 of 5.5 vs first stage)
    assert bt.win_probability("CE", "first stage only") == pytest.approx(3.75 / 5.5, abs=1e-6)
    assert bt.win_probability("CE", "fused 0.5") == pytest.approx(1.25 / 3.5, abs=1e-6)


def test_summary_csv_has_all_steps_each_step_and_each_system() -> None:
    text = summary_csv(_votes())
    assert text.count("\r\n") == 1 + 1 + 2 + 3 and "\n" not in text.replace("\r\n", "")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["kind"] for r in rows] == ["all steps", "step", "step", "system", "system", "system"]
    whole, step1 = rows[0], rows[1]
    assert (whole["a_votes"], whole["b_votes"], whole["ties"]) == ("4", "3", "1")
    assert float(whole["a_share_non_tie"]) == pytest.approx(4 / 7, abs=1e-4)
    assert float(step1["ci95_low"]) == pytest.approx(wilson(3, 4)[0], abs=1e-4)
    assert step1["b"] == "first stage only" and rows[2]["b"] == "fused 0.5"
    systems = {r["system"]: float(r["bt_score"]) for r in rows[3:]}
    assert max(systems, key=systems.get) in ("CE", "fused 0.5")
    assert not any(v.startswith(("=", "+", "@")) for r in rows for v in r.values() if v)


def test_two_system_summary_has_no_system_rows_and_json_carries_the_fit() -> None:
    votes = [make_vote("q", "left", seed="s", a="CE", b="BM25", voter="v", a_left=True)]
    assert [r["kind"] for r in csv.DictReader(io.StringIO(summary_csv(votes)))] == [
        "all steps",
        "step",
    ]
    import json

    payload = json.loads(votes_json(votes, "s"))
    assert payload["tally"]["a_share_non_tie"] == 1.0
    assert {s["system"] for s in payload["bradley_terry"]["systems"]} == {"CE", "BM25"}


def test_the_report_shows_the_share_and_the_systems() -> None:
    html = blind_section(_votes(), query_of_step=["q0", "q1"])
    assert "A (CE) preferred in 57% of non-tie votes (4 of 7)" in html
    assert "Bradley-Terry" in html and "fused 0.5" in html
    assert "75% [30%, 95%]" in html  # step 1: 3 of 4 non-tie votes, Wilson by hand


# --- the verdict line of a step ---------------------------------------------------------------


@pytest.fixture(scope="module")
def h2h():
    """Eight records, all retrieved; A ranks 7, 6, 5 first, B ranks 0, 1, 2 first."""
    records = [{"id": str(i), "title": f"film {i}", "overview": "bats"} for i in range(8)]
    data = make_dataset("tiny", records, id_field="id", title_field="title")
    retriever = make_retriever("bm25", data, ("title", "overview"))
    return head_to_head(
        data,
        "bats",
        retriever=retriever,
        a=RerankSpec("up"),
        b=RerankSpec("down"),
        reranker_a=FakeReranker({str(i): float(i) for i in range(8)}, name="up"),
        reranker_b=FakeReranker({str(i): float(-i) for i in range(8)}, name="down"),
        num_candidates=8,
        num_results=3,
    )


def test_the_labels_decide_a_step_without_votes(h2h) -> None:
    labels = {"7": 2, "1": 1, "0": 0}
    # A's top 3 (7, 6, 5): DCG 2/log2(2) = 2; ideal [2, 1]: 2 + 1/log2(3) = 2.6309 -> 0.76
    # B's top 3 (0, 1, 2): DCG 1/log2(3) = 0.6309 -> 0.24; labelled among the 6 shown: 7, 1, 0
    expected = (
        "By the labels, A is better: nDCG@3 0.76 vs 0.24 (3 of the 6 listed items are labelled)."
    )
    assert labels_verdict(h2h, labels) == expected
    assert step_verdict(h2h, None, labels) == expected
    assert step_verdict(h2h, None, {"0": 3}).startswith(
        "By the labels, B is better: nDCG@3 1.00 vs 0.00"
    )
    assert labels_verdict(h2h, {"7": 0}) is None  # nothing relevant: no verdict by labels
    assert step_verdict(h2h, None, {"7": 0}).startswith("A and B agree on 0 of the top 3")


def test_the_rooms_votes_come_before_the_labels(h2h) -> None:
    votes = [
        make_vote("bats", "left", seed="s", a="up", b="down", voter=f"v{i}", a_left=True)
        for i in range(6)
    ]
    line = step_verdict(h2h, tally(votes, "up", "down"), {"0": 3})
    assert line == "The room prefers A (up): A 6 · B 0 · ties 0; p = 0.031."
