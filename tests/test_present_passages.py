"""What the app shows of passage reading (no Streamlit): highlighting with escaping,
descriptions, per-query counts, the estimate, and the setting in share links."""

from __future__ import annotations

from core.present.passages import (
    describe_read,
    estimate_note,
    evaluation_cost_note,
    highlight_html,
    highlight_segments,
    passage_rows,
    query_terms,
    reading_summary,
)
from core.present.views import SearchSettings
from core.search.passages import PassageRead, PassageSettings, ReadingEstimate
from core.search.pipeline import Candidate, SearchResult

TEXT = "body: Heat <script>alert(1)</script> **bold** then the boiler pressure is 1.5 bar."


def candidate(read: PassageRead | None, truncated: bool = False, text: str = TEXT) -> Candidate:
    return Candidate(
        id="a",
        title="A",
        record={},
        retrieval_rank=1,
        retrieval_score=0.5,
        rerank_text=text,
        num_results=1,
        rerank_rank=1,
        rerank_score=2.0,
        rerank_normalized=0.88,
        truncated=truncated,
        passages=read,
    )


def test_query_terms_drop_stopwords_and_repeats() -> None:
    assert query_terms("How do I reset the Boiler pressure, boiler?") == [
        "reset",
        "boiler",
        "pressure",
    ]


def test_highlight_escapes_record_text_and_marks_passage_and_terms() -> None:
    start = TEXT.index("then")
    html = highlight_html(TEXT, (start, len(TEXT)), "boiler pressure")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "**bold**" in html  # shown literally: no markdown is applied to st.html
    marked = html[html.index('<mark class="decided-passage">') : html.index("</mark>")]
    assert marked.startswith('<mark class="decided-passage">then')
    assert '<b class="query-term">boiler</b>' in marked
    assert '<b class="query-term">pressure</b>' in marked
    assert html.count("<mark") == 1
    # the segments put the text back together exactly
    segs = highlight_segments(TEXT, (start, len(TEXT)), "boiler")
    assert "".join(s.text for s in segs) == TEXT
    assert all(s.passage == (TEXT.index(s.text) >= start) for s in segs if s.text.strip())


def test_terms_match_whole_words_only() -> None:
    segs = highlight_segments("boilers and a boiler", None, "boiler")
    assert [s.text for s in segs if s.term] == ["boiler"]


def test_descriptions_and_rows() -> None:
    best = PassageRead("max", ((0, 40), (20, len(TEXT))), (-3.0, 4.5), 1, 2, True)
    c = candidate(best)
    assert describe_read(c).startswith("Passage 2 of 2 decided (best passage")
    rows = passage_rows(c)
    assert [r["decided"] for r in rows] == ["", "◀"] and rows[1]["score"] == 4.5
    capped = PassageRead("max", ((0, 40), (20, 60)), (1.0, 0.5), 0, 5, False)
    assert "first 2 of 5 passages read (cap)" in describe_read(candidate(capped, True))
    first = PassageRead("first", ((0, 30),), (1.0,), 0, 1, False)
    assert describe_read(candidate(first, True)).startswith("Read in part (first passage")
    assert describe_read(candidate(None, True)).endswith("(truncated).")


def test_reading_summary_counts_full_and_part() -> None:
    full = PassageRead("max", ((0, 10),), (1.0,), 0, 1, True)
    part = PassageRead("max", ((0, 10), (5, 20)), (1.0, 2.0), 1, 3, False)
    result = SearchResult(
        query="q",
        dataset="d",
        encoder="e",
        reranker="r",
        score_kind="logit",
        num_candidates=2,
        num_results=2,
        embed_fields=("body",),
        rerank_fields=("body",),
        candidates=(candidate(full), candidate(part, truncated=True)),
        passage_settings=PassageSettings("max"),
    )
    text = reading_summary(result)
    assert text.startswith("Documents read in full: 1 · in part: 1")
    assert "3 passages scored for 2 documents (best passage (MaxP))" in text


def test_estimate_note() -> None:
    note = estimate_note(ReadingEstimate(1.5, 420.0), 100, "max", 7000.0, measured=False)
    assert "about 150 (query, passage) pairs" in note and "~420 tokens each" in note
    assert "≈ 9.0 s" in note and "~7,000 tokens/s (typical of a 2-core CPU)" in note
    short = estimate_note(ReadingEstimate(1.0, 80.0), 100, "max", 8000.0, measured=True)
    assert "≈ 1.0 s" in short and "(measured on this server)" in short


def test_evaluation_cost_note_prices_both_buttons_by_tokens() -> None:
    note = evaluation_cost_note(50, 100, 100, 4, 350.0, 7000.0, measured=False)
    # 5,000 pairs x 350 tokens / 7,000 tokens/s = 250 s; the grid: 4 stages' candidates.
    assert "Run evaluation scores up to 5,000 (query, document) pairs ≈ 4.2 min" in note
    assert "Find the best setting up to 20,000 (query, document) pairs ≈ 16.7 min" in note
    assert "(4 first stages, whose candidates overlap)" in note
    assert "~350 tokens per pair at ~7,000 tokens/s (typical of a 2-core CPU)" in note
    off = evaluation_cost_note(4, None, 20, 4, 80.0, 8000.0, measured=True)
    assert "Run evaluation" not in off  # reranking off: the first stage alone is free
    assert "up to 320 (query, document) pairs ≈ 3.2 s" in off and "measured on this" in off


def test_passages_setting_round_trips_through_the_link() -> None:
    view = SearchSettings(query="q", passages="top2")
    assert view.to_params()["psg"] == "top2"
    back, warnings = SearchSettings.from_params(view.to_params())
    assert back == view and not warnings
    assert "psg" not in SearchSettings(query="q").to_params()  # max is the default
    bad, warnings = SearchSettings.from_params({"psg": "mean"})
    assert bad.passages == "max" and "psg" in warnings[0]


def test_excerpt_shows_the_passage_with_context() -> None:
    text = "alpha " * 100 + "the boiler pressure answer" + " omega" * 100
    start = text.index("the boiler")
    html = highlight_html(text, (start, start + 26), "boiler", context=30)
    assert html.count("alpha") <= 6 and html.count("omega") <= 6
    assert "… " in html and " …" in html
    assert '<mark class="decided-passage">the <b class="query-term">boiler</b>' in html
