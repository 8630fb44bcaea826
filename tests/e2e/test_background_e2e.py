"""End to end: a 5,000-record upload is searchable at once (BM25, reranked) while its
dense index is built in the background; a changed setting and a visit to another page
do not restart the build, and when it is ready the page says so and the next search
uses it. The server's log shows one job, every chunk encoded once. A server killed
mid-build resumes the build after its restart from the chunks on record.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from core.bench.background import synthetic_movies

from .conftest import (
    APP_SERVER_LOG,
    SERVER_LOG,
    _free_port,
    _server_env,
    pick_option,
    run_app_server,
    wait_for_app_run,
)
from .test_search_e2e import search
from .test_upload_e2e import sidebar, upload_file

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RECORDS = 5_000
STANDIN = "First stage: BM25 while the dense index is built ("
READY = "The dense index is ready: your next search uses"
# Encoding 5,000 short records: under a minute idle, many more on a loaded machine.
BUILD_TIMEOUT_MS = 1_500_000


def test_upload_is_searched_with_bm25_while_its_dense_index_builds_once(
    page: Page, app_server: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    records = synthetic_movies(RECORDS, seed=5, words=12)  # short: a quicker build
    records[0]["title"] = f"Run {uuid.uuid4().hex}"  # new content: never in the cache
    upload = tmp_path / "movies-5000.json"
    upload.write_text(json.dumps(records), encoding="utf-8")
    log_path: Path = request.config.stash[APP_SERVER_LOG]
    log_start = len(log_path.read_text(encoding="utf-8", errors="replace"))

    page.goto(f"{app_server}/?dataset=sample")
    wait_for_app_run(page)
    upload_file(page, upload)
    search(page, "a robot falls in love")
    expect(page.get_by_role("heading", name="Reranked order")).to_be_visible()
    expect(page.get_by_text(STANDIN)).to_be_visible()

    # a setting changed mid-build (the first stage: hybrid waits for the index too)
    combobox = sidebar(page).get_by_role("combobox", name="First stage")
    pick_option(page, combobox, "Hybrid (RRF of dense + BM25)")
    expect(page.get_by_text(STANDIN)).to_be_visible()
    expect(page.get_by_role("heading", name="Reranked order")).to_be_visible()

    # another page, then back: the build goes on
    nav = page.get_by_test_id("stSidebarNav")
    wait_for_app_run(page, nav.get_by_role("link", name="About").click)
    wait_for_app_run(page, nav.get_by_role("link", name="Search").click)
    expect(page.get_by_test_id("stException")).to_have_count(0)

    ready = page.get_by_text(READY)
    expect(ready).to_be_visible(timeout=BUILD_TIMEOUT_MS)
    expect(page.get_by_text(STANDIN)).to_have_count(0)
    wait_for_app_run(page, page.get_by_role("button", name=re.compile("Search again with")).click)
    expect(page.get_by_text("this search's first stage is hybrid again")).to_be_visible()
    expect(page.get_by_test_id("stException")).to_have_count(0)

    log = log_path.read_text(encoding="utf-8", errors="replace")[log_start:]
    started = re.findall(r"embedding job (\w+): started, 5,000 records", log)
    ended = re.findall(r"embedding job \w+: done .*?(\d+) chunks encoded, (\d+) resumed", log)
    assert len(started) == 1, log
    assert ended == [("5", "0")], log  # 5 chunks of 1,024, each encoded once


def _partial_done(cache: Path, rows: int) -> int:
    """Chunks on record in the unfinished build of ``rows`` records (0 if none)."""
    done = 0
    for record in (cache / "embeddings" / "partial").glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(record.read_text())
            if data.get("rows") == rows:
                done = max(done, int(data.get("done", 0)))
    return done


def test_a_server_killed_mid_build_resumes_it_after_the_restart(
    page: Page, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    rows, chunk = 3_001, 512  # 6 chunks; an odd size no other test uploads
    records = synthetic_movies(rows, seed=7, words=12)
    records[0]["title"] = f"Run {uuid.uuid4().hex}"
    upload = tmp_path / "movies-3001.json"
    upload.write_text(json.dumps(records), encoding="utf-8")
    env = {**_server_env(), "RERANK_EMBED_CHUNK_DOCS": str(chunk)}
    cache, port = Path(env["RERANK_CACHE_DIR"]), _free_port()

    first_log = tmp_path / "server-1.log"
    request.config.stash[SERVER_LOG] = first_log
    with run_app_server("serve", first_log, env, port=port) as base_url:
        page.goto(f"{base_url}/?dataset=sample")
        wait_for_app_run(page)
        upload_file(page, upload)
        search(page, "a robot falls in love")
        expect(page.get_by_text(STANDIN)).to_be_visible()
        link = page.url
        deadline = time.monotonic() + BUILD_TIMEOUT_MS / 1000
        while _partial_done(cache, rows) < 2 and time.monotonic() < deadline:
            time.sleep(1)
        on_record = _partial_done(cache, rows)
        assert on_record >= 2
        (pid,) = [
            int(p)
            for p in subprocess.run(
                ["pgrep", "-f", f"serve.py --server.port {port} "],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.split()
        ]
        os.kill(pid, signal.SIGKILL)  # no shutdown, no cleanup: a crash

    second_log = tmp_path / "server-2.log"
    request.config.stash[SERVER_LOG] = second_log
    with run_app_server("serve", second_log, env, port=port) as base_url:
        page.goto(link)  # the shared link names the stored upload and the query
        wait_for_app_run(page)
        expect(page.get_by_role("heading", name="Reranked order")).to_be_visible()
        expect(page.get_by_text(READY)).to_be_visible(timeout=BUILD_TIMEOUT_MS)
        log = second_log.read_text(encoding="utf-8", errors="replace")
    (encoded, resumed) = re.findall(
        r"embedding job \w+: done .*?(\d+) chunks encoded, (\d+) resumed \(of 6\)", log
    )[0]
    assert int(resumed) >= on_record  # every chunk on record before the kill was kept
    assert int(encoded) + int(resumed) == 6
