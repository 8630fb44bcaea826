"""Tests of core.models.together through the real ``together`` SDK and a loopback fake.

No test reaches the internet: every backend points at ``tests.together_server`` on
127.0.0.1, and an autouse guard refuses DNS look-ups and connections to anything but
the loopback interface.
"""

from __future__ import annotations

import logging
import socket
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from itertools import pairwise

import numpy as np
import pytest

from core.models.base import Encoder, RerankDoc, Reranker, RerankResult, results_from_scores
from core.models.errors import RemoteAPIError
from core.models.together import (
    BGE_QUERY_INSTRUCTION,
    AuthenticationFailedError,
    MissingAPIKeyError,
    ModelNotAvailableError,
    NetworkError,
    RateLimitedError,
    RemoteTimeoutError,
    TogetherAPIError,
    TogetherEncoder,
    TogetherReranker,
    rank_with_fallback,
    resolve_api_key,
    resolve_base_url,
)
from tests.together_server import (
    FakeTogetherServer,
    error_body,
    hashed_embedding,
    relevance,
)

KEY = "tgp_v1_FAKE-KEY-9f3c2a7e-must-never-leak"
WRONG_KEY = "tgp_v1_WRONG-KEY-41d0b6c8-must-never-leak"
SECRETS = (KEY, WRONG_KEY, "FAKE-KEY-9f3c2a7e", "WRONG-KEY-41d0b6c8")

