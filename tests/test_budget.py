"""Costs asked before they are spent (issue 29, case 6): core.search.budget, the
Evaluate page's budget and judgments cap, and the recall ceiling's click."""

from __future__ import annotations

import uuid

import pytest

from core.data.beir import check_uploaded_judgments, read_judgments
from core.data.documents import Dataset, make_dataset
from core.models.errors import DatasetError
from core.search.activity import SearchActivity
from core.search.background import BackgroundEmbedder, start_gate
from core.search.budget import (
    ENCODING_RATES,
    Cost,
    EncodingRates,
    VisitorBudget,
    budget_seconds,
    confirm_seconds,
    embed_seconds_per_doc,
    embedding_estimate,
)
from core.search.chunked_embedding import EmbeddingCancelled, encode_chunked
from core.search.embedding_cache import embedding_cache_key
from core.search.passages import PassageSettings
from tests.test_app_diagnostics import (  # noqa: F401 (fixtures)
    fake_order,
    fakes,
    metrics,
    open_page,
    sample,
)
from tests.test_app_evaluate import SAMPLE_BATS, _evaluate_page, _run_button, assert_no_exception


def test_the_threshold_and_the_budget_read_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("RERANK_CONFIRM_SECONDS", raising=False)  # conftest raises it
    assert confirm_seconds() == 60 and budget_seconds() == 30 * 60
    monkeypatch.setenv("RERANK_CONFIRM_SECONDS", "5")
    monkeypatch.setenv("RERANK_VISITOR_BUDGET_MIN", "2")
    assert confirm_seconds() == 5 and budget_seconds() == 120
    assert Cost(6, "x").needs_click and not Cost(5, "x").needs_click
    monkeypatch.setenv("RERANK_VISITOR_BUDGET_MIN", "lots")
    assert budget_seconds() == 30 * 60


def test_a_visitor_budget_refuses_past_its_hour_and_frees_after_it(monkeypatch) -> None:
    monkeypatch.setenv("RERANK_VISITOR_BUDGET_MIN", "10")
    budget = VisitorBudget()
    work = Cost(300, "Reranking all 1,000 records")
    assert budget.refusal(work, now=0) is None
    budget.charge(work, now=0)
    budget.charge(work, now=10)
    refusal = budget.refusal(work, now=20)
    assert refusal and "limit 10.0 min" in refusal and "try again in 59.7 min" in refusal
    assert budget.refusal(work, now=3601) is None  # the first charge left the hour
    too_big = budget.refusal(Cost(3600, "Find the best setting"), now=0)
    assert too_big and "ask the operator" in too_big
    monkeypatch.setenv("RERANK_VISITOR_BUDGET_MIN", "0")
    assert budget.refusal(Cost(10**9, "anything"), now=20) is None


def test_an_uploaded_judgments_file_over_the_cap_is_one_error(monkeypatch) -> None:
    rows = "".join(f"q{i % 50},d{i},1\n" for i in range(200))
    found = read_judgments(("query,doc_id,rating\n" + rows).encode())
    monkeypatch.setenv("RERANK_MAX_JUDGMENTS", "100")
    with pytest.raises(DatasetError, match="200 ratings; at most 100"):
        check_uploaded_judgments(found, "big.csv")
    monkeypatch.setenv("RERANK_MAX_JUDGMENTS", "500")
    assert check_uploaded_judgments(found, "big.csv") is found


def test_the_evaluate_page_refuses_a_run_past_the_visitor_budget(monkeypatch) -> None:
    monkeypatch.setenv("RERANK_VISITOR_BUDGET_MIN", "0.0001")
    csv = f"query,doc_id,rating\n{SAMPLE_BATS},s15,3\n{SAMPLE_BATS},s33,2\n".encode()
    at = _evaluate_page(csv=csv)
    assert_no_exception(at)
    assert _run_button(at).disabled
    assert any("RERANK_VISITOR_BUDGET_MIN" in w.value.replace("\\", "") for w in at.warning)


