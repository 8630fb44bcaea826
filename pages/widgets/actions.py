"""Buttons whose clicks survive a fast next interaction.

Streamlit sees a button checked in the page body only if the click's run reaches the
button before the next interaction interrupts it (a rerun request replaces the pending
one while a run is in progress), and work done under the button is lost when a later
interaction interrupts it. Callbacks run when the click's run starts, before any page
body, so these buttons record the click there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import streamlit as st

PENDING = "pending_action::"
SWITCH_TO = "pending_switch"


def _request(key: str) -> None:
    st.session_state[PENDING + key] = True


def action_button(label: str, key: str, *, where: Any = None, **kwargs: Any) -> bool:
    """A button (in ``where``, a column or container; else the page) for work done in the
    page body (an evaluation, a report): True from the click until that work ends inside
    :func:`running_action`, even if a new interaction interrupted the run in between
    (the work is then done in the next run)."""
    (where or st).button(label, key=key, on_click=_request, args=(key,), **kwargs)
    if kwargs.get("disabled"):
        st.session_state.pop(PENDING + key, None)
        return False
    return bool(st.session_state.get(PENDING + key))


@contextlib.contextmanager
def running_action(key: str) -> Iterator[None]:
    """Do the work of :func:`action_button` ``key``. The request ends when the work does,
    with an error or ``st.stop()``; a rerun that interrupts it leaves it pending."""
    from streamlit.runtime.scriptrunner_utils.exceptions import StopException

    finished = False
    try:
        yield
        finished = True
    except (Exception, StopException):
        finished = True
        raise
    finally:
        if finished:
            st.session_state.pop(PENDING + key, None)


def switch_later(page: str, query_params: dict[str, str]) -> None:
    """From a button's callback: open ``page`` with ``query_params``. The page that drew
    the button calls :func:`switch_if_asked` first thing (``st.switch_page`` needs a
    running script, and callbacks run before it)."""
    st.session_state[SWITCH_TO] = (page, dict(query_params))


def switch_if_asked() -> None:
    """At the top of a page: the switch one of its buttons' callbacks asked for."""
    target = st.session_state.pop(SWITCH_TO, None)
    if target is not None:
        st.switch_page(target[0], query_params=target[1])
