"""Walkthrough page: step through saved views (next / previous, large readable lists),
run a blind test for the room, and export the whole walkthrough as one HTML report."""

from __future__ import annotations

import secrets

import streamlit as st

from core.models.errors import CoreError
from core.present.report import walkthrough_report
from core.present.views import escape_markdown, outside_text
from core.present.walkthrough import Walkthrough, WalkthroughStore, parse_walkthrough
from core.quality.blind import make_vote, pairwise_csv, tally, votes_csv, votes_json
from pages.widgets.actions import action_button, running_action
from pages.widgets.h2h_panel import (
    run_head_to_head,
    show_blind,
    show_charts,
    show_figures,
    show_large,
)

state = st.session_state

# --- which walkthrough: the link, else the one being built ---------------------------------
link_id = st.query_params.get("walkthrough")
if link_id and state.get("wt_open_id") != link_id:
    try:
        state.wt_open = WalkthroughStore().get(link_id)
        state.wt_open_id = link_id
        state.wt_step = 0
        state.pop("blind_votes", None)
        state.pop("blind_revealed", None)
    except CoreError as exc:
        st.error(outside_text(exc), icon="🚫")
        state.pop("wt_open", None)
        state.wt_open_id = link_id
walkthrough: Walkthrough | None = state.get("wt_open") if link_id else None
if walkthrough is None and state.get("wt_draft") is not None and state.wt_draft.steps:
    walkthrough = state.wt_draft

if walkthrough is None:
    st.title("Walkthrough")
    st.info(
        "Build one on the **Head to head** page (*Add this view as a step*, then *Save and "
        "share*), open a shared link, or import a walkthrough JSON here."
    )
    imported = st.file_uploader("Import walkthrough (JSON)", type=["json"], key="wt_page_import")
    if imported is not None:
        try:
            state.wt_draft = parse_walkthrough(imported.getvalue())
            st.rerun()
        except CoreError as exc:
            st.error(outside_text(exc), icon="🚫")
    st.stop()

steps = walkthrough.steps
total = len(steps)
index = min(max(int(state.get("wt_step", 0)), 0), total - 1)
state.wt_step = index


def _go(offset: int) -> None:
    state.wt_step = min(max(state.wt_step + offset, 0), total - 1)


def cast_vote(query: str, choice: str, a_label: str, b_label: str) -> None:
    """Record a vote on the lists shown for ``query``. A callback, so the vote is kept
    even when the next click interrupts the run before the buttons are drawn again."""
    voter = state.get("blind_voter", "")
    seed = state.setdefault("blind_seed", secrets.token_hex(8))
    state.setdefault("blind_votes", {})[(voter, query)] = make_vote(
        query, choice, seed=seed, a=a_label, b=b_label, voter=voter
    )
    state.pop("wt_report", None)  # a prepared report no longer has every vote


st.title(outside_text(walkthrough.title))
nav = st.columns([1, 1, 3, 2])
nav[0].button("◀ Previous", on_click=_go, args=(-1,), disabled=index == 0, width="stretch")
nav[1].button("Next ▶", on_click=_go, args=(1,), disabled=index >= total - 1, width="stretch")
nav[2].progress((index + 1) / total, text=f"Step {index + 1} of {total}")
blind = nav[3].toggle(
    "Blind test",
    key="blind_mode",
    help="Shows the two lists unlabelled, in a random left/right order per query; vote, "
    "then reveal which was which.",
)

step = steps[index]
settings = step.settings
b = step.b_spec
for warning in step.warnings:
    st.warning(f"Step setting ignored: {outside_text(warning)}", icon="⚠️")
st.markdown(f"## “{escape_markdown(settings.query)}”")
if step.note.strip():
    st.info(escape_markdown(step.note))  # notes are user text: shown literally
try:
    h2h = run_head_to_head(settings, b)
except CoreError as exc:
    st.error(outside_text(exc), icon="🚫")
    st.stop()

