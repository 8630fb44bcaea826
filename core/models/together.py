"""Together AI backends: a hosted reranker and a hosted bi-encoder.

Both wrap the official ``together`` SDK (3.x) and implement the same interfaces as
the local backends (:class:`core.models.base.Reranker`, :class:`core.models.base.Encoder`),
so the app can swap them in. Everything that goes wrong becomes a
:class:`core.models.errors.RemoteAPIError` subclass with one line a person can act on.

The API key
    :func:`resolve_api_key` looks in, in order: an explicit value (the app's password
    field), a secrets mapping (Streamlit's ``st.secrets``, passed in by the app), then
    the ``TOGETHER_API_KEY`` environment variable. The key is kept in a wrapper whose
    ``repr`` is ``'***'``; it never appears in an error message, a ``repr`` or a log
    line written by this module (any server text is scrubbed of it as well).

The base URL
    An argument, else ``TOGETHER_BASE_URL``, else the SDK default
    (``https://api.together.ai``). Since SDK 3.0 the base URL has *no* ``/v1`` suffix
    (the SDK adds ``/v1/rerank`` itself); a URL ending in ``/v1`` would yield
    ``/v1/v1/rerank`` and a 404, so :func:`resolve_base_url` strips a trailing ``/v1``.

Retries
    The SDK retries 408, 409, 429, 5xx, timeouts and connection errors up to
    ``max_retries`` times, honouring the server's ``retry-after`` header (up to 60 s)
    and otherwise backing off exponentially (about 0.5 s, 1 s, 2 s ... capped at 10 s).
    Only when those retries are exhausted does an error reach the caller, so a worst
    case takes about ``(max_retries + 1) * timeout`` seconds plus the back-off.

The SDK client is created lazily, on the first request: the SDK's constructor raises
when no key is available, and a backend object must be cheap to create in the app.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from core.models.base import (
    ProgressFn,
    RerankDoc,
    Reranker,
    RerankResult,
    ScoreKind,
    TextKind,
    normalize_rows,
)
from core.models.errors import RemoteAPIError

log = logging.getLogger(__name__)

API_KEY_ENV = "TOGETHER_API_KEY"
BASE_URL_ENV = "TOGETHER_BASE_URL"
DEFAULT_BASE_URL = "https://api.together.ai"  # the SDK's own default, for messages only

TOGETHER_PREFIX = "together:"
"""Model ids starting with this select the Together backend (``together:BAAI/bge-base-en-v1.5``)."""

DEFAULT_RERANK_MODEL = "Salesforce/Llama-Rank-V1"
DEFAULT_EMBEDDING_MODEL = "BAAI/bge-base-en-v1.5"

# Rerank: Llama-Rank reads up to ~8K tokens per document. 16,000 characters stay below
# that even for dense text (about 2 characters per token); longer texts are cut and
# flagged ``truncated``. Together documents no limit on the number of documents per
# request; we send at most 256 per request (Cohere-compatible APIs accept 1,000) and
# merge the per-request results, which is exact because scores are per document.
RERANK_MAX_CHARS = 16_000
RERANK_MAX_DOCUMENTS = 256

# Embeddings: the BGE v1.5 models read at most 512 tokens. 1,500 characters stay below
# that at about 3 characters per token (English prose averages over 4), so the request
# is never rejected for length and the model rarely loses text it would have read.
# 64 texts per request (about 100 KB of JSON) is far below any limit observed for
# OpenAI-compatible embedding APIs (100 to 2,048 inputs), and gives the progress bar
# a step every request.
EMBED_MAX_CHARS = 1_500
EMBED_BATCH_SIZE = 64

BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "

# Dimensions of Together's documented serverless embedding models, so that
# ``dimension`` is known without a request; any other model learns it from a response.
KNOWN_EMBEDDING_DIMENSIONS = {
    "BAAI/bge-base-en-v1.5": 768,
    "BAAI/bge-large-en-v1.5": 1024,
    "WhereIsAI/UAE-Large-V1": 1024,
    "togethercomputer/m2-bert-80M-8k-retrieval": 768,
}

_KEY_HELP = (
    "set the TOGETHER_API_KEY environment variable, add TOGETHER_API_KEY to "
    ".streamlit/secrets.toml, or paste it into the API key field"
)
_MODEL_ERROR_CODES = {"model_not_found", "model_not_available", "dedicated_endpoint_not_running"}
_MODEL_MESSAGE = re.compile(
    r"unable to access|model .*(not found|not available|does not exist|not running)"
    r"|(unknown|invalid|unsupported) model|dedicated endpoint",
    re.IGNORECASE,
)


# --------------------------------------------------------------------------- errors


class TogetherAPIError(RemoteAPIError):
    """A Together request failed; also raised as-is for unclassified HTTP errors.

    ``reason`` is a few plain words for notices ("rate limited"); ``status_code`` is
    the HTTP status when there was a response.
    """

    reason = "request failed"

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class MissingAPIKeyError(TogetherAPIError):
    """No Together API key was found anywhere."""

    reason = "no API key"


class AuthenticationFailedError(TogetherAPIError):
    """Together rejected the API key (HTTP 401 or 403)."""

    reason = "API key rejected"


class ModelNotAvailableError(TogetherAPIError):
    """The model id is unknown to Together or not available serverless (404 and kin)."""

    reason = "model not available"


class RateLimitedError(TogetherAPIError):
    """Still rate limited (HTTP 429) after the SDK's bounded retries."""

    reason = "rate limited"


