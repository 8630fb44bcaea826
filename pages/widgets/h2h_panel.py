"""Streamlit glue for head-to-heads, shared by the Head to head and Walkthrough pages:
the A/B spec picker, running a head-to-head from a view's settings (models, datasets and
indexes come from the shared caches), and drawing it (labelled, or blind)."""

from __future__ import annotations

from collections import OrderedDict

import pandas as pd
import streamlit as st

from core.models.allow import model_refusal
from core.models.base import PACKAGED_CROSS_ENCODER
from core.models.errors import CoreError, SettingsError
from core.present.compare_charts import h2h_movement_chart, side_score_chart
from core.present.room import B_COLOR, DOWN, UP, candidates_phrase, move_mark
from core.present.views import SearchSettings, error_text, escape_markdown, outside_text
from core.quality.headtohead import NONE, HeadToHead, RerankSpec, head_to_head
from core.search.activity import visitor_search
from core.search.retrievers import RETRIEVER_LABELS, make_retriever
from pages.widgets.common import (
    encoder_for,
    get_index,
    load_named_dataset,
    reranker_for,
    together_api_key,
)
from pages.widgets.spec_picker import seed_picker, spec_of, spec_picker

CACHE_SIZE = 24


def check_models(settings: SearchSettings, b: RerankSpec) -> None:
    """The second wall behind the gate: every model id a head-to-head would load (the
    bi-encoder, A and B) is one a visitor may select; SettingsError naming the first
    that is not. Links and stored steps were already refused by the gate; this catches a
    model id typed into the pickers or a view built some other way."""
    wanted = [] if settings.retriever == "bm25" else [(settings.encoder, "encoder")]
    wanted += [(spec.reranker, "reranker") for spec in (spec_of(settings), b)]
    for model_id, role in wanted:
        if model_id in (NONE, PACKAGED_CROSS_ENCODER):
            continue
        refusal = model_refusal(model_id, role, origin="typed")
        if refusal is not None:
            raise SettingsError(refusal)


def run_head_to_head(settings: SearchSettings, b: RerankSpec) -> HeadToHead:
    """A (the view's second stage) vs ``b`` on the view's candidates; kept per session
    so reruns (votes, next/previous) never score again. Raises CoreError."""
    state = st.session_state
    cache: OrderedDict = state.setdefault("h2h_cache", OrderedDict())
    key = (settings, b)
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    check_models(settings, b)
    loaded = load_named_dataset(settings.dataset, settings.id_field, settings.title_field)
    dataset = loaded.dataset
    checked, _ = settings.with_dataset_fields(dataset.fields)
    embed = checked.embed_fields or dataset.default_embed_fields
    api_key = together_api_key()
    encoder = index = None
    if settings.retriever != "bm25":
        encoder = encoder_for(settings.encoder, api_key)
        index = get_index(dataset, encoder, tuple(embed)).index
    retriever = make_retriever(
        settings.retriever, dataset, embed, encoder=encoder, index=index, rrf_k=settings.rrf_k
    )
    a = spec_of(settings)
    models = {
        spec.reranker: reranker_for(spec.reranker, api_key) for spec in (a, b) if not spec.is_none
    }
    with st.spinner("Scoring the candidates with A and B…"), visitor_search():
        result = head_to_head(
            dataset,
            settings.query,
            retriever=retriever,
            a=a,
            b=b,
            reranker_a=models.get(a.reranker),
            reranker_b=models.get(b.reranker),
            rerank_fields=checked.rerank_fields or None,
            num_candidates=settings.candidates,
            num_results=settings.results,
        )
    cache[key] = result
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
    return result


def show_figures(h2h: HeadToHead) -> None:
    """Agreement and timings as metrics."""
    agree = h2h.agreement
    n = h2h.num_results
    cols = st.columns(6)
    cols[0].metric(
        "Kendall τ (A vs B)",
        f"{agree.kendall_tau:+.2f}",
        help="Agreement of the two orders over all candidates: 1 identical, −1 reversed.",
    )
    cols[1].metric(
        "RBO (p = 0.9)",
        f"{agree.rbo:.2f}",
        help="Rank-biased overlap: top-heavy agreement, 1 identical, 0 disjoint.",
    )
    cols[2].metric(f"Overlap@{n}", f"{agree.overlap:.0%}", help="Share of the top-N both have.")
    cols[3].metric("Same top result", "yes" if agree.top_same else "no")
    _time_metric(cols[4], "A time", h2h.a)
    _time_metric(
        cols[5],
        "B time",
        h2h.b,
        "Same model as A: its scores were computed once; only the fusion differs. "
        if h2h.b.shared_scores
        else "",
    )
    r = h2h.a.result
    stage = RETRIEVER_LABELS[r.retriever] + (
        "" if r.retriever == "bm25" else f" · {escape_markdown(r.encoder)}"
    )
    st.caption(
        f"{candidates_phrase(h2h)}, from {stage} in "
        f"{h2h.retrieval_seconds * 1000:.0f} ms. A scores: {h2h.a.score_label}; "
        f"B scores: {h2h.b.score_label} (each on its own scale)."
        + (" B reuses A's cross-encoder scores." if h2h.b.shared_scores else "")
    )
    for name, side in (("A", h2h.a), ("B", h2h.b)):
        if side.result.notice:
            st.warning(f"{name}: {outside_text(side.result.notice)}", icon="⚠️")
        truncated = sum(c.truncated for c in side.result.candidates)
        if truncated:
            st.warning(
                f"{name}: {truncated} candidate text(s) exceeded the reranker's maximum "
                "length and were truncated.",
                icon="✂️",
            )