def test_the_evaluate_page_refuses_too_many_uploaded_ratings(monkeypatch) -> None:
    monkeypatch.setenv("RERANK_MAX_JUDGMENTS", "1")
    csv = f"query,doc_id,rating\n{SAMPLE_BATS},s15,3\n{SAMPLE_BATS},s33,2\n".encode()
    at = _evaluate_page(csv=csv)
    assert_no_exception(at)
    assert any("2 ratings; at most 1 " in e.value.replace("\\", "") for e in at.error), [
        e.value for e in at.error
    ]
    assert not [b for b in at.button if b.label == "Run evaluation"]


@pytest.mark.usefixtures("fakes", "fake_order", "sample")
def test_the_recall_ceiling_waits_for_a_click_above_the_threshold(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path))  # nothing scored yet
    monkeypatch.setenv("RERANK_CONFIRM_SECONDS", "0")
    at = open_page(dataset="sample", query=SAMPLE_BATS, candidates=10, results=3)
    assert_no_exception(at)
    assert not at.metric
    assert any("Reranking all 40 records" in i.value for i in at.info)
    next(b for b in at.button if b.label == "Run it").click().run()
    assert_no_exception(at)
    assert metrics(at)["Ideal top-3 reached with 10"] == "1 / 3"
    monkeypatch.setenv("RERANK_VISITOR_BUDGET_MIN", "0.000001")
    at.text_input(key="diag_query").input(SAMPLE_BATS + " again").run()
    assert any("RERANK_VISITOR_BUDGET_MIN" in e.value.replace("\\", "") for e in at.error)


# --- an upload's embedding is priced before it starts (case 6) ---------------------------


def _films(n: int, salt: str = "") -> Dataset:
    records = [
        {"id": f"f{i}", "title": f"Film {salt}{i}", "overview": f"A heist in city {i}. " * 3}
        for i in range(n)
    ]
    return make_dataset(f"upload-{salt or 'films'}", records, id_field="id")


def test_an_embedding_estimate_reads_the_corpus_tokens_and_the_measured_rate(minilm) -> None:
    films, rates = _films(1_000), EncodingRates()
    fields = ("title", "overview")
    first = embedding_estimate(films, minilm, fields, rates=rates)
    tokens = len(minilm.passage_tokenizer().encode("Film 0 " + "A heist in city 0. " * 3).ids)
    assert abs(first.tokens_per_doc - (tokens + 2)) <= 2  # [CLS] text [SEP]
    assert first.records == 1_000 and first.vectors_per_doc == 1.0 and not first.measured
    assert first.seconds == pytest.approx(1_000 * embed_seconds_per_doc(first.tokens_per_doc))
    assert first.line().startswith("Embedding 1,000 records takes about ")
    rate = f"~{first.docs_per_second:,.0f} records/s, typical of this 2-core CPU"
    assert first.line().endswith(f"on this server ({rate})")
    assert first.cost.what == "Embedding 1,000 records"

    # a build measured at a third of the model's speed: estimates are three times longer
    rates.record(minilm.cache_key, 100, 1.0, first.tokens_per_doc)  # too small to count
    assert rates.factor(minilm.cache_key) is None
    rates.record(
        minilm.cache_key,
        500,
        3 * 500 * embed_seconds_per_doc(first.tokens_per_doc),
        first.tokens_per_doc,
    )
    second = embedding_estimate(films, minilm, fields, rates=rates, done=400)
    assert second.measured and second.records == 600
    assert second.seconds == pytest.approx(3 * 600 * embed_seconds_per_doc(first.tokens_per_doc))
    assert "measured here" in second.line()

    # long texts: dense passages cost one vector per passage, plain one vector of 256 tokens
    long = make_dataset(
        "upload-long", [{"id": f"l{i}", "text": "word " * 2_000} for i in range(50)], id_field="id"
    )
    plain = embedding_estimate(long, minilm, ("text",), rates=rates)
    assert plain.tokens_per_doc == minilm.max_seq_length
    cut = embedding_estimate(long, minilm, ("text",), PassageSettings(), rates=rates)
    assert cut.vectors_per_doc > 1 and cut.seconds > plain.seconds * cut.vectors_per_doc * 0.8


