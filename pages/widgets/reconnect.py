"""Pages left open across a server restart pick up the room's live state by themselves.

After a restart, an open page reconnects to a NEW session that has never run its script.
Its ``st.fragment(run_every=...)`` timers keep asking that session to rerun a fragment it
does not hold, and Streamlit drops such requests (``AppSession.request_rerun``), so a
presenter's live count would stay frozen until someone clicks. This patch turns a
fragment request in a session that has not had a full run yet into one full run (the
page then registers its fragments again); every other request is unchanged.

The patch wraps a PRIVATE Streamlit method, checked against Streamlit 1.67.0
(``streamlit/runtime/app_session.py``). Before patching, :func:`patch_problems` checks
what the patch relies on: ``AppSession.request_rerun(self, client_state)``,
``AppSession.has_fragment(fragment_id)``, the early return that drops a rerun of a
fragment the session does not hold, and the ``ClientState`` fields the patch rewrites
(``fragment_id``, ``is_auto_rerun``). When one is missing the patch is not applied and a
warning is logged (the app still works; only pages left open across a restart wait for
a click). ``tests/test_reconnect.py`` fails loudly on the same checks and runs the
patched method against Streamlit's own code.

Installed by ``serve.py`` before the server starts, and by app.py on its first run (for
a plain ``streamlit run``, where it only helps sessions after that first run).
"""

from __future__ import annotations

import inspect
import logging
import threading
import weakref

CHECKED_STREAMLIT = "1.67.0"
_LOCK = threading.Lock()
_HAD_FULL_RUN: weakref.WeakSet = weakref.WeakSet()
_MARK = "_rerank_reconnect_rerun"
# The line of AppSession.request_rerun whose early return the patch works around.
DROPPED_FRAGMENT_LINE = "if fragment_id and not self.has_fragment(fragment_id):"
_LOGGER = logging.getLogger(__name__)


def patch_problems() -> list[str]:
    """What the patch relies on and the installed Streamlit lacks (empty: safe to patch)."""
    try:
        from streamlit.proto.ClientState_pb2 import ClientState
        from streamlit.runtime.app_session import AppSession
    except ImportError as exc:
        return [f"cannot import AppSession or ClientState ({exc})"]
    problems = []
    original = getattr(AppSession.request_rerun, "__wrapped__", AppSession.request_rerun)
    params = list(inspect.signature(original).parameters)
    if params != ["self", "client_state"]:
        problems.append(f"AppSession.request_rerun takes {params}, not [self, client_state]")
    try:
        source = inspect.getsource(original)
    except (OSError, TypeError):
        source = ""
    if DROPPED_FRAGMENT_LINE not in source:
        problems.append("AppSession.request_rerun no longer drops unknown fragments that way")
    if not callable(getattr(AppSession, "has_fragment", None)):
        problems.append("AppSession.has_fragment is gone")
    fields = set(ClientState.DESCRIPTOR.fields_by_name)
    for name in ("fragment_id", "is_auto_rerun"):
        if name not in fields:
            problems.append(f"ClientState has no {name!r} field")
    return problems


def install_reconnect_rerun() -> bool:
    """Patch ``AppSession.request_rerun`` once per process (idempotent); False, with a
    warning logged, when the installed Streamlit lacks what the patch relies on."""
    from streamlit.runtime.app_session import AppSession

    with _LOCK:
        if getattr(AppSession.request_rerun, _MARK, False):
            return True
        if problems := patch_problems():
            import streamlit

            _LOGGER.warning(
                "reconnect patch NOT applied (Streamlit %s, checked against %s): %s. "
                "Pages left open across a server restart will wait for a click.",
                streamlit.__version__,
                CHECKED_STREAMLIT,
                "; ".join(problems),
            )
            return False
        original = AppSession.request_rerun

        def request_rerun(self, client_state=None):
            fragment = client_state.fragment_id if client_state is not None else ""
            if not fragment:
                _HAD_FULL_RUN.add(self)
            elif self not in _HAD_FULL_RUN and not self.has_fragment(fragment):
                full = type(client_state)()
                full.CopyFrom(client_state)
                full.fragment_id = ""
                full.is_auto_rerun = False
                _HAD_FULL_RUN.add(self)
                client_state = full
            return original(self, client_state)

        request_rerun.__wrapped__ = original  # type: ignore[attr-defined]
        setattr(request_rerun, _MARK, True)
        AppSession.request_rerun = request_rerun
        return True
