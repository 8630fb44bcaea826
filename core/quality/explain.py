"""Why a reranker gave a document its score: leave-one-out occlusion on the model that ran.

For a (query, document text) pair, each word of the document (and of the query) is
removed in turn and the pair is scored again by the same reranker, through its normal
scoring call: the packaged INT8 cross-encoder scores one pair per call, so every
perturbed score is a real score of that model, exactly as a normal rerank would give
it (and lands in its score cache like any other pair). A word's effect is
``base score - score without it``, in the model's own units (logits for the ms-marco
family): positive means the word raised the score.

Words are whitespace tokens of the original text (punctuation stays attached), kept
with their character offsets so a view can colour the original text. What the model
never read is marked, not explained: the text past the model's maximum length (it
reads ``[CLS] query [SEP] document [SEP]`` up to ``max_length`` tokens), or, when the
document was read passage by passage, everything outside the passage that decided.
Texts of more than :data:`SENTENCE_LEVEL_WORDS` read words are explained sentence by
sentence first, then word by word inside the top sentence(s), to bound the cost.

Effects are not additive: removing two words is not the sum of removing each. How far
to trust the ranking is measured, not assumed (:mod:`core.quality.faithfulness`).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.models.base import RerankDoc, Reranker
from core.models.cross_encoders import reranker_tokenizer
from core.models.errors import CoreError
from core.models.paths import atomic_write, cache_dir

EXPLAIN_VERSION = 1
SENTENCE_LEVEL_WORDS = 120
TOP_SENTENCE_WORDS = 40  # word-level detail inside the top sentences, up to this many words
METHODS = ("occlusion", "ig")  # ig: Integrated Gradients, core.quality.explain_ig
# A perturbed copy of a text much longer than what the model reads is cut this far past
# the read part (plus a margin for what the removal pulls in): the model reads the same
# tokens, so the score is the same, and tokenising 100 KB dozens of times is avoided.
READ_MARGIN_CHARS = 2_000

_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")


class ExplainError(CoreError):
    """An explanation cannot be computed for this input (empty text, bad query, ...)."""


@dataclass(frozen=True, slots=True)
class Piece:
    """A word (or a sentence) of a text: its characters ``[start, end)``, its effect on
    the score (None: not measured) and whether the model read it."""

    text: str
    start: int
    end: int
    effect: float | None = None
    read: bool = True


@dataclass(frozen=True)
class Explanation:
    """One score explained. Offsets of ``doc_words`` and ``sentences`` are into
    ``text`` (the whole text the reranker was given); ``read_span`` is the part the
    scored pair held (the deciding passage, or what fit in ``max_length``)."""

    query: str
    text: str
    base_score: float
    doc_words: tuple[Piece, ...]
    query_words: tuple[Piece, ...]
    method: str
    model: str
    model_key: str
    truncated: bool
    read_span: tuple[int, int]
    sentences: tuple[Piece, ...] = ()
    passage: bool = False
    pairs_scored: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    from_cache: bool = False

    @property
    def level(self) -> str:
        """``"words"``, or ``"sentences, then words"`` for long texts."""
        return "sentences, then words" if self.sentences else "words"

    @property
    def unread(self) -> bool:
        """Whether part of the text was never read by the scored pair."""
        return self.read_span != (0, len(self.text))

    def measured(self) -> list[Piece]:
        """Document words with a measured effect."""
        return [w for w in self.doc_words if w.effect is not None]

    def helped(self, k: int = 5) -> list[Piece]:
        """The ``k`` words that raised the score most (positive effects only)."""
        ranked = sorted((w for w in self.measured() if w.effect > 0), key=lambda w: -w.effect)
        return ranked[:k]

    def hurt(self, k: int = 5) -> list[Piece]:
        """The ``k`` words that lowered the score most (negative effects only)."""
        ranked = sorted((w for w in self.measured() if w.effect < 0), key=lambda w: w.effect)
        return ranked[:k]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the level and the top words."""
        data = asdict(self)
        data["read_span"] = list(self.read_span)
        data["level"] = self.level
        data["helped"] = [asdict(w) for w in self.helped()]
        data["hurt"] = [asdict(w) for w in self.hurt()]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Explanation:
        """The inverse of :meth:`to_dict` (extra keys ignored)."""
        pieces = {k: tuple(Piece(**p) for p in data[k]) for k in ("doc_words", "query_words")}
        names = {f for f in cls.__dataclass_fields__}
        plain = {k: v for k, v in data.items() if k in names and k not in pieces}
        plain["sentences"] = tuple(Piece(**p) for p in data.get("sentences", ()))
        plain["read_span"] = tuple(data["read_span"])
        return cls(**plain, **pieces)


