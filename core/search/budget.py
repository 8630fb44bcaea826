"""What a visitor may make the server compute: costs asked before they are spent.

Work that a link or a file can start (a whole-corpus rerank, an evaluation, a tuning
run, embedding an upload) is priced before it runs. Two rules, one module:

* above :func:`confirm_seconds` (default 60 s, ``RERANK_CONFIRM_SECONDS``) the page shows
  the estimate and waits for a click;
* each visitor (one browser session) has a budget of estimated compute per hour
  (:func:`budget_seconds`, default 30 minutes, ``RERANK_VISITOR_BUDGET_MIN``; 0 turns the
  budget off): work that would go past it is refused with one line saying when it frees.

A :class:`VisitorBudget` is a small object kept in the visitor's session; it holds the
charges of the last hour and nothing else. Estimates come from the callers (the
reranker's measured tokens per second); an embedding's comes from here
(:func:`embedding_estimate`: the corpus's tokens at the encoder's rate measured on this
process's own builds, :data:`ENCODING_RATES`, else this machine's model).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.data.documents import Dataset
from core.models.base import Encoder
from core.search.passages import PassageSettings, format_seconds

CONFIRM_ENV = "RERANK_CONFIRM_SECONDS"
BUDGET_ENV = "RERANK_VISITOR_BUDGET_MIN"
DEFAULT_CONFIRM_SECONDS = 60.0
DEFAULT_BUDGET_MINUTES = 30.0
WINDOW_SECONDS = 3600.0


def _env_float(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, "").strip() or default)
    except ValueError:
        return default
    return value if value >= 0 else default


def confirm_seconds() -> float:
    """Estimated seconds above which work waits for a click (``RERANK_CONFIRM_SECONDS``)."""
    return _env_float(CONFIRM_ENV, DEFAULT_CONFIRM_SECONDS)


def budget_seconds() -> float:
    """Estimated compute seconds one visitor may start per hour (0: no limit)."""
    return _env_float(BUDGET_ENV, DEFAULT_BUDGET_MINUTES) * 60.0


@dataclass(frozen=True)
class Cost:
    """An estimate of work: ``seconds`` of this server's time, and what it is."""

    seconds: float
    what: str

    @property
    def needs_click(self) -> bool:
        """Whether this work must wait for a click (it costs more than the threshold)."""
        return self.seconds > confirm_seconds()

    def line(self) -> str:
        """One line for the page: what will run and about how long it takes."""
        return f"{self.what}: about {format_seconds(self.seconds)} on this server"


@dataclass
class VisitorBudget:
    """One visitor's charges in the last hour (kept in the visitor's session)."""

    charges: list[tuple[float, float]] = field(default_factory=list)

    def _recent(self, now: float) -> list[tuple[float, float]]:
        self.charges = [(t, s) for t, s in self.charges if now - t < WINDOW_SECONDS]
        return self.charges

    def spent(self, now: float | None = None) -> float:
        """Estimated seconds started in the last hour."""
        return sum(s for _, s in self._recent(time.time() if now is None else now))

    def refusal(self, cost: Cost, now: float | None = None) -> str | None:
        """None when ``cost`` fits the budget; else one line saying why and when it frees."""
        limit = budget_seconds()
        if limit <= 0:
            return None
        now = time.time() if now is None else now
        spent = self.spent(now)
        if spent + cost.seconds <= limit:
            return None
        if cost.seconds > limit:
            return (
                f"{cost.line()}, more than one visitor may start here "
                f"({format_seconds(limit)} an hour, {BUDGET_ENV}); ask the operator"
            )
        wait = WINDOW_SECONDS - (now - self.charges[0][0]) if self.charges else 0.0
        return (
            f"{cost.line()}; this session has started {format_seconds(spent)} of work in the "
            f"last hour (limit {format_seconds(limit)}, {BUDGET_ENV}); try again in "
            f"{format_seconds(max(wait, 1.0))}"
        )

    def charge(self, cost: Cost, now: float | None = None) -> None:
        """Record that ``cost`` was started."""
        now = time.time() if now is None else now
        self._recent(now)
        if cost.seconds > 0:
            self.charges.append((now, cost.seconds))


# --- embedding a corpus ------------------------------------------------------------------
# The packaged all-MiniLM-L6-v2 (ONNX fp32, one document per call on both cores) on a
# quiet machine here: ~100 docs/s on movies (~86 tokens), 44-48 docs/s on SciFact's
# title + text (the model's 256 tokens; docs/scale-and-engines.md). Seconds per document
# ~= EMBED_CALL_SECONDS + tokens / EMBED_TOKENS_PER_SECOND fits both.
EMBED_CALL_SECONDS = 0.0036
EMBED_TOKENS_PER_SECOND = 13_400.0
EMBED_SAMPLE = 200  # documents tokenized to price a corpus
MIN_MEASURED_DOCS = 256  # a build shorter than this says little about the speed


def embed_seconds_per_doc(tokens: float, vectors: float = 1.0) -> float:
    """Seconds to embed one document whose ``vectors`` passages hold ``tokens`` tokens in
    all, by this machine's model (no measurement)."""
    return vectors * EMBED_CALL_SECONDS + tokens / EMBED_TOKENS_PER_SECOND


