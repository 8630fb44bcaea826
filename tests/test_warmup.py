"""The server's warm-up (core.warmup) with the real packaged models on the sample data."""

from __future__ import annotations

import threading

import pytest

from core.models.registry import load_encoder, load_reranker
from core.present.views import EXAMPLE_QUERIES
from core.search.pipeline import search_with_rerank
from core.warmup import STAGES, Warmup, WarmupStatus, prepared_on_disk


@pytest.mark.slow
def test_warmup_loads_the_shared_models_embeds_and_scores_the_examples() -> None:
    seen: list[WarmupStatus] = []
    warmup = Warmup(dataset="sample")
    status = warmup.run(seen.append)

    assert status.error is None and status.ready and status.finished
    assert status.stage == "done" and status.fraction == 1.0
    assert list(status.stage_seconds) == list(STAGES)
    stages = [s.stage for s in seen]
    assert [s for i, s in enumerate(stages) if s != stages[i - 1] or i == 0] == [*STAGES, "done"]
    fractions = [s.fraction for s in seen]
    assert fractions == sorted(fractions), "progress never goes back"
    assert not any(s.ready for s in seen if s.stage in ("dataset", "reranker", "encoder"))
    examples = [s for s in seen if s.stage == "examples"]
    assert examples[-1].done == examples[-1].total == len(EXAMPLE_QUERIES["sample"])

    # The sessions' loaders return the very objects the warm-up loaded ...
    encoder, reranker = load_encoder(), load_reranker()
    assert encoder is warmup.encoder and reranker is warmup.reranker
    assert warmup.run() == status  # a second run does nothing
    # ... and an example query now finds every candidate's score in the reranker's cache.
    from core.data.datasets import load_dataset

    sample = load_dataset("sample")
    hits, misses = reranker.cache.hits, reranker.cache.misses
    search_with_rerank(
        sample,
        EXAMPLE_QUERIES["sample"][0],
        encoder=encoder,
        reranker=reranker,
        embed_fields=sample.default_embed_fields,
        rerank_fields=sample.default_rerank_fields,
        num_candidates=warmup.candidates,
        num_results=warmup.results,
    )
    assert reranker.cache.misses == misses, "no pair was scored again"
    assert reranker.cache.hits - hits == len(sample) == 40  # every candidate


def test_start_runs_the_warmup_once_however_many_callers() -> None:
    warmup = Warmup(dataset="no-such-file.json", examples=())
    results = []
    threads = [threading.Thread(target=lambda: results.append(warmup.start())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert warmup.wait_finished(30)


def test_a_failing_warmup_reports_its_error_and_unblocks_waiters() -> None:
    warmup = Warmup(dataset="no-such-file.json", examples=())
    assert warmup.status().started is False and warmup.status().fraction == 0.0
    warmup.start()
    assert warmup.wait_ready(30)  # waiters are released, not left hanging
    status = warmup.status()
    assert status.finished and status.error and "no-such-file.json" in status.error
    assert status.stage == "dataset"


def test_prepared_on_disk_is_false_on_an_empty_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path))
    assert prepared_on_disk() is False
