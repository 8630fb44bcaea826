"""A walkthrough presented to a room: the presenter's controls (step, blind test, voting,
reveal), the viewers' votes, and the live count, all through the shared state store
(:mod:`core.data.state_store`), so every page, every replica and every restart agrees.

Every change is a button callback that reads the room from the store before writing
(a click after a reconnect moves from where the room is, not from a stale page). The
live parts are fragments: the presenter's count re-reads the store every second and
changes in place, a viewer's page checks every 3 s whether the room changed (step, blind,
reveal: the page reruns), and a vote reruns only the vote buttons.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass

import streamlit as st

from core.data.state_store import Room, StateStore, StoredVote, open_store
from core.models.errors import CoreError
from core.present.views import SearchSettings, error_text
from core.quality.blind import Vote
from core.quality.headtohead import HeadToHead, RerankSpec
from pages.widgets.h2h_panel import run_head_to_head

_STEP_LOCKS: dict = {}
_STEP_LOCKS_GUARD = threading.Lock()


def step_head_to_head(settings: SearchSettings, b: RerankSpec) -> HeadToHead:
    """The step's head-to-head (:func:`run_head_to_head`), computed by one page at a time
    per step across the server: when the presenter moves the room, every page asks for
    the same step at once; the first scores the candidates and the others then find the
    scores in the model's cache, instead of 17 pages scoring the same pairs side by side
    (which took minutes on a loaded 2-core machine). Raises CoreError."""
    with _STEP_LOCKS_GUARD:
        lock = _STEP_LOCKS.setdefault((settings, b), threading.Lock())
    with lock:
        return run_head_to_head(settings, b)


VOTE_BUTTONS = (("left", "Left is better"), ("tie", "Tie"), ("right", "Right is better"))


@dataclass(frozen=True)
class Seat:
    """Who this page is in the room: the presenter (with the token) or a viewer."""

    room: Room
    token: str | None
    presenter: bool
    voter: str


def take_seat(store: StateStore, room_id: str) -> Seat:
    """The room from the link and this page's role; the voter id lives in the URL
    (``voter=``), so a page reconnecting after a restart keeps its vote. Raises
    CoreError for an unknown room."""
    room = store.get_room(room_id)
    token = st.query_params.get("presenter")
    presenter = store.is_presenter(room_id, token)
    if token and not presenter:
        st.warning("This presenter key is not this room's: you are a viewer.", icon="⚠️")
    voter = st.query_params.get("voter") or ""
    if not (voter.isalnum() and len(voter) <= 32):
        voter = secrets.token_hex(6)
        st.query_params["voter"] = voter
    return Seat(room, token if presenter else None, presenter, voter)


def change_room(room_id: str, token: str | None, **changes) -> None:
    """Change the room as its presenter (a callback; a refusal is shown on the page)."""
    try:
        open_store().update_room(room_id, token, **changes)
    except CoreError as exc:
        st.session_state.room_error = str(exc)


def _move(room_id: str, token: str | None, offset: int, total: int) -> None:
    """Move the room from the step the store holds (never a stale page's step)."""
    try:
        now = open_store().get_room(room_id).step
        open_store().update_room(room_id, token, step=min(max(now + offset, 0), total - 1))
    except CoreError as exc:
        st.session_state.room_error = str(exc)


def sure_button(where, label: str, key: str, action, *args, **kwargs) -> None:
    """A button whose ``action(*args)`` runs exactly once per click: in its callback
    (before the page body, so a fast next click cannot drop it), or, when the callback
    is unknown because the page reconnected to a new session after a server restart
    (Streamlit only knows a widget's callback from an earlier run of the same session),
    in the body, followed by a rerun."""
    flag = f"sure_button_done::{key}"

    def callback() -> None:
        st.session_state[flag] = True
        action(*args)

    pressed = where.button(label, key=key, on_click=callback, **kwargs)
    done = st.session_state.pop(flag, False)
    if pressed and not done:
        action(*args)
        st.rerun()


def presenter_controls(seat: Seat, total: int) -> None:
    """Previous / Next for the room, blind test and voting switches (buttons: a click
    is a change the store applies to the room as it is now)."""
    room, token = seat.room, seat.token
    nav = st.columns([1, 1, 3, 1.3, 1.3])
    sure_button(
        nav[0],
        "◀ Previous",
        "room_prev",
        _move,
        room.id,
        token,
        -1,
        total,
        disabled=room.step == 0,
        width="stretch",
    )
    sure_button(
        nav[1],
        "Next ▶",
        "room_next",
        _move,
        room.id,
        token,
        1,
        total,
        disabled=room.step >= total - 1,
        width="stretch",
    )
    nav[2].progress((room.step + 1) / total, text=f"Step {room.step + 1} of {total} (the room)")
    blind = not room.blind

    def set_blind() -> None:
        change_room(room.id, token, blind=blind)

    def set_voting() -> None:
        change_room(room.id, token, voting_open=not room.voting_open)

    sure_button(
        nav[3],
        "Start the blind test" if blind else "End the blind test",
        "room_blind",
        set_blind,
        help="Every page in the room shows the two lists unlabelled, left/right fixed per "
        "step; viewers vote.",
        width="stretch",
    )
    sure_button(
        nav[4],
        "Close voting" if room.voting_open else "Open voting",
        "room_voting",
        set_voting,
        disabled=room.revealed,
        width="stretch",
    )


def vote_buttons(seat: Seat, step: int, query: str, a_label: str, b_label: str) -> None:
    """Left / tie / right, written to the store at once (one vote per voter and step;
    a second click changes it)."""
    store = open_store()
    mine = store.vote_of(seat.room.id, step, seat.voter)

    def cast(choice: str) -> None:
        try:
            store.cast_vote(
                seat.room.id,
                step,
                seat.voter,
                choice,
                query=query,
                a_label=a_label,
                b_label=b_label,
                name=st.session_state.get("room_name", ""),
            )
        except CoreError as exc:
            st.session_state.room_error = str(exc)

    st.text_input("Your name (optional)", key="room_name", max_chars=60)
    cols = st.columns(3)
    for col, (choice, text) in zip(cols, VOTE_BUTTONS, strict=True):
        sure_button(
            col,
            text,
            f"vote_{choice}",
            cast,
            choice,
            type="primary" if mine is not None and mine.choice == choice else "secondary",
            width="stretch",
            disabled=not seat.room.voting_open,
        )
    if error := st.session_state.pop("room_error", None):
        st.error(error_text(error), icon="🚫")
    if not seat.room.voting_open:
        st.caption("Voting is closed.")
    elif mine is not None:
        st.caption(f"Your vote on this step: {mine.choice} (click another to change it).")


# How often a page re-reads the room. The presenter's page shows the live count, so it
# looks every second; a viewer's page only needs to notice that the presenter moved the
# room (step, blind test, voting, reveal), so it looks every 3 s with one small query and
# draws nothing. Votes are in a fragment of their own without a timer: a click reruns
# just the buttons. (With 16 viewers this is 5 room reads a second, not 11 runs of a
# fragment with three queries and a dozen elements each; see core/ops/roombench.py.)
PRESENTER_REFRESH_S = 1.0
VIEWER_REFRESH_S = 3.0


def live_room(seat: Seat, step: int, ballot: tuple[str, str, str] | None = None) -> None:
    """The room's live part: (``ballot``: the step's query, A and B) the vote buttons,
    where a vote reruns only them; on the presenter's page the live count, re-read every
    second; on a viewer's page a check every 3 s that reruns the page when the room
    changed."""
    if ballot is not None:
        ballot_box(seat, step, ballot)
    if seat.presenter:
        presenter_count(seat, step)
    else:
        follow_room(seat)


@st.fragment
def ballot_box(seat: Seat, step: int, ballot: tuple[str, str, str]) -> None:
    """The vote buttons as a fragment: a vote writes the store and reruns only this."""
    vote_buttons(seat, step, *ballot)


def _room_now(seat: Seat) -> Room | None:
    """The room as stored (None, with a line saying so, while the store is unreachable);
    a room changed by the presenter reruns the whole page."""
    try:
        room = open_store().get_room(seat.room.id)
    except CoreError as exc:
        st.caption(f"Reconnecting to the room… ({error_text(exc)})")
        return None
    if room.version != seat.room.version:
        st.rerun(scope="app")
    return room


@st.fragment(run_every=PRESENTER_REFRESH_S)
def presenter_count(seat: Seat, step: int) -> None:
    """The presenter's live count, re-read from the store every second."""
    room = _room_now(seat)
    if room is None:
        return
    try:
        counts = open_store().counts(room.id)
    except CoreError as exc:
        st.caption(f"Reconnecting to the room… ({error_text(exc)})")
        return
    here, total = counts.get(step, 0), sum(counts.values())
    c1, c2, c3 = st.columns(3)
    c1.metric("Votes on this step", here)
    c2.metric("Votes, all steps", total)
    c3.metric("Voting", "open" if room.voting_open and not room.revealed else "closed")


@st.fragment(run_every=VIEWER_REFRESH_S)
def follow_room(seat: Seat) -> None:
    """A viewer's page follows the room: one read every 3 s, nothing drawn."""
    _room_now(seat)


def as_votes(stored: list[StoredVote]) -> list[Vote]:
    """The store's votes as blind-test votes (each with its own step's A and B)."""
    return [
        Vote(v.query, v.choice, v.a_left, v.a_label, v.b_label, v.name or v.voter[:6], v.step)  # type: ignore[arg-type]
        for v in stored
    ]
