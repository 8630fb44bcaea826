"""A loopback fake of Together's REST API, for tests through the real ``together`` SDK.

Implements the documented contract of ``POST /v1/rerank`` and ``POST /v1/embeddings``
with the standard library only (``ThreadingHTTPServer`` on 127.0.0.1, a free port, a
background thread). Answers are deterministic and meaningful:

* rerank: the relevance score is the share of query words (stop words aside) found
  in the document, plus a small Jaccard term to break ties, in [0, 1]; results
  sorted best first.
* embeddings: a hashed bag of words (768 dimensions for bge-base), deliberately *not*
  unit length, so callers must normalise.

It checks ``Authorization: Bearer <key>`` (401 with Together's error body otherwise),
answers 404 for unknown models, records every request, and can be told to fail:
``fail_next(status, count, retry_after=...)``, a per-request ``delay`` (to trigger
timeouts) and ``max_embedding_batch`` (400 when exceeded). ``rerank_answer`` makes a
successful (HTTP 200) rerank answer malformed, as a broken proxy or API change would:
one of :data:`MALFORMED_RERANK` (not JSON, string / NaN / infinite / missing scores,
too few or no results, an index out of range or repeated, no results list).

Usage::

    with FakeTogetherServer(api_key="k") as server:
        client = Together(api_key="k", base_url=server.base_url)
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

RERANK_MODELS = frozenset({"Salesforce/Llama-Rank-V1"})
EMBEDDING_MODELS = {
    "BAAI/bge-base-en-v1.5": 768,
    "BAAI/bge-large-en-v1.5": 1024,
    "togethercomputer/m2-bert-80M-8k-retrieval": 768,
}

MALFORMED_RERANK = (
    "not_json",
    "string_score",
    "nan_score",
    "inf_score",
    "null_score",
    "short",
    "empty",
    "bad_index",
    "duplicate_index",
    "string_index",
    "no_results",
)

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        "a an and are as at be by for from how in is it its of on or the to was what when "
        "where which who why with",
    )
)


def words(text: str) -> list[str]:
    """Lower-case alphanumeric words, the fake's only notion of text."""
    return _WORD.findall(text.lower())


def relevance(query: str, document: str) -> float:
    """Deterministic relevance in [0, 1]: query-word coverage plus a small Jaccard term.

    Stop words are ignored, so "capital of Germany" matches on "capital" and "germany".
    """
    q = set(words(query)) - _STOPWORDS
    d = set(words(document)) - _STOPWORDS
    if not q or not d:
        return 0.0
    shared = len(q & d)
    return round(0.9 * shared / len(q) + 0.1 * shared / len(q | d), 6)


def hashed_embedding(text: str, dimension: int) -> list[float]:
    """A hashed bag of words: each word adds +-1 to one coordinate (never all zero)."""
    vector = [0.0] * dimension
    for word in words(text) or ["<empty>"]:
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        slot = int.from_bytes(digest[:4], "little") % dimension
        vector[slot] += 1.0 if digest[4] & 1 else -1.0
    if not any(vector):
        vector[0] = 1.0
    return vector