def _time_metric(col, label: str, side, help_prefix: str = "") -> None:
    """A side's second-stage time, with why it is near zero when it is."""
    col.metric(
        label,
        f"{side.seconds * 1000:.0f} ms",
        delta=_time_note(side),
        delta_color="off",
        delta_arrow="off",
        help=(help_prefix + (_time_help(side) or "")) or None,
    )


def _time_note(side) -> str | None:
    """Why a time is near zero: scores reused from A or from the score cache."""
    if side.spec.is_none:
        return None
    if side.shared_scores:
        return "A's scores, fused"
    pairs = side.result.num_candidates
    if side.cached_pairs and side.cached_pairs >= pairs:
        return "all pairs from cache"
    if side.cached_pairs:
        return f"{side.cached_pairs} of {pairs} pairs from cache"
    return None


def _time_help(side) -> str | None:
    if side.spec.is_none:
        return "No second stage: the first stage's order."
    pairs = side.result.num_candidates
    if side.cached_pairs:
        return (
            f"{side.cached_pairs} of {pairs} pairs came from the reranker's in-memory score "
            "cache (scored earlier in this server), so this time is lower than a cold run."
        )
    return f"{pairs} pairs scored."


def show_tables(h2h: HeadToHead) -> None:
    """A's and B's top-N side by side, each with its own score and the other's rank."""
    left, right = st.columns(2)
    ranks = {"a": h2h.a.ranks, "b": h2h.b.ranks}
    for col, key, other, side in ((left, "a", "b", h2h.a), (right, "b", "a", h2h.b)):
        with col:
            st.subheader(f"{key.upper()} · {escape_markdown(side.spec.label)}")
            top = side.result.top_final
            move = [ranks[other][c.id] - c.final_rank for c in top]
            st.dataframe(
                pd.DataFrame(
                    {
                        "#": [c.final_rank for c in top],
                        "title": [c.title for c in top],
                        side.score_label: [side.score(c) for c in top],
                        f"{other.upper()} #": [ranks[other][c.id] for c in top],
                        "vs other": [move_mark(m) for m in move],
                    }
                ),
                hide_index=True,
                column_config={side.score_label: st.column_config.NumberColumn(format="%.3f")},
                key=f"h2h_table_{key}",
            )


def show_charts(h2h: HeadToHead) -> None:
    """Movement from A to B, then each side's scores on its own axis."""
    st.subheader("Movement from A to B")
    st.caption(
        "Each line is one item, from its rank under A (left) to its rank under B (right); "
        f"blue {UP}: B ranks it higher, vermillion {DOWN}: lower. Dashed: in only one of the "
        "two top-N. Scores: dots on each side's own scale (lowest to highest, not from 0)."
    )
    st.altair_chart(h2h_movement_chart(h2h), width="stretch")
    c1, c2 = st.columns(2)
    c1.caption(f"A: {h2h.a.score_label}")
    c1.altair_chart(side_score_chart(h2h.a), width="stretch")
    c2.caption(f"B: {h2h.b.score_label}")
    c2.altair_chart(side_score_chart(h2h.b, B_COLOR), width="stretch")


def search_compare_panel(settings: SearchSettings) -> None:
    """The Search page's head-to-head: the view's second stage as A against a B picked
    here, on the same candidates; a link opens it on the Head to head page (shareable,
    walkthrough steps, report)."""
    state = st.session_state
    st.subheader("Head to head")
    on = st.toggle(
        "Compare with a second reranker (B) on the same candidates",
        key="search_h2h_on",
        help="A is this view's reranker (and fusion); B is picked here.",
    )
    if not on:
        return
    if "sb_choice" not in state:
        from core.quality.headtohead import parse_spec

        a = spec_of(settings)
        seed_picker("sb", parse_spec("local") if a.is_none or a.fused else parse_spec("local@0.5"))
    b = spec_picker("sb", "B", st.container())
    try:
        h2h = run_head_to_head(settings, b)
    except CoreError as exc:
        st.error(error_text(exc), icon="🚫")
        return
    show_figures(h2h)
    show_tables(h2h)
    show_charts(h2h)
    st.page_link(
        "pages/compare.py",
        label="Open this head to head (shareable link, walkthrough, report)",
        icon=":material/compare_arrows:",
        query_params={**settings.to_params(), "b": b.to_string()},
    )