def test_a_priced_embedding_waits_for_a_click_and_a_running_one_is_joined(
    minilm, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path))
    films = _films(300, salt=uuid.uuid4().hex[:8])
    fields = ("title", "overview")
    embedder = BackgroundEmbedder(visitors=SearchActivity(), chunk=64)

    monkeypatch.setenv("RERANK_CONFIRM_SECONDS", "3600")  # below the threshold: no click
    gate = start_gate(films, minilm, fields, embedder=embedder)
    assert gate.new and not gate.needs_click and gate.cost.seconds > 0
    monkeypatch.setenv("RERANK_CONFIRM_SECONDS", "0.01")  # above it: a click, nothing started
    gate = start_gate(films, minilm, fields, embedder=embedder)
    assert gate.new and gate.needs_click and gate.estimate is not None
    assert gate.line().startswith("Embedding 300 records takes about ")
    assert gate.cost == gate.estimate.cost and not embedder.jobs()

    job = embedder.start(films, minilm, fields, user="a")  # the click
    joined = start_gate(films, minilm, fields, embedder=embedder)  # another session
    assert joined.job is job and not joined.new and not joined.needs_click
    assert joined.cost.seconds == 0
    assert job.wait(300) and job.status().state == "done"
    assert start_gate(films, minilm, fields, embedder=embedder).job is job  # done: reused
    fresh = BackgroundEmbedder(visitors=SearchActivity())  # e.g. after a restart
    cached = start_gate(films, minilm, fields, embedder=fresh)
    assert cached.cached and not cached.needs_click and cached.cost.seconds == 0
    # the finished job told the estimates how fast this encoder ran
    assert ENCODING_RATES.factor(minilm.cache_key) is not None


def test_a_cancelled_build_is_priced_again_without_its_chunks_on_disk(
    minilm, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("RERANK_CONFIRM_SECONDS", "0.01")
    films = _films(300, salt=uuid.uuid4().hex[:8])
    fields = ("title", "overview")
    calls = []

    def stop() -> bool:  # after the first chunk
        calls.append(1)
        return len(calls) > 1

    key = embedding_cache_key(minilm.cache_key, films, fields)
    with pytest.raises(EmbeddingCancelled):
        encode_chunked(key, films.texts(fields), minilm, chunk=64, should_stop=stop)
    embedder = BackgroundEmbedder(visitors=SearchActivity(), chunk=64)
    gate = start_gate(films, minilm, fields, embedder=embedder)
    assert gate.needs_click and gate.estimate is not None and gate.estimate.records == 300 - 64

    job = embedder.start(films, minilm, fields, user="a")
    job.cancel()
    job.wait(300)
    if job.status().state == "cancelled":  # else it finished before the cancel was seen
        again = start_gate(films, minilm, fields, embedder=embedder)
        assert again.new and again.job is None and again.needs_click
    failed = BackgroundEmbedder(visitors=SearchActivity())
    broken = failed.start(_films(10, salt="x"), _Failing(minilm), fields)
    broken.wait(60)
    assert start_gate(broken.dataset, broken.encoder, fields, embedder=failed).job is broken
    retry = start_gate(broken.dataset, broken.encoder, fields, embedder=failed, retry=True)
    assert retry.new and retry.job is None


class _Failing:
    def __init__(self, encoder) -> None:
        self.name, self.dimension, self.cache_key = "failing", encoder.dimension, "failing"

    def encode(self, texts, *, kind="document", progress=None):
        raise OSError("disk on fire")
