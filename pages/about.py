"""About page: retrieval vs reranking, explained with this app's own numbers."""

from __future__ import annotations

import streamlit as st

from core.present.views import escape_markdown, summarize
from serve import ensure_navigation

ensure_navigation()  # first: a deep link on a fresh plain server (serve.py)

st.title("About this workbench")
st.markdown(
    """
**Retrieval** turns every document into a vector once (a *bi-encoder*), turns the query
into a vector, and returns the nearest documents by cosine similarity. It is fast
because documents are encoded ahead of time, but the query and a document never meet:
each is compressed into a vector on its own.

**Reranking** takes those candidates and lets a *cross-encoder* read the query and
each document together, attending across both texts. That is far more accurate and far
slower, so it only sees the few dozen candidates retrieval found.

**Other first stages.** *BM25* matches words (stemmed, stop words dropped): no model, and
strong where queries share vocabulary with documents. *Hybrid* fuses the dense and BM25
lists by reciprocal rank fusion, so a document either list ranks high comes first.

**Fusion.** Pure reranking throws the first stage's evidence away. With a cross-encoder
weight below 1, the final order blends both stages' min-max normalised scores; on
labelled data the Evaluate page finds the weight (and depth, and first stage) that
helps, choosing on some queries and reporting on others.

**What the scores mean.** Dense retrieval scores are cosine similarities (−1 to 1); BM25
scores are unbounded word-match weights; RRF scores are small sums of `1 / (60 + rank)`.
The local cross-encoder outputs a raw logit (roughly −11 to +10); the app also shows
`sigmoid(logit)`, the model's own estimate that the document is relevant. Scales are
never drawn on one axis.
"""
)

result = st.session_state.get("last_result")
if result is None:
    st.info("Run a search on the Search page and this page will explain it with its numbers.")
    st.page_link("pages/search.py", label="Go to Search", icon="🔎")
    st.stop()

t = result.timings
st.subheader(f"Your last search: “{escape_markdown(result.query)}”")
lines = [
    f"- Retrieval ({result.retriever}) encoded the query in **{t.query_encode * 1000:.0f} ms**"
    " and searched "
    f"{escape_markdown(result.dataset)} in **{t.search * 1000:.1f} ms**, returning "
    f"{result.num_candidates} candidates.",
]
summary = summarize(result)
if summary is None:
    lines.append("- No reranker ran, so the final order is the retrieval order.")
else:
    per_pair = t.rerank / max(result.num_candidates, 1) * 1000
    lines.append(
        f"- The cross-encoder read **{result.num_candidates}** (query, document) pairs in "
        f"**{t.rerank * 1000:.0f} ms** (about {per_pair:.1f} ms a pair): that is why it "
        "only sees candidates, never the whole corpus."
    )
    biggest = max(result.top_final, key=lambda c: c.movement or 0)
    if (biggest.movement or 0) > 0:
        lines.append(
            f"- Its biggest promotion: **{escape_markdown(biggest.title)}**, from retrieval "
            f"#{biggest.retrieval_rank} to #{biggest.final_rank}."
        )
    lines.append(
        f"- {summary.from_outside} of the top {result.num_results} came from outside "
        f"retrieval's top {result.num_results}; the two orders agree with Kendall τ = "
        f"{summary.kendall_tau:.2f}."
    )
st.markdown("\n".join(lines))
