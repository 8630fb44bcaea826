"""serve.py relies on a private Streamlit attribute: these tests fail loudly when an
upgrade moves it, before any deep link breaks on a hosted instance.

``PagesManager.uses_pages_directory`` (streamlit/runtime/pages_manager.py) is decided by
a process's first session from the existence of ``pages/``; ``_mpa_v1`` in
script_runner.py serves every file in ``pages/`` while it is true; ``st.navigation``
sets it to False. serve.py sets it before the first session and the page scripts'
``ensure_navigation`` recovers a session that started with it true.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import streamlit
from streamlit.commands import navigation
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import script_runner

import serve

ROOT = Path(__file__).resolve().parents[1]
PINNED = "1.67.0"


@pytest.fixture
def flag():
    """Restore the process-wide flag after a test changes it."""
    saved = PagesManager.uses_pages_directory
    yield
    PagesManager.uses_pages_directory = saved


def test_streamlit_is_pinned_to_the_version_serve_py_was_checked_against() -> None:
    pins = re.findall(r"^streamlit==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert pins == [PINNED], "requirements.txt must pin streamlit (serve.py uses its internals)"
    assert streamlit.__version__ == PINNED, (
        f"streamlit {streamlit.__version__} is installed, serve.py was checked against "
        f"{PINNED}: re-read runtime/pages_manager.py, scriptrunner/script_runner.py and "
        "commands/navigation.py, then update PINNED"
    )


def test_the_private_flag_is_where_serve_py_expects_it() -> None:
    assert serve.PAGES_FLAG in vars(PagesManager), (
        "PagesManager.uses_pages_directory is gone: deep links on a fresh server would "
        "list every file in pages/; see serve.py"
    )
    init = inspect.getsource(PagesManager.__init__)
    assert "PagesManager.uses_pages_directory is None" in init
    assert re.search(r'Path\(\s*self.main_script_parent / "pages"\s*\).exists\(\)', init)
    runner = inspect.getsource(script_runner.ScriptRunner)
    assert "if PagesManager.uses_pages_directory:\n" in runner
    assert "_mpa_v1(self._main_script_path)" in runner
    assert "PagesManager.uses_pages_directory = False" in inspect.getsource(navigation.navigation)


def test_a_first_session_without_the_launcher_picks_the_pages_directory_mode(flag) -> None:
    PagesManager.uses_pages_directory = None
    PagesManager(str(ROOT / "app.py"))
    assert PagesManager.uses_pages_directory is True  # the bug serve.py prevents


def test_the_launcher_decides_the_mode_before_any_session(flag) -> None:
    PagesManager.uses_pages_directory = None
    serve.use_navigation_mode()
    PagesManager(str(ROOT / "app.py"))
    assert PagesManager.uses_pages_directory is False


def test_the_page_guard_switches_the_process_out_of_the_pages_directory_mode(flag) -> None:
    PagesManager.uses_pages_directory = True
    serve.ensure_navigation()  # outside a script run st.rerun() has nothing to rerun
    assert PagesManager.uses_pages_directory is False
    serve.ensure_navigation()
    assert PagesManager.uses_pages_directory is False


def test_every_page_script_calls_the_guard_before_drawing_anything() -> None:
    for name in ("search", "diagnostics", "evaluate", "about"):
        source = (ROOT / "pages" / f"{name}.py").read_text()
        guard = source.index("\nensure_navigation()")
        first_st = re.search(r"^(st\.|state\b|[A-Z_]+ = )", source, re.M)
        assert first_st is None or guard < first_st.start(), f"pages/{name}.py"


def test_warmup_can_be_switched_off(monkeypatch) -> None:
    monkeypatch.setenv("RERANK_WARMUP", "0")
    assert serve.warmup_enabled() is False
    assert serve.start_warmup() is None


def test_upload_limits_agree() -> None:
    from core.data.uploads import DEFAULT_MAX_UPLOAD_MB

    config = (ROOT / ".streamlit" / "config.toml").read_text()
    assert re.search(rf"^maxUploadSize = {DEFAULT_MAX_UPLOAD_MB}$", config, re.M)
    flags = serve.upload_size_flags
    assert flags([], {"RERANK_MAX_UPLOAD_MB": "200"}) == ["--server.maxUploadSize", "200"]
    assert flags([], {"RERANK_MAX_UPLOAD_MB": "0.5"})[-1] == "1"
    assert flags(["--server.maxUploadSize=80"], {"RERANK_MAX_UPLOAD_MB": "200"}) == []
    assert flags([], {}) == []
    assert flags([], {"RERANK_MAX_UPLOAD_MB": "lots"}) == []


def test_the_page_modules_preload_imports_and_reports_failures(capsys) -> None:
    assert serve.preload(serve.PAGE_MODULES) == []
    assert serve.preload(("core.no_such_module",)) == ["core.no_such_module"]
    assert "preload: core.no_such_module failed" in capsys.readouterr().err


def test_the_first_element_check_serve_py_runs_early_is_where_it_expects_it() -> None:
    """serve.py pays Streamlit's once-per-process REPL check (``inspect.stack()`` over
    the first page's frames) before a visitor does; fail loudly if it moves."""
    from streamlit import delta_generator, env_util

    source = inspect.getsource(delta_generator._maybe_print_use_warning)
    assert "_use_warning_has_been_displayed" in source and "is_repl()" in source
    assert "inspect.stack()" in inspect.getsource(env_util.is_repl)
