"""The Search page on an upload whose dense index is being built in the background:
BM25 answers at once (reranked), one line says so with the build's progress, and once
the index is ready the next run uses the link's first stage and says so. Above
RERANK_CONFIRM_SECONDS the build waits for the visitor's click (issue 29, case 6)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.bench.background import synthetic_movies
from core.data.upload_store import upload_id
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


BUILD = "Build the dense index (about "


def _upload_search(at: AppTest, data: bytes, query: str = "a robot falls in love") -> AppTest:
    at.file_uploader(key="upload_file").set_value(("films.json", data, "application/json"))
    at.run()
    at.text_input(key="query").input(query).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _jobs_of(dataset_id: str) -> list:
    return [j for j in default_embedder().jobs() if j.dataset.name == dataset_id]


def test_a_priced_embedding_waits_for_the_click_and_bm25_answers_meanwhile(
    minilm, cross_encoder, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("RERANK_BACKGROUND_MIN_DOCS", "100")
    monkeypatch.setenv("RERANK_CONFIRM_SECONDS", "0.01")  # 300 records cost more
    records = synthetic_movies(300, seed=4)
    records[0]["title"] = f"Run {uuid.uuid4().hex}"
    data = json.dumps(records).encode()
    dataset_id = upload_id(data)

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params["dataset"] = "sample"
    _upload_search(at.run(), data)
    assert at.query_params["dataset"] == dataset_id
    assert not _jobs_of(dataset_id)  # nothing started before the click
    (line,) = [i.value for i in at.info if "dense index is built when you click" in i.value]
    assert line.replace("\\", "").startswith("First stage: BM25. Embedding 300 records takes about")
    assert any("bm25" in columns for columns in table_columns(at))  # first results, BM25's
    (button,) = [b for b in at.button if b.label.startswith(BUILD)]

    button.click().run()  # the click starts it, BM25 keeps answering
    assert not at.exception, [e.message for e in at.exception]
    (job,) = _jobs_of(dataset_id)
    assert not [b for b in at.button if b.label.startswith(BUILD)]
    assert any("bm25" in columns for columns in table_columns(at))
    assert at.session_state["visitor_budget"].spent() > 0  # charged to this visitor

    other = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)  # the shared link
    other.query_params.update({"dataset": dataset_id, "q": "a heist in a big city"})
    other.run()
    assert not other.exception, [e.message for e in other.exception]
    assert not [b for b in other.button if b.label.startswith(BUILD)]  # joined, no click
    assert _jobs_of(dataset_id) == [job]
    assert "visitor_budget" not in other.session_state  # nothing priced, nothing charged
    assert job.wait(300) and job.status().state == "done"
    other.run()
    assert not other.exception, [e.message for e in other.exception]
    assert any("cosine" in columns for columns in table_columns(other))


def test_an_embedding_past_the_visitor_budget_is_refused_in_one_line(
    minilm, cross_encoder, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("RERANK_BACKGROUND_MIN_DOCS", "100")
    monkeypatch.setenv("RERANK_VISITOR_BUDGET_MIN", "0.0001")
    records = synthetic_movies(300, seed=5)
    records[0]["title"] = f"Run {uuid.uuid4().hex}"
    data = json.dumps(records).encode()

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params["dataset"] = "sample"
    _upload_search(at.run(), data)
    assert not _jobs_of(upload_id(data))
    (refusal,) = [w.value.replace("\\", "") for w in at.warning if "BUDGET" in w.value]
    assert refusal.startswith("First stage: BM25. Embedding 300 records: about ")
    assert "RERANK_VISITOR_BUDGET_MIN" in refusal and "\n" not in refusal
    assert not [b for b in at.button if b.label.startswith(BUILD)]
    assert any("bm25" in columns for columns in table_columns(at))
