"""Long documents read passage by passage: cut, score every passage, aggregate.

A cross-encoder reads ``[CLS] query [SEP] text [SEP]`` up to its maximum length (512
tokens for the packaged MiniLM); the rest of a longer text is cut off and never read.
Here a text that does not fit beside the query is cut into overlapping windows of
tokens (the reranker's own tokenizer, so "fits" is exact), each window is scored as a
(query, passage) pair by any :class:`~core.models.base.Reranker`, and the document's
score is an aggregate of its passages' scores:

* ``"first"``: today's behaviour (FirstP). The whole text is sent and the model reads
  what fits: one pair per document, the same pair (and so the same cached score) as
  before passages existed.
* ``"max"``: the best passage (MaxP, Dai & Callan 2019): a document is as relevant as
  its most relevant part. The default for long documents.
* ``"top2"``: the mean of the two best passages: rewards a document that answers in
  more than one place, damps a single lucky window. A one-passage document scores
  its passage.

A text that fits whole is one passage, the full text, so short documents score exactly
as with ``"first"`` under every aggregate (and share cache entries). Windows start on
word boundaries, every ``stride`` tokens, and the last one ends at the text's end; the
character offsets of every passage are kept so a view can highlight the one that
decided. Scores are cached per passage by whatever caches the reranker's pairs (the
in-memory cache of the ONNX model, :mod:`core.search.scorestore` on disk), since a
passage is just a text.

A document's score depends only on (query, document): window sizes depend on the
query's length and the settings, never on the other candidates. The caps are: at most
``max_per_doc`` passages of one document are read (the first ones; the document is
then flagged as read in part), and a query that would need more than
``max_per_query`` pairs is refused with the estimate (:class:`PassageLimitError`)
rather than silently read in part.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from core.models.base import RerankDoc, Reranker, RerankResult, results_from_scores
from core.models.cross_encoders import reranker_tokenizer
from core.models.cross_encoders import tokens_per_second as tokens_per_second_of
from core.models.errors import SettingsError

Aggregate = Literal["first", "max", "top2"]
AGGREGATES: dict[str, str] = {
    "first": "first passage (FirstP: what fits of the start, as before)",
    "max": "best passage (MaxP)",
    "top2": "mean of the two best passages",
}
DEFAULT_AGGREGATE: Aggregate = "max"
DEFAULT_MAX_PER_DOC = 8
DEFAULT_MAX_PER_QUERY = 1000
MIN_WINDOW = 16


class PassageLimitError(SettingsError):
    """A query would need more passages than the per-query cap allows."""


@dataclass(frozen=True, slots=True)
class PassageSettings:
    """How long texts are cut and read.

    ``window``: document tokens per passage; None (the default) fills what fits beside
    the query (``max_length`` minus the query and 3 special tokens), and a larger
    value is lowered to that. ``stride``: tokens between window starts; None is half
    the window (50% overlap). ``max_per_doc`` and ``max_per_query`` cap the pairs.
    """

    aggregate: Aggregate = DEFAULT_AGGREGATE
    window: int | None = None
    stride: int | None = None
    max_per_doc: int = DEFAULT_MAX_PER_DOC
    max_per_query: int = DEFAULT_MAX_PER_QUERY

    def checked(self) -> PassageSettings:
        """These settings, or a :class:`SettingsError` naming the one out of range."""
        if self.aggregate not in AGGREGATES:
            raise SettingsError(
                f"passage aggregate must be one of {', '.join(AGGREGATES)}, not {self.aggregate!r}"
            )
        if self.window is not None and self.window < MIN_WINDOW:
            raise SettingsError(f"passage window must be at least {MIN_WINDOW} tokens")
        if self.stride is not None and self.stride < 1:
            raise SettingsError("passage stride must be at least 1 token")
        if self.window is not None and self.stride is not None and self.stride > self.window:
            raise SettingsError(
                f"passage stride ({self.stride}) must not exceed the window ({self.window}):"
                " text between windows would never be read"
            )
        if self.max_per_doc < 1 or self.max_per_query < 1:
            raise SettingsError("passage caps must be at least 1")
        return self

    def label(self) -> str:
        """A short description, e.g. ``"max, window fit, stride half"``."""
        window = "fit" if self.window is None else str(self.window)
        stride = "half" if self.stride is None else str(self.stride)
        return f"{self.aggregate}, window {window}, stride {stride}"


@dataclass(frozen=True, slots=True)
class Passage:
    """A window of a text: its text, its character span ``[start, end)`` and how many
    of the reranker's tokens it holds (what the model reads of it)."""

    start: int
    end: int
    text: str
    tokens: int = 0


