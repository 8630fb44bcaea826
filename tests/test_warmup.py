"""The server's warm-up (core.ops.warmup) with the real packaged models on the sample data."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import FakeEncoder, FakeReranker

from core.models.registry import load_encoder, load_reranker
from core.ops.warmup import STAGES, Warmup, WarmupStatus, prepared_on_disk
from core.present.views import EXAMPLE_QUERIES
from core.search.activity import SearchActivity
from core.search.pipeline import search_with_rerank


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


def _until(condition, what: str, timeout_s: float = 30.0) -> None:
    """Wait for ``condition()`` (a bound against hanging, not a timing claim)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.005)


def test_the_example_stage_waits_while_a_visitor_searches(monkeypatch) -> None:
    """A visitor's search holds the counter: the warm-up finishes the example it is on,
    then starts no other until the visitor's search ends."""
    import core.models.registry as registry
    import core.search.pipeline as pipeline

    monkeypatch.setattr(registry, "load_encoder", lambda model_id=None: FakeEncoder())
    monkeypatch.setattr(registry, "load_reranker", lambda model_id=None: FakeReranker())
    started: list[str] = []
    first_may_end = threading.Event()

    def example_search(dataset, query, **kwargs):  # stands in for the real scoring
        started.append(query)
        if len(started) == 1:
            assert first_may_end.wait(30)

    monkeypatch.setattr(pipeline, "search_with_rerank", example_search)
    visitors = SearchActivity()
    warmup = Warmup(dataset="sample", examples=("one", "two", "three"), visitors=visitors)
    warmup.start()
    _until(lambda: started == ["one"], "the first example started")

    visitor = visitors.search()  # a visitor's search begins while "one" is scored
    visitor.__enter__()
    assert visitors.running == 1
    first_may_end.set()
    _until(lambda: warmup.status().paused, "the warm-up paused for the visitor")
    status = warmup.status()
    assert started == ["one"], "the next example must wait for the visitor"
    assert (status.stage, status.done, status.finished) == ("examples", 1, False)
    assert "paused while visitors search" in status.label

    visitor.__exit__(None, None, None)  # the visitor's results are out
    assert warmup.wait_finished(30)
    status = warmup.status()
    assert status.error is None and not status.paused
    assert started == ["one", "two", "three"] and status.stage == "done"


def test_the_example_searches_run_as_background_work_behind_visitors(monkeypatch) -> None:
    """Within one example, the model calls step aside for a visitor too (not only
    between examples): the example's search runs under ``background(visitors)``."""
    import core.models.registry as registry
    import core.search.pipeline as pipeline
    from core.models import parallel

    monkeypatch.setattr(registry, "load_encoder", lambda model_id=None: FakeEncoder())
    monkeypatch.setattr(registry, "load_reranker", lambda model_id=None: FakeReranker())
    priorities = []
    monkeypatch.setattr(
        pipeline,
        "search_with_rerank",
        lambda dataset, query, **kwargs: priorities.append(parallel._YIELD_TO.get()),
    )
    visitors = SearchActivity()
    warmup = Warmup(dataset="sample", examples=("one", "two"), visitors=visitors)
    warmup.start()
    assert warmup.wait_finished(30) and warmup.status().error is None
    assert priorities == [visitors, visitors]
    assert parallel._YIELD_TO.get() is None, "only the warm-up's own calls"


def test_the_visitor_count_is_released_when_a_search_fails() -> None:
    visitors = SearchActivity()
    with pytest.raises(RuntimeError), visitors.search():
        assert visitors.running == 1
        raise RuntimeError("the search failed")
    assert visitors.running == 0 and visitors.wait_until_idle(0)


def test_the_search_page_counts_its_search_as_a_visitors(monkeypatch) -> None:
    """run_search (every Search page search) holds the process-wide counter while it runs."""
    import core.present.search_state as search_state
    from core.data.datasets import load_dataset
    from core.present.views import SearchSettings
    from core.search.activity import VISITOR_SEARCHES

    seen: list[int] = []

    def counting_search(*args, **kwargs):
        seen.append(VISITOR_SEARCHES.running)
        raise RuntimeError("stop here")

    monkeypatch.setattr(search_state, "search_with_rerank", counting_search)
    sample = load_dataset("sample")
    before = VISITOR_SEARCHES.running
    with pytest.raises(RuntimeError):
        search_state.run_search(
            SearchSettings(
                dataset="sample", query="bats", retriever="bm25", embed_fields=("title",)
            ),
            sample,
            encoder=None,
            index=None,
            reranker=None,
        )
    assert seen == [before + 1] and VISITOR_SEARCHES.running == before


def test_a_pause_is_logged_with_the_example_it_waits_before() -> None:
    from core.ops.warmup import log_line

    paused = WarmupStatus(
        stage="examples",
        label="Scoring the example queries (paused while visitors search)",
        done=2,
        total=5,
        started=True,
        ready=True,
        finished=False,
        error=None,
        seconds=12.0,
        paused=True,
    )
    assert log_line(paused) == (
        "warm-up: paused before example 3 of 5: visitors are searching (12.0 s)"
    )
