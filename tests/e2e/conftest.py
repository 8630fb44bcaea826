"""Browser tests: one Streamlit server per session, one Chromium, a fresh context per test.

Style follows Streamlit's own e2e_playwright suite: a single app-server fixture and a
single wait helper (:func:`wait_for_app_run`) that asks the app whether its script has
finished, instead of sleeping.

The server inherits ``os.environ``; the root ``tests/conftest.py`` has already pointed
``RERANK_MOVIES_PATH`` at the shared movies.json and ``RERANK_CACHE_DIR`` at
``.test-cache`` (so the corpus is embedded once, then read from disk on later runs).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    expect,
    sync_playwright,
)
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1000}

SERVER_START_TIMEOUT_S = 90
# A script run can include loading both models and, with a cold .test-cache, embedding
# the whole movies corpus (20-70 s depending on the machine's load).
APP_RUN_TIMEOUT_MS = 150_000
# How long a run may take to *start* after an interaction (or after a page load).
RUN_START_TIMEOUT_MS = 5_000
PAGE_LOAD_START_TIMEOUT_MS = 20_000
# Give charts and grids a moment to paint after the script finished.
SETTLE_MS = 150

expect.set_options(timeout=15_000)

SERVER_LOG = pytest.StashKey[Path]()  # the log of the server the current test uses
APP_SERVER_LOG = pytest.StashKey[Path]()  # the session-wide app_server's log
TEST_FAILED = pytest.StashKey[bool]()  # set on a test whose setup or call failed
# Full-height screenshots of every page a test leaves open cost a second or more each:
# they are taken for failing tests, and for every test with RERANK_TEST_SCREENSHOTS=all.
SCREENSHOT_ALL = os.environ.get("RERANK_TEST_SCREENSHOTS", "") == "all"

# Counts every transition of the app's script state to "running" in this document, so
# the wait helper can tell "a new run started and finished" from "nothing has happened
# yet" without guessing with sleeps.
_COUNT_RUNS = """
(() => {
  window.__stScriptRuns = 0;
  new MutationObserver((mutations) => {
    for (const m of mutations) {
      const el = m.target;
      if (el.getAttribute("data-testid") === "stApp"
          && el.getAttribute("data-test-script-state") === "running"
          && m.oldValue !== "running") {
        window.__stScriptRuns += 1;
      }
    }
  }).observe(document, {
    subtree: true,
    attributes: true,
    attributeOldValue: true,
    attributeFilter: ["data-test-script-state"],
  });
})();
"""


def _script_runs(page: Page) -> int:
    return int(page.evaluate("() => window.__stScriptRuns || 0"))


def wait_for_app_run(
    page: Page,
    trigger: Callable[[], object] | None = None,
    *,
    timeout_ms: int = APP_RUN_TIMEOUT_MS,
) -> None:
    """Wait until the app's script has run to completion.

    With ``trigger`` (a callable doing the interaction: press Enter, pick an option,
    click a link), the run counter is read first, the interaction performed, and the
    helper waits for a *new* run to start before waiting for it to finish: a stale
    ``notRunning`` from before the interaction can never satisfy it. Without
    ``trigger`` (right after ``page.goto``), it waits for the document's first run.
    If no run start is seen in time (an interaction that does not rerun, or a run so
    quick that the "running" state was never painted) it falls back to Streamlit's own
    check: connected and ``notRunning``.
    """
    if trigger is None:
        start_timeout, before = PAGE_LOAD_START_TIMEOUT_MS, 0
    else:
        start_timeout, before = RUN_START_TIMEOUT_MS, _script_runs(page)
        trigger()
    with contextlib.suppress(PlaywrightTimeoutError):
        page.wait_for_function(
            "(before) => (window.__stScriptRuns || 0) > before", arg=before, timeout=start_timeout
        )
    page.locator("[data-testid='stApp'][data-test-connection-state='CONNECTED']").wait_for(
        state="attached", timeout=timeout_ms
    )
    page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(
        state="attached", timeout=timeout_ms
    )
    page.wait_for_timeout(SETTLE_MS)


# --- app server -------------------------------------------------------------------------


def pick_option(page: Page, combobox, name: str) -> None:
    """Open a select box's list and pick ``name``, then wait for the app's run.

    A list opened while the page is still settling (a late rerun repaints the
    widget) can close before the option is clicked: open it again, up to 3 times.
    """
    option = page.get_by_role("option", name=name)
    for _ in range(3):
        combobox.click()
        try:
            option.wait_for(state="visible", timeout=5_000)
            break
        except PlaywrightTimeoutError:
            page.keyboard.press("Escape")
    wait_for_app_run(page, option.click)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, limit: int = 8_000) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no server log)"
    return text[-limit:] if len(text) > limit else text


# How the server is started: the README's command (`make app` runs serve.py, which sets
# Streamlit's navigation mode before the first session and warms up in the background)
# or a plain `streamlit run app.py`, as hosting platforms start it.
SERVER_MODES = {
    "serve": [sys.executable, "serve.py"],
    "plain": [sys.executable, "-m", "streamlit", "run", "app.py"],
}
SERVER_FLAGS = [
    "--server.headless",
    "true",
    "--browser.gatherUsageStats",
    "false",
    "--server.fileWatcherType",
    "none",
    "--server.address",
    "127.0.0.1",
]


def _server_env() -> dict[str, str]:
    env = os.environ.copy()
    for key in ("RERANK_MOVIES_PATH", "RERANK_CACHE_DIR"):
        if not env.get(key):
            pytest.fail(f"{key} is not set: tests/conftest.py should have set it")
    if not Path(env["RERANK_MOVIES_PATH"]).is_file():
        pytest.skip(f"shared movies dataset missing at {env['RERANK_MOVIES_PATH']}")
    return env


@contextlib.contextmanager
def run_app_server(
    mode: str, log_path: Path, env: dict[str, str], port: int | None = None
) -> Iterator[str]:
    """Start the app (``mode``: see SERVER_MODES) on ``port`` (default: a free loopback
    port); yield its base URL once ``/_stcore/health`` answers, and stop it afterwards.
    Passing the port of a server stopped earlier restarts "the same" server."""
    port = port or _free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = [*SERVER_MODES[mode], "--server.port", str(port), *SERVER_FLAGS]
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"streamlit exited with code {process.returncode} before it was "
                    f"healthy:\n{_tail(log_path)}"
                )
            try:
                if requests.get(f"{base_url}/_stcore/health", timeout=2).text == "ok":
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"streamlit not healthy after {SERVER_START_TIMEOUT_S} s:\n{_tail(log_path)}"
                )
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="session")
def app_server(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[str]:
    """The app started as the README does (`serve.py`) on a free port; yields its URL."""
    env = _server_env()
    log_path = tmp_path_factory.mktemp("streamlit") / "server.log"
    request.config.stash[SERVER_LOG] = request.config.stash[APP_SERVER_LOG] = log_path
    try:
        with run_app_server("serve", log_path, env) as base_url:
            yield base_url
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "")
        name = f"streamlit-server-{worker}.log" if worker else "streamlit-server.log"
        shutil.copyfile(log_path, ARTIFACTS / name)
        if request.session.testsfailed:
            sys.stderr.write(f"\n--- streamlit server log ---\n{_tail(log_path)}\n")


@pytest.fixture
def fresh_app_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str], str]]:
    """Factory: a NEW server process (``"serve"`` or ``"plain"``) that no browser has
    visited yet, stopped at the end of the test; returns its base URL."""
    env = _server_env()
    stack = contextlib.ExitStack()
    started = []

    def start(mode: str) -> str:
        started.append(mode)
        log_path = tmp_path / f"server-{len(started)}-{mode}.log"
        request.config.stash[SERVER_LOG] = log_path
        return stack.enter_context(run_app_server(mode, log_path, env))

    with stack:
        yield start


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Attach the tail of the server log to every failing browser test's report."""
    report = yield
    if report.failed:
        item.stash[TEST_FAILED] = True
    log_path = item.config.stash.get(SERVER_LOG, None)
    if report.failed and log_path is not None:
        report.sections.append(("streamlit server log (tail)", _tail(log_path)))
    return report