@dataclass(frozen=True, slots=True)
class DocPassages:
    """How one document is read: its passages, and whether they cover all its text.

    ``windows`` is how many windows the text has before ``max_per_doc`` capped them.
    """

    id: str
    passages: tuple[Passage, ...]
    windows: int
    tokens: int
    complete: bool


@dataclass(frozen=True)
class PassageRead:
    """What the reranker made of one document's passages (kept on each result).

    ``spans`` are character offsets into the text the reranker read (the candidate's
    ``rerank_text``); ``scores`` the raw score of each passage, same order; ``best``
    the passage that decided (for ``"top2"``: the better of the two).
    """

    aggregate: str
    spans: tuple[tuple[int, int], ...]
    scores: tuple[float, ...]
    best: int
    windows: int
    complete: bool

    @property
    def num_passages(self) -> int:
        """Passages scored."""
        return len(self.spans)

    @property
    def best_span(self) -> tuple[int, int]:
        """Character span of the passage that decided."""
        return self.spans[self.best]


def query_budget(tokenizer: Any, query: str, max_length: int) -> int:
    """Document tokens that fit beside ``query`` in ``max_length`` (special tokens counted)."""
    used = len(tokenizer.encode(query, "").ids)  # [CLS] query [SEP] [SEP]
    return max_length - used


def _window(settings: PassageSettings, budget: int) -> int:
    """Passage length in tokens: ``settings.window`` lowered to ``budget``."""
    return budget if settings.window is None else min(settings.window, budget)


