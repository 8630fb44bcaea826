"""Load bench of a room: a presenter and N viewers (default 16) in one headless Chromium,
voting through a blind walkthrough on one app server on loopback.

``python -m core roombench`` stores a walkthrough (movies, BM25 first stage; A: the
packaged cross-encoder, B: the first stage) and a blind room in a state store of its own,
opens the presenter's link and N viewer links (each viewer with a known voter id), and
for every step has every viewer click a vote, a little apart. The presenter's page is
watched (no interaction) for its live count; a click's latency is the time from the
click to the presenter's count reaching that vote's rank. In the middle of one step the
app server is stopped and started again on the same port; the rest of that step's votes
are cast by the reconnected pages. At the end every vote must be in the store, once,
with the choice the viewer clicked last (none lost, none doubled).

The machine is usually shared: the bench prints the load average when it starts and
when it ends, and the CPU seconds the app server, Chromium (every page) and the bench's
own driver used while the votes were cast (the restart's own start-up left out), so a
slow run can be told apart from a busy machine; it also prints how long every viewer
took to show the room's next step after the presenter's *Next*. ``--profile DIR``
samples every app server it starts with py-spy (on ``PATH``, or ``RERANK_PYSPY``),
writing one raw profile per server to ``DIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from core.models.errors import SettingsError
from core.models.paths import PROJECT_ROOT
from core.ops.loadtest import CHROMIUM, CHROMIUM_ARGS, SERVER_FLAGS, _free_port, health

QUERIES = (
    "a heist that goes wrong",
    "a toy that comes to life",
    "astronauts stranded far from earth",
)
CHOICES = ("Left is better", "Right is better", "Tie")
CHOICE_KEYS = {"Left is better": "left", "Right is better": "right", "Tie": "tie"}
MAX_VIEWERS = 32
APP = "[data-testid='stApp']"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, e.g. ``"2.1 3.4 3.9"``."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _pyspy() -> str | None:
    return os.environ.get("RERANK_PYSPY") or shutil.which("py-spy")


def _cpu_seconds(root: int) -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of every live process under ``root``, each tagged
    ``server`` (an app server), ``chromium`` or ``bench`` (this process, its driver)."""
    tick = os.sysconf("SC_CLK_TCK")
    parent, info = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parent[pid] = int(fields[1])
        kind = "server" if "serve.py" in cmd else "chromium" if "chrom" in cmd else "bench"
        info[pid] = (kind, (int(fields[11]) + int(fields[12])) / tick)
    out = {}
    for pid, value in info.items():
        p = pid
        while p not in (0, 1, root) and p in parent:
            p = parent[p]
        if p == root:
            out[pid] = value
    return out


