"""Walkthrough page: step through saved views (next / previous, large readable lists),
run a blind test, and export the whole walkthrough as one HTML report.

With ``?room=<id>`` the page is one seat in a room (the presenter's link adds the secret
``presenter=`` token): the room's step, blind test, voting and reveal live in the shared
state store, so the presenter moves everyone, votes from every page are counted live, and
nothing is lost on a restart. Without a room it is a private run-through (own step,
own votes), with the same left/right sides as the room."""

from __future__ import annotations

import secrets

import streamlit as st

from core.data.state_store import open_store
from core.models.errors import CoreError
from core.present.report import walkthrough_report
from core.present.room import step_verdict
from core.present.views import error_text, escape_markdown, outside_text
from core.present.walkthrough import Walkthrough, WalkthroughStore, parse_walkthrough
from core.quality.blind import make_vote, step_tallies
from pages.widgets.actions import action_button, running_action
from pages.widgets.h2h_explain import pinned_explanation, pinned_shown
from pages.widgets.h2h_panel import run_head_to_head, show_charts, show_figures
from pages.widgets.reproduce_panel import walkthrough_drift_warning
from pages.widgets.room_lists import show_blind, show_large
from pages.widgets.room_panel import (
    VOTE_BUTTONS,
    as_votes,
    change_room,
    live_room,
    presenter_controls,
    step_head_to_head,
    sure_button,
    take_seat,
)
from pages.widgets.room_tally import show_tally, step_labels

state = st.session_state
store = open_store()

# --- which walkthrough: a room, a link, else the one being built ---------------------------
seat = None
link_id = st.query_params.get("walkthrough")
if room_id := st.query_params.get("room"):
    try:
        seat = take_seat(store, room_id)
        link_id = seat.room.walkthrough_id
    except CoreError as exc:
        st.error(error_text(exc), icon="🚫")
        st.stop()
if link_id and state.get("wt_open_id") != link_id:
    try:
        state.wt_open = WalkthroughStore().get(link_id)
        state.wt_open_id = link_id
        state.wt_step = 0
        state.pop("blind_votes", None)
        state.pop("blind_revealed", None)
    except CoreError as exc:
        st.error(error_text(exc), icon="🚫")
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
            st.error(error_text(exc), icon="🚫")
    st.stop()

steps = walkthrough.steps
total = len(steps)
walkthrough_drift_warning(steps)  # one line naming the steps made on other data or models


def _go(offset: int) -> None:
    state.wt_step = min(max(state.get("wt_step", 0) + offset, 0), total - 1)


def cast_vote(query: str, choice: str, a_label: str, b_label: str, step: int, a_left: bool):
    """Record a private vote (a callback, so the next click cannot drop it)."""
    voter = state.get("blind_voter", "")
    seed = state.setdefault("blind_seed", secrets.token_hex(8))
    state.setdefault("blind_votes", {})[(voter, step)] = make_vote(
        query, choice, seed=seed, a=a_label, b=b_label, voter=voter, step=step, a_left=a_left
    )
    state.pop("wt_report", None)  # a prepared report no longer has every vote


st.title(outside_text(walkthrough.title))
if error := state.pop("room_error", None):
    st.error(outside_text(error), icon="🚫")
following = True
if seat is not None and seat.presenter:
    presenter_controls(seat, total)
    index = min(seat.room.step, total - 1)
    blind, revealed = seat.room.blind, seat.room.revealed
else:
    if seat is not None:
        following = st.toggle("Follow the presenter", value=True, key="wt_follow")
        blind, revealed = seat.room.blind, seat.room.revealed
    if seat is None or not following:
        index = min(max(int(state.get("wt_step", 0)), 0), total - 1)
        state.wt_step = index
    else:
        index = min(seat.room.step, total - 1)
    nav = st.columns([1, 1, 3, 2])
    own = seat is None or not following
    nav[0].button("◀ Previous", on_click=_go, args=(-1,), disabled=not own or index == 0)
    nav[1].button("Next ▶", on_click=_go, args=(1,), disabled=not own or index >= total - 1)
    nav[2].progress((index + 1) / total, text=f"Step {index + 1} of {total}")
    if seat is None:
        blind = nav[3].toggle(
            "Blind test",
            key="blind_mode",
            help="Shows the two lists unlabelled, left/right fixed per step; vote, then "
            "reveal which was which.",
        )
        revealed = bool(state.get("blind_revealed"))

