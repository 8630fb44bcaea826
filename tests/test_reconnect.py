"""The reconnect patch (pages/widgets/reconnect.py) wraps the private
``AppSession.request_rerun``: these tests fail loudly when a Streamlit upgrade changes
what it relies on, and run Streamlit's own ``request_rerun`` (patched and not) on a
session stand-in to show the behaviour it fixes: a fragment rerun in a session that has
not had a full run is dropped by Streamlit, and turned into one full run by the patch.
"""

from __future__ import annotations

import inspect
import logging

import pytest
import streamlit
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.runtime.app_session import AppSession, AppSessionState

from pages.widgets import reconnect


class Session:
    """What ``AppSession.request_rerun`` touches of a session: its state, client state,
    script runner and fragments; a new script runner is recorded, not started."""

    def __init__(self, fragments: set[str] = frozenset()) -> None:
        self._state = AppSessionState.APP_NOT_RUNNING
        self._client_state = ClientState()
        self._scriptrunner = None
        self.fragments = set(fragments)
        self.started: list = []

    def has_fragment(self, fragment_id: str) -> bool:
        return fragment_id in self.fragments

    def _create_scriptrunner(self, rerun_data) -> None:
        self.started.append(rerun_data)


def fragment_request(fragment: str = "live_room_fragment") -> ClientState:
    state = ClientState(fragment_id=fragment, is_auto_rerun=True, query_string="room=abc")
    state.page_script_hash = "page-hash"
    return state


@pytest.fixture
def patched():
    assert reconnect.install_reconnect_rerun() is True
    return AppSession.request_rerun


def test_streamlit_is_the_version_the_patch_was_checked_against() -> None:
    assert streamlit.__version__ == reconnect.CHECKED_STREAMLIT, (
        f"streamlit {streamlit.__version__} is installed, the reconnect patch was checked "
        f"against {reconnect.CHECKED_STREAMLIT}: re-read AppSession.request_rerun in "
        "streamlit/runtime/app_session.py, run these tests, then update CHECKED_STREAMLIT"
    )


def test_everything_the_patch_relies_on_is_there() -> None:
    assert reconnect.patch_problems() == []
    original = getattr(AppSession.request_rerun, "__wrapped__", AppSession.request_rerun)
    assert list(inspect.signature(original).parameters) == ["self", "client_state"]
    assert reconnect.DROPPED_FRAGMENT_LINE in inspect.getsource(original)


def test_unpatched_streamlit_drops_a_fragment_rerun_the_session_does_not_hold() -> None:
    original = getattr(AppSession.request_rerun, "__wrapped__", AppSession.request_rerun)
    session = Session()
    original(session, fragment_request())
    assert session.started == []  # the frozen live count the patch exists for
    session.fragments.add("live_room_fragment")
    original(session, fragment_request())
    assert [r.fragment_id for r in session.started] == ["live_room_fragment"]


def test_the_patch_turns_the_first_unknown_fragment_rerun_into_one_full_run(patched) -> None:
    session = Session()
    patched(session, fragment_request())
    (run,) = session.started
    assert run.fragment_id is None and run.is_auto_rerun is False
    assert run.query_string == "room=abc" and run.page_script_hash == "page-hash"
    patched(session, fragment_request())  # after that, Streamlit's rule again
    assert len(session.started) == 1


def test_the_patch_leaves_other_requests_alone(patched) -> None:
    session = Session({"live_room_fragment"})
    patched(session, fragment_request())
    assert [r.fragment_id for r in session.started] == ["live_room_fragment"]
    ran_once = Session()
    patched(ran_once, ClientState(query_string="x=1"))  # a full run first
    patched(ran_once, fragment_request())
    assert [r.fragment_id for r in ran_once.started] == [None]


def test_installing_twice_patches_once(patched) -> None:
    assert reconnect.install_reconnect_rerun() is True
    inner = AppSession.request_rerun.__wrapped__
    assert not hasattr(inner, "__wrapped__")


def test_the_patch_is_not_applied_and_says_why_when_streamlit_changed(monkeypatch, caplog) -> None:
    saved = AppSession.request_rerun
    original = getattr(saved, "__wrapped__", saved)

    def request_rerun(self, client_state, extra=None):  # a changed signature
        return original(self, client_state)

    monkeypatch.setattr(AppSession, "request_rerun", request_rerun)
    problems = reconnect.patch_problems()
    assert any("not [self, client_state]" in p for p in problems)
    assert any("no longer drops" in p for p in problems)
    with caplog.at_level(logging.WARNING, logger=reconnect.__name__):
        assert reconnect.install_reconnect_rerun() is False
    assert AppSession.request_rerun is request_rerun  # left as it was
    assert "reconnect patch NOT applied" in caplog.text
