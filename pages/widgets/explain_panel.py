"""The Search page's "Why this score?" panel for one result (issue #32).

Computed only when asked (a button per result), cached on disk by core and kept in the
session; the heat map is core's escaped inline-style HTML. The first stage's reasons
sit beside the reranker's. All logic lives in core.quality.explain* and
core.present.explain; this lays them out.
"""

from __future__ import annotations

import streamlit as st

from core.data.documents import embed_text
from core.models.base import PACKAGED_CROSS_ENCODER
from core.models.errors import CoreError
from core.present.explain import (
    Shown,
    contrast_text,
    faithfulness_line,
    first_stage_text,
    heatmap_html,
    reasons_line,
    signed,
)
from core.present.views import error_text, escape_markdown
from core.quality.explain import contrast, estimate_calls, explain_candidate
from core.quality.explain_first_stage import explain_bm25, explain_dense
from core.quality.explain_ig import IG_MODEL_KEY  # importing it registers "ig"
from core.quality.faithfulness import faithfulness_figure, load_table
from core.search.pipeline import Candidate, SearchResult
from core.search.retrievers import bm25_index
from pages.widgets.actions import action_button, running_action
from pages.widgets.common import get_dataset, get_encoder, get_reranker

KEPT = "explanations"


def first_stage_reasons(result: SearchResult, picked: Candidate):
    """The first stage's reasons (dense: token shares; BM25: term parts), or None."""
    try:
        if result.retriever == "dense" and result.dense_passages is None:
            encoder = get_encoder(result.encoder)
            text = embed_text(picked.record, result.embed_fields)
            return explain_dense(encoder, result.query, text, picked.retrieval_score)
        if result.retriever == "bm25":
            dataset = get_dataset(result.dataset)
            index = bm25_index(dataset, result.embed_fields)
            return explain_bm25(index, dataset, picked.id, result.query)
    except (CoreError, OSError, ValueError):
        return None
    return None


def _words(items) -> str:
    return ", ".join(f"{escape_markdown(w.text)} ({signed(w.effect)})" for w in items) or "none"


def explain_panel(result: SearchResult, picked: Candidate) -> None:
    """An expander explaining ``picked``'s reranker score (and its first-stage score)."""
    if not result.reranker or picked.rerank_score is None:
        return
    with st.expander(
        "Why this score? (explain by occlusion)",
        icon=":material/insights:",
        key="explain_open",
        on_change="rerun",
    ):
        if result.reranker.startswith("together:") or result.score_kind == "relevance":
            calls = estimate_calls(result.query, picked.rerank_text)
            st.info(
                f"A hosted reranker is not explained by default: occlusion would send "
                f"about {calls} paid calls. Use `python -m core explain ... --allow-hosted`.",
                icon="ℹ️",
            )
            return
        figure = faithfulness_figure(load_table(), result.dataset)
        if figure is not None and not figure["passes"]:
            st.warning(faithfulness_line(figure) + ": not shown.", icon="⚠️")
            return
        kept = st.session_state.setdefault(KEPT, {})
        key = (result.reranker, result.query, picked.id, picked.rerank_text)
        calls = estimate_calls(result.query, picked.rerank_text)
        label = f"Explain this result (~{calls} model calls)"
        if key not in kept and action_button(label, "explain_go"):
            with running_action("explain_go"), st.spinner(f"Scoring {calls} variants…"):
                try:
                    reranker = get_reranker(result.reranker)
                    kept[key] = explain_candidate(reranker, result.query, picked)
                except CoreError as exc:
                    st.error(error_text(exc))
                    return
        expl = kept.get(key)
        if expl is None:
            return
        st.html(heatmap_html(expl))
        c1, c2 = st.columns(2)
        c1.markdown("**Helped** (logits): " + _words(expl.helped(5)))
        c2.markdown("**Hurt** (logits): " + _words(expl.hurt(5)))
        st.markdown("**Query words**: " + _words(expl.query_words))
        first = first_stage_reasons(result, picked)
        line = reasons_line(first, expl)
        if line:
            st.markdown(escape_markdown(line))
        if first is not None:
            st.caption(escape_markdown(first_stage_text(first)))
        st.caption(
            escape_markdown(
                faithfulness_line(figure)
                if figure
                else "Faithfulness not measured on this data (python -m core bench-explain)."
            )
        )
        _contrast(result, picked, expl)
        _second_method(result, picked)


def _second_method(result: SearchResult, picked: Candidate) -> None:
    """Integrated Gradients (fp32 rebuild of the packaged model), offered only where it
    passed the faithfulness bar on this data (``bench-explain --ig``)."""
    figure = faithfulness_figure(load_table(), result.dataset, "ig")
    if figure is None or not figure["passes"] or result.reranker != PACKAGED_CROSS_ENCODER:
        return
    kept = st.session_state.setdefault(KEPT, {})
    key = (result.reranker, result.query, picked.id, picked.rerank_text, IG_MODEL_KEY)
    label = "Also by Integrated Gradients (fp32 rebuild of the same weights)"
    if key not in kept and action_button(label, "explain_ig_go"):
        with running_action("explain_ig_go"), st.spinner("Integrating gradients…"):
            try:
                reranker = get_reranker(result.reranker)
                kept[key] = explain_candidate(reranker, result.query, picked, method="ig")
            except CoreError as exc:
                st.error(error_text(exc))
                return
    expl = kept.get(key)
    if expl is not None:
        st.markdown("**Integrated Gradients**")
        st.html(heatmap_html(expl))
        st.markdown("**Helped** (logits): " + _words(expl.helped(5)))
        st.caption(escape_markdown(faithfulness_line(figure)))


def _contrast(result: SearchResult, picked: Candidate, expl) -> None:
    """Pick a result below this one: what this one has that it lacks, and the swap test."""
    below = [c for c in result.top_final if c.final_rank > picked.final_rank]
    if not below:
        return
    labels = {f"{c.final_rank}. {c.title}": c for c in below}
    other = labels[st.selectbox("Why above…", list(labels), key="explain_contrast")]
    kept = st.session_state.setdefault("explain_contrasts", {})
    key = (result.reranker, result.query, picked.id, other.id)
    if key not in kept and action_button("Compare the two", "explain_contrast_go"):
        with running_action("explain_contrast_go"), st.spinner("Explaining both…"):
            try:
                reranker = get_reranker(result.reranker)
                pair = contrast(
                    reranker,
                    result.query,
                    picked.rerank_text,
                    other.rerank_text,
                    passage_x=_passage(picked),
                    passage_y=_passage(other),
                )
            except CoreError as exc:
                st.error(error_text(exc))
                return
            kept[key] = contrast_text(pair, picked.title, other.title)
    text = kept.get(key)
    if text:
        st.code(text, language=None, wrap_lines=True)


def _passage(candidate: Candidate) -> tuple[int, int] | None:
    """The span of the passage that decided, when the text was read by passages."""
    reads = candidate.passages
    return tuple(reads.best_span) if reads is not None and reads.num_passages > 1 else None


def opened(result: SearchResult) -> list[Shown]:
    """The explanations the user opened for this result's results (for its exports)."""
    kept = st.session_state.get(KEPT, {})
    figure = faithfulness_figure(load_table(), result.dataset)
    label = f"reranker · {result.reranker}"
    out = []
    for c in result.top_final:
        expl = kept.get((result.reranker, result.query, c.id, c.rerank_text))
        if expl is not None:
            out.append(Shown(label, c.id, c.title, expl, figure))
    return out
