"""The second seed flow end to end: Together embeddings + Together rerank (top 25 ->
top 5), through the real SDK against the loopback fake of Together's REST contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.data.datasets import load_sample
from core.models.base import PACKAGED_CROSS_ENCODER
from core.models.registry import load_encoder, load_reranker
from core.search.index import build_index, embedding_cache_key
from core.search.pipeline import search_with_rerank
from tests.together_server import FakeTogetherServer

ROOT = Path(__file__).resolve().parents[1]
KEY = "tgp-flow-secret-0123456789"
ENCODER = "together:BAAI/bge-base-en-v1.5"
RERANKER = "together:Salesforce/Llama-Rank-V1"
QUERY = "evict a colony of bats from the attic safely"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeTogetherServer]:
    with FakeTogetherServer(api_key=KEY) as fake:
        monkeypatch.setenv("TOGETHER_API_KEY", KEY)
        monkeypatch.setenv("TOGETHER_BASE_URL", fake.base_url)
        monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))
        yield fake


def test_together_embeddings_and_rerank_top_25_to_top_5(server: FakeTogetherServer) -> None:
    dataset = load_sample()
    encoder = load_encoder(ENCODER)
    result = search_with_rerank(
        dataset,
        QUERY,
        encoder=encoder,
        reranker=load_reranker(RERANKER),
        num_candidates=25,
        num_results=5,
        rerank_top_n=5,
    )
    assert result.score_kind == "relevance"
    assert result.reranker == "Salesforce/Llama-Rank-V1"
    assert len(result.candidates) == 25
    scored = [c for c in result.reranked if c.rerank_score is not None]
    assert [c.final_rank for c in scored] == [1, 2, 3, 4, 5]
    assert all(0.0 <= c.rerank_normalized <= 1.0 for c in scored)
    assert result.reranked[0].title == "Bats in the Attic: Safe Eviction"

    (rerank,) = server.requests_to("/v1/rerank")
    assert rerank.body["top_n"] == 5
    # the fields the reranker reads, as `field: value` text, in retrieval order
    expected = [c.rerank_text for c in result.candidates]
    assert rerank.body["documents"] == expected
    assert all(text.startswith("title: ") and "\nsummary: " in text for text in expected)


def test_together_embeddings_are_cached_on_disk(server: FakeTogetherServer) -> None:
    dataset = load_sample()
    fields = dataset.default_embed_fields
    first = build_index(dataset, load_encoder(ENCODER), fields)
    sent = len(server.requests_to("/v1/embeddings"))
    second = build_index(dataset, load_encoder(ENCODER), fields)
    assert (first.from_cache, second.from_cache) == (False, True)
    assert len(server.requests_to("/v1/embeddings")) == sent  # nothing re-sent
    assert first.cache_path.exists()
    assert first.index.vectors.shape == (len(dataset), 768)
    # a local model with the same id would not share the cache entry
    local_key = embedding_cache_key("BAAI/bge-base-en-v1.5", dataset, fields)
    assert first.cache_path.stem != local_key


def test_failing_hosted_rerank_falls_back_to_the_local_cross_encoder_and_says_so(
    server: FakeTogetherServer, cross_encoder
) -> None:
    server.fail_next(401, path="/v1/rerank")
    result = search_with_rerank(
        load_sample(),
        QUERY,
        encoder=load_encoder(ENCODER),
        reranker=load_reranker(RERANKER),
        fallback=cross_encoder,
        num_candidates=25,
        num_results=5,
    )
    assert result.notice is not None and "local cross-encoder" in result.notice
    assert "rejected" in result.notice or "key" in result.notice
    assert KEY not in result.notice
    assert result.reranker == PACKAGED_CROSS_ENCODER
    assert result.score_kind == "logit"
    assert result.reranked[0].title == "Bats in the Attic: Safe Eviction"


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core", "search", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_cli_runs_the_together_seed_flow(server: FakeTogetherServer) -> None:
    run = _cli(
        QUERY,
        "--dataset",
        "sample",
        "--encoder",
        ENCODER,
        "--reranker",
        RERANKER,
        "--candidates",
        "25",
        "--top",
        "5",
        "--rerank-top-n",
        "5",
        "--json",
        env=dict(os.environ),
    )
    assert run.returncode == 0, run.stderr
    payload = json.loads(run.stdout)
    assert payload["score_kind"] == "relevance"
    assert payload["results"][0]["title"] == "Bats in the Attic: Safe Eviction"
    assert KEY not in run.stdout + run.stderr


@pytest.mark.slow
def test_cli_without_a_key_says_how_to_provide_one(server: FakeTogetherServer) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TOGETHER_API_KEY"}
    run = _cli(QUERY, "--dataset", "sample", "--reranker", RERANKER, env=env)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("error:") and "TOGETHER_API_KEY" in line
