"""Tests of ``python -m core``, run as a real subprocess.

The child inherits this process's environment (conftest sets RERANK_CACHE_DIR,
RERANK_MOVIES_PATH and HF_HUB_OFFLINE), so it reads the same embedding cache as the
in-process fixtures. Each run that loads a model costs several seconds of imports, so
those runs start together, two at a time (one per core), as soon as the first test
needs one; each test then reads its own run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BATS = "super hero mystery action movie about bats"
TABLE_HEADER = " rank   cosine  title"


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_one_line_error(run: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert run.stdout == ""
    return lines[0]


# --- runs that load models, started together ------------------------------------------------

SAMPLE_ARGS = ("search", "cast iron pan", "--dataset", "sample", "--no-rerank", "--top", "5")


def _sample_twice(cache: Path) -> tuple[subprocess.CompletedProcess[str], ...]:
    """Two identical retrieval-only runs on the sample, sharing a fresh cache dir."""
    first = cli(*SAMPLE_ARGS, RERANK_CACHE_DIR=str(cache))
    second = cli(*SAMPLE_ARGS, RERANK_CACHE_DIR=str(cache))
    return first, second


@pytest.fixture(scope="module")
def model_runs(movies_path, movies_index, tmp_path_factory):
    """Futures of every CLI run that loads a model (movies_index warms the shared cache
    the movies run reads, so the child does not encode the corpus itself)."""
    cache = tmp_path_factory.mktemp("cli-cache")
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs: dict[str, Future] = {
            "sample": pool.submit(_sample_twice, cache),
            "movies_json": pool.submit(
                cli, "search", BATS, "--dataset", str(movies_path), "--json"
            ),
            "unknown_reranker": pool.submit(
                cli, "search", "x", "--dataset", "sample", "--reranker", "some-org/not-a-model"
            ),
            "empty_query": pool.submit(cli, "search", "   ", "--dataset", "sample", "--no-rerank"),
        }
        yield {"cache": cache, **runs}


@pytest.mark.slow
def test_json_search_on_movies_file(model_runs) -> None:
    run = model_runs["movies_json"].result()
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["query"] == BATS
    assert data["dataset"] == "movies"
    assert data["reranker"] == "cross-encoder/ms-marco-MiniLM-L-12-v2"
    assert data["score_kind"] == "logit"
    assert data["rerank_fields"] == ["title", "overview"]
    assert data["timings"]["index_from_cache"] is True
    results = data["results"]
    assert len(results) == 50
    for r in results:
        assert isinstance(r["retrieval_rank"], int) and isinstance(r["rerank_rank"], int)
        assert isinstance(r["retrieval_score"], float) and isinstance(r["rerank_score"], float)
        assert r["movement"] == r["retrieval_rank"] - r["rerank_rank"]
    assert [r["rerank_rank"] for r in results] == list(range(1, 51))
    assert "Batman" in results[0]["title"]
    assert "Batman" in results[0]["record"]["title"]


@pytest.mark.slow
def test_table_on_sample_without_rerank(model_runs) -> None:
    run = model_runs["sample"].result()[0]
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("query: 'cast iron pan'   dataset: sample")
    assert "reranker: none (retrieval only)" in lines[1]
    assert TABLE_HEADER in lines
    rows = lines[lines.index(TABLE_HEADER) + 1 :]
    assert len(rows) == 5
    assert [row.split()[0] for row in rows] == ["1", "2", "3", "4", "5"]
    assert rows[0].endswith("Seasoning a Cast Iron Skillet")
    assert "Traceback" not in run.stderr


@pytest.mark.slow
def test_second_run_reports_cached_index(model_runs) -> None:
    first, second = model_runs["sample"].result()
    assert second.returncode == 0, second.stderr
    time_first = next(line for line in first.stdout.splitlines() if line.startswith("time:"))
    time_second = next(line for line in second.stdout.splitlines() if line.startswith("time:"))
    assert "(encoded)" in time_first
    assert "(cached)" in time_second
    assert len(list((model_runs["cache"] / "embeddings").glob("*.npy"))) == 1
    # same data, same results
    assert first.stdout.splitlines()[3:] == second.stdout.splitlines()[3:]


@pytest.mark.slow
def test_unknown_reranker_offline(model_runs) -> None:
    assert_one_line_error(
        model_runs["unknown_reranker"].result(),
        "'some-org/not-a-model' is not available",
        "cross-encoder/ms-marco-MiniLM-L-12-v2",
    )


@pytest.mark.slow
def test_empty_query(model_runs) -> None:
    assert_one_line_error(model_runs["empty_query"].result(), "the query is empty")


# --- errors: one line, no traceback --------------------------------------------------------------


def test_missing_dataset_file(tmp_path) -> None:
    missing = tmp_path / "nope.json"
    assert_one_line_error(
        cli("search", "x", "--dataset", str(missing)), "dataset file not found", str(missing)
    )


def test_invalid_json_file(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"title": "a"},\n {"title": }]')
    assert_one_line_error(
        cli("search", "x", "--dataset", str(bad)), "bad.json is not valid JSON", "line 2, column 12"
    )


def test_unknown_rerank_field() -> None:
    line = assert_one_line_error(
        cli("search", "x", "--dataset", "sample", "--rerank-fields", "nope")
    )
    assert line.startswith("error: unknown field(s) to rerank: nope; this dataset has: id, title")
