"""The search page's passage reading: the aggregate picker, the cost estimate, the
per-query read counts and the details view's deciding passage (logic in
:mod:`core.present.passages`)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.data.documents import Dataset, rerank_text
from core.present.passages import (
    describe_read,
    estimate_note,
    highlight_html,
    passage_rows,
    reading_summary,
    sample_texts,
)
from core.search.passages import AGGREGATES, PassageSettings, expected_passages
from core.search.pipeline import Candidate, SearchResult


def passage_picker(disabled: bool) -> None:
    """The "Long documents" choice (session key ``passages``)."""
    st.selectbox(
        "Long documents",
        list(AGGREGATES),
        key="passages",
        format_func=AGGREGATES.get,
        disabled=disabled,
        help="A text longer than what fits beside the query (512 tokens) is cut into "
        "overlapping passages. Best passage scores each one and keeps the best; first "
        "passage reads only the start (cheaper: one pair per document). Short texts are "
        "read whole either way, at the same cost. Hosted rerankers are sent whole "
        "documents (the command line can read them by passage).",
    )


@st.cache_data(max_entries=32, show_spinner=False)
def _mean_passages(content_hash: str, _dataset: Dataset, fields: tuple[str, ...], how: str):
    texts = [rerank_text(r, fields) for r in sample_texts(_dataset.records)]
    return expected_passages(texts, PassageSettings(how))


def passage_estimate(dataset: Dataset, fields: tuple[str, ...], how: str, candidates: int):
    """A caption with the expected pairs and seconds per query, before the run."""
    mean = _mean_passages(dataset.content_hash, dataset, fields, how)
    if mean > 1.0 or how != "first":
        st.caption(estimate_note(mean, candidates, how))


def reading_caption(result: SearchResult) -> None:
    """Documents read in full vs in part for this query."""
    text = reading_summary(result)
    if text:
        st.caption(text)


def passage_details(result: SearchResult, picked: Candidate) -> None:
    """The reranker's text with the deciding passage highlighted and query terms marked,
    and every passage's score."""
    st.caption(describe_read(picked))
    span = picked.passages.best_span if picked.passages is not None else None
    whole = picked.passages is None or picked.passages.num_passages == 1
    st.html(highlight_html(picked.rerank_text, span, result.query, context=None if whole else 200))
    if not whole:
        with st.expander("The whole text, deciding passage highlighted"):
            st.html(highlight_html(picked.rerank_text, span, result.query))
    rows = passage_rows(picked)
    if len(rows) > 1:
        st.dataframe(
            pd.DataFrame(rows),
            hide_index=True,
            column_config={"score": st.column_config.NumberColumn(format="%.2f")},
            key="passage_table",
        )


if __name__ == "__main__":  # opened as a page: only in pages-directory mode (serve.py)
    from serve import ensure_navigation

    ensure_navigation()