class RemoteTimeoutError(TogetherAPIError):
    """Together did not answer within the timeout, retries included."""

    reason = "timed out"


class NetworkError(TogetherAPIError):
    """Together could not be reached (connection refused, DNS failure, ...)."""

    reason = "network error"


class MalformedAnswerError(TogetherAPIError):
    """Together (or something in between) answered HTTP 200 with an unusable body: not
    JSON, scores that are not finite numbers, missing results, bad indices."""

    reason = "invalid answer"


# ----------------------------------------------------------------------- key and URL


class _Secret:
    """Holds the API key; its repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__


def _clean(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def resolve_api_key(explicit: str | None = None, secrets: Mapping | None = None) -> str | None:
    """Return the Together API key to use, or None when there is none.

    Order: ``explicit`` (e.g. a password field kept in the session), then ``secrets``
    (Streamlit's ``st.secrets`` passed in by the app: a root ``TOGETHER_API_KEY`` or a
    ``[together]`` table with ``api_key``), then the ``TOGETHER_API_KEY`` environment
    variable. Blank values count as missing. A secrets mapping that raises because no
    secrets file exists (Streamlit raises a ``FileNotFoundError``) is skipped.
    """
    key = _clean(explicit)
    if key:
        return key
    if secrets is not None:
        key = _from_secrets(secrets)
        if key:
            return key
    return _clean(os.environ.get(API_KEY_ENV))


def _from_secrets(secrets: Mapping) -> str | None:
    try:
        key = _clean(secrets.get(API_KEY_ENV))
        if key:
            return key
        section = secrets.get("together")
        if isinstance(section, Mapping):
            return _clean(section.get("api_key"))
    except (FileNotFoundError, KeyError, AttributeError, TypeError):
        return None
    return None


def resolve_base_url(explicit: str | None = None) -> str | None:
    """Return the base URL to give the SDK, or None for the SDK default.

    Order: ``explicit``, then ``TOGETHER_BASE_URL``. A trailing ``/`` and a trailing
    ``/v1`` are removed: SDK 3.x adds ``/v1/...`` itself, so
    ``https://api.together.xyz/v1`` (the pre-3.0 style) becomes
    ``https://api.together.xyz``.
    """
    url = _clean(explicit) or _clean(os.environ.get(BASE_URL_ENV))
    if url is None:
        return None
    url = url.rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")].rstrip("/")
    return url or None


# ---------------------------------------------------------------------- shared client


class _TogetherBackend:
    """Key, base URL and the lazily created SDK client shared by both backends.

    ``api_key=None`` falls back to ``TOGETHER_API_KEY``; a missing key is reported by
    the first request (:class:`MissingAPIKeyError`), not by the constructor.
    """

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: float,
        max_retries: int,
    ) -> None:
        if not model or not model.strip():
            raise ModelNotAvailableError(
                "No Together model id given: enter one in the model field."
            )
        self.name = model.strip()
        self.base_url = resolve_base_url(base_url)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        key = _clean(api_key) or _clean(os.environ.get(API_KEY_ENV))
        self._api_key = _Secret(key) if key else None
        self._client: Any = None
        self._client_lock = threading.Lock()

    @property
    def has_api_key(self) -> bool:
        """Whether a key is available (the key itself is never exposed)."""
        return self._api_key is not None

    @property
    def client_created(self) -> bool:
        """Whether the SDK client exists yet (it is created on the first request)."""
        return self._client is not None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={self.name!r}, base_url={self.base_url!r}, "
            f"timeout={self.timeout}, max_retries={self.max_retries}, "
            f"api_key={'***' if self._api_key else None})"
        )

    def _get_client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                if self._api_key is None:
                    raise MissingAPIKeyError(f"No Together API key: {_KEY_HELP}.")
                from together import Together

                kwargs: dict[str, Any] = {
                    "api_key": self._api_key.get(),
                    "timeout": self.timeout,
                    "max_retries": self.max_retries,
                }
                if self.base_url is not None:
                    kwargs["base_url"] = self.base_url
                else:
                    # The SDK would read TOGETHER_BASE_URL unstripped; pass the default.
                    kwargs["base_url"] = DEFAULT_BASE_URL
                self._client = Together(**kwargs)
            return self._client

    def _call(self, what: str, request: Callable[[Any], Any]) -> Any:
        """Run ``request(client)`` and translate every SDK failure to a typed error."""
        client = self._get_client()
        try:
            return request(client)
        except Exception as exc:  # translated below; non-SDK errors are re-raised
            error = _translate(exc, what=what, model=self.name, backend=self)
            if error is None and isinstance(exc, json.JSONDecodeError):
                error = MalformedAnswerError(
                    f"Together {what} answered with a body that is not JSON "
                    f"({_one_line(exc.msg, 80)} at character {exc.pos})."
                )
            elif error is None and isinstance(exc, ValueError):  # the SDK's own parsing
                error = MalformedAnswerError(
                    self._scrub(
                        f"Together {what} answered with a body that could not be read "
                        f"({type(exc).__name__}: {_one_line(str(exc), 120)})."
                    )
                )
            if error is None:
                raise
        log.info("%s", error)
        raise error

    def _scrub(self, text: str) -> str:
        if self._api_key is not None:
            text = text.replace(self._api_key.get(), "***")
        return re.sub(r"(?i)bearer\s+\S+", "Bearer ***", text)


def _translate(
    exc: BaseException, *, what: str, model: str, backend: _TogetherBackend
) -> TogetherAPIError | None:
    """Map an SDK exception to our error types; None for anything else."""
    import httpx
    import together

    where = backend.base_url or DEFAULT_BASE_URL
    retries = backend.max_retries
    tries = (
        f"after {retries} retr{'y' if retries == 1 else 'ies'}"
        if retries
        else "with retries turned off"
    )

    if isinstance(exc, together.APITimeoutError):
        return RemoteTimeoutError(
            f"Together {what} timed out: no answer from {where} within {backend.timeout:g} s "
            f"({tries}). Try again, or raise the timeout."
        )
    if isinstance(exc, together.APIConnectionError):
        detail = _connection_detail(exc, httpx)
        return NetworkError(
            backend._scrub(
                f"Could not reach Together at {where} ({detail}; {tries}). Check the network "
                f"connection, or {BASE_URL_ENV} if you set it."
            )
        )
    if isinstance(exc, together.APIStatusError):
        status = exc.status_code
        server = backend._scrub(_server_message(exc.body)).rstrip(". ")
        code = _error_code(exc.body)
        said = f": {server}" if server else ""
        if status in (401, 403):
            return AuthenticationFailedError(
                f"Together rejected the API key (HTTP {status}){said}. Check the key: {_KEY_HELP}.",
                status_code=status,
            )
        if status == 429:
            return RateLimitedError(
                f"Together is rate limiting {what} requests (HTTP 429, still limited {tries}; "
                f"the SDK waits as long as the server's retry-after header asks). Wait a "
                f"minute, or send fewer documents.",
                status_code=status,
            )
        if (
            status == 404
            or code in _MODEL_ERROR_CODES
            or (status in (400, 422) and server and _MODEL_MESSAGE.search(server))
        ):
            about_model = code in _MODEL_ERROR_CODES or bool(_MODEL_MESSAGE.search(server or ""))
            hint = "" if about_model else f" (or the base URL {where} is wrong)"
            return ModelNotAvailableError(
                f"Together has no {what} model '{model}' available to this key{hint} "
                f"(HTTP {status}{said}). The model id is editable: enter one listed at "
                f"https://api.together.ai/models.",
                status_code=status,
            )
        return TogetherAPIError(
            f"Together {what} request failed (HTTP {status}){said}.", status_code=status
        )
    if isinstance(exc, together.APIResponseValidationError | together.TogetherError):
        return TogetherAPIError(backend._scrub(f"Together {what} failed: {_one_line(str(exc))}"))
    return None


def _connection_detail(exc: BaseException, httpx: Any) -> str:
    cause: BaseException | None = exc.__cause__
    while cause is not None and not isinstance(cause, httpx.HTTPError):
        cause = cause.__cause__
    text = _one_line(str(cause or exc.__cause__ or exc))
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if any(s in lowered for s in ("name or service", "nodename", "getaddrinfo", "resolve")):
        return f"host name not found: {text}"
    return text or type(exc).__name__


def _server_message(body: object) -> str:
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping) and error.get("message"):
            return _one_line(str(error["message"]))
        if isinstance(error, str):
            return _one_line(error)
        if body.get("message"):
            return _one_line(str(body["message"]))
        return ""
    if isinstance(body, str):
        return _one_line(body)
    return ""


def _error_code(body: object) -> str | None:
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        code = body["error"].get("code")
        return str(code) if code else None
    return None


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -------------------------------------------------------------------------- reranker


class TogetherReranker(_TogetherBackend):
    """Together's hosted rerank API (``POST /v1/rerank``) as a :class:`Reranker`.

    Sends each document's ``text`` (the fields the user chose, already formatted) as a
    plain string, asks for ``top_n`` and maps the results back to document ids by their
    ``index``. Scores are Together's relevance scores in [0, 1], used as is for
    ``normalized``. With ``top_n`` smaller than the number of documents, the documents
    Together did not return are simply absent. Texts longer than ``max_chars`` are cut
    and flagged ``truncated``; more than ``max_documents`` documents are sent in
    several requests whose results are merged.
    """

    score_kind: ScoreKind = "relevance"

    def __init__(
        self,
        model: str = DEFAULT_RERANK_MODEL,
        *,
        api_key: str | None,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        max_chars: int = RERANK_MAX_CHARS,
        max_documents: int = RERANK_MAX_DOCUMENTS,
    ) -> None:
        super().__init__(
            model, api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        self.max_chars = max_chars
        self.max_documents = max(1, max_documents)

    def rank(
        self, query: str, docs: Sequence[RerankDoc], top_n: int | None = None
    ) -> list[RerankResult]:
        """Score ``docs`` against ``query`` with Together; return the best ``top_n``."""
        if not docs or (top_n is not None and top_n <= 0):
            return []
        texts = [doc.text for doc in docs]
        cut = [len(t) > self.max_chars for t in texts]
        texts = [t[: self.max_chars] if c else t for t, c in zip(texts, cut, strict=True)]

        scored: list[tuple[float, int]] = []
        for start in range(0, len(texts), self.max_documents):
            chunk = texts[start : start + self.max_documents]
            want = None if top_n is None else min(top_n, len(chunk))
            for index, score in self._rank_chunk(query, chunk, want):
                scored.append((score, start + index))

        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        if top_n is not None:
            scored = scored[:top_n]
        return [
            RerankResult(
                id=docs[i].id,
                index=i,
                rank=rank,
                score=score,
                normalized=score,
                truncated=cut[i],
            )
            for rank, (score, i) in enumerate(scored, start=1)
        ]

    def _rank_chunk(
        self, query: str, texts: list[str], top_n: int | None
    ) -> list[tuple[int, float]]:
        kwargs: dict[str, Any] = {
            "model": self.name,
            "query": query,
            "documents": texts,
            "return_documents": False,
        }
        if top_n is not None:
            kwargs["top_n"] = top_n
        response = self._call("rerank", lambda client: client.rerank.create(**kwargs))

        return _check_rerank_answer(response, len(texts), top_n)


def _check_rerank_answer(response: Any, sent: int, top_n: int | None) -> list[tuple[int, float]]:
    """``(index, score)`` pairs of a rerank answer, or :class:`MalformedAnswerError`.

    Every result must name a distinct document index in ``range(sent)`` with a finite
    number as its score, and there must be ``min(top_n, sent)`` of them (``sent`` without
    ``top_n``): a shorter list would silently drop documents from the ranking.
    """
    results = getattr(response, "results", None)
    if not isinstance(results, list):
        raise MalformedAnswerError(
            f"Together rerank answered with no list of results ({type(results).__name__})."
        )
    pairs: list[tuple[int, float]] = []
    seen: set[int] = set()
    for item in results:
        index = getattr(item, "index", None)
        if isinstance(index, float) and index.is_integer():
            index = int(index)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < sent:
            raise MalformedAnswerError(
                f"Together rerank returned an invalid document index {_short_repr(index)} "
                f"for {sent} documents."
            )
        if index in seen:
            raise MalformedAnswerError(
                f"Together rerank returned an invalid document index {index} twice "
                f"for {sent} documents."
            )
        seen.add(index)
        score = getattr(item, "relevance_score", None)
        if (
            not isinstance(score, int | float)
            or isinstance(score, bool)
            or not math.isfinite(score)
        ):
            raise MalformedAnswerError(
                f"Together rerank returned a relevance score that is not a finite number "
                f"({_short_repr(score)}) for document {index}."
            )
        pairs.append((index, float(score)))
    expected = sent if top_n is None else min(top_n, sent)
    if len(pairs) < expected:
        raise MalformedAnswerError(
            f"Together rerank returned {len(pairs)} result(s) for {sent} documents "
            f"(expected {expected})."
        )
    return pairs


def _short_repr(value: object) -> str:
    return _one_line(repr(value), 40)


# --------------------------------------------------------------------------- encoder


class TogetherEncoder(_TogetherBackend):
    """Together's hosted embeddings API (``POST /v1/embeddings``) as an :class:`Encoder`.

    Limits (see the module constants): texts are sent ``batch_size`` at a time (64 by
    default: a conservative size, Together documents no maximum and OpenAI-compatible
    APIs accept 100 to 2,048 inputs) and each is cut to ``max_chars`` characters (1,500
    by default, below the 512-token window of the BGE v1.5 models even for dense text,
    so no request fails for length). Empty texts are sent as a single space.

    Queries get ``query_instruction`` prepended: by default the instruction BAAI
    recommends for retrieval with the English BGE models, nothing for other models;
    pass ``""`` to turn it off. Rows come back sorted by ``index`` and L2-normalised;
    ``progress(done, total)`` is called after every request.

    ``dimension`` is the given value, else the known size of a documented model, else
    0 until the first response sets it (:meth:`ensure_dimension` sends a one-text probe
    request when it must be known first). It is a plain attribute, not a property that
    could send a request: on Python 3.11 ``isinstance(x, Encoder)`` reads every
    protocol attribute.
    """

    def __init__(
        self,
        model: str = DEFAULT_EMBEDDING_MODEL,
        *,
        api_key: str | None,
        base_url: str | None = None,
        batch_size: int = EMBED_BATCH_SIZE,
        dimension: int | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        max_chars: int = EMBED_MAX_CHARS,
        query_instruction: str | None = None,
    ) -> None:
        super().__init__(
            model, api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        self.batch_size = max(1, int(batch_size))
        self.max_chars = max_chars
        # Fixed once given or once seen in a response; a table value may be corrected.
        self._dimension_fixed = dimension is not None
        self.dimension: int = (
            int(dimension)
            if dimension is not None
            else KNOWN_EMBEDDING_DIMENSIONS.get(self.name, 0)
        )
        if query_instruction is None:
            is_bge_en = self.name.startswith("BAAI/bge-") and "-en" in self.name
            query_instruction = BGE_QUERY_INSTRUCTION if is_bge_en else ""
        self.query_instruction = query_instruction

    @property
    def cache_key(self) -> str:
        """Names this encoder in embedding-cache keys, apart from a local model of the same id."""
        return TOGETHER_PREFIX + self.name

    def ensure_dimension(self) -> int:
        """Return ``dimension``, sending a one-text probe request if it is still unknown."""
        if not self.dimension:
            self._embed_batch(["dimension probe"])
        return self.dimension

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: TextKind = "document",
        progress: ProgressFn | None = None,
    ) -> np.ndarray:
        """Encode ``texts`` to unit-length float32 rows, one request per batch."""
        total = len(texts)
        if total == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        prefix = self.query_instruction if kind == "query" else ""
        prepared = [(prefix + t)[: self.max_chars] or " " for t in texts]
        parts: list[np.ndarray] = []
        for start in range(0, total, self.batch_size):
            parts.append(self._embed_batch(prepared[start : start + self.batch_size]))
            if progress is not None:
                progress(min(start + self.batch_size, total), total)
        return normalize_rows(np.concatenate(parts))

    def _embed_batch(self, batch: list[str]) -> np.ndarray:
        response = self._call(
            "embedding",
            lambda client: client.embeddings.create(model=self.name, input=batch),
        )
        try:
            data = sorted(getattr(response, "data", None) or [], key=lambda item: int(item.index))
        except (AttributeError, TypeError, ValueError) as exc:
            raise MalformedAnswerError(
                f"Together embeddings answered without usable indices ({type(exc).__name__})."
            ) from None
        if [int(item.index) for item in data] != list(range(len(batch))):
            raise TogetherAPIError(
                f"Together embeddings returned {len(data)} vectors with unexpected indices "
                f"for {len(batch)} texts."
            )
        try:
            vectors = np.asarray([item.embedding for item in data], dtype=np.float32)
        except (AttributeError, TypeError, ValueError) as exc:
            raise TogetherAPIError("Together embeddings returned vectors of mixed sizes.") from exc
        width = int(vectors.shape[1]) if vectors.ndim == 2 else 0
        if width == 0:
            raise TogetherAPIError("Together embeddings returned empty vectors.")
        if not np.isfinite(vectors).all():
            raise MalformedAnswerError("Together embeddings returned numbers that are not finite.")
        with self._client_lock:
            if not self._dimension_fixed:
                if self.dimension and width != self.dimension:
                    log.info(
                        "model %r returns %d dimensions, not %d", self.name, width, self.dimension
                    )
                self.dimension = width
                self._dimension_fixed = True
        if width != self.dimension:
            raise TogetherAPIError(
                f"Together model '{self.name}' returned {width}-dimensional vectors, "
                f"expected {self.dimension}."
            )
        return vectors


def together_model(model_id: str) -> str | None:
    """The Together model named by ``together:<model>``, or None for other ids."""
    if model_id.startswith(TOGETHER_PREFIX):
        return model_id.removeprefix(TOGETHER_PREFIX).strip() or None
    return None


# -------------------------------------------------------------------------- fallback


def rank_with_fallback(
    primary: Reranker,
    fallback: Reranker,
    query: str,
    docs: Sequence[RerankDoc],
    top_n: int | None = None,
    *,
    fallback_label: str | None = None,
) -> tuple[list[RerankResult], str | None]:
    """Rank with ``primary``; if it raises :class:`RemoteAPIError`, rank with ``fallback``.

    Returns ``(results, notice)``: ``notice`` is None when ``primary`` answered,
    otherwise a plain-words sentence for the user, e.g. "Together rerank failed (rate
    limited); these results come from the local cross-encoder instead.". Errors from
    ``fallback`` propagate. Opt-in: callers that want the remote error shown use
    ``primary.rank`` directly.
    """
    try:
        return primary.rank(query, docs, top_n), None
    except RemoteAPIError as exc:
        reason = getattr(exc, "reason", None) or "request failed"
        log.warning("reranker %r failed, falling back to %r: %s", primary.name, fallback.name, exc)
    results = fallback.rank(query, docs, top_n)
    who = (
        "Together rerank" if isinstance(primary, TogetherReranker) else f"Reranker '{primary.name}'"
    )
    if fallback_label is None:
        fallback_label = (
            "the local cross-encoder" if fallback.score_kind == "logit" else f"'{fallback.name}'"
        )
    return results, f"{who} failed ({reason}); these results come from {fallback_label} instead."
