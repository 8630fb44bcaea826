"""``python -m core evaluate --compare A,B`` as a real subprocess, on the sample dataset
with BM25 (no bi-encoder) and four judged queries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.data.beir import dump_judgments_csv
from tests.test_app_compare import JUDGED

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core", "evaluate", *args],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def judgments(tmp_path) -> Path:
    path = tmp_path / "judgments.csv"
    path.write_text(dump_judgments_csv(JUDGED), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("compare", "fragment"),
    [("local", "exactly two specs"), ("local,local@2", "between 0 and 1"), ("x@y,none", "@")],
)
def test_bad_compare_is_one_line(judgments, compare, fragment):
    run = cli(
        "--judgments",
        str(judgments),
        "--dataset",
        "sample",
        "--retriever",
        "bm25",
        "--compare",
        compare,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    # stderr may first say which judgments file format was read; the error is one line
    (line,) = [x for x in run.stderr.strip().splitlines() if not x.startswith("judgments: ")]
    assert line.startswith("error: ") and fragment in line


def test_compare_refuses_a_reranker_too(judgments):
    run = cli(
        "--judgments",
        str(judgments),
        "--dataset",
        "sample",
        "--retriever",
        "bm25",
        "--compare",
        "none,local",
        "--reranker",
        "local",
    )
    assert run.returncode == 2 and "drop --reranker" in run.stderr


@pytest.mark.slow
def test_compare_prints_verdict_json_and_writes_html(judgments, tmp_path):
    html = tmp_path / "out" / "a-vs-b.html"
    run = cli(
        "--judgments",
        str(judgments),
        "--dataset",
        "sample",
        "--retriever",
        "bm25",
        "--candidates",
        "10",
        "--compare",
        "none,local",
        "--html",
        str(html),
        "--json",
    )
    assert run.returncode == 0, run.stderr
    payload = json.loads(run.stdout)
    assert payload["a"] == "first stage only" and payload["b"] == "local cross-encoder"
    assert payload["verdict"] in ("A better", "B better", "no difference beyond noise")
    assert payload["a_wins"] + payload["ties"] + payload["b_wins"] == len(JUDGED)
    assert len(payload["queries"]) == len(JUDGED) and payload["disagreements"]
    page = html.read_text(encoding="utf-8")
    changed = sum(1 for q in payload["queries"] if q["delta"] != 0)
    assert payload["verdict"] in page
    if changed:
        assert page.count("<svg") == 1 and page.count("<rect") == changed
    else:
        assert "No query's nDCG@10 changed between A and B (4 queries)" in page
    text = cli(
        "--judgments",
        str(judgments),
        "--dataset",
        "sample",
        "--retriever",
        "bm25",
        "--candidates",
        "10",
        "--compare",
        "none,local",
    )
    assert text.returncode == 0 and "verdict: " in text.stdout
    assert "queries where A and B disagree most:" in text.stdout
