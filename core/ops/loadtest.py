"""Benchmarks of the hosted app, on loopback only: many viewers at once, and a cold start.

``python -m core loadtest`` starts the app (``serve.py``) on a free port bound to
127.0.0.1, waits for its warm-up, then for each concurrency level (default 1, 4 and 8)
opens that many isolated browser contexts in one headless Chromium. Each session runs a
few NEW searches (queries drawn at random from a word grid, so no score is cached; the
default view: dense MiniLM, 50 candidates reranked by the packaged cross-encoder) as a
user would: the first from a link, the next ones typed into the Query box. It reports
the median and p95 time from the action to the finished results, and checks that every
session got its own correct results: the ids of the top 10 in its CSV export, by final
rank, against :func:`core.search.pipeline.search_with_rerank` for the same query in
this process, plus no exception box and no traceback in the server log.

``python -m core coldstart`` starts a server on a NEW, empty cache dir and times the
first answer from the moment ``/_stcore/health`` answers (a visitor opening a shared
``/?q=...`` link at once), the health endpoint's latency while the warm-up runs, and,
after the warm-up, the work of clicking an example query (the page's "Total" metric).

Both are bounded: at most 16 sessions, 10 searches each, and a timeout on every wait.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from core.models.errors import SettingsError
from core.models.paths import PROJECT_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
MAX_SESSIONS = 16
MAX_SEARCHES = 10
SEARCH_TIMEOUT_S = 300
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
RESULTS_SHOWN = 10
# A grid of query parts: a random (who, what, where) is a query no session has run.
WHO = ("a retired spy", "two sisters", "a young wizard", "a stray dog", "an astronaut", "a chef")
WHAT = ("hunts for treasure", "falls in love", "escapes from prison", "solves a murder")
WHERE = ("in new york", "on a tropical island", "in medieval england", "in outer space")

# Counts the app's script runs in the page (as the e2e tests do), so a wait can tell a
# new finished run from the previous one.
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
  }).observe(document, {subtree: true, attributes: true, attributeOldValue: true,
                        attributeFilter: ["data-test-script-state"]});
})();
"""


# --- the server ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def health(base_url: str, timeout: float = 5.0) -> bool:
    """Whether ``/_stcore/health`` answers ``ok``."""
    try:
        with urllib.request.urlopen(f"{base_url}/_stcore/health", timeout=timeout) as reply:
            return reply.read().decode().strip() == "ok"
    except OSError:
        return False


