"""Pages left open across a server restart pick up the room's live state by themselves.

After a restart, an open page reconnects to a NEW session that has never run its script.
Its ``st.fragment(run_every=...)`` timers keep asking that session to rerun a fragment it
does not hold, and Streamlit drops such requests (``AppSession.request_rerun``), so a
presenter's live count would stay frozen until someone clicks. This patch turns a
fragment request in a session that has not had a full run yet into one full run (the
page then registers its fragments again); every other request is unchanged.

Installed by ``serve.py`` before the server starts, and by app.py on its first run (for
a plain ``streamlit run``, where it only helps sessions after that first run).
"""

from __future__ import annotations

import threading
import weakref

_LOCK = threading.Lock()
_HAD_FULL_RUN: weakref.WeakSet = weakref.WeakSet()
_MARK = "_rerank_reconnect_rerun"


def install_reconnect_rerun() -> None:
    """Patch ``AppSession.request_rerun`` once per process (idempotent)."""
    from streamlit.runtime.app_session import AppSession

    with _LOCK:
        if getattr(AppSession.request_rerun, _MARK, False):
            return
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

        setattr(request_rerun, _MARK, True)
        AppSession.request_rerun = request_rerun