@dataclass(frozen=True, slots=True)
class ExplainPin:
    """An explanation a presenter pinned to a walkthrough step: which document
    (``doc``, an id of the step's dataset), by which ``method`` (one of
    :data:`METHODS`), for which head-to-head ``side`` (``"a"`` or ``"b"``). The query is
    the step's. Built from outside values only through
    :func:`core.present.gate.admit_pin`."""

    doc: str
    method: str = "occlusion"
    side: str = "a"

    def to_dict(self) -> dict[str, str]:
        """JSON-ready (the stored step's ``explain`` object)."""
        return {"doc": self.doc, "method": self.method, "side": self.side}


# ---------------------------------------------------------------- text helpers


def words_of(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Character spans of the whitespace tokens of ``text[start:end]`` (offsets into text)."""
    end = len(text) if end is None else end
    return [(m.start() + start, m.end() + start) for m in _WORD.finditer(text[start:end])]


def sentences_of(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Character spans of the sentences (and lines) of ``text[start:end]``."""
    end = len(text) if end is None else end
    spans, s = [], start
    for m in _SENTENCE_END.finditer(text, start, end):
        if text[s : m.start()].strip():
            spans.append((s, m.start()))
        s = m.end()
    if text[s:end].strip():
        spans.append((s, end))
    return spans


def remove_spans(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """``text`` without the characters of ``spans`` (each with one following blank, so
    no double spaces are left); line breaks are kept."""
    out, pos = [], 0
    for s, e in sorted(spans):
        if s < pos:
            s = pos
        out.append(text[pos:s])
        if e < len(text) and text[e] == " ":
            e += 1
        pos = max(pos, e)
    out.append(text[pos:])
    return "".join(out)


def keep_spans(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """Only the characters of ``spans``, joined by single spaces (sufficiency tests)."""
    return " ".join(text[s:e] for s, e in sorted(spans))


def _stop_words() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def check_inputs(query: str, text: str) -> tuple[str, str]:
    """The query (stripped) and text, or an :class:`ExplainError` saying what is wrong."""
    query = (query or "").strip()
    if not query:
        raise ExplainError("the query is empty: type what you are looking for")
    if not (text or "").strip():
        raise ExplainError("the document's text is empty: there is nothing to explain")
    words = [w.strip(".,;:!?\"'()").lower() for w in query.split()]
    if all(w in _stop_words() or not w for w in words):
        raise ExplainError(
            f"the query '{query}' holds only stop words: no word of it carries meaning to explain"
        )
    return query, text


# ---------------------------------------------------------------- scoring


def is_hosted(reranker: object) -> bool:
    """Whether ``reranker`` is a paid hosted API (occlusion would send many calls)."""
    return getattr(reranker, "score_kind", None) == "relevance" or "together" in str(
        getattr(reranker, "name", "")
    )


def score_texts(reranker: Reranker, query: str, texts: Sequence[str]) -> np.ndarray:
    """Scores of (query, text) pairs by the reranker's normal scoring call (its own
    cache, one pair per call for the packaged model), in the order of ``texts``."""
    if not texts:
        return np.zeros(0, dtype=np.float64)
    score_pairs = getattr(reranker, "score_pairs", None)
    if callable(score_pairs):
        return np.asarray(score_pairs(query, list(texts))[0], dtype=np.float64)
    results = reranker.rank(query, [RerankDoc(id=str(i), text=t) for i, t in enumerate(texts)])
    scores = np.zeros(len(texts), dtype=np.float64)
    for r in results:
        scores[r.index] = r.score
    return scores


_TRUNCATING: dict[tuple[int, int], Any] = {}
_TRUNCATING_LOCK = threading.Lock()


def read_limit(reranker: Reranker, query: str, text: str) -> tuple[int, bool]:
    """The character offset where the reranker stops reading ``text`` beside ``query``
    (its own tokenizer, truncated longest-first to its ``max_length`` as when it
    scores), and whether it stops before the end."""
    from tokenizers import Tokenizer

    base = reranker_tokenizer(reranker)
    max_length = int(getattr(reranker, "max_length", 512))
    key = (id(base), max_length)
    with _TRUNCATING_LOCK:
        tok = _TRUNCATING.get(key)
        if tok is None:
            tok = Tokenizer.from_str(base.to_str())
            tok.no_padding()
            tok.enable_truncation(max_length=max_length, strategy="longest_first")
            _TRUNCATING[key] = tok
    enc = tok.encode(query, text)
    if not enc.overflowing:
        return len(text), False
    ends = [
        e
        for (_, e), t, sp in zip(enc.offsets, enc.type_ids, enc.special_tokens_mask, strict=True)
        if t == 1 and not sp
    ]
    return (max(ends) if ends else 0), True


def _cut(text: str, read_end: int, removed: int) -> str:
    """``text`` cut past what the model can read after ``removed`` characters are
    taken out before ``read_end`` (see :data:`READ_MARGIN_CHARS`)."""
    limit = read_end + READ_MARGIN_CHARS + 20 * removed
    if len(text) <= limit + READ_MARGIN_CHARS:
        return text
    space = text.find(" ", limit)
    return text if space < 0 else text[:space]


# ---------------------------------------------------------------- the explanation


def explain(
    reranker: Reranker,
    query: str,
    text: str,
    *,
    passage: tuple[int, int] | None = None,
    method: str = "occlusion",
    use_cache: bool = True,
    allow_hosted: bool = False,
) -> Explanation:
    """Explain ``reranker``'s score of ``(query, text)`` by leave-one-out occlusion
    (``method="ig"``: Integrated Gradients on the fp32 rebuild of the packaged model,
    :mod:`core.quality.explain_ig`).

    ``passage`` is the character span of the passage that decided the document's score
    when it was read passage by passage (``Candidate.passages.best_span``): that pair is
    explained, the rest of the text is marked unread. Without it the pair is the whole
    text, and what lies past ``max_length`` is marked unread. A hosted reranker is
    refused unless ``allow_hosted`` (every perturbed pair is a paid call; the error says
    how many). Cached on disk by (model cache key, query, text, passage, method).
    """
    if method not in METHODS:
        raise ExplainError(f"unknown method '{method}': choose {', '.join(METHODS)}")
    query, text = check_inputs(query, text)
    if passage is not None:
        s, e = passage
        if not (0 <= s < e <= len(text)):
            raise ExplainError(f"passage span {passage} is outside the text ({len(text)} chars)")
    if is_hosted(reranker) and not allow_hosted:
        calls = estimate_calls(query, text if passage is None else text[passage[0] : passage[1]])
        raise ExplainError(
            f"{reranker.name} is a hosted, paid reranker: explaining this result would send "
            f"about {calls} calls; ask for it explicitly"
        )
    model_key = str(getattr(reranker, "cache_key", "") or "")
    other = _OTHER_METHODS.get(method) if method != "occlusion" else None
    if method != "occlusion":
        if other is None:
            raise ExplainError(
                f"method '{method}' is not loaded (import core.quality.explain_{method})"
            )
        if getattr(reranker, "name", "") != other.model:
            raise ExplainError(
                f"{method} needs gradients: it explains {other.model} (its fp32 rebuild) "
                "only; use occlusion"
            )
        model_key = other.model_key
    key = cache_key(model_key, query, text, method, passage) if model_key else None
    if use_cache and key is not None:
        cached = load_cached(key)
        if cached is not None:
            return cached
    if other is not None:
        result = other.run(query, text, passage)
    else:
        result = _occlusion(reranker, query, text, passage, model_key)
    if key is not None:
        store(key, result)
    return result


@dataclass(frozen=True)
class OtherMethod:
    """A method besides occlusion, computed on a rebuild of one model (``model``, its
    id) rather than through the served reranker: ``run(query, text, passage)``."""

    model: str
    model_key: str
    run: Any


_OTHER_METHODS: dict[str, OtherMethod] = {}


def register_method(name: str, method: OtherMethod) -> None:
    """Make ``name`` (one of :data:`METHODS`) computable by :func:`explain`; the module
    that computes it registers it when imported (:mod:`core.quality.explain_ig`)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}")
    _OTHER_METHODS[name] = method


def estimate_calls(query: str, text: str) -> int:
    """How many pairs an occlusion explanation scores (before cache hits)."""
    n = len(words_of(text))
    doc = n if n <= SENTENCE_LEVEL_WORDS else len(sentences_of(text)) + TOP_SENTENCE_WORDS
    return 1 + doc + len(query.split())


def _occlusion(
    reranker: Reranker,
    query: str,
    text: str,
    passage: tuple[int, int] | None,
    model_key: str,
) -> Explanation:
    wall, cpu = time.perf_counter(), time.process_time()
    if passage is not None:
        p0, p1 = passage
        pair_text = text[p0:p1]
        read_end, truncated = read_limit(reranker, query, pair_text)
        read_span = (p0, p0 + read_end)
        truncated = truncated or passage != (0, len(text))
    else:
        p0, pair_text = 0, text
        read_end, truncated = read_limit(reranker, query, text)
        read_span = (0, read_end)

    base = float(score_texts(reranker, query, [pair_text])[0])
    spans = words_of(pair_text, 0, read_end)
    pairs = 1

    def perturbed(remove: Sequence[tuple[int, int]]) -> str:
        removed = sum(e - s for s, e in remove)
        out = remove_spans(pair_text, remove)
        return _cut(out, read_end, removed) if truncated else out

    effects: dict[tuple[int, int], float] = {}
    sentences: list[Piece] = []
    if len(spans) > SENTENCE_LEVEL_WORDS:
        sent_spans = sentences_of(pair_text, 0, read_end)
        scores = score_texts(reranker, query, [perturbed([s]) for s in sent_spans])
        pairs += len(sent_spans)
        sent_effects = base - scores
        sentences = [
            Piece(pair_text[s:e], s + p0, e + p0, float(d))
            for (s, e), d in zip(sent_spans, sent_effects, strict=True)
        ]
        chosen: list[tuple[int, int]] = []
        for i in np.argsort(-sent_effects, kind="stable"):
            s, e = sent_spans[int(i)]
            inside = [w for w in spans if s <= w[0] < e]
            if chosen and len(chosen) + len(inside) > TOP_SENTENCE_WORDS:
                break
            chosen.extend(inside[:TOP_SENTENCE_WORDS])
            if len(chosen) >= TOP_SENTENCE_WORDS:
                break
        word_spans = chosen
    else:
        word_spans = spans
    if word_spans:
        scores = score_texts(reranker, query, [perturbed([w]) for w in word_spans])
        pairs += len(word_spans)
        effects = {w: float(base - s) for w, s in zip(word_spans, scores, strict=True)}

    read_words = {w for w in spans}
    doc_words = []
    for s, e in words_of(text):
        local = (s - p0, e - p0)
        inside = s >= read_span[0] and s < read_span[1]
        doc_words.append(
            Piece(
                text[s:e],
                s,
                e,
                effects.get(local) if inside else None,
                inside and local in read_words,
            )
        )

    q_spans = words_of(query)
    q_texts = [remove_spans(query, [w]) for w in q_spans]
    q_scores = [float(score_texts(reranker, q or " ", [pair_text])[0]) for q in q_texts]
    pairs += len(q_texts)
    query_words = tuple(
        Piece(query[s:e], s, e, base - sc) for (s, e), sc in zip(q_spans, q_scores, strict=True)
    )
    return Explanation(
        query=query,
        text=text,
        base_score=base,
        doc_words=tuple(doc_words),
        query_words=query_words,
        method="occlusion",
        model=str(getattr(reranker, "name", "reranker")),
        model_key=model_key,
        truncated=truncated,
        read_span=read_span,
        sentences=tuple(sentences),
        passage=passage is not None,
        pairs_scored=pairs,
        seconds=time.perf_counter() - wall,
        cpu_seconds=time.process_time() - cpu,
    )


def explain_candidate(reranker: Reranker, query: str, candidate: Any, **options: Any):
    """:func:`explain` for a search result (a :class:`core.search.pipeline.Candidate`):
    its ``rerank_text``, and the passage that decided when it was read by passages."""
    reads = getattr(candidate, "passages", None)
    passage = None
    if reads is not None and reads.num_passages > 1:
        passage = tuple(reads.best_span)
    return explain(reranker, query, candidate.rerank_text, passage=passage, **options)


# ---------------------------------------------------------------- contrast


@dataclass(frozen=True)
class Contrast:
    """Why X is above Y: each one's explanation, the words X has that Y lacks (with
    their effect on X), and the swap test: X scored without its ``k`` strongest
    positive words, against Y's score."""

    x: Explanation
    y: Explanation
    x_only: tuple[tuple[str, float | None], ...]
    removed: tuple[str, ...]
    x_without_evidence: float
    seconds: float = 0.0

    @property
    def flips(self) -> bool:
        """Whether X without its top evidence falls below Y."""
        return self.x_without_evidence < self.y.base_score

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "x": self.x.to_dict(),
            "y": self.y.to_dict(),
            "x_only": [list(p) for p in self.x_only],
            "removed": list(self.removed),
            "x_score": self.x.base_score,
            "y_score": self.y.base_score,
            "x_without_evidence": self.x_without_evidence,
            "flips": self.flips,
            "seconds": self.seconds,
        }


def normal_word(word: str) -> str:
    """A word compared across documents: lower case, outer punctuation stripped."""
    return word.strip(".,;:!?\"'()[]{}").lower()


def contrast(
    reranker: Reranker,
    query: str,
    text_x: str,
    text_y: str,
    *,
    k: int = 5,
    passage_x: tuple[int, int] | None = None,
    passage_y: tuple[int, int] | None = None,
    use_cache: bool = True,
) -> Contrast:
    """Explain X and Y for ``query`` and test the difference (see :class:`Contrast`)."""
    started = time.perf_counter()
    x = explain(reranker, query, text_x, passage=passage_x, use_cache=use_cache)
    y = explain(reranker, query, text_y, passage=passage_y, use_cache=use_cache)
    in_y = {normal_word(w.text) for w in y.doc_words if w.read}
    best: dict[str, float | None] = {}
    for w in x.doc_words:
        n = normal_word(w.text)
        if not n or n in in_y or not w.read:
            continue
        if w.effect is not None and (best.get(n) is None or w.effect > best[n]):
            best[n] = w.effect
        best.setdefault(n, w.effect)
    x_only = tuple(sorted(best.items(), key=lambda p: -(p[1] if p[1] is not None else -1e9)))
    top = x.helped(k)
    p0 = x.read_span[0] if x.passage else 0
    pair_text = text_x[p0 : x.read_span[1]] if x.passage else text_x
    without = remove_spans(pair_text, [(w.start - p0, w.end - p0) for w in top])
    score = float(score_texts(reranker, x.query, [without])[0]) if top else x.base_score
    return Contrast(x, y, x_only, tuple(w.text for w in top), score, time.perf_counter() - started)


# ---------------------------------------------------------------- cache


def cache_key(
    model_key: str, query: str, text: str, method: str, passage: tuple[int, int] | None
) -> str:
    """sha256 naming one explanation (model numerics, query, text, method, passage)."""
    parts = (f"v{EXPLAIN_VERSION}", model_key, query, text, method, repr(passage))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def cache_folder() -> Path:
    """Where explanations are kept: ``<cache dir>/explanations/``."""
    return cache_dir() / "explanations"


def load_cached(key: str) -> Explanation | None:
    """A stored explanation, or None (missing or unreadable)."""
    path = cache_folder() / key[:2] / f"{key}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    try:
        found = Explanation.from_dict(data)
    except (KeyError, TypeError):
        return None
    return _replace(found, from_cache=True)


def store(key: str, explanation: Explanation) -> None:
    """Keep ``explanation`` under ``key`` (atomically; shared by every session)."""
    path = cache_folder() / key[:2] / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = asdict(explanation)
    data["read_span"] = list(explanation.read_span)
    atomic_write(path, json.dumps(data).encode("utf-8"))


def _replace(explanation: Explanation, **changes: Any) -> Explanation:
    from dataclasses import replace

    return replace(explanation, **changes)


__all__ = [
    "Contrast",
    "ExplainError",
    "ExplainPin",
    "Explanation",
    "Piece",
    "contrast",
    "explain",
    "explain_candidate",
]