@dataclass
class Server:
    """A running app server process (see :func:`app_server`)."""

    base_url: str
    process: subprocess.Popen
    log_path: Path
    started_at: float  # perf_counter when the process was started
    healthy_at: float = 0.0

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, pattern: str, timeout: float) -> re.Match | None:
        """Wait until the server log matches ``pattern`` (e.g. the warm-up's last line)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log())
            if found:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        return None


@contextlib.contextmanager
def app_server(
    mode: str = "serve", *, env: dict[str, str] | None = None, health_timeout: float = 180
) -> Iterator[Server]:
    """Start the app (``serve``: ``python serve.py``; ``plain``: ``streamlit run app.py``)
    on a free loopback port, wait for its health check, and stop it afterwards."""
    port = _free_port()
    launcher = ["serve.py"] if mode == "serve" else ["-m", "streamlit", "run", "app.py"]
    command = [sys.executable, *launcher, "--server.port", str(port), *SERVER_FLAGS]
    log_path = Path(tempfile.mkstemp(prefix="rerank-server-", suffix=".log")[1])
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env or os.environ.copy(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path, time.perf_counter())
    try:
        deadline = time.monotonic() + health_timeout
        while not health(server.base_url, timeout=2):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SettingsError(f"the app server did not start:\n{server.log()[-3000:]}")
            time.sleep(0.05)
        server.healthy_at = time.perf_counter()
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


# --- browser sessions ---------------------------------------------------------------------


async def _wait_run(page, before: int, timeout_s: float = SEARCH_TIMEOUT_S) -> None:
    """Wait for a script run after ``before`` runs to start, then to finish."""
    with contextlib.suppress(Exception):
        await page.wait_for_function(
            "(b) => (window.__stScriptRuns || 0) > b", arg=before, timeout=20_000
        )
    await page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(
        state="attached", timeout=timeout_s * 1000
    )


async def _runs(page) -> int:
    return int(await page.evaluate("() => window.__stScriptRuns || 0"))


async def _results_shown(page) -> None:
    """Results are on screen (their heading), or the page shows an error (raised)."""
    heading = page.get_by_role("heading", name="Reranked order")
    failure = page.get_by_test_id("stException").or_(page.get_by_test_id("stAlertContentError"))
    await heading.or_(failure.first).first.wait_for(timeout=SEARCH_TIMEOUT_S * 1000)
    if await failure.count():
        raise AssertionError(f"the page shows an error: {await failure.first.inner_text()}")


async def _exported(page) -> tuple[str, list[str]]:
    """The query and the final top ids of the results on the page, from its JSON export
    (exact, by id: what this session's own search returned)."""
    button = page.get_by_role("button", name="Download JSON")
    await button.wait_for(timeout=SEARCH_TIMEOUT_S * 1000)  # below the fold: paints late
    async with page.expect_download(timeout=SEARCH_TIMEOUT_S * 1000) as info:
        await button.click(timeout=SEARCH_TIMEOUT_S * 1000)
    download = await info.value
    data = json.loads(Path(await download.path()).read_text(encoding="utf-8"))
    ranked = sorted(data["results"], key=lambda c: c["final_rank"])
    return data["query"], [c["id"] for c in ranked[:RESULTS_SHOWN]]


@dataclass
class SearchRecord:
    session: int
    query: str
    seconds: float
    ids: list[str] = field(default_factory=list)
    error: str | None = None


async def _session(browser, base_url: str, number: int, queries: list[str]) -> list[SearchRecord]:
    context = await browser.new_context(accept_downloads=True)
    # Every wait is bounded by the search timeout, not Playwright's 30 s default: on a
    # loaded machine a page load alone can take longer than that.
    context.set_default_timeout(SEARCH_TIMEOUT_S * 1000)
    context.set_default_navigation_timeout(SEARCH_TIMEOUT_S * 1000)
    await context.add_init_script(_COUNT_RUNS)
    page = await context.new_page()
    records: list[SearchRecord] = []
    try:
        for step, query in enumerate(queries):
            started = time.perf_counter()
            try:
                if step == 0:
                    params = urlencode({"q": query, "n": str(RESULTS_SHOWN)})
                    await page.goto(f"{base_url}/?{params}")
                    await _wait_run(page, 0)
                else:
                    box = page.get_by_label("Query", exact=True)
                    await box.fill(query)
                    before = await _runs(page)
                    await box.press("Enter")
                    await _wait_run(page, before)
                await _results_shown(page)
                seconds = time.perf_counter() - started
                shown_query, ids = await _exported(page)
                if shown_query != query:
                    raise AssertionError(f"the page shows results for {shown_query!r}")
                records.append(SearchRecord(number, query, seconds, ids))
            except Exception as exc:
                records.append(
                    SearchRecord(number, query, time.perf_counter() - started, error=repr(exc))
                )
    finally:
        await context.close()
    return records


async def _level(base_url: str, sessions: int, queries: list[list[str]]) -> list[SearchRecord]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            results = await asyncio.gather(
                *(_session(browser, base_url, i, queries[i]) for i in range(sessions))
            )
        finally:
            await browser.close()
    return [record for records in results for record in records]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _expected_ids(queries: list[str]) -> dict[str, list[str]]:
    """Each query's top ids from core itself (the same models, data and settings)."""
    from core.data.datasets import load_dataset
    from core.models.registry import load_encoder, load_reranker
    from core.search.pipeline import search_with_rerank

    movies = load_dataset("movies")
    encoder, reranker = load_encoder(), load_reranker()
    expected = {}
    for query in queries:
        result = search_with_rerank(
            movies,
            query,
            encoder=encoder,
            reranker=reranker,
            embed_fields=movies.default_embed_fields,
            rerank_fields=movies.default_rerank_fields,
            num_candidates=50,
            num_results=RESULTS_SHOWN,
        )
        expected[query] = [c.id for c in result.top_final]
    return expected


def _load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def loadtest_main(args: argparse.Namespace) -> int:
    """``python -m core loadtest``: see the module docstring."""
    levels = [int(x) for x in str(args.sessions).split(",") if x.strip()]
    if not levels or any(not 1 <= n <= MAX_SESSIONS for n in levels):
        raise SettingsError(f"--sessions must be 1 to {MAX_SESSIONS} each, e.g. 1,4,8")
    if not 1 <= args.searches <= MAX_SEARCHES:
        raise SettingsError(f"--searches must be 1 to {MAX_SEARCHES}")
    seed = int(time.time())
    grid = [f"{w} {v} {p}" for w in WHO for v in WHAT for p in WHERE]
    random.Random(seed).shuffle(grid)
    need = sum(levels) * args.searches
    if need > len(grid):
        raise SettingsError(f"{need} searches asked for; at most {len(grid)} distinct queries")
    pool = iter(grid)
    plan = {n: [[next(pool) for _ in range(args.searches)] for _ in range(n)] for n in levels}

    report: dict = {"seed": seed, "searches_per_session": args.searches, "levels": []}
    with contextlib.ExitStack() as stack:
        if args.url:
            base_url, server = args.url.rstrip("/"), None
        else:
            server = stack.enter_context(app_server("serve"))
            base_url = server.base_url
            print(f"server up at {base_url}; waiting for its warm-up…", file=sys.stderr)
            if not server.wait_for_log(r"warm-up (done|failed)", timeout=900):
                raise SettingsError("the server's warm-up did not finish in 15 minutes")
        for sessions in levels:
            load_before = _load_average()
            started = time.perf_counter()
            records = asyncio.run(_level(base_url, sessions, plan[sessions]))
            report["levels"].append(
                {
                    "sessions": sessions,
                    "wall_seconds": time.perf_counter() - started,
                    "load_average_before": load_before,
                    "load_average_after": _load_average(),
                    "records": [asdict(r) for r in records],
                }
            )
            print(
                f"{sessions} session(s) done in {time.perf_counter() - started:.1f} s",
                file=sys.stderr,
            )
        log = server.log() if server is not None else ""

    print("checking every result against core's own search…", file=sys.stderr)
    expected = _expected_ids([q for level in plan.values() for qs in level for q in qs])
    failures = 0
    for level in report["levels"]:
        times = []
        for record in level["records"]:
            if record["error"] is None and record["ids"] != expected[record["query"]]:
                record["error"] = "results differ from core's search_with_rerank"
            if record["error"] is None:
                times.append(record["seconds"])
        errors = [r for r in level["records"] if r["error"]]
        failures += len(errors)
        level.update(
            searches=len(level["records"]),
            correct=len(times),
            errors=len(errors),
            p50=statistics.median(times) if times else float("nan"),
            p95=_percentile(times, 0.95),
            max=max(times) if times else float("nan"),
        )
    tracebacks = log.count("Traceback")
    report["server_tracebacks"] = tracebacks
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"loadtest: movies, dense MiniLM, rerank 50 (packaged cross-encoder), "
            f"{args.searches} new searches per session, seed {seed}"
        )
        print("sessions  searches  correct  errors   p50 s   p95 s   max s   load avg before")
        for level in report["levels"]:
            print(
                f"{level['sessions']:>8}  {level['searches']:>8}  {level['correct']:>7}  "
                f"{level['errors']:>6}  {level['p50']:6.2f}  {level['p95']:6.2f}  "
                f"{level['max']:6.2f}   {level['load_average_before']}"
            )
        for level in report["levels"]:
            for record in level["records"]:
                if record["error"]:
                    print(
                        f"  error (session {record['session']}, {record['query']!r}): "
                        f"{record['error']}"
                    )
        print(f"server log tracebacks: {tracebacks}")
    return 0 if failures == 0 and tracebacks == 0 else 1