step = steps[index]
settings = step.settings
for warning in step.warnings:
    st.warning(f"Step setting ignored: {outside_text(warning)}", icon="⚠️")
st.markdown(f"## “{escape_markdown(settings.query)}”")
if step.note.strip() and not (blind and not revealed):  # a note could give the answer away
    st.info(escape_markdown(step.note))  # notes are user text: shown literally
try:
    h2h = step_head_to_head(settings, step.b_spec)  # one page at a time per step
except CoreError as exc:
    st.error(error_text(exc), icon="🚫")
    st.stop()
a_label, b_label = h2h.a.spec.label, h2h.b.spec.label
a_left = store.a_is_left(walkthrough.id, index)

if seat is not None:
    votes = as_votes(store.votes(seat.room.id)) if revealed else []
else:
    private = state.setdefault("blind_votes", {})
    votes = list(private.values()) if revealed else []
step_votes = dict(step_tallies(votes)).get(index)
if not blind or revealed:
    labels = step_labels(settings.dataset, settings.query)  # rated on the Search page
    st.success(escape_markdown(step_verdict(h2h, step_votes, labels)))

if blind:
    show_blind(h2h, a_left, revealed=revealed)
    if seat is not None:
        if not revealed:
            live_room(seat, index, (h2h.query, a_label, b_label))
        else:
            live_room(seat, index)
        if seat.presenter and not revealed:
            sure_button(
                st,
                "Reveal",
                "blind_reveal",
                lambda: change_room(seat.room.id, seat.token, revealed=True, voting_open=False),
                type="primary",
            )
        elif not revealed:
            st.caption("The presenter reveals which list was which.")
    else:
        voter = st.text_input("Your name (optional, for several voters)", key="blind_voter")
        current = state.blind_votes.get((voter, index))
        cols = st.columns(3)
        for col, (choice, text) in zip(cols, VOTE_BUTTONS, strict=True):
            col.button(
                text,
                key=f"vote_{choice}",
                type="primary" if current is not None and current.choice == choice else "secondary",
                width="stretch",
                on_click=cast_vote,
                args=(h2h.query, choice, a_label, b_label, index, a_left),
            )
        st.caption(f"{len(state.blind_votes)} vote(s) so far. The reveal shows which was which.")
        st.button(
            "Reveal",
            key="blind_reveal",
            disabled=not state.blind_votes,
            on_click=lambda: state.update(blind_revealed=True),
        )
    if revealed:
        show_tally(votes, state.get("blind_seed", "room"))
else:
    if seat is not None:
        live_room(seat, index)
    show_figures(h2h)
    show_large(h2h)
    pinned_explanation(step, h2h)  # the presenter's pinned "why", if the step has one
    show_charts(h2h)

# --- report ---------------------------------------------------------------------------------
st.divider()
if action_button("Prepare the report of the whole walkthrough (HTML)", "wt_report_build"):
    with running_action("wt_report_build"):
        built, pinned = [], {}
        bar = st.progress(0.0, text="Running every step…")
        try:
            for number, s in enumerate(steps, start=1):
                built.append((run_head_to_head(s.settings, s.b_spec), s.note))
                pinned[number - 1] = pinned_shown(s, built[-1][0])
                bar.progress(number / total, text=f"Step {number} of {total}")
        except CoreError as exc:
            st.error(f"Step {len(built) + 1}: {error_text(exc)}", icon="🚫")
            st.stop()
        bar.empty()
        labels = {i: step_labels(s.settings.dataset, s.query) for i, s in enumerate(steps)}
        state.wt_report = walkthrough_report(walkthrough.title, built, votes, pinned, labels)
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
