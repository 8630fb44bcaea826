"""Serve the app for people who open shared links: ``python serve.py [streamlit options]``.

``make app`` runs this (any ``streamlit run`` option passes through, e.g.
``--server.port 8501``). Compared with a plain ``streamlit run app.py`` it does two
things before the first visitor arrives:

1. **Navigation from the first request.** Streamlit 1.67 decides per process whether
   the app uses the old ``pages/`` directory mode (``PagesManager.uses_pages_directory``,
   set by the first session from the existence of ``pages/``). Until a session has run
   ``st.navigation``, a deep link such as ``/evaluate`` is served in that mode: app.py
   never runs and the sidebar lists every file in ``pages/``. Our page scripts live in
   ``pages/`` (the product layout), so the launcher sets the flag to False before the
   server starts, exactly what ``st.navigation`` itself does on its first call.
2. **Warm start.** :func:`core.ops.warmup.default_warmup` starts loading the models and the
   movies embeddings in a background thread at once, and the default page's own
   imports (pandas, Altair, the page modules: :data:`PAGE_MODULES`) are done beside it;
   the health endpoint answers meanwhile, and early visitors see the warm-up's progress
   (:func:`show_warmup`).

A plain ``streamlit run app.py`` (as hosting platforms run it) still works:
:func:`ensure_navigation`, the first call of every page script, notices a session that
started in pages-directory mode, switches the process to ``st.navigation`` mode and
reruns once, which runs app.py with the same URL; app.py starts the warm-up on its first
run. ``tests/test_serve.py`` fails loudly if a Streamlit upgrade moves the private
attribute (``streamlit`` is pinned in requirements.txt for that reason).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.ops.warmup import Warmup

ROOT = Path(__file__).resolve().parent
APP = ROOT / "app.py"
# The private class attribute of streamlit.runtime.pages_manager.PagesManager that
# selects the pages-directory mode for the whole process (None: not decided yet).
PAGES_FLAG = "uses_pages_directory"
WAITING_PAGES = ("Search", "Ceiling & fields")  # pages that search movies at once
# What the default page imports beyond Streamlit (about 3 s on this 2-core machine):
# imported once in the background at server start, so a first visitor's page run finds
# them loaded instead of importing them while the visitor waits.
PAGE_MODULES = (
    "streamlit.emojis",  # read by st.set_page_config's icon check
    "pandas",
    "altair",
    "core.present.charts",
    "core.present.search_state",
    "pages.widgets.common",
    "pages.widgets.search_sidebar",
    "pages.widgets.search_results",
    "pages.widgets.passage_panel",
)


def _pages_manager() -> type:
    from streamlit.runtime.pages_manager import PagesManager

    if PAGES_FLAG not in vars(PagesManager):
        raise RuntimeError(
            f"streamlit.runtime.pages_manager.PagesManager has no {PAGES_FLAG!r} any more "
            "(Streamlit upgraded?): deep links on a fresh server would break; see serve.py"
        )
    return PagesManager


def use_navigation_mode() -> None:
    """Make every session of this process use app.py's ``st.navigation`` (call before
    the server's first session)."""
    setattr(_pages_manager(), PAGES_FLAG, False)


def ensure_navigation() -> None:
    """The first call of every page script: if this session was started in the old
    pages-directory mode (a deep link as the first request of a plain ``streamlit run``),
    switch the process to ``st.navigation`` mode and rerun once, through app.py.

    The rerun keeps the URL's query string and the page (a page's hash is derived from
    its URL path, the same in both modes), so the visitor gets the linked view.
    """
    manager = _pages_manager()
    if getattr(manager, PAGES_FLAG):
        import streamlit as st

        setattr(manager, PAGES_FLAG, False)
        if _real_server():
            st.rerun()
        # AppTest resets the flag before every run and then runs the current page
        # directly; a rerun there would drop the widget values of that run (a clicked
        # button), so it only flips the flag, as a plain page run did before.


def _real_server() -> bool:
    """Whether this runs in a real Streamlit server (not AppTest's mock runtime)."""
    from streamlit.runtime import Runtime

    instance = Runtime._instance
    return instance is None or type(instance) is Runtime