class EncodingRates:
    """How fast each encoder (by cache key) embedded corpora in this process, as a factor
    on :func:`embed_seconds_per_doc`: the last ``window`` builds of at least
    :data:`MIN_MEASURED_DOCS` documents. Thread-safe; shared by every session."""

    def __init__(self, window: int = 8) -> None:
        self.window = window
        self._builds: dict[str, list[tuple[float, float]]] = {}
        self._lock = threading.Lock()

    def record(
        self, model: str, docs: int, seconds: float, tokens_per_doc: float, vectors: float = 1.0
    ) -> None:
        """A build of ``model`` embedded ``docs`` documents (``tokens_per_doc`` tokens in
        ``vectors`` passages each) in ``seconds`` of encoding (pauses excluded)."""
        if docs < MIN_MEASURED_DOCS or seconds <= 0:
            return
        modelled = docs * embed_seconds_per_doc(tokens_per_doc, vectors)
        with self._lock:
            builds = self._builds.setdefault(model, [])
            builds.append((seconds, modelled))
            del builds[: -self.window]

    def factor(self, model: str) -> float | None:
        """Measured seconds over modelled seconds for ``model``; None before a build."""
        with self._lock:
            builds = list(self._builds.get(model, ()))
        if not builds:
            return None
        return sum(s for s, _ in builds) / sum(m for _, m in builds)

    def clear(self) -> None:
        """Forget every measurement."""
        with self._lock:
            self._builds.clear()


ENCODING_RATES = EncodingRates()


@dataclass(frozen=True)
class EmbeddingEstimate:
    """What embedding a corpus will take: ``records`` documents left to embed (read back
    chunks excluded), each ``tokens_per_doc`` tokens in ``vectors_per_doc`` vectors."""

    records: int
    tokens_per_doc: float
    vectors_per_doc: float
    seconds: float
    measured: bool  # at a rate measured on this process's own builds

    @property
    def docs_per_second(self) -> float:
        """Documents per second this estimate assumes."""
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def cost(self) -> Cost:
        """The estimate as a :class:`Cost`, for the click threshold and the budget."""
        return Cost(self.seconds, f"Embedding {self.records:,} records")

    def line(self) -> str:
        """``Embedding 99,000 records takes about 70.0 min on this server (~24 records/s,
        measured here)``."""
        source = "measured here" if self.measured else "typical of this 2-core CPU"
        return (
            f"Embedding {self.records:,} records takes about {format_seconds(self.seconds)} "
            f"on this server (~{self.docs_per_second:,.0f} records/s, {source})"
        )


def embedding_estimate(
    dataset: Dataset,
    encoder: Encoder,
    fields: Sequence[str],
    passages: PassageSettings | None = None,
    *,
    done: int = 0,
    rates: EncodingRates = ENCODING_RATES,
) -> EmbeddingEstimate:
    """What embedding ``dataset``'s ``fields`` with ``encoder`` takes, ``done`` documents
    being on disk already: tokens measured with the encoder's own tokenizer on a sample
    of up to :data:`EMBED_SAMPLE` documents (cut into passages with ``passages``), at the
    rate measured on this process's builds of the encoder, else this machine's model."""
    tokens, vectors = sample_tokens(dataset, encoder, fields, passages)
    left = max(0, len(dataset) - max(0, done))
    factor = rates.factor(encoder_key(encoder))
    seconds = left * embed_seconds_per_doc(tokens, vectors) * (factor or 1.0)
    return EmbeddingEstimate(left, tokens, vectors, seconds, factor is not None)


def encoder_key(encoder: Encoder) -> str:
    """What names ``encoder``'s vectors (its cache key): the key of its measured rate."""
    return str(getattr(encoder, "cache_key", encoder.name))


def sample_tokens(
    dataset: Dataset,
    encoder: Encoder,
    fields: Sequence[str],
    passages: PassageSettings | None = None,
) -> tuple[float, float]:
    """Mean tokens the encoder reads per document (special tokens included, each vector
    cut at its limit) and mean vectors per document, over a sample of the corpus
    (remembered per corpus, encoder, fields and passages: a page asks on every run)."""
    key = (dataset.content_hash, encoder_key(encoder), tuple(fields), passages)
    with _SAMPLED_LOCK:
        known = _SAMPLED.get(key)
    if known is None:
        known = _sample_tokens(dataset, encoder, fields, passages)
        with _SAMPLED_LOCK:
            _SAMPLED[key] = known
            while len(_SAMPLED) > 64:
                del _SAMPLED[next(iter(_SAMPLED))]
    return known


_SAMPLED: dict[tuple, tuple[float, float]] = {}
_SAMPLED_LOCK = threading.Lock()


def _sample_tokens(
    dataset: Dataset,
    encoder: Encoder,
    fields: Sequence[str],
    passages: PassageSettings | None,
) -> tuple[float, float]:
    from core.data.documents import embed_text
    from core.search.passage_index import SPECIAL_TOKENS, dense_budget, encoder_tokenizer
    from core.search.passages import split_text

    records = dataset.records
    if not records:
        return 0.0, 1.0
    fields = dataset.check_fields(fields, "embed")
    step = max(1, len(records) // EMBED_SAMPLE)
    texts = [embed_text(r, fields) for r in records[::step][:EMBED_SAMPLE]]
    tokenizer, length, _ = encoder_tokenizer(encoder)
    budget = dense_budget(length)
    tokens = vectors = 0
    for text in texts:
        if passages is not None:
            read = split_text("", text, tokenizer, budget, passages)
            tokens += sum(p.tokens + SPECIAL_TOKENS for p in read.passages)
            vectors += len(read.passages)
        else:
            n = len(tokenizer.encode(text, add_special_tokens=False).ids)
            tokens += min(n, budget) + SPECIAL_TOKENS
            vectors += 1
    return tokens / len(texts), vectors / len(texts)
