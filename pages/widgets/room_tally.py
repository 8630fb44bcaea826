"""The room's reveal (the tally across steps and per step, Bradley-Terry strengths when
the steps compared more than two systems, the exports) and the labels a step's verdict
line can use."""

from __future__ import annotations

import streamlit as st

from core.present.views import escape_markdown
from core.quality.blind import (
    Vote,
    overall_tally,
    pairwise_csv,
    step_tallies,
    strengths,
    strengths_rows,
    summary_csv,
    votes_csv,
    votes_json,
)


def step_labels(dataset: str, query: str) -> dict[str, int]:
    """The labels rated on the Search page in this session for ``query`` on ``dataset``
    (document id -> grade; empty when there are none)."""
    rated = st.session_state.get("judgments", {}).get(dataset, {}).get(query, {})
    return {doc: int(g) for doc, g in rated.items() if g is not None}


def show_tally(votes: list[Vote], seed: str = "room") -> None:
    """The reveal: across steps (sign test, and the preferred side's share of the
    non-tie votes with its Wilson interval), Bradley-Terry strengths when the steps
    compared more than two systems, then per step, with the exports."""
    if not votes:
        st.info("No votes were cast.")
        return
    whole = overall_tally(votes)
    box = st.info if whole.verdict == "no clear preference" else st.success
    box(escape_markdown("Across steps: " + whole.sentence()))
    bt = strengths(votes)
    if len(bt.systems) > 2:
        st.caption(
            "Bradley-Terry strengths from every vote (a tie is half a win each; 0 is the "
            "average system):"
        )
        st.dataframe(strengths_rows(bt), hide_index=True, key="blind_bt_table")
    st.dataframe(
        [
            {
                "step": s + 1,
                "A": t.a,
                "B": t.b,
                "A votes": t.a_votes,
                "B votes": t.b_votes,
                "ties": t.ties,
                "sign test p": round(t.p_value, 3),
                "A share of non-tie votes (95% CI)": (
                    "–"
                    if t.preference.share is None
                    else f"{t.preference.share:.0%} ({t.preference.low:.0%}–"
                    f"{t.preference.high:.0%})"
                ),
            }
            for s, t in step_tallies(votes)
        ],
        hide_index=True,
        key="blind_steps_table",
    )
    e1, e2, e3, e4 = st.columns(4)
    e1.download_button(
        "Votes (CSV)", votes_csv(votes), "blind-votes.csv", "text/csv", on_click="ignore"
    )
    e2.download_button(
        "Summary (CSV)", summary_csv(votes), "blind-summary.csv", "text/csv", on_click="ignore"
    )
    e3.download_button(
        "Votes (JSON)",
        votes_json(votes, seed),
        "blind-votes.json",
        "application/json",
        on_click="ignore",
    )
    e4.download_button(
        "Pairwise judgments (CSV)",
        pairwise_csv(votes),
        "pairwise-judgments.csv",
        "text/csv",
        on_click="ignore",
    )
