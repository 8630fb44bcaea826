"""What the app shows of passage reading: the passage that decided, highlighted with the
query's terms marked, a table of every passage's score, the per-query count of
documents read in part vs in full, and the cost estimate before a run.

Record text is never interpreted: :func:`highlight_html` escapes every character of it
and adds only its own ``<mark>`` and ``<b>`` tags, for a component that renders HTML
without markdown (``st.html``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from core.data.documents import embed_text
from core.search.budget import Cost
from core.search.hits import PassageMatch
from core.search.passage_index import PassageVectorIndex
from core.search.passages import AGGREGATES, ReadingEstimate, format_seconds
from core.search.pipeline import Candidate, SearchResult

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "with",
        "about",
        "into",
        "my",
        "me",
        "do",
        "does",
    ]
)
_WORD = re.compile(r"\w+", re.UNICODE)


def query_terms(query: str) -> list[str]:
    """The query's words worth marking: lowercased, no stopwords, no one-letter words."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.lower()):
        if len(word) > 1 and word not in STOPWORDS:
            seen.setdefault(word, None)
    return list(seen)


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of text with one look: inside the deciding passage or not, a query term or not."""

    text: str
    passage: bool
    term: bool


def highlight_segments(text: str, span: tuple[int, int] | None, query: str) -> list[Segment]:
    """Cut ``text`` into runs: the passage ``span`` (character offsets) and whole-word,
    case-insensitive occurrences of the query's terms."""
    terms = query_terms(query)
    term_at = [False] * len(text)
    if terms:
        pattern = re.compile(r"\b(" + "|".join(re.escape(t) for t in terms) + r")\b", re.IGNORECASE)
        for m in pattern.finditer(text):
            for i in range(m.start(), m.end()):
                term_at[i] = True
    start, end = span if span is not None else (0, 0)
    segments: list[Segment] = []
    run_start = 0
    for i in range(1, len(text) + 1):
        if (
            i == len(text)
            or (start <= i < end) != (start <= i - 1 < end)
            or (term_at[i] != term_at[i - 1])
        ):
            segments.append(
                Segment(text[run_start:i], start <= run_start < end, term_at[run_start])
            )
            run_start = i
    return segments


def excerpt_bounds(text: str, span: tuple[int, int], context: int) -> tuple[int, int]:
    """``span`` widened by about ``context`` characters each side, cut at whitespace."""
    start = max(0, span[0] - context)
    end = min(len(text), span[1] + context)
    if start > 0:
        space = text.find(" ", start, span[0])
        start = space + 1 if space != -1 else start
    if end < len(text):
        space = text.rfind(" ", span[1], end)
        end = space if space != -1 else end
    return start, end


def highlight_html(
    text: str, span: tuple[int, int] | None, query: str, *, context: int | None = None
) -> str:
    """The text as escaped HTML: the deciding passage in ``<mark>``, query terms in
    ``<b>``; line breaks kept (``white-space: pre-wrap``). With ``context``, only the
    passage and about that many characters around it, elided with "…"."""
    before = after = ""
    if context is not None and span is not None:
        a, b = excerpt_bounds(text, span, context)
        before = "… " if a > 0 else ""
        after = " …" if b < len(text) else ""
        text, span = text[a:b], (span[0] - a, span[1] - a)
    parts = [before]
    in_mark = False
    for seg in highlight_segments(text, span, query):
        if seg.passage and not in_mark:
            parts.append('<mark class="decided-passage">')
            in_mark = True
        elif not seg.passage and in_mark:
            parts.append("</mark>")
            in_mark = False
        escaped = html.escape(seg.text, quote=True)
        parts.append(f'<b class="query-term">{escaped}</b>' if seg.term else escaped)
    if in_mark:
        parts.append("</mark>")
    parts.append(after)
    return (
        '<div class="passage-view" style="white-space: pre-wrap; font-family: monospace; '
        'font-size: 0.85em; max-height: 28em; overflow-y: auto">' + "".join(parts) + "</div>"
    )


def describe_read(c: Candidate) -> str:
    """One sentence on how the reranker read this document."""
    read = c.passages
    if read is None:
        return "Read as one text." + (" Part of it was cut off (truncated)." if c.truncated else "")
    how = AGGREGATES.get(read.aggregate, read.aggregate)
    if read.aggregate == "first":
        start, end = read.spans[0]
        if read.complete:
            return "Read in full, as one passage."
        return (
            f"Read in part ({how}): characters {start:,}–{end:,} of "
            f"{len(c.rerank_text):,}; the rest was never read."
        )
    whole = (
        "every passage read"
        if read.complete
        else f"the first {read.num_passages} of {read.windows} passages read (cap)"
    )
    if read.num_passages == 1:
        return "Read in full, as one passage." if read.complete else f"Read in part: {whole}."
    return (
        f"Passage {read.best + 1} of {read.num_passages} decided ({how}); "
        f"{whole}{'' if read.complete else ', the rest was never read'}."
    )


def passage_rows(c: Candidate) -> list[dict[str, object]]:
    """One row per passage: its number, character span, raw score and whether it decided."""
    read = c.passages
    if read is None:
        return []
    return [
        {
            "passage": i + 1,
            "characters": f"{a:,}–{b:,}",
            "score": score,
            "decided": "◀" if i == read.best else "",
        }
        for i, ((a, b), score) in enumerate(zip(read.spans, read.scores, strict=True))
    ]