# --- browser ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM} (`make browser` installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture
def new_context(
    browser: Browser, request: pytest.FixtureRequest
) -> Iterator[Callable[[], BrowserContext]]:
    """Factory of fresh, isolated browser contexts (own cookies, own Streamlit session).

    At the end of a failing test (of every test with RERANK_TEST_SCREENSHOTS=all) every
    open page is screenshotted to test-artifacts/ (full height of the scrolling main
    area), then the contexts are closed.
    """
    contexts: list[BrowserContext] = []

    def make() -> BrowserContext:
        context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        context.set_default_timeout(30_000)
        context.add_init_script(_COUNT_RUNS)
        contexts.append(context)
        return context

    yield make

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shoot = SCREENSHOT_ALL or request.node.stash.get(TEST_FAILED, False)
    pages = [page for context in contexts for page in context.pages] if shoot else []
    for number, page in enumerate(pages, start=1):
        name = stem if number == 1 else f"{stem}-{number}"
        try:
            _full_screenshot(page, ARTIFACTS / f"{name}.png")
        except Exception as exc:  # a screenshot must never hide the test's own result
            sys.stderr.write(f"screenshot of {name} failed: {exc}\n")
    for context in contexts:
        context.close()


def _full_screenshot(page: Page, path: Path) -> None:
    """Streamlit scrolls inside stMain, so grow the viewport to its height first."""
    height = page.evaluate(
        "() => document.querySelector(\"[data-testid='stMain']\")?.scrollHeight || 0"
    )
    if height > VIEWPORT["height"]:
        page.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(height), 8_000)})
        page.wait_for_timeout(400)
    page.screenshot(path=str(path))


@pytest.fixture
def context(new_context: Callable[[], BrowserContext]) -> BrowserContext:
    return new_context()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()
