"""What keeps a room's server light (measured by ``python -m core roombench``; no timings
here): Streamlit's garbage collection after every script run is off, a page run that
asks for a step's sides only writes the first time, and only the presenter's page polls
the count (a viewer's page checks the room, a vote reruns only the buttons)."""

from __future__ import annotations

import inspect
import os
import time
import tomllib
from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit import config as st_config
from streamlit.runtime.scriptrunner.script_runner import ScriptRunner

from core.data.state_store import StateStore
from pages.widgets import room_panel
from tests.test_room import room, seat  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parents[1]


def test_streamlit_does_not_collect_garbage_after_every_run() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False
    # the option and the full collection it switches off are still where we expect them
    assert "runner.postScriptGC" in st_config._config_options_template
    finished = inspect.getsource(ScriptRunner._on_script_finished)
    assert 'config.get_option("runner.postScriptGC")' in finished
    assert "gc.collect(2)" in finished


def test_asking_for_a_steps_sides_writes_only_once(tmp_path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 'state.sqlite3'}")
    writes: list[str] = []

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def count(conn, cursor, statement, *args) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            writes.append(statement)

    first = store.a_is_left("a" * 16, 0)
    assert [store.a_is_left("a" * 16, 0) for _ in range(5)] == [first] * 5
    assert len(writes) == 1


def test_only_the_presenter_polls_the_count(room) -> None:  # noqa: F811
    _, wid, room_id, token = room
    assert room_panel.PRESENTER_REFRESH_S <= 1.0 < room_panel.VIEWER_REFRESH_S
    presenter = seat(wid, room_id, token)
    presenter.button(key="room_blind").click().run()
    presenter = seat(wid, room_id, token)
    viewer = seat(wid, room_id, voter="viewer1")
    assert "Votes on this step" in [m.label for m in presenter.metric]
    assert viewer.metric.len == 0 and "Left is better" in [b.label for b in viewer.button]


def test_the_bench_times_each_click_until_the_count_reaches_its_rank() -> None:
    from core.ops.roombench import _latencies

    seen = [(10.0, 0), (11.2, 1), (12.5, 3)]  # (time, presenter's count) when it changed
    # click 1 at 10.5 -> count 1 at 11.2; click 2 at 11.0 -> count >= 2 at 12.5; click 3
    assert _latencies([10.5, 11.0, 11.9], seen, 0) == pytest.approx([0.7, 1.5, 0.6])


def test_the_bench_reads_the_cpu_time_of_its_own_processes() -> None:
    import subprocess
    import sys

    from core.ops.roombench import _cpu_seconds, _cpu_used

    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nt = time.process_time()\n"
            "while time.process_time() - t < 0.3: pass\nsys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
    )
    try:
        for _ in range(200):  # until the child has burnt its 0.3 s
            after = _cpu_seconds(os.getpid())
            if after.get(child.pid, ("", 0.0))[1] >= 0.29:
                break
            time.sleep(0.05)
        kind, seconds = after[child.pid]
        assert kind == "bench" and seconds >= 0.29
        used = _cpu_used({child.pid: (kind, 0.1)}, {child.pid: after[child.pid]})
        assert used == {"server": 0.0, "chromium": 0.0, "bench": pytest.approx(seconds - 0.1)}
    finally:
        child.communicate(b"")


def test_pages_asking_for_the_same_step_compute_it_one_at_a_time(monkeypatch) -> None:
    import threading

    from core.present.views import SearchSettings
    from core.quality.headtohead import RerankSpec

    running: dict[str, int] = {}
    peak: dict[str, int] = {}
    guard = threading.Lock()

    def compute(settings, b):  # stands in for the scoring
        with guard:
            running[settings.query] = running.get(settings.query, 0) + 1
            peak[settings.query] = max(peak.get(settings.query, 0), running[settings.query])
        time.sleep(0.05)
        with guard:
            running[settings.query] -= 1
        return settings.query

    monkeypatch.setattr(room_panel, "run_head_to_head", compute)
    steps = [SearchSettings(query=q) for q in ("a heist", "a toy")]
    pages = [
        threading.Thread(target=room_panel.step_head_to_head, args=(s, RerankSpec("none")))
        for s in steps
        for _ in range(4)
    ]
    for page in pages:
        page.start()
    for page in pages:
        page.join()
    assert peak == {"a heist": 1, "a toy": 1}  # one at a time per step