def split_text(
    doc_id: str,
    text: str,
    tokenizer: Any,
    budget: int,
    settings: PassageSettings,
) -> DocPassages:
    """Cut ``text`` into passages of at most ``budget`` tokens (see the module doc).

    The window is ``settings.window`` lowered to ``budget``; a text within ``budget`` is
    one passage, the text itself.
    """
    if budget < MIN_WINDOW:
        raise SettingsError(
            f"the query leaves {max(budget, 0)} tokens for the document: shorten the query"
        )
    window = _window(settings, budget)
    stride = settings.stride or max(1, window // 2)
    stride = min(stride, window)
    enc = tokenizer.encode(text, add_special_tokens=False)
    offsets, words = enc.offsets, enc.word_ids
    n = len(offsets)
    if n <= window:
        return DocPassages(doc_id, (Passage(0, len(text), text, n),), 1, n, True)

    def same_word(i: int) -> bool:
        return 0 < i < n and words[i] is not None and words[i] == words[i - 1]

    spans: list[tuple[int, int]] = []
    s = 0
    while True:
        if s + window >= n:  # the last window ends at the text's end
            s = max(s, n - window)
            while same_word(s):  # start on a word: forward, to stay within the window
                s += 1
            spans.append((s, n))
            break
        back = s
        while same_word(back):  # start on a word: back, to overlap rather than skip
            back -= 1
        if not spans or back > spans[-1][0]:
            s = back
        # else a word longer than the stride: start inside it rather than loop
        e = s + window
        while same_word(e) and e - 1 > s:  # end on a word boundary
            e -= 1
        spans.append((s, e))
        s += stride
    windows = len(spans)
    kept = spans[: settings.max_per_doc]
    passages = tuple(
        Passage(offsets[a][0], offsets[b - 1][1], text[offsets[a][0] : offsets[b - 1][1]], b - a)
        for a, b in kept
    )
    complete = windows <= settings.max_per_doc
    return DocPassages(doc_id, passages, windows, n, complete)


def first_passage(
    doc_id: str, text: str, tokenizer: Any, budget: int
) -> tuple[DocPassages, tuple[int, int]]:
    """How ``"first"`` reads ``text``: the whole text is sent, and the model reads the
    first ``budget`` tokens; returns the plan (one passage, the full text) and the
    character span actually read."""
    enc = tokenizer.encode(text, add_special_tokens=False)
    n = len(enc.offsets)
    end = len(text) if n <= budget else (enc.offsets[budget - 1][1] if budget > 0 else 0)
    read = Passage(0, len(text), text, min(n, max(budget, 0)))
    return DocPassages(doc_id, (read,), 1, n, n <= budget), (0, end)


def aggregate_scores(scores: Sequence[float], how: str) -> tuple[float, int]:
    """The document score from its passages' scores, and the index that decided."""
    if not scores:
        raise ValueError("no passage scores")
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    if how == "first":
        return float(scores[0]), 0
    if how == "max":
        return float(scores[best]), best
    if how == "top2":
        top = sorted(scores, reverse=True)[:2]
        return float(sum(top) / len(top)), best
    raise SettingsError(f"unknown passage aggregate {how!r}")


@dataclass(frozen=True)
class PassagePlan:
    """Every candidate's passages for one query, before scoring."""

    query: str
    settings: PassageSettings
    budget: int
    docs: tuple[DocPassages, ...]
    read_spans: tuple[tuple[int, int], ...]  # "first": the span read of each doc
    query_tokens: int = 0  # of every pair: the query and the special tokens

    @property
    def pairs(self) -> int:
        """(query, passage) pairs to score."""
        return sum(len(d.passages) for d in self.docs)

    @property
    def tokens(self) -> int:
        """Tokens the reranker reads over all the pairs."""
        passages = sum(p.tokens for d in self.docs for p in d.passages)
        return passages + self.pairs * self.query_tokens

    def estimated_seconds(self, tokens_per_second: float | None = None) -> float:
        """Seconds to score the pairs at ``tokens_per_second`` (no cache hits; default:
        this machine's rate for pairs of their mean length)."""
        if tokens_per_second is None:
            tokens_per_second, _ = tokens_per_second_of(None, self.tokens / max(self.pairs, 1))
        return self.tokens / tokens_per_second


def plan_passages(
    query: str,
    docs: Sequence[RerankDoc],
    settings: PassageSettings,
    *,
    tokenizer: Any,
    max_length: int,
) -> PassagePlan:
    """Cut every doc for ``query``; raises :class:`PassageLimitError` over the cap."""
    settings = settings.checked()
    budget = query_budget(tokenizer, query, max_length)
    plans: list[DocPassages] = []
    spans: list[tuple[int, int]] = []
    for doc in docs:
        if settings.aggregate == "first":
            plan, span = first_passage(doc.id, doc.text, tokenizer, budget)
        else:
            plan = split_text(doc.id, doc.text, tokenizer, budget, settings)
            span = (0, len(doc.text))
        plans.append(plan)
        spans.append(span)
    result = PassagePlan(
        query, settings, budget, tuple(plans), tuple(spans), query_tokens=max_length - budget
    )
    if result.pairs > settings.max_per_query:
        raise PassageLimitError(
            f"this query needs {result.pairs:,} passages (about "
            f"{format_seconds(result.estimated_seconds())} to score), over the cap of "
            f"{settings.max_per_query:,}: raise the cap, lower the candidates or the "
            "passages per document, or use a larger stride"
        )
    return result


def format_seconds(seconds: float) -> str:
    """``"0.8 s"``, ``"40 s"`` or ``"3.5 min"``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


ScoreFn = Callable[[str, list[RerankDoc]], list[RerankResult]]


def rank_passages(
    reranker: Reranker,
    query: str,
    docs: Sequence[RerankDoc],
    settings: PassageSettings,
    *,
    score: ScoreFn | None = None,
    max_length: int | None = None,
) -> tuple[list[RerankResult], dict[str, PassageRead]]:
    """Rank ``docs`` by their aggregated passage scores (best first, ties in input
    order), and what was read of each, by doc id.

    ``score(query, passage_docs)`` scores the passages (default ``reranker.rank``;
    pass one that reads a score store or falls back to another model; its
    ``score_kind`` attribute, if any, read after scoring, names the scale). A result's
    ``truncated`` means part of the document was not read.
    """
    if not docs:
        return [], {}
    length = max_length or int(getattr(reranker, "max_length", 0) or 512)
    plan = plan_passages(
        query, docs, settings, tokenizer=reranker_tokenizer(reranker), max_length=length
    )
    # A passage's id is its document's (one passage) or "<id>#p<k>"; positions if these
    # collide. Scores are matched back by position, never by id or text.
    ids: list[str] = []
    texts: list[str] = []
    owner: list[int] = []
    for i, d in enumerate(plan.docs):
        for k, p in enumerate(d.passages, start=1):
            ids.append(d.id if len(d.passages) == 1 else f"{d.id}#p{k}")
            texts.append(p.text)
            owner.append(i)
    if len(set(ids)) != len(ids):
        ids = [str(n) for n in range(len(ids))]
    flat = [RerankDoc(id=pid, text=text) for pid, text in zip(ids, texts, strict=True)]
    results = (score or reranker.rank)(query, flat)
    flat_scores: list[float | None] = [None] * len(flat)
    flat_truncated = [False] * len(flat)
    for r in results:
        flat_scores[r.index] = r.score
        flat_truncated[r.index] = r.truncated
    per_doc: list[list[float]] = [[] for _ in docs]
    cut = [False] * len(docs)
    for k, i in enumerate(owner):
        s = flat_scores[k]
        if s is None:
            raise SettingsError("the reranker left passages unscored: passages need every score")
        per_doc[i].append(float(s))
        cut[i] = cut[i] or flat_truncated[k]
    doc_scores: list[float] = []
    flags: list[bool] = []
    reads: dict[str, PassageRead] = {}
    for i, d in enumerate(plan.docs):
        value, best = aggregate_scores(per_doc[i], settings.aggregate)
        complete = d.complete and (settings.aggregate == "first" or not cut[i])
        doc_scores.append(value)
        flags.append(not complete)
        if settings.aggregate == "first":
            spans = (plan.read_spans[i],)
        else:
            spans = tuple((p.start, p.end) for p in d.passages)
        reads[d.id] = PassageRead(
            aggregate=settings.aggregate,
            spans=spans,
            scores=tuple(per_doc[i]),
            best=best,
            windows=d.windows,
            complete=complete,
        )
    kind = getattr(score, "score_kind", None) or reranker.score_kind  # a fallback's
    ranked = results_from_scores(docs, doc_scores, kind, None, flags)
    return ranked, reads


@dataclass(frozen=True)
class ReadingEstimate:
    """What reading one candidate costs on average, for a typical query: passages (pairs)
    and the tokens of each pair (query and special tokens included)."""

    passages_per_doc: float
    tokens_per_pair: float

    def pairs(self, candidates: int) -> float:
        """(query, passage) pairs one query scores."""
        return self.passages_per_doc * candidates

    def seconds(self, candidates: int, tokens_per_second: float) -> float:
        """Cross-encoder seconds for one query of ``candidates`` (no cache hits): the
        work grows with the tokens read, so long pairs cost more than short ones."""
        return self.pairs(candidates) * self.tokens_per_pair / tokens_per_second


def estimate_reading(
    texts: Sequence[str],
    settings: PassageSettings,
    *,
    reranker: Reranker | None = None,
    max_length: int = 512,
    query: str = "a typical short query of about ten words here",
) -> ReadingEstimate:
    """Mean passages per document and tokens per pair over ``texts`` (a sample of the
    dataset) for a typical query: the estimate shown before a run."""
    if not texts:
        return ReadingEstimate(0.0, 0.0)
    tokenizer = reranker_tokenizer(reranker)
    budget = query_budget(tokenizer, query, max_length)
    # A text within one window is one passage: count tokens in one batch call, and
    # cut only the longer texts.
    window = budget if settings.aggregate == "first" else _window(settings, budget)
    lengths = [len(e.ids) for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]
    passages = 0
    tokens = 0
    for i, (text, n) in enumerate(zip(texts, lengths, strict=True)):
        if n <= window or settings.aggregate == "first":
            passages, tokens = passages + 1, tokens + min(n, budget)
            continue
        doc = split_text(str(i), text, tokenizer, budget, settings)
        passages += len(doc.passages)
        tokens += sum(p.tokens for p in doc.passages)
    query_tokens = max_length - budget
    return ReadingEstimate(passages / len(texts), tokens / passages + query_tokens)


class StoreScorer:
    """A passage scorer that reads and fills a :class:`~core.search.scorestore.ScoreStore`
    (for :func:`rank_passages`'s ``score``); counts pairs scored and found."""

    def __init__(self, reranker: Reranker, store: Any) -> None:
        self.reranker = reranker
        self.store = store
        self.scored = 0
        self.cached = 0

    def __call__(self, query: str, flat: list[RerankDoc]) -> list[RerankResult]:
        from core.search.scorestore import cached_scores

        found, computed = cached_scores(self.reranker, query, flat, self.store)
        self.scored += computed
        self.cached += len(flat) - computed
        scores = [found[d.id][0] for d in flat]
        flags = [found[d.id][1] for d in flat]
        return results_from_scores(flat, scores, self.reranker.score_kind, None, flags)
