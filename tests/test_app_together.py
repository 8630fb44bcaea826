"""The Together options in the app, against the loopback fake of Together's REST API:
no key explains itself, the key never reaches the URL or exports, failures are
explained, and the opt-in fallback says plainly that it was used."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.test_app import assert_no_exception, make_app, table, texts, titles
from tests.together_server import FakeTogetherServer

KEY = "tgp-app-secret-9876543210"
QUERY = "evict a colony of bats from the attic safely"
RERANK = "together:Salesforce/Llama-Rank-V1"
EMBED = "together:BAAI/bge-base-en-v1.5"
SEED = {"dataset": "sample", "q": QUERY, "k": "25", "n": "5"}

pytestmark = pytest.mark.slow


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTogetherServer]:
    with FakeTogetherServer(api_key=KEY) as fake:
        monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
        monkeypatch.setenv("TOGETHER_BASE_URL", fake.base_url)
        yield fake


def everything_shown(at) -> str:
    parts = [texts(at.markdown), texts(at.error), texts(at.warning), texts(at.info)]
    parts += [str(dict(at.query_params))]
    parts += [b.proto.label for b in at.get("download_button")]
    return "\n".join(parts)


def test_no_key_explains_what_is_needed_and_shows_retrieval(server) -> None:
    at = make_app(**SEED, reranker=RERANK).run()
    assert_no_exception(at)
    info = texts(at.info)
    assert "API key" in info and "TOGETHER_API_KEY" in info and "secrets.toml" in info
    assert "showing retrieval only" in texts(at.warning)
    assert at.text_input(key="together_key").value in ("", None)
    assert not server.requests_to("/v1/rerank")


def test_no_key_for_hosted_embeddings_stops_before_searching(server) -> None:
    at = make_app(**SEED, encoder=EMBED).run()
    assert_no_exception(at)
    assert "API key" in texts(at.info)
    assert not at.dataframe
    assert not server.requests


def test_key_from_the_password_field_reranks_top_5_and_never_leaks(server) -> None:
    at = make_app(**SEED, reranker=RERANK).run()
    at.text_input(key="together_key").set_value(KEY).run()
    assert_no_exception(at)
    assert titles(at, "rerank_table")[0] == "Bats in the Attic: Safe Eviction"
    assert "relevance" in table(at, "rerank_table").columns
    (request,) = server.requests_to("/v1/rerank")
    assert request.body["top_n"] == 5 and len(request.body["documents"]) == 25
    assert at.query_params["reranker"] == RERANK
    assert KEY not in everything_shown(at)


def test_key_from_the_environment_and_hosted_embeddings(server, monkeypatch) -> None:
    monkeypatch.setenv("TOGETHER_API_KEY", KEY)
    at = make_app(**SEED, encoder=EMBED, reranker=RERANK).run()
    assert_no_exception(at)
    # the only note: why a hosted reranker's score is not explained by default (issue 32)
    assert [i.value for i in at.info if "hosted reranker is not explained" not in i.value] == []
    assert titles(at, "rerank_table")[0] == "Bats in the Attic: Safe Eviction"
    assert server.requests_to("/v1/embeddings")
    assert at.query_params["encoder"] == EMBED


def test_rejected_key_is_an_error_without_the_key(server) -> None:
    at = make_app(**SEED, reranker=RERANK).run()
    at.text_input(key="together_key").set_value("wrong-key-123").run()
    assert_no_exception(at)
    error = texts(at.error)
    assert "rejected" in error.lower() and "wrong-key-123" not in error


def test_opt_in_fallback_reranks_locally_and_says_so(server, monkeypatch) -> None:
    monkeypatch.setenv("TOGETHER_API_KEY", KEY)
    at = make_app(**SEED, reranker=RERANK).run()
    at.checkbox(key="together_fallback").check().run()
    server.fail_next(503, count=10, path="/v1/rerank")
    at.slider(key="results").set_value(4).run()  # a new search, now failing upstream
    assert_no_exception(at)
    warning = texts(at.warning)
    assert "Together rerank failed" in warning and "local cross-encoder" in warning
    assert "logit" in table(at, "rerank_table").columns
    assert titles(at, "rerank_table")[0] == "Bats in the Attic: Safe Eviction"


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        ("not_json", "Together rerank answered with a body that is not JSON"),
        ("nan_score", "Together rerank returned a relevance score that is not a finite number"),
        ("string_score", "Together rerank returned a relevance score that is not a finite number"),
        ("short", "Together rerank returned 2 result(s) for 25 documents (expected 4)."),
        ("empty", "Together rerank returned 0 result(s) for 25 documents (expected 4)."),
    ],
)
def test_malformed_answer_is_one_line_or_falls_back(server, monkeypatch, mode, said) -> None:
    monkeypatch.setenv("TOGETHER_API_KEY", KEY)
    at = make_app(**SEED, reranker=RERANK).run()
    assert_no_exception(at)
    server.rerank_answer = mode
    at.slider(key="results").set_value(4).run()  # a new search, now answered badly
    assert_no_exception(at)
    (error,) = [re.sub(r"\\(.)", r"\1", e) for e in texts(at.error).splitlines()]
    assert said in error
    # with the fallback on, the same answer is a failure like any other
    at.checkbox(key="together_fallback").check().run()
    assert_no_exception(at)
    assert not at.error
    warning = re.sub(r"\\(.)", r"\1", texts(at.warning))
    assert (
        "Together rerank failed (invalid answer); these results come from the local "
        "cross-encoder instead." in warning
    )
    assert "logit" in table(at, "rerank_table").columns