def warmup_enabled() -> bool:
    """Whether this process should warm up: a real server (not AppTest's mock runtime),
    unless ``RERANK_WARMUP=0``."""
    if os.environ.get("RERANK_WARMUP", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return _real_server()


def start_warmup() -> Warmup | None:
    """Start the process-wide warm-up once (later calls return the same one); None when
    warming up is disabled."""
    if not warmup_enabled():
        return None
    from core.ops.warmup import default_warmup

    warmup = default_warmup()
    warmup.start(progress=_log)
    return warmup


def _log(status) -> None:
    from core.ops.warmup import log_line

    line = log_line(status)
    if line:
        print(line, file=sys.stderr, flush=True)


def show_warmup(warmup: Warmup | None) -> None:
    """Until the warm-up is ready for a first search, show its progress; then clear it."""
    if warmup is None or warmup.status().ready:
        return
    import streamlit as st

    box = st.empty()
    status = warmup.status()
    while not status.ready:
        text = f"Getting the server ready for its first search: {status.label}"
        if status.total:
            text += f" ({status.done:,} / {status.total:,})"
        box.progress(status.fraction, text=f"{text} · {status.seconds:.0f} s")
        warmup.wait_ready(0.25)
        status = warmup.status()
    box.empty()


def upload_size_flags(args: list[str], env: dict[str, str]) -> list[str]:
    """``--server.maxUploadSize`` matching ``RERANK_MAX_UPLOAD_MB`` when that is set and
    the command line does not say otherwise: Streamlit refuses a larger file before the
    app's own check sees it, so the two limits move together."""
    wanted = env.get("RERANK_MAX_UPLOAD_MB", "").strip()
    if not wanted or any(a.startswith("--server.maxUploadSize") for a in args):
        return []
    try:
        megabytes = max(1, math.ceil(float(wanted)))
    except ValueError:
        return []  # the app explains a bad value where uploads happen
    return ["--server.maxUploadSize", str(megabytes)]


def _warm_up_once_serving(timeout: float = 60.0) -> None:
    """Start the warm-up as soon as Streamlit's runtime has started (so the health check
    is up first: the warm-up's imports would otherwise compete with the server's own
    start for the interpreter), or after ``timeout`` seconds in any case."""
    from streamlit.runtime import Runtime
    from streamlit.runtime.runtime import RuntimeState

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        instance = Runtime._instance
        if instance is not None and instance.state != RuntimeState.INITIAL:
            break
        time.sleep(0.05)
    start_warmup()
    preload(PAGE_MODULES)
    _first_element_check()


def _first_element_check() -> None:
    """Streamlit checks once per process, when any session draws its first element,
    whether it runs in a REPL (``env_util.is_repl``: ``inspect.stack()`` over that
    session's frames, which looks up every frame's source and module: 1-1.5 s measured
    on a first page here). Done now, on this thread's short stack; in a running server
    it prints nothing. Private: if Streamlit moves it, the first page pays it again."""
    from streamlit import delta_generator

    check = getattr(delta_generator, "_maybe_print_use_warning", None)
    if check is not None:
        check()


def preload(modules: tuple[str, ...]) -> list[str]:
    """Import ``modules`` now (a session importing one meanwhile waits for this import
    rather than repeating it); the names that failed, each logged, never raised: the
    page that needs one then meets the error itself."""
    import importlib

    started = time.perf_counter()
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed.append(name)
            print(f"preload: {name} failed: {exc!r}", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started
    print(f"preload: page modules imported in {seconds:.1f} s", file=sys.stderr, flush=True)
    return failed


def main(argv: list[str] | None = None) -> int:
    """``streamlit run app.py`` with the navigation flag set and the warm-up started."""
    args = list(sys.argv[1:] if argv is None else argv)
    args += upload_size_flags(args, dict(os.environ))
    os.chdir(ROOT)  # .streamlit/config.toml is read from the working directory
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    use_navigation_mode()
    from pages.widgets.reconnect import install_reconnect_rerun

    install_reconnect_rerun()  # open pages resume their live fragments after a restart
    if warmup_enabled():
        threading.Thread(target=_warm_up_once_serving, name="warmup-starter", daemon=True).start()
    from streamlit.web import cli

    return cli.main(["run", str(APP), *args], prog_name="streamlit")


if __name__ == "__main__":
    raise SystemExit(main())
