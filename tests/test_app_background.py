"""The Search page on an upload whose dense index is being built in the background:
BM25 answers at once (reranked), one line says so with the build's progress, and once
the index is ready the next run uses the link's first stage and says so."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.bench.background import synthetic_movies
from core.search.background import default_embedder

ROOT = Path(__file__).resolve().parents[1]
STANDIN = "First stage: BM25 while the dense index is built ("

pytestmark = pytest.mark.slow


def table_columns(at: AppTest) -> list[set[str]]:
    return [{str(c).lower() for c in df.value.columns} for df in at.dataframe]


def test_bm25_stands_in_until_the_dense_index_is_ready(
    minilm, cross_encoder, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path))  # models are loaded already
    monkeypatch.setenv("RERANK_BACKGROUND_MIN_DOCS", "100")
    records = synthetic_movies(300, seed=3)
    records[0]["title"] = f"Run {uuid.uuid4().hex}"
    data = json.dumps(records).encode()

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params["dataset"] = "sample"
    at.run()
    at.file_uploader(key="upload_file").set_value(("films.json", data, "application/json"))
    at.run()
    at.text_input(key="query").input("a robot falls in love").run()
    assert not at.exception, [e.message for e in at.exception]
    lines = [i.value for i in at.info]
    assert any(line.startswith(STANDIN) for line in lines), lines
    assert any("bm25" in columns for columns in table_columns(at))  # BM25's scores

    (job,) = [j for j in default_embedder().jobs() if len(j.dataset) == 300]
    assert job.wait(300) and job.status().state == "done"
    at.run()  # the next run (a rerun, or the user's next search)
    assert not at.exception, [e.message for e in at.exception]
    assert any("first stage is dense again" in s.value for s in at.success)
    assert not any(line.startswith(STANDIN) for line in [i.value for i in at.info])
    assert any("cosine" in columns for columns in table_columns(at))