def reading_summary(result: SearchResult) -> str | None:
    """Per query: documents read in full vs in part, and passages scored; None without
    a reranker."""
    if not result.reranker:
        return None
    scored = [c for c in result.candidates if c.passages is not None]
    passages = sum(c.passages.num_passages for c in scored if c.passages is not None)
    text = f"Documents read in full: {result.read_in_full} · in part: {result.read_in_part}"
    if result.passage_settings is not None:
        text += (
            f" · {passages:,} passages scored for {len(scored)} documents "
            f"({AGGREGATES[result.passage_settings.aggregate]})"
        )
    return text


def estimate_note(
    estimate: ReadingEstimate,
    candidates: int,
    aggregate: str,
    tokens_per_second: float,
    measured: bool,
) -> str:
    """What a query will cost: pairs and seconds (no cache hits) at the reranker's rate,
    measured on this server's own scoring when it has scored enough already."""
    pairs = estimate.pairs(candidates)
    seconds = estimate.seconds(candidates, tokens_per_second)
    return (
        f"Estimate: about {pairs:,.0f} (query, passage) pairs per query "
        f"({estimate.passages_per_doc:.1f} per document, {AGGREGATES[aggregate]}; "
        f"~{estimate.tokens_per_pair:,.0f} tokens each) ≈ {format_seconds(seconds)} of "
        f"cross-encoder time {_at_rate(tokens_per_second, measured)}; cached pairs are free."
    )


def _at_rate(tokens_per_second: float, measured: bool) -> str:
    source = "measured on this server" if measured else "typical of a 2-core CPU"
    return f"at ~{tokens_per_second:,.0f} tokens/s ({source})"


def evaluation_costs(
    queries: int,
    depth: int | None,
    candidates: int,
    stages: int,
    tokens_per_pair: float,
    tokens_per_second: float,
) -> tuple[Cost | None, Cost]:
    """The most *Run evaluation* (None without reranking) and *Find the best setting*
    cost, as :class:`Cost` for the visitor's budget (same pairs as
    :func:`evaluation_cost_note` says)."""

    def seconds(pairs: int) -> float:
        return pairs * tokens_per_pair / max(tokens_per_second, 1.0)

    run = Cost(seconds(queries * depth), "Run evaluation") if depth else None
    tune = Cost(seconds(queries * candidates * stages), "Find the best setting")
    return run, tune


def evaluation_cost_note(
    queries: int,
    depth: int | None,
    candidates: int,
    stages: int,
    tokens_per_pair: float,
    tokens_per_second: float,
    measured: bool,
) -> str:
    """What pressing the Evaluate page's buttons will cost at most (no cache hits):
    *Run evaluation* reranks ``depth`` candidates of each query (None: no reranking),
    *Find the best setting* the top ``candidates`` of each of ``stages`` first stages
    (an upper bound: their candidates overlap)."""

    def cost(pairs: int) -> str:
        seconds = pairs * tokens_per_pair / tokens_per_second
        return f"{pairs:,} (query, document) pairs ≈ {format_seconds(seconds)}"

    parts = []
    if depth:
        parts.append(f"Run evaluation scores up to {cost(queries * depth)}")
    parts.append(
        f"Find the best setting up to {cost(queries * candidates * stages)} "
        f"({stages} first stages, whose candidates overlap)"
    )
    return (
        "Cross-encoder cost: "
        + "; ".join(parts)
        + f", ~{tokens_per_pair:,.0f} tokens per pair {_at_rate(tokens_per_second, measured)}."
        " Pairs already in the score cache cost nothing."
    )


def sample_texts(texts: Sequence[str], limit: int = 300) -> list[str]:
    """An evenly spaced sample of ``texts`` for the estimate (tokenising all is slow)."""
    if len(texts) <= limit:
        return list(texts)
    step = len(texts) / limit
    return [texts[int(i * step)] for i in range(limit)]


def embedded_text(record: dict, fields: Sequence[str]) -> str:
    """The text the bi-encoder embedded from ``record`` (its passages' offsets point
    into it)."""
    return embed_text(record, fields)


def describe_dense(match: PassageMatch) -> str:
    """One sentence on which passage of the embedded text the dense first stage matched."""
    if match.count < 2:
        return "First stage: embedded as one passage."
    cap = "" if match.complete else "; the cap left the rest of the text unembedded"
    return (
        f"First stage: retrieved by passage {match.index + 1} of {match.count} of the "
        f"embedded text (characters {match.start:,}–{match.end:,}){cap}."
    )


def dense_summary(index: PassageVectorIndex, result: SearchResult) -> str:
    """The dense-passage index in one line: vectors per document, documents cut, and
    the candidates retrieved by a passage other than their first."""
    later = sum(
        1 for c in result.candidates if c.retrieval_passage and c.retrieval_passage.index > 0
    )
    return (
        f"Dense passages: {index.num_passages:,} vectors for {len(index):,} documents "
        f"({index.passages_per_document:.2f} each; {index.documents_cut:,} cut into "
        f"passages) · {later} of {len(result.candidates)} candidates retrieved by a later "
        "passage than their first"
    )
