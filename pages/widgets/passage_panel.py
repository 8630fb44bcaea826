"""The search page's passage reading: the aggregate picker, the cost estimate, the
per-query read counts and the details view's deciding passage (logic in
:mod:`core.present.passages`)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.data.documents import Dataset, rerank_text
from core.models.cross_encoders import tokens_per_second
from core.models.errors import CoreError
from core.present.passages import (
    dense_summary,
    describe_dense,
    describe_read,
    embedded_text,
    estimate_note,
    highlight_html,
    passage_rows,
    reading_summary,
    sample_texts,
)
from core.present.views import PASSAGE_TOKENS_MAX
from core.search.passage_index import PassageVectorIndex
from core.search.passages import (
    AGGREGATES,
    MIN_WINDOW,
    PassageSettings,
    ReadingEstimate,
    estimate_reading,
)
from core.search.pipeline import Candidate, SearchResult


def passage_picker(disabled: bool, *, dense_disabled: bool = False) -> None:
    """The "Long documents" choice (session key ``passages``), the passage window and
    stride (``passage_window``, ``passage_stride``) and dense passages for the first
    stage (``dense_passages``)."""
    state = st.session_state
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
    st.checkbox(
        "Dense: embed long documents by passage",
        key="dense_passages",
        disabled=dense_disabled,
        help="The bi-encoder reads 256 tokens (all-MiniLM-L6-v2). With this on, a longer "
        "text gets one vector per passage (same window and stride, cut with the "
        "bi-encoder's own tokenizer) and a document is retrieved by its best passage. "
        "Cost: the corpus is embedded once more, one vector per passage (cached on disk), "
        "and search scores every passage. Not for built or Milvus collections.",
    )
    windowed = not disabled and state.get("passages") != "first"
    c1, c2 = st.columns(2)
    c1.number_input(
        "Passage window",
        0,
        PASSAGE_TOKENS_MAX,
        step=16,
        key="passage_window",
        disabled=not windowed and not state.get("dense_passages"),
        help="Tokens per passage; 0: all that fits (beside the query for the reranker, "
        f"the bi-encoder's limit for dense passages). At least {MIN_WINDOW} otherwise.",
    )
    c2.number_input(
        "Stride",
        0,
        PASSAGE_TOKENS_MAX,
        step=16,
        key="passage_stride",
        disabled=not windowed and not state.get("dense_passages"),
        help="Tokens between passage starts; 0: half the window (50% overlap). A "
        "smaller stride reads more passages (more pairs to score).",
    )


@st.cache_data(max_entries=32, show_spinner=False)
def _reading(
    content_hash: str, _dataset: Dataset, fields: tuple[str, ...], settings: PassageSettings
) -> ReadingEstimate:
    texts = [rerank_text(r, fields) for r in sample_texts(_dataset.records)]
    return estimate_reading(texts, settings)


def passage_estimate(
    dataset: Dataset,
    fields: tuple[str, ...],
    settings: PassageSettings,
    candidates: int,
    reranker: object | None = None,
) -> None:
    """A caption with the expected pairs and seconds per query, before the run (none
    when the settings are out of range: the search then says why)."""
    try:
        settings = settings.checked()
    except CoreError:
        return
    estimate = _reading(dataset.content_hash, dataset, fields, settings)
    if estimate.passages_per_doc > 1.0 or settings.aggregate != "first":
        rate, measured = tokens_per_second(reranker, estimate.tokens_per_pair)
        read = min(candidates, len(dataset))  # a small dataset has fewer candidates
        st.caption(estimate_note(estimate, read, settings.aggregate, rate, measured))


def dense_caption(result: SearchResult, build) -> None:
    """With dense passages: vectors per document in the index, and the candidates
    retrieved by a passage other than their first."""
    index = getattr(build, "index", None)
    if result.dense_passages is None or not isinstance(index, PassageVectorIndex):
        return
    st.caption(dense_summary(index, result))


def reading_caption(result: SearchResult) -> None:
    """Documents read in full vs in part for this query."""
    text = reading_summary(result)
    if text:
        st.caption(text)


def dense_details(result: SearchResult, picked: Candidate) -> None:
    """The passage of the embedded text the dense first stage matched (escaped)."""
    match = picked.retrieval_passage
    if match is None or match.count < 2:
        return
    st.caption(describe_dense(match))
    text = embedded_text(picked.record, result.embed_fields)
    with st.expander("The passage the first stage matched"):
        st.html(highlight_html(text, (match.start, match.end), result.query, context=0))


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