def _cpu_used(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds per kind between two :func:`_cpu_seconds` readings."""
    used: dict[str, float] = {"server": 0.0, "chromium": 0.0, "bench": 0.0}
    for pid, (kind, seconds) in after.items():
        used[kind] += seconds - before.get(pid, (kind, 0.0))[1]
    return used


@contextlib.contextmanager
def _server(port: int, env: dict[str, str], log: Path, profile: Path | None = None):
    command = [sys.executable, "serve.py", "--server.port", str(port), *SERVER_FLAGS]
    with log.open("a") as out:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=out)
    spy = None
    if profile is not None and (pyspy := _pyspy()):
        profile.mkdir(parents=True, exist_ok=True)
        raw = profile / f"server-{process.pid}.txt"
        spy = subprocess.Popen(
            [
                *(pyspy, "record", "--pid", str(process.pid), "--nonblocking"),
                *("--rate", "50", "--format", "raw", "--output", str(raw)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 120
        while not health(f"http://127.0.0.1:{port}", timeout=2):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SettingsError(f"the app server did not start; see {log}")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if spy is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(timeout=30)  # py-spy writes its file when the server is gone


def _make_room(url: str, steps: int) -> tuple[str, str, str]:
    from core.data.state_store import StateStore
    from core.present.views import SearchSettings
    from core.present.walkthrough import Walkthrough, WalkthroughStore, step_from_view

    store = StateStore(url)
    wt = Walkthrough("Room bench")
    for q in QUERIES[:steps]:
        view = SearchSettings(query=q, retriever="bm25", candidates=20, results=5)
        wt = wt.add(step_from_view(view, "none"))
    wid = WalkthroughStore(Path(tempfile.mkdtemp()), state=store).put(wt)
    room_id, token = store.create_room(wid)
    store.update_room(room_id, token, blind=True)
    return wid, room_id, token


async def _settled(page, timeout_s: float = 180) -> None:
    await page.locator(f"{APP}[data-test-connection-state='CONNECTED']").wait_for(
        state="attached", timeout=timeout_s * 1000
    )
    await page.locator(f"{APP}[data-test-script-state='notRunning']").wait_for(
        state="attached", timeout=timeout_s * 1000
    )


async def _count(page) -> int | None:
    card = page.get_by_test_id("stMetric").filter(has_text="Votes on this step")
    try:
        text = await card.get_by_test_id("stMetricValue").inner_text(timeout=500)
        return int(text.strip())
    except Exception:  # the page is redrawing: try again
        return None


async def _watch(page, seen: list[tuple[float, int]], stop: asyncio.Event) -> None:
    """Record (time, count) whenever the presenter's count changes."""
    last = -1
    while not stop.is_set():
        n = await _count(page)
        if n is not None and n != last:
            seen.append((time.monotonic(), n))
            last = n
        await asyncio.sleep(0.05)


async def _arrived(page, voter: str) -> None:
    """Wait for a viewer's vote buttons; on failure raise with what the page showed."""
    try:
        await page.get_by_role("button", name=CHOICES[0], exact=True).wait_for(
            state="visible", timeout=300_000
        )
    except Exception as exc:
        shot = Path(tempfile.gettempdir()) / f"roombench-{voter}-arrival.png"
        with contextlib.suppress(Exception):
            await page.screenshot(path=str(shot), full_page=True)
        alerts = await page.locator(
            "[data-testid='stAlert'], [data-testid='stException']"
        ).all_inner_texts()
        raise SettingsError(
            f"viewer {voter} never got its vote buttons ({type(exc).__name__}); the page "
            f"said: {' | '.join(alerts)[:400] or 'no error'}; see {shot}"
        ) from None


async def _followed(page, step: int, steps: int, problems: list[str], label: str) -> None:
    """Wait until a viewer's page shows the room's new step; a page that does not within
    2 minutes is recorded (with a screenshot), and the run goes on."""
    try:
        await page.get_by_text(f"Step {step + 1} of {steps}").first.wait_for(timeout=120_000)
    except Exception as exc:
        shot = Path(tempfile.gettempdir()) / f"roombench-{label}-follow.png"
        with contextlib.suppress(Exception):
            await page.screenshot(path=str(shot), full_page=True)
        problems.append(f"{label}: not on step {step + 1} ({type(exc).__name__}); see {shot}")


async def _click(page, name: str, problems: list[str], label: str) -> float | None:
    """Click ``name``; None (and the page's text and a screenshot kept) if it never
    became clickable."""
    button = page.get_by_role("button", name=name, exact=True)
    try:
        await button.wait_for(state="visible", timeout=120_000)
        await button.click(timeout=60_000)
    except Exception as exc:  # a page that never showed the button: record, go on
        shot = Path(tempfile.gettempdir()) / f"roombench-{label}.png"
        with contextlib.suppress(Exception):
            await page.screenshot(path=str(shot), full_page=True)
        problems.append(f"{label}: {name!r} not clickable ({type(exc).__name__}); see {shot}")
        return None
    return time.monotonic()


def _latencies(clicks: list[float], seen: list[tuple[float, int]], base: int) -> list[float]:
    """Per click (in click order), the time until the count reached its rank."""
    out = []
    for rank, clicked in enumerate(sorted(clicks), start=base + 1):
        reached = next((t for t, n in seen if n >= rank and t >= clicked - 0.05), None)
        if reached is not None:
            out.append(max(0.0, reached - clicked))
    return out


async def _run(args: argparse.Namespace) -> dict:
    from playwright.async_api import async_playwright

    from core.data.state_store import StateStore

    viewers, steps = args.viewers, args.steps
    tmp = Path(tempfile.mkdtemp(prefix="rerank-roombench-"))
    url = f"sqlite:///{tmp / 'state.sqlite3'}"
    wid, room_id, token = _make_room(url, steps)
    env = {**os.environ, "RERANK_DATABASE_URL": url, "RERANK_WARMUP": "0"}
    port, log = _free_port(), tmp / "server.log"
    base = f"http://127.0.0.1:{port}"
    link = {"walkthrough": wid, "room": room_id}
    rng = random.Random(args.seed)
    last_choice: dict[tuple[str, int], str] = {}
    latencies: list[float] = []
    per_step: list[list[float]] = []
    problems: list[str] = []
    follow_s: list[float] = []
    restart_s = 0.0
    server = contextlib.ExitStack()
    server.enter_context(_server(port, env, log, args.profile))
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            presenter = await (await browser.new_context()).new_page()
            await presenter.goto(f"{base}/?{urlencode({**link, 'presenter': token})}")
            await _settled(presenter)
            pages = []
            for n in range(viewers):
                page = await (await browser.new_context()).new_page()
                pages.append((f"v{n:02d}", page))
            # People arrive one after another, as in a meeting: each page is ready (its
            # vote buttons drawn) before the next one opens.
            for v, p in pages:
                await p.goto(f"{base}/?{urlencode({**link, 'voter': v})}", timeout=180_000)
                await _arrived(p, v)
            cpu_before = _cpu_seconds(os.getpid())
            cpu_so_far = dict.fromkeys(("server", "chromium", "bench"), 0.0)
            for step in range(steps):
                if step:
                    await _click(presenter, "Next ▶", problems, f"presenter-step{step + 1}")
                    await _settled(presenter)
                    followed = time.monotonic()
                    for v, p in pages:
                        await _followed(p, step, steps, problems, f"{v}-step{step + 1}")
                    await asyncio.gather(*(_settled(p) for _, p in pages))
                    follow_s.append(round(time.monotonic() - followed, 1))
                seen: list[tuple[float, int]] = []
                stop = asyncio.Event()
                watcher = asyncio.create_task(_watch(presenter, seen, stop))
                clicks: list[float] = []
                restart_at = viewers // 2 if step == min(1, steps - 1) and args.restart else -1
                for number, (voter, page) in enumerate(pages):
                    if number == restart_at:
                        # the votes so far reach the presenter first, so the click-to-count
                        # figures time the app, not the outage (the outage is restart_s)
                        deadline = time.monotonic() + 30
                        while time.monotonic() < deadline and (
                            not seen or seen[-1][1] < restart_at
                        ):
                            await asyncio.sleep(0.1)
                        t0 = time.monotonic()
                        # the stopped server's CPU is counted up to here; the restart
                        # itself (start-up, pages reconnecting) is left out
                        for kind, used in _cpu_used(cpu_before, _cpu_seconds(os.getpid())).items():
                            cpu_so_far[kind] += used
                        server.close()
                        server = contextlib.ExitStack()
                        server.enter_context(_server(port, env, log, args.profile))
                        for p in (presenter, *(p for _, p in pages)):
                            await _settled(p)
                        restart_s = time.monotonic() - t0
                        cpu_before = _cpu_seconds(os.getpid())
                    choice = rng.choice(CHOICES)
                    clicked = await _click(page, choice, problems, f"{voter}-step{step + 1}")
                    last_choice[(voter, step)] = CHOICE_KEYS[choice]
                    if clicked is not None:
                        clicks.append(clicked)
                    await asyncio.sleep(args.gap)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and (not seen or seen[-1][1] < viewers):
                    await asyncio.sleep(0.1)
                stop.set()
                await watcher
                step_latencies = _latencies(clicks, seen, 0)
                per_step.append([round(x, 1) for x in step_latencies])
                latencies += step_latencies
            cpu = _cpu_used(cpu_before, _cpu_seconds(os.getpid()))
            cpu = {kind: used + cpu_so_far[kind] for kind, used in cpu.items()}
            await browser.close()
    finally:
        server.close()
    store = StateStore(url)
    stored = {(v.voter, v.step): v.choice for v in store.votes(room_id)}
    lost = [k for k in last_choice if k not in stored]
    wrong = [k for k, c in last_choice.items() if stored.get(k) not in (None, c)]
    extra = [k for k in stored if k not in last_choice]
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] if ordered else None
    return {
        "viewers": viewers,
        "steps": steps,
        "votes_cast": len(last_choice),
        "votes_stored": len(stored),
        "lost": len(lost),
        "wrong_choice": len(wrong),
        "extra": len(extra),
        "latencies_measured": len(ordered),
        "click_to_count_p50_s": round(statistics.median(ordered), 2) if ordered else None,
        "click_to_count_p95_s": round(p95, 2) if p95 is not None else None,
        "click_to_count_max_s": round(ordered[-1], 2) if ordered else None,
        "restart_s": round(restart_s, 1),
        "every_viewer_on_next_step_s": follow_s,
        "latencies_by_step_s": per_step,
        "problems": problems,
        "cpu_s_while_voting": {k: round(v, 1) for k, v in cpu.items()},
        "server_log": str(log),
    }


def roombench_main(args: argparse.Namespace) -> int:
    """Run the bench and print its figures; exit 1 when a vote was lost or doubled."""
    if not 1 <= args.viewers <= MAX_VIEWERS:
        raise SettingsError(f"--viewers is 1 to {MAX_VIEWERS}")
    if not 1 <= args.steps <= len(QUERIES):
        raise SettingsError(f"--steps is 1 to {len(QUERIES)}")
    if not Path(CHROMIUM).is_file():
        raise SettingsError(f"Chromium not found at {CHROMIUM} (`make browser` installs it)")
    from core.data.datasets import resolve_movies_path

    resolve_movies_path()  # a clear error now rather than 16 pages showing it
    started = time.monotonic()
    print(f"{'load average at start':>24}: {load_average()} ({os.cpu_count()} CPUs)", flush=True)
    report = asyncio.run(_run(args))
    for key, value in report.items():
        print(f"{key:>24}: {value}")
    print(f"{'wall time':>24}: {time.monotonic() - started:.0f} s")
    print(f"{'load average at end':>24}: {load_average()}")
    ok = not (report["lost"] or report["wrong_choice"] or report["extra"])
    ok = ok and report["votes_stored"] == args.viewers * args.steps
    return 0 if ok else 1