# --- cold start ---------------------------------------------------------------------------

FIRST_QUERY = "two friends open a bakery in paris"


def _watch_health(base_url: str, stop: threading.Event, latencies: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        ok = health(base_url, timeout=30)
        latencies.append(time.perf_counter() - started if ok else float("inf"))
        stop.wait(0.5)


async def _new_tab(browser):
    """A new browser context with one blank tab: (context, page)."""
    context = await browser.new_context()
    await context.add_init_script(_COUNT_RUNS)
    page = await context.new_page()
    await page.goto("about:blank")
    return context, page


async def _open_and_wait(browser, base_url: str, query: str, tab=None) -> tuple[float, str, float]:
    """Open ``/?q=query`` in ``tab`` (a :func:`_new_tab`; default: a new one) and wait
    for its results; the seconds taken, the page's "Total" metric (the search's own
    work) and the ``perf_counter`` time the results were on screen (before they are
    checked through the export). The tab is closed afterwards."""
    context, page = tab or await _new_tab(browser)
    try:
        started = time.perf_counter()
        await page.goto(f"{base_url}/?{urlencode({'q': query, 'n': str(RESULTS_SHOWN)})}")
        await _wait_run(page, 0, timeout_s=900)
        await _results_shown(page)
        shown_at = time.perf_counter()
        seconds = shown_at - started
        shown_query, _ = await _exported(page)
        if shown_query != query:
            raise AssertionError(f"the page shows results for {shown_query!r}, not {query!r}")
        total = page.get_by_test_id("stMetric").filter(has_text="Total")
        value = await total.get_by_test_id("stMetricValue").inner_text()
    finally:
        await context.close()
    return seconds, value.strip(), shown_at


class _Report(dict):
    """A dict that prints each entry as it is set (a long run's figures survive a later
    failure)."""

    def __init__(self, echo: bool) -> None:
        super().__init__()
        self.echo = echo

    def __setitem__(self, key: str, value) -> None:
        super().__setitem__(key, value)
        if self.echo:
            shown = f"{value:.2f}" if isinstance(value, float) else value
            print(f"{key:52} {shown}", flush=True)


async def _coldstart(mode: str, env: dict[str, str], report: dict) -> None:
    from playwright.async_api import async_playwright

    from core.present.views import EXAMPLE_QUERIES

    async with async_playwright() as playwright:
        # The visitor's browser is open, with a tab, before the server starts, as it
        # would be: the link is then opened in that tab (starting a browser or a tab is
        # the visitor's machine's work, but here it shares the server's two cores).
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        tab = await _new_tab(browser)
        manager = app_server(mode, env=env)
        server = await asyncio.to_thread(manager.__enter__)
        latencies: list[float] = []
        stop = threading.Event()
        try:
            watcher = threading.Thread(
                target=_watch_health, args=(server.base_url, stop, latencies), daemon=True
            )
            watcher.start()
            report["start_to_health_seconds"] = server.healthy_at - server.started_at
            report["health_to_link_opened_seconds"] = time.perf_counter() - server.healthy_at
            seconds, total, shown_at = await _open_and_wait(
                browser, server.base_url, FIRST_QUERY, tab
            )
            report["health_to_first_results_seconds"] = shown_at - server.healthy_at
            report["first_page_seconds"] = seconds
            report["first_search_total_metric"] = total
            report["load_average_after_first_answer"] = _load_average()
            done = await asyncio.to_thread(server.wait_for_log, r"warm-up (done|failed)[^\n]*", 900)
            report["warmup_log"] = done.group(0) if done else None
            stop.set()
            await asyncio.to_thread(watcher.join)
            report["health_latency_max_seconds"] = max(latencies) if latencies else None
            report["health_checks_during_warmup"] = len(latencies)
            for query in EXAMPLE_QUERIES["movies"][:3]:
                key = f"example after warm-up, Total metric ({query})"
                try:
                    _, report[key], _ = await _open_and_wait(browser, server.base_url, query)
                except Exception as exc:  # keep the figures measured so far
                    report[key] = f"failed: {exc!r}"[:300]
        finally:
            stop.set()
            await asyncio.to_thread(manager.__exit__, None, None, None)
            await browser.close()


def coldstart_main(args: argparse.Namespace) -> int:
    """``python -m core coldstart``: see the module docstring."""
    env = os.environ.copy()
    fresh = args.cache_dir is None
    cache = args.cache_dir or tempfile.mkdtemp(prefix="rerank-cold-cache-")
    env["RERANK_CACHE_DIR"] = cache
    report = _Report(echo=not args.json)
    report["mode"] = args.mode
    report["cache_dir"] = cache
    report["empty_cache_at_start"] = fresh
    report["load_average_at_start"] = _load_average()
    if args.mode == "prepared":
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "core", "warmup", "--if-needed"],
            cwd=PROJECT_ROOT,
            env=env,
            check=True,
        )
        report["setup_warmup_seconds"] = time.perf_counter() - started
    asyncio.run(_coldstart("plain" if args.mode == "plain" else "serve", env, report))
    if args.json:
        print(json.dumps(report, indent=2))
    return 0