votes: dict = state.setdefault("blind_votes", {})
seed = state.setdefault("blind_seed", secrets.token_hex(8))
if blind:
    a_label, b_label = h2h.a.spec.label, h2h.b.spec.label
    voter = st.text_input("Your name (optional, for several voters)", key="blind_voter")
    show_blind(h2h, seed, revealed=bool(state.get("blind_revealed")))
    current = votes.get((voter, h2h.query))
    v1, v2, v3 = st.columns(3)
    for col, choice, text in (
        (v1, "left", "Left is better"),
        (v2, "tie", "Tie"),
        (v3, "right", "Right is better"),
    ):
        col.button(
            text,
            key=f"vote_{choice}",
            type="primary" if current is not None and current.choice == choice else "secondary",
            width="stretch",
            on_click=cast_vote,
            args=(h2h.query, choice, a_label, b_label),
        )
    st.caption(
        f"{len(votes)} vote(s) so far"
        + (f"; this query: {current.choice}" if current is not None else "")
        + ". The reveal shows which list was which."
    )
    st.button(
        "Reveal",
        key="blind_reveal",
        disabled=not votes,
        on_click=lambda: state.update(blind_revealed=True),
    )
    if state.get("blind_revealed") and votes:
        all_votes = list(votes.values())
        result = tally(all_votes, all_votes[0].a, all_votes[0].b)
        box = st.info if result.verdict == "no clear preference" else st.success
        box(escape_markdown(result.sentence()))
        st.dataframe(
            [
                {
                    "query": v.query,
                    "voter": v.voter,
                    "vote": v.choice,
                    "left was": "A" if v.a_left else "B",
                    "right was": "B" if v.a_left else "A",
                    "preferred": v.winner,
                }
                for v in all_votes
            ],
            hide_index=True,
            key="blind_table",
        )
        e1, e2, e3 = st.columns(3)
        e1.download_button(
            "Votes (CSV)", votes_csv(all_votes), "blind-votes.csv", "text/csv", on_click="ignore"
        )
        e2.download_button(
            "Votes (JSON)",
            votes_json(all_votes, seed),
            "blind-votes.json",
            "application/json",
            on_click="ignore",
        )
        e3.download_button(
            "Pairwise judgments (CSV)",
            pairwise_csv(all_votes),
            "pairwise-judgments.csv",
            "text/csv",
            on_click="ignore",
        )
else:
    show_figures(h2h)
    show_large(h2h)
    show_charts(h2h)

# --- report ---------------------------------------------------------------------------------
st.divider()
if action_button("Prepare the report of the whole walkthrough (HTML)", "wt_report_build"):
    with running_action("wt_report_build"):
        built = []
        bar = st.progress(0.0, text="Running every step…")
        try:
            for number, s in enumerate(steps, start=1):
                built.append((run_head_to_head(s.settings, s.b_spec), s.note))
                bar.progress(number / total, text=f"Step {number} of {total}")
        except CoreError as exc:
            st.error(f"Step {len(built) + 1}: {outside_text(exc)}", icon="🚫")
            st.stop()
        bar.empty()
        revealed = state.get("blind_revealed") and votes
        all_votes = list(votes.values()) if revealed else []
        state.wt_report = walkthrough_report(
            walkthrough.title,
            built,
            tally(all_votes, all_votes[0].a, all_votes[0].b) if all_votes else None,
            [
                (
                    v.query,
                    "A | B" if v.a_left else "B | A",
                    v.choice + (f" ({v.voter})" if v.voter else ""),
                )
                for v in all_votes
            ],
        )
if state.get("wt_report"):
    st.download_button(
        "Download report (HTML)",
        state.wt_report,
        "walkthrough-report.html",
        "text/html",
        on_click="ignore",
        key="wt_report_download",
        type="primary",
    )
st.download_button(
    "Export walkthrough (JSON)",
    walkthrough.to_json(),
    "walkthrough.json",
    "application/json",
    on_click="ignore",
    key="wt_export",
)


# Last, not first: a rerun before the script has drawn would drop a pressed button.
if __name__ == "__main__":  # a deep link on a fresh plain server (serve.py)
    from serve import ensure_navigation

    ensure_navigation()