DOCS = [
    RerankDoc("doc-berlin", "Berlin is the capital of Germany and its largest city."),
    RerankDoc("doc-paris", "Paris is the capital and most populous city of France."),
    RerankDoc("doc-bread", "Sourdough bread needs flour, water, salt and time."),
    RerankDoc("doc-germany", "Germany is a country in Central Europe."),
]
QUERY = "What is the capital of Germany?"

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key or base URL from the environment; no network beyond the loopback."""
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    monkeypatch.delenv("TOGETHER_BASE_URL", raising=False)
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in _LOOPBACK:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        if isinstance(address, tuple) and address[0] not in _LOOPBACK:
            raise OSError(f"test guard: refusing to connect to {address[0]}")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def server() -> Iterator[FakeTogetherServer]:
    with FakeTogetherServer(api_key=KEY) as fake:
        yield fake


def reranker(server: FakeTogetherServer, **kwargs) -> TogetherReranker:
    options = {"api_key": KEY, "base_url": server.base_url, "max_retries": 0, "timeout": 5.0}
    options.update(kwargs)
    return TogetherReranker(**options)


def encoder(server: FakeTogetherServer, **kwargs) -> TogetherEncoder:
    options = {"api_key": KEY, "base_url": server.base_url, "max_retries": 0, "timeout": 5.0}
    options.update(kwargs)
    return TogetherEncoder(**options)


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StubCrossEncoder:
    """A local stand-in for the cross-encoder: logits from word overlap."""

    name = "stub-cross-encoder"
    score_kind = "logit"

    def rank(
        self, query: str, docs: Sequence[RerankDoc], top_n: int | None = None
    ) -> list[RerankResult]:
        scores = [10 * relevance(query, d.text) - 5 for d in docs]
        return results_from_scores(docs, scores, "logit", top_n)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


# -------------------------------------------------------------------- key and base URL


def test_resolve_api_key_order(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_api_key() is None
    monkeypatch.setenv("TOGETHER_API_KEY", "from-env")
    assert resolve_api_key() == "from-env"
    assert resolve_api_key(secrets={"TOGETHER_API_KEY": "from-secrets"}) == "from-secrets"
    assert resolve_api_key(secrets={"together": {"api_key": "nested"}}) == "nested"
    assert resolve_api_key("typed", {"TOGETHER_API_KEY": "from-secrets"}) == "typed"
    assert resolve_api_key("  ", {"TOGETHER_API_KEY": ""}) == "from-env"


def test_resolve_api_key_tolerates_missing_secrets_file(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoSecretsFile(dict):
        def get(self, *args):
            raise FileNotFoundError("No secrets found")

    monkeypatch.setenv("TOGETHER_API_KEY", "from-env")
    assert resolve_api_key(secrets=NoSecretsFile()) == "from-env"


def test_resolve_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_base_url() is None
    assert resolve_base_url("https://api.together.xyz/v1") == "https://api.together.xyz"
    assert resolve_base_url("https://api.together.xyz/v1/") == "https://api.together.xyz"
    assert resolve_base_url("http://proxy:8080/together/") == "http://proxy:8080/together"
    monkeypatch.setenv("TOGETHER_BASE_URL", "http://127.0.0.1:9/v1")
    assert resolve_base_url() == "http://127.0.0.1:9"
    assert resolve_base_url("http://other") == "http://other"


# --------------------------------------------------------------------------- reranker


def test_client_is_created_on_first_use(server: FakeTogetherServer) -> None:
    no_key = TogetherReranker(api_key=None, base_url=server.base_url)
    assert not no_key.has_api_key and not no_key.client_created

    backend = reranker(server)
    enc = encoder(server)
    assert isinstance(backend, Reranker) and isinstance(enc, Encoder)
    assert not backend.client_created and not enc.client_created
    assert server.requests == []
    backend.rank(QUERY, DOCS)
    assert backend.client_created and len(server.requests) == 1


def test_rank_maps_ids_and_sends_texts_and_top_n(server: FakeTogetherServer) -> None:
    backend = reranker(server)
    assert backend.name == "Salesforce/Llama-Rank-V1" and backend.score_kind == "relevance"

    results = backend.rank(QUERY, DOCS, top_n=2)

    [request] = server.requests_to("/v1/rerank")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body["documents"] == [d.text for d in DOCS]
    assert request.body["query"] == QUERY
    assert request.body["top_n"] == 2
    assert request.body["model"] == "Salesforce/Llama-Rank-V1"

    assert [r.id for r in results] == ["doc-berlin", "doc-germany"]
    assert [r.index for r in results] == [0, 3]
    assert [r.rank for r in results] == [1, 2]
    for r in results:
        assert r.score == pytest.approx(relevance(QUERY, DOCS[r.index].text))
        assert r.normalized == r.score and 0.0 <= r.score <= 1.0
        assert not r.truncated


def test_rank_without_top_n_returns_every_document(server: FakeTogetherServer) -> None:
    results = reranker(server).rank(QUERY, DOCS)
    [request] = server.requests
    assert "top_n" not in request.body
    assert sorted(r.id for r in results) == sorted(d.id for d in DOCS)
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
    assert results[-1].id == "doc-bread"


def test_rank_empty_or_zero_sends_nothing(server: FakeTogetherServer) -> None:
    backend = reranker(server)
    assert backend.rank(QUERY, []) == []
    assert backend.rank(QUERY, DOCS, top_n=0) == []
    assert server.requests == []


@pytest.mark.parametrize("suffix", ["/v1", "/v1/", "/"])
def test_base_url_with_v1_suffix_is_stripped(server: FakeTogetherServer, suffix: str) -> None:
    results = reranker(server, base_url=server.base_url + suffix).rank(QUERY, DOCS, top_n=1)
    assert results[0].id == "doc-berlin"
    assert [r.path for r in server.requests] == ["/v1/rerank"]


def test_base_url_and_key_from_environment(
    server: FakeTogetherServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOGETHER_BASE_URL", server.base_url + "/v1")
    monkeypatch.setenv("TOGETHER_API_KEY", KEY)
    results = TogetherReranker(api_key=None).rank(QUERY, DOCS, top_n=1)
    assert results[0].id == "doc-berlin"


def test_long_texts_are_cut_and_flagged(server: FakeTogetherServer) -> None:
    docs = [RerankDoc("long", "capital of Germany " * 20), RerankDoc("short", "Berlin")]
    results = reranker(server, max_chars=40).rank(QUERY, docs)
    sent = server.requests[0].body["documents"]
    assert sent == [docs[0].text[:40], "Berlin"]
    flags = {r.id: r.truncated for r in results}
    assert flags == {"long": True, "short": False}


def test_many_documents_are_split_and_merged(server: FakeTogetherServer) -> None:
    docs = [RerankDoc(f"d{i}", text) for i, text in enumerate(d.text for d in DOCS * 2)]
    whole = reranker(server).rank(QUERY, docs, top_n=3)
    server.requests.clear()
    split = reranker(server, max_documents=3).rank(QUERY, docs, top_n=3)
    assert [len(r.body["documents"]) for r in server.requests] == [3, 3, 2]
    assert [r.body["top_n"] for r in server.requests] == [3, 3, 2]
    assert [(r.id, r.rank, r.score) for r in split] == [(r.id, r.rank, r.score) for r in whole]


# --------------------------------------------------------------------------- encoder


def test_encode_batches_orders_and_normalises(server: FakeTogetherServer) -> None:
    server.max_embedding_batch = 4
    server.reverse_embedding_order = True
    texts = [f"document number {i} about topic {i % 3}" for i in range(10)]
    calls: list[tuple[int, int]] = []
    enc = encoder(server, batch_size=4)
    assert enc.name == "BAAI/bge-base-en-v1.5" and enc.dimension == 768

    vectors = enc.encode(texts, progress=lambda done, total: calls.append((done, total)))

    assert [len(r.body["input"]) for r in server.requests] == [4, 4, 2]
    assert [t for r in server.requests for t in r.body["input"]] == texts
    assert calls == [(4, 10), (8, 10), (10, 10)]
    assert vectors.dtype == np.float32 and vectors.shape == (10, 768)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    for row, text in zip(vectors, texts, strict=True):
        expected = np.asarray(hashed_embedding(text, 768), dtype=np.float32)
        np.testing.assert_allclose(row, expected / np.linalg.norm(expected), atol=1e-6)


def test_encode_query_instruction_and_truncation(server: FakeTogetherServer) -> None:
    enc = encoder(server, max_chars=100)
    enc.encode(["capital of Germany"], kind="query")
    enc.encode(["x" * 500, ""], kind="document")
    query_input, doc_input = (r.body["input"] for r in server.requests)
    assert query_input == [BGE_QUERY_INSTRUCTION + "capital of Germany"]
    assert doc_input == ["x" * 100, " "]

    encoder(server, query_instruction="").encode(["plain"], kind="query")
    assert server.requests[-1].body["input"] == ["plain"]


def test_encode_empty_sends_nothing(server: FakeTogetherServer) -> None:
    assert encoder(server).encode([]).shape == (0, 768)
    assert server.requests == []


def test_dimension_learnt_from_first_response(server: FakeTogetherServer) -> None:
    server.embedding_models["acme/tiny-embedder"] = 32
    enc = encoder(server, model="acme/tiny-embedder")
    assert enc.dimension == 0 and enc.query_instruction == ""
    assert enc.encode(["a b c"]).shape == (1, 32)
    assert enc.dimension == 32

    probe = encoder(server, model="acme/tiny-embedder")
    assert probe.ensure_dimension() == 32

    wrong = encoder(server, model="acme/tiny-embedder", dimension=64)
    with pytest.raises(TogetherAPIError, match="32-dimensional"):
        wrong.encode(["a"])


# --------------------------------------------------------------------- failure modes


def _rerank(server: FakeTogetherServer, **kwargs) -> Callable[[], object]:
    return lambda: reranker(server, **kwargs).rank(QUERY, DOCS, top_n=2)


def _encode(server: FakeTogetherServer, **kwargs) -> Callable[[], object]:
    return lambda: encoder(server, **kwargs).encode(["some text"])


def _case_wrong_key(server):
    return _rerank(server, api_key=WRONG_KEY), AuthenticationFailedError, "rejected the API key"


def _case_forbidden(server):
    server.fail_next(403, body=error_body("Forbidden", "forbidden"))
    return _rerank(server), AuthenticationFailedError, "HTTP 403"


def _case_unknown_model(server):
    call = _rerank(server, model="acme/no-such-reranker")
    return call, ModelNotAvailableError, "'acme/no-such-reranker'.*editable"


def _case_not_serverless(server):
    server.fail_next(
        400,
        body=error_body(
            "Unable to access non-serverless model Salesforce/Llama-Rank-V1. Please visit "
            "https://api.together.ai/models to create and start a new dedicated endpoint.",
            "model_not_available",
        ),
    )
    return _rerank(server), ModelNotAvailableError, "Salesforce/Llama-Rank-V1.*editable"


def _case_rate_limited(server):
    server.fail_next(429, count=10, retry_after=0.05)
    return _rerank(server, max_retries=2), RateLimitedError, "rate limiting.*after 2 retries"


def _case_server_error(server):
    server.fail_next(500, body=error_body("the GPU caught fire", None, "server_error"))
    return _rerank(server), TogetherAPIError, "HTTP 500.*the GPU caught fire"


def _case_server_echoes_key(server):
    server.fail_next(422, body=error_body(f"bad header Bearer {KEY} and {KEY}", None))
    return _rerank(server), TogetherAPIError, "HTTP 422"


def _case_timeout(server):
    server.delay = 1.0
    return _rerank(server, timeout=0.2), RemoteTimeoutError, "timed out.*0.2 s"


def _case_connection_refused(server):
    call = _rerank(server, base_url=f"http://127.0.0.1:{closed_port()}")
    return call, NetworkError, "connection refused"


def _case_dns_failure(server):
    call = _rerank(server, base_url="https://together.invalid")
    return call, NetworkError, "host name not found"


def _case_missing_key(server):
    call = _rerank(server, api_key=None)
    return call, MissingAPIKeyError, "TOGETHER_API_KEY.*secrets.*API key field"


def _case_embed_wrong_key(server):
    return _encode(server, api_key=WRONG_KEY), AuthenticationFailedError, "rejected"


def _case_embed_unknown_model(server):
    call = _encode(server, model="acme/no-such-embedder")
    return call, ModelNotAvailableError, "embedding model 'acme/no-such-embedder'"


def _case_embed_rate_limited(server):
    server.fail_next(429, count=10, retry_after=0.05)
    return _encode(server, max_retries=1), RateLimitedError, "after 1 retry"


def _case_embed_timeout(server):
    server.delay = 1.0
    return _encode(server, timeout=0.2), RemoteTimeoutError, "timed out"


FAILURES = [
    _case_wrong_key,
    _case_forbidden,
    _case_unknown_model,
    _case_not_serverless,
    _case_rate_limited,
    _case_server_error,
    _case_server_echoes_key,
    _case_timeout,
    _case_connection_refused,
    _case_dns_failure,
    _case_missing_key,
    _case_embed_wrong_key,
    _case_embed_unknown_model,
    _case_embed_rate_limited,
    _case_embed_timeout,
]


@pytest.mark.parametrize("case", FAILURES, ids=lambda f: f.__name__.removeprefix("_case_"))
def test_failures_are_typed_one_line_and_never_show_the_key(
    server: FakeTogetherServer, case, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    call, expected, pattern = case(server)
    started = time.monotonic()
    with pytest.raises(expected, match=pattern) as info:
        call()
    assert time.monotonic() - started < 5
    error = info.value
    assert isinstance(error, RemoteAPIError)
    message = str(error)
    assert message and "\n" not in message
    assert_no_secret(
        message,
        repr(error),
        "".join(traceback.format_exception(error)),
        caplog.text,
        *(repr(r.args) for r in caplog.records),
    )


def test_404_without_model_body_points_at_the_base_url(server: FakeTogetherServer) -> None:
    with pytest.raises(ModelNotAvailableError, match="or the base URL .*/proxy is wrong"):
        reranker(server, base_url=server.base_url + "/proxy").rank(QUERY, DOCS)


def test_generic_error_is_plain_together_api_error(server: FakeTogetherServer) -> None:
    server.fail_next(500, body=error_body("boom", None))
    with pytest.raises(TogetherAPIError) as info:
        reranker(server).rank(QUERY, DOCS)
    assert type(info.value) is TogetherAPIError and info.value.status_code == 500


def test_rate_limit_retries_then_succeeds(server: FakeTogetherServer) -> None:
    server.fail_next(429, count=2, retry_after=0.05)
    started = time.monotonic()
    results = reranker(server, max_retries=3).rank(QUERY, DOCS, top_n=1)
    assert time.monotonic() - started < 5
    assert results[0].id == "doc-berlin"
    assert len(server.requests) == 3
    # The SDK waited as retry-after asked (0.05 s), not its own back-off (>= 0.75 s).
    times = [r.time for r in server.requests]
    assert all(0.04 <= b - a < 0.5 for a, b in pairwise(times))


def test_rate_limit_gives_up_after_bounded_retries(server: FakeTogetherServer) -> None:
    server.fail_next(429, count=50, retry_after=0.05)
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as info:
        reranker(server, max_retries=2).rank(QUERY, DOCS)
    assert time.monotonic() - started < 5
    assert len(server.requests) == 3
    assert info.value.status_code == 429 and info.value.reason == "rate limited"


def test_repr_hides_the_key(server: FakeTogetherServer) -> None:
    backend, enc = reranker(server), encoder(server)
    backend.rank(QUERY, DOCS)
    for obj in (backend, enc):
        text = repr(obj)
        assert "Salesforce" in text or "bge" in text
        assert_no_secret(text, str(vars(obj)))


# -------------------------------------------------------------------------- fallback


def test_fallback_notice_when_together_fails(server: FakeTogetherServer) -> None:
    server.fail_next(429, retry_after=0.05)
    results, notice = rank_with_fallback(reranker(server), StubCrossEncoder(), QUERY, DOCS, top_n=2)
    assert notice == (
        "Together rerank failed (rate limited); these results come from the local "
        "cross-encoder instead."
    )
    assert [r.id for r in results] == ["doc-berlin", "doc-germany"]
    assert 0.0 < results[0].normalized < 1.0 and results[0].score != results[0].normalized


def test_fallback_not_used_when_together_answers(server: FakeTogetherServer) -> None:
    results, notice = rank_with_fallback(reranker(server), StubCrossEncoder(), QUERY, DOCS, 2)
    assert notice is None
    assert results[0].normalized == results[0].score


def test_fallback_on_missing_key_sends_nothing(server: FakeTogetherServer) -> None:
    primary = TogetherReranker(api_key=None, base_url=server.base_url)
    results, notice = rank_with_fallback(
        primary, StubCrossEncoder(), QUERY, DOCS, 1, fallback_label="MiniLM"
    )
    assert notice == "Together rerank failed (no API key); these results come from MiniLM instead."
    assert results[0].id == "doc-berlin" and server.requests == []