def error_body(message: str, code: str | None, kind: str = "invalid_request_error") -> dict:
    """Together's error body shape."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


@dataclass
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    time: float = field(default_factory=time.monotonic)


@dataclass
class _Failure:
    status: int
    retry_after: float | None
    body: dict | None
    path: str | None


class FakeTogetherServer:
    """The fake server; use as a context manager (``start``/``stop`` also work)."""

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        rerank_models: frozenset[str] | set[str] = RERANK_MODELS,
        embedding_models: dict[str, int] | None = None,
    ) -> None:
        self.api_key = api_key
        self.rerank_models = set(rerank_models)
        self.embedding_models = dict(
            EMBEDDING_MODELS if embedding_models is None else embedding_models
        )
        self.requests: list[RecordedRequest] = []
        self.delay = 0.0
        self.max_embedding_batch: int | None = None
        self.reverse_embedding_order = False
        self.rerank_answer: str | None = None
        self.nan_embeddings = False
        self._failures: deque[_Failure] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> Self:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = _QuietServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (delayed handlers are cut short)."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The SDK 3.x base URL (no ``/v1``)."""
        return f"http://127.0.0.1:{self.port}"

    # -- programming failures and inspecting traffic

    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        retry_after: float | None = None,
        body: dict | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests (to ``path``, if given) with ``status``.

        ``retry_after`` sets a ``retry-after`` header in seconds (floats allowed: the
        SDK accepts them, which keeps retry tests fast).
        """
        with self._lock:
            for _ in range(count):
                self._failures.append(_Failure(status, retry_after, body, path))

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """Recorded requests to one path, e.g. ``"/v1/rerank"``."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def _record(self, request: RecordedRequest) -> _Failure | None:
        with self._lock:
            self.requests.append(request)
            for i, failure in enumerate(self._failures):
                if failure.path is None or failure.path == request.path:
                    del self._failures[i]
                    return failure
        return None

    # -- the API

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes):
        """Return ``(status, body, extra_headers)`` for one request."""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        failure = self._record(RecordedRequest(method, path, headers, body))
        if self.delay:
            self._stopping.wait(self.delay)
        if failure is not None:
            extra = {} if failure.retry_after is None else {"retry-after": str(failure.retry_after)}
            message = failure.body or error_body(
                f"Simulated failure with status {failure.status}", None, "server_error"
            )
            return failure.status, message, extra

        if headers.get("authorization") != f"Bearer {self.api_key}":
            return (
                401,
                error_body(
                    "Invalid API key provided. You can find your API key at "
                    "https://api.together.xyz/settings/api-keys.",
                    "invalid_api_key",
                ),
                {},
            )
        if method != "POST" or path not in ("/v1/rerank", "/v1/embeddings"):
            return 404, {"error": {"message": f"Not found: {method} {path}"}}, {}
        if not isinstance(body, dict):
            return 400, error_body("Request body must be a JSON object", "invalid_request"), {}
        if path == "/v1/rerank":
            return self._rerank(body)
        return self._embeddings(body)

    def _unknown_model(self, model: object) -> tuple[int, dict, dict]:
        return (
            404,
            error_body(
                f"Unable to access model {model}. Please visit https://api.together.ai/models "
                "to see the list of supported models or contact the owner to request access.",
                "model_not_found",
            ),
            {},
        )

    def _rerank(self, body: dict) -> tuple[int, dict, dict]:
        model, query, documents = body.get("model"), body.get("query"), body.get("documents")
        if model not in self.rerank_models:
            return self._unknown_model(model)
        if not isinstance(query, str) or not query:
            return 400, error_body("query must be a non-empty string", "invalid_request"), {}
        if (
            not isinstance(documents, list)
            or not documents
            or not all(isinstance(d, str) for d in documents)
        ):
            return 400, error_body("documents must be a list of strings", "invalid_request"), {}
        top_n = body.get("top_n", len(documents))
        if not isinstance(top_n, int) or top_n < 1:
            return 400, error_body("top_n must be a positive integer", "invalid_request"), {}
        scores = [relevance(query, d) for d in documents]
        order = sorted(range(len(documents)), key=lambda i: (-scores[i], i))[:top_n]
        results = []
        for i in order:
            result: dict[str, Any] = {"index": i, "relevance_score": scores[i]}
            result["document"] = {"text": documents[i]} if body.get("return_documents") else {}
            results.append(result)
        if self.rerank_answer is not None:
            return self._malformed(results)
        tokens = len(words(query)) * len(documents) + sum(len(words(d)) for d in documents)
        return (
            200,
            {
                "object": "rerank",
                "id": f"rerank-{len(self.requests)}",
                "model": model,
                "results": results,
                "usage": {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens},
            },
            {},
        )

    def _malformed(self, results: list[dict[str, Any]]) -> tuple[int, Any, dict]:
        """A 200 answer broken the way ``rerank_answer`` says."""
        mode = self.rerank_answer
        if mode == "not_json":
            return 200, b"<html><body>502 Bad Gateway</body></html>", {}
        if mode == "no_results":
            return 200, {"object": "rerank", "model": "x"}, {}
        results = [dict(r) for r in results]
        if mode == "string_score":
            results[0]["relevance_score"] = "high"
        elif mode == "nan_score":
            results[-1]["relevance_score"] = float("nan")
        elif mode == "inf_score":
            results[0]["relevance_score"] = float("inf")
        elif mode == "null_score":
            results[0]["relevance_score"] = None
        elif mode == "short":
            results = results[: max(0, len(results) - 2)]
        elif mode == "empty":
            results = []
        elif mode == "bad_index":
            results[0]["index"] = 10_000
        elif mode == "duplicate_index":
            results[-1]["index"] = results[0]["index"]
        elif mode == "string_index":
            results[0]["index"] = "first"
        else:
            raise ValueError(f"unknown rerank_answer {mode!r}")
        return 200, {"object": "rerank", "model": "x", "results": results}, {}

    def _embeddings(self, body: dict) -> tuple[int, dict, dict]:
        model, inputs = body.get("model"), body.get("input")
        if model not in self.embedding_models:
            return self._unknown_model(model)
        if isinstance(inputs, str):
            inputs = [inputs]
        if (
            not isinstance(inputs, list)
            or not inputs
            or not all(isinstance(t, str) for t in inputs)
        ):
            return 400, error_body("input must be a string or a list of strings", None), {}
        if self.max_embedding_batch is not None and len(inputs) > self.max_embedding_batch:
            return (
                400,
                error_body(
                    f"input has {len(inputs)} items; at most {self.max_embedding_batch} allowed",
                    "invalid_request",
                ),
                {},
            )
        dimension = self.embedding_models[model]
        data = [
            {"object": "embedding", "index": i, "embedding": hashed_embedding(t, dimension)}
            for i, t in enumerate(inputs)
        ]
        if self.reverse_embedding_order:
            data.reverse()
        if self.nan_embeddings:
            data[0]["embedding"][0] = float("nan")
        return 200, {"object": "list", "data": data, "model": model}, {}


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # Clients that time out close the socket mid-answer; that is expected here.
        pass


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTogetherServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = self.path.split("?", 1)[0]
        status, body, extra = self.fake.handle(self.command, path, headers, raw)
        # bytes are sent as they are (a malformed answer); anything else as JSON, where
        # NaN and Infinity come out as the bare tokens a careless server would send
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_POST = _serve
    do_GET = _serve
